"""`LLAMAQ_MODELS` / `--model` specs: parsed into each model's worker environment, bad ones refused by name."""

from pathlib import Path

import pytest

from shared import modelspec
from shared.modelspec import ModelSpec, SpecError


def test_specs_become_each_models_worker_environment(tmp_path: Path) -> None:
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    text = f"smol=bundled ; other={gguf},workers=2,slots=2,max_queue_depth=8,embedding=true"
    smol, other = modelspec.parse(modelspec.split(text))
    assert smol == ModelSpec("smol", None, 1, {})
    assert (other.name, other.path, other.workers) == ("other", gguf, 2)
    base = {"LLAMAQ_MODEL_PATH": "/inherited.gguf", "LLAMAQ_SLOTS": "4", "PATH": "/bin"}
    assert smol.env(base) == {"LLAMAQ_MODEL_NAME": "smol", "LLAMAQ_SLOTS": "4", "PATH": "/bin"}
    assert other.env(base) == {
        "LLAMAQ_MODEL_NAME": "other",
        "LLAMAQ_MODEL_PATH": str(gguf),
        "LLAMAQ_SLOTS": "2",
        "LLAMAQ_MAX_QUEUE_DEPTH": "8",
        "LLAMAQ_EMBEDDING": "true",
        "PATH": "/bin",
    }
    plans = modelspec.plan([smol, other], base, "unused", default_workers=5)
    assert [(plan.label, plan.model) for plan in plans] == [
        ("worker smol", "smol"),
        ("worker other", "other"),
        ("worker other #2", "other"),
    ]


def test_no_spec_keeps_the_one_model_with_its_default_workers() -> None:
    assert modelspec.parse(modelspec.split("")) == []
    plans = modelspec.plan([], {"A": "1"}, "SmolLM2-135M-Instruct", default_workers=2)
    assert [(plan.label, plan.model, plan.env) for plan in plans] == [
        ("worker", "SmolLM2-135M-Instruct", {"A": "1"}),
        ("worker #2", "SmolLM2-135M-Instruct", {"A": "1"}),
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("smol", "expected NAME=PATH"),
        ("smol=", "expected NAME=PATH"),
        ("a b=bundled", "the name may hold"),
        ("x=bundled,colour=blue", "'colour=blue' is not OPTION=VALUE"),
        ("x=bundled,slots", "'slots' is not OPTION=VALUE"),
        ("x=bundled,slots=0", "slots: Input should be greater than or equal to 1"),
        ("x=bundled,weights=q2", "weights: Input should be"),
        ("x=bundled,workers=0", "workers='0' must be a whole number"),
        ("x=bundled,embedding=maybe", "must be true or false"),
        ("x=/no/such/file.gguf", "no GGUF file at /no/such/file.gguf"),
        ("x=bundled;x=bundled,workers=2", "'x' is given twice"),
    ],
)
def test_a_bad_spec_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        modelspec.parse(modelspec.split(text))
    assert says in str(caught.value)
