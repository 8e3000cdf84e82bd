"""The models `llamaq up` serves: `LLAMAQ_MODELS` or repeated `--model`, one spec a model.

A spec is `NAME=PATH[,OPTION=VALUE...]`; specs are separated by `;` in `LLAMAQ_MODELS`:

    LLAMAQ_MODELS='smol=bundled;gemma=/models/gemma-3-270m-q4_k_m.gguf,workers=2,slots=2,max_queue_depth=8'

NAME is the id clients send (`LLAMAQ_MODEL_NAME` of its workers), PATH a GGUF file or `bundled` (the
shipped SmolLM2). `workers=N` is how many workers `up` starts for it (default 1); every other option is
the worker setting of that name, set in the environment of that model's workers only: `slots`, `n_ctx`,
`n_threads`, `n_batch`, `weights`, `max_queue_depth`, `max_batch_queue_depth` (published as the model's
own limits, shared/modelinfo.py) and `embedding` (`LLAMAQ_EMBEDDING`, a worker serving embeddings).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from shared.settings import Settings

BUNDLED = "bundled"
# Options that become LLAMAQ_<OPTION> in the model's workers' environment.
WORKER_OPTIONS = (
    "slots",
    "n_ctx",
    "n_threads",
    "n_batch",
    "weights",
    "max_queue_depth",
    "max_batch_queue_depth",
    "embedding",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


class SpecError(ValueError):
    """A spec `llamaq up` cannot serve; the message says which and why."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path | None  # None: the bundled model
    workers: int = 1
    options: dict[str, str] = field(default_factory=dict)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """`base` with this model's worker settings: its name, its file, its options."""
        env = {**base, "LLAMAQ_MODEL_NAME": self.name}
        env.pop("LLAMAQ_MODEL_PATH", None)
        if self.path is not None:
            env["LLAMAQ_MODEL_PATH"] = str(self.path)
        env.update({f"LLAMAQ_{option.upper()}": value for option, value in self.options.items()})
        return env


def parse_one(text: str) -> ModelSpec:
    head, *rest = [part.strip() for part in text.strip().split(",")]
    name, sep, path = (piece.strip() for piece in head.partition("="))
    if not sep or not path:
        raise SpecError(f"model spec {text!r}: expected NAME=PATH (a GGUF file or `bundled`), then ,OPTION=VALUE")
    if not _NAME.fullmatch(name):
        raise SpecError(f"model spec {text!r}: the name may hold letters, digits and . _ / - (at most 128)")
    options: dict[str, str] = {}
    for part in rest:
        option, sep, value = (piece.strip() for piece in part.partition("="))
        if (option != "workers" and option not in WORKER_OPTIONS) or not sep or not value:
            allowed = ", ".join(("workers", *WORKER_OPTIONS))
            raise SpecError(f"model spec {name!r}: {part!r} is not OPTION=VALUE with OPTION one of {allowed}")
        options[option] = value
    workers = _workers(name, options.pop("workers", "1"))
    _check_values(name, options)
    return ModelSpec(name, None if path == BUNDLED else Path(path).expanduser(), workers, options)


def _workers(name: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise SpecError(f"model spec {name!r}: workers={value!r} must be a whole number of at least 1")
    return int(value)


def _check_values(name: str, options: dict[str, str]) -> None:
    """Each value as the worker's own settings would read it, so a bad one stops `up` before anything starts."""
    if "embedding" in options and options["embedding"].lower() not in ("true", "false", "1", "0"):
        raise SpecError(f"model spec {name!r}: embedding={options['embedding']!r} must be true or false")
    known = {key: value for key, value in options.items() if key in Settings.model_fields}
    try:
        Settings.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SpecError(f"model spec {name!r}: {first['loc'][0]}: {first['msg']}") from None


def parse(texts: list[str]) -> list[ModelSpec]:
    """The specs of `--model` flags, or of `LLAMAQ_MODELS` split on `;`; names must differ."""
    specs = [parse_one(text) for text in texts if text.strip()]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SpecError(f"model {spec.name!r} is given twice: give each model one spec (workers=N for more)")
        seen.add(spec.name)
        if spec.path is not None and not spec.path.is_file():
            raise SpecError(f"model spec {spec.name!r}: no GGUF file at {spec.path}")
    return specs


def split(value: str) -> list[str]:
    return [part for part in value.split(";") if part.strip()]


@dataclass(frozen=True)
class WorkerPlan:
    label: str  # how `up` names the child in its reports
    model: str
    env: dict[str, str]


def plan(specs: list[ModelSpec], env: dict[str, str], model_name: str, default_workers: int) -> list[WorkerPlan]:
    """The workers `up` starts: without specs, `default_workers` of the one configured model, as before."""
    if not specs:
        labels = ["worker", *(f"worker #{index}" for index in range(2, default_workers + 1))]
        return [WorkerPlan(label, model_name, env) for label in labels]
    plans = []
    for spec in specs:
        labels = [f"worker {spec.name}", *(f"worker {spec.name} #{index}" for index in range(2, spec.workers + 1))]
        plans += [WorkerPlan(label, spec.name, spec.env(env)) for label in labels]
    return plans
