"""worker.weights: requantized copies of the bundled model, converted once, cached, never left half-written."""

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker import llamalib
from worker.model import bundled_model_path
from worker.weights import AUTO_BUNDLED, convert, default_cache_dir, served_weights

pytestmark = pytest.mark.integration

FILE_TYPES = {"q8_0": "7", "q4_0": "2"}  # llama_ftype: LLAMA_FTYPE_MOSTLY_Q8_0, LLAMA_FTYPE_MOSTLY_Q4_0


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    llamalib.prepare()
    yield tmp_path_factory.mktemp("models")


def never(source: Path, target: Path, kind: str) -> None:
    raise AssertionError(f"converted {source.name} to {kind} again")


def half_then_fail(source: Path, target: Path, kind: str) -> None:
    target.write_bytes(source.read_bytes()[:1000])
    raise RuntimeError("interrupted")


@pytest.mark.parametrize("kind", ["q8_0", "q4_0"])
def test_a_conversion_is_a_loadable_gguf_of_the_requested_type(cache: Path, kind: str) -> None:
    import llama_cpp

    path = convert(bundled_model_path(), kind, cache)
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    assert model, f"llama.cpp cannot load {path}"
    try:
        value = ctypes.create_string_buffer(16)
        llama_cpp.llama_model_meta_val_str(model, b"general.file_type", value, len(value))
        assert value.value.decode() == FILE_TYPES[kind]
        assert llama_cpp.llama_model_n_params(model) > 100_000_000
    finally:
        llama_cpp.llama_model_free(model)


def test_a_second_call_reuses_the_cached_file(cache: Path) -> None:
    first = convert(bundled_model_path(), "q8_0", cache)
    written = first.stat().st_mtime_ns
    again = convert(bundled_model_path(), "q8_0", cache, quantize=never)
    assert again == first and again.stat().st_mtime_ns == written


def test_a_changed_source_is_converted_anew(tmp_path: Path, cache: Path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(bundled_model_path().read_bytes())
    first = convert(source, "q4_0", cache)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    second = convert(source, "q4_0", cache)
    assert second != first and second.is_file()


def test_a_failed_conversion_leaves_no_file(tmp_path: Path) -> None:
    garbage = tmp_path / "broken.gguf"
    garbage.write_bytes(b"not a gguf file" * 100)
    out = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="could not convert"):
        convert(garbage, "q8_0", out)
    with pytest.raises(RuntimeError, match="interrupted"):
        convert(bundled_model_path(), "q8_0", out, quantize=half_then_fail)
    assert list(out.iterdir()) == []


def test_unknown_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="q8_0 or q4_0"):
        convert(bundled_model_path(), "q4_1", tmp_path)
    with pytest.raises(ValueError, match="auto, as-is, q8_0, q4_0"):
        served_weights(bundled_model_path(), "fastest", bundled=True, cache_dir=tmp_path)


def test_what_each_choice_serves(tmp_path: Path, cache: Path) -> None:
    bundled, own = bundled_model_path(), tmp_path / "mine.gguf"
    assert served_weights(bundled, "as-is", bundled=True, cache_dir=cache) == bundled
    assert served_weights(own, "auto", bundled=False, cache_dir=cache) == own
    assert served_weights(bundled, "auto", bundled=True, cache_dir=cache) == convert(bundled, AUTO_BUNDLED, cache)
    assert served_weights(bundled, "q4_0", bundled=True, cache_dir=cache).name.endswith(".q4_0.gguf")


def test_the_cache_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "llamaq" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "llamaq" / "models"


def test_auto_serves_the_file_as_given_when_it_cannot_convert(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache folder would be")
    bundled = bundled_model_path()
    assert served_weights(bundled, "auto", bundled=True, cache_dir=blocked) == bundled
    with pytest.raises(OSError):
        served_weights(bundled, "q8_0", bundled=True, cache_dir=blocked)
