"""An independent numpy forward pass of a BERT sentence encoder, read straight from its safetensors.

The yardstick for the GGUF that worker/bert_gguf.py writes: embeddings + LayerNorm, self-attention and
a GELU feed-forward per layer (post-norm), mean pooling over the attention mask, L2 normalisation.
"""

import math
from typing import Any

import numpy as np


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _linear(t: dict[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    return x @ t[f"{name}.weight"].astype(np.float64).T + t[f"{name}.bias"]


def encode(model: dict[str, Any], tokens: list[int]) -> np.ndarray:
    """The unit-length sentence embedding of one token sequence ([CLS] ... [SEP] included)."""
    t = {name: array.astype(np.float64) for name, array in model["tensors"].items()}
    config = model["config"]
    eps, heads = float(config["layer_norm_eps"]), int(config["num_attention_heads"])
    ids = np.array(tokens)
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][: len(ids)]
    x = x + t["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    size = x.shape[1] // heads
    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}."
        q, k, v = (
            _linear(t, p + f"attention.self.{n}", x).reshape(len(ids), heads, size).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        out = _linear(t, p + "attention.output.dense", attended)
        x = _layer_norm(
            x + out, t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"], eps
        )
        hidden = _gelu(_linear(t, p + "intermediate.dense", x))
        out = _linear(t, p + "output.dense", hidden)
        x = _layer_norm(x + out, t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)  # one unpadded sequence: the attention mask is all ones
    return pooled / np.linalg.norm(pooled)
