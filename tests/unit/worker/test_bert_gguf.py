"""The converter's readers: safetensors parsed by hand, and llama.cpp's WordPiece vocabulary conventions."""

import json
import struct

import gguf
import numpy as np

from worker.bert_gguf import _vocab, read_safetensors


def _safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    header, data, offset = {}, b"", 0
    for name, array in tensors.items():
        raw = array.tobytes()
        dtype = {np.float32: "F32", np.int64: "I64"}[array.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        data, offset = data + raw, offset + len(raw)
    encoded = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def test_safetensors_are_read_with_their_shapes_and_types() -> None:
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    ids = np.arange(4, dtype=np.int64)
    read = read_safetensors(_safetensors({"w": weights, "ids": ids}))
    assert set(read) == {"w", "ids"}
    assert np.array_equal(read["w"], weights) and read["w"].dtype == np.float32
    assert np.array_equal(read["ids"], ids)


def test_wordpiece_tokens_take_llama_cpps_phantom_space_form() -> None:
    tokenizer = {
        "model": {"vocab": {"[PAD]": 0, "[CLS]": 1, "cat": 2, "##s": 3, "[unused0]": 4}},
        "added_tokens": [
            {"id": 0, "content": "[PAD]", "special": True},
            {"id": 1, "content": "[CLS]", "special": True},
        ],
    }
    tokens, types, special = _vocab(tokenizer)
    assert tokens == ["[PAD]", "[CLS]", "\u2581cat", "s", "\u2581[unused0]"]
    control, normal = int(gguf.TokenType.CONTROL), int(gguf.TokenType.NORMAL)
    assert types == [control, control, normal, normal, normal]
    assert special == {"[PAD]": 0, "[CLS]": 1}
