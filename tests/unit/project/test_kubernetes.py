"""deploy/kubernetes checked without a cluster: every overlay rendered (tests/kustomize.py) and validated against
the Kubernetes schemas (kubernetes-validate, strict) and the vendored KEDA and Prometheus Operator CRD schemas,
and every name in it that llamaq reads (settings, queues, routes, ports, Secrets) checked against the code."""

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from api.app import create_app
from api.metrics import HttpMetrics
from api.routes import metrics
from shared import names, rqcontract
from shared.errors import NoWorkers
from shared.settings import Settings
from tests import kustomize
from tests.stack import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (DEPLOY / "overlays").iterdir() if path.is_dir())
CRDS = ROOT / "tests" / "deploy" / "crds"
# The oldest Kubernetes release still served upstream and the newest kubernetes-validate bundles.
VERSIONS = ("1.30.0", "1.37.0")
CUSTOM_KINDS = {
    "keda.sh/v1alpha1": {"ScaledObject", "TriggerAuthentication"},
    "monitoring.coreos.com/v1": {"ServiceMonitor"},
}
META_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
Doc = dict[str, Any]


def closed(schema: Any) -> Any:
    """Objects with properties accept no other field: what the API server's pruning and strict validation do."""
    if isinstance(schema, dict):
        out = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    return [closed(item) for item in schema] if isinstance(schema, list) else schema


def crd_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for kind, schema in yaml.safe_load(path.read_text()).items():
            schema = closed(schema)
            schema["properties"]["metadata"] = META_SCHEMA
            schemas[kind] = schema
    return schemas


CRD_SCHEMAS = crd_schemas()


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return kustomize.build(DEPLOY / "overlays" / request.param)


def validate(doc: Doc, version: str) -> list[str]:
    """Schema errors of one document: Kubernetes' own for built-in kinds, the vendored CRD's for the others."""
    if doc["kind"] in CUSTOM_KINDS.get(doc["apiVersion"], set()):
        errors = Draft202012Validator(CRD_SCHEMAS[doc["kind"]]).iter_errors(doc)
        return [f"{list(error.path)}: {error.message}" for error in errors]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{list(error.path)}: {error.message}"]
    return []


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (found,) = find(docs, kind, name)
    return found


def pod(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]


def settings_of(docs: list[Doc], container: Doc) -> tuple[dict[str, str], Settings]:
    """The literal LLAMAQ_* values a container gets (ConfigMaps, then env) and the Settings llamaq builds of them."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values |= one(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    values |= {env["name"]: env["value"] for env in container.get("env", []) if "value" in env}
    llamaq = {name: value for name, value in values.items() if name.startswith("LLAMAQ_")}
    # model_validate, not Settings(): this process's own LLAMAQ_* environment must not fill the gaps.
    return llamaq, Settings.model_validate(
        {name.removeprefix("LLAMAQ_").lower(): value for name, value in llamaq.items()}
    )


def workers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for deployment in find(docs, "Deployment"):
        for container in pod(deployment)["containers"]:
            if container.get("args") == ["llamaq", "worker"]:
                yield deployment, container


def example_secrets() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["stringData"] for doc in kustomize.load(DEPLOY / "secrets.example.yaml")}


def secret_refs(docs: list[Doc]) -> Iterator[tuple[str, str]]:
    """Every (Secret, key) the rendered manifests read."""
    text = yaml.safe_dump(docs)
    for doc in yaml.safe_load_all(text):
        for item in walk(doc):
            if "secretKeyRef" in item:
                yield item["secretKeyRef"]["name"], item["secretKeyRef"]["key"]
            if {"parameter", "name", "key"} <= set(item):
                yield item["name"], item["key"]
            if "credentials" in item:
                yield item["credentials"]["name"], item["credentials"]["key"]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_document_of_every_overlay_validates(docs: list[Doc], version: str) -> None:
    assert len(docs) >= 8
    errors = {(doc["kind"], doc["metadata"]["name"]): validate(doc, version) for doc in docs}
    assert not {key: value for key, value in errors.items() if value}


def test_the_example_secrets_validate() -> None:
    for doc in kustomize.load(DEPLOY / "secrets.example.yaml"):
        assert doc["kind"] == "Secret" and not validate(doc, VERSIONS[-1])


def test_the_validators_catch_broken_documents() -> None:
    rendered = kustomize.build(DEPLOY / "overlays" / "bundled-redis")
    worker = copy.deepcopy(one(rendered, "Deployment", "llamaq-worker"))
    pod(worker)["containers"][0]["cpus"] = "1"
    scaled = copy.deepcopy(one(rendered, "ScaledObject", "llamaq-worker"))
    scaled["spec"]["minReplicas"] = 0
    trigger = copy.deepcopy(one(rendered, "ScaledObject", "llamaq-worker"))
    trigger["spec"]["triggers"][0]["metadata"]["listLength"] = 4
    monitor = copy.deepcopy(one(rendered, "ServiceMonitor", "llamaq-api"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    auth = copy.deepcopy(one(rendered, "TriggerAuthentication", "llamaq-redis"))
    del auth["spec"]["secretTargetRef"][0]["key"]
    for broken in (worker, scaled, trigger, monitor, auth):
        assert validate(broken, VERSIONS[-1]), broken["kind"]


def test_every_llamaq_setting_is_one_llamaq_reads_with_a_valid_value(docs: list[Doc]) -> None:
    fields = {f"LLAMAQ_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"\bLLAMAQ_[A-Z_]+\b", yaml.safe_dump(docs)))
    assert named and named <= fields, sorted(named - fields)
    for deployment in find(docs, "Deployment"):
        for container in pod(deployment)["containers"]:
            settings_of(docs, container)  # raises on a value Settings refuses


def test_the_api_runs_two_probed_replicas_behind_a_service_and_a_disruption_budget(docs: list[Doc]) -> None:
    api = one(docs, "Deployment", "llamaq-api")
    (container,) = pod(api)["containers"]
    assert api["spec"]["replicas"] == 2 and container["args"] == ["llamaq", "api"]
    routes = create_app(Settings(redis_url="redis://127.0.0.1:1/0")).openapi()["paths"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live" in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready" in routes
    _, settings = settings_of(docs, container)
    assert settings.host == "0.0.0.0"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": settings.port}
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(docs, "Service", "llamaq-api")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    budget = one(docs, "PodDisruptionBudget", "llamaq-api")
    assert budget["spec"]["minAvailable"] == 1 and budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    env = {item["name"]: item for item in container["env"]}
    assert env["LLAMAQ_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "llamaq-api-keys"
    assert env["LLAMAQ_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "llamaq-redis", "key": "url"}


def test_workers_have_one_cpu_a_ready_file_probe_and_outlast_the_job_timeout(docs: list[Doc]) -> None:
    found = list(workers(docs))
    assert found
    for deployment, container in found:
        values, settings = settings_of(docs, container)
        resources = container["resources"]
        assert str(resources["requests"]["cpu"]) == str(resources["limits"]["cpu"]) == "1"
        assert settings.n_threads == 1
        # SIGTERM lets the worker finish its jobs: the grace period covers the job time limit.
        assert "LLAMAQ_JOB_TIMEOUT" in values
        assert pod(deployment)["terminationGracePeriodSeconds"] > settings.job_timeout
        assert container["readinessProbe"]["exec"]["command"] == ["test", "-f", str(settings.ready_file)]
        assert container["image"].split(":")[0] == "llamaq-worker"
        assert "replicas" not in deployment["spec"], "KEDA owns the worker count"
        # A read-only root: the ready file and the model copies (worker/weights.py) go to writable volumes.
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        cache = next(env["value"] for env in container["env"] if env["name"] == "XDG_CACHE_HOME")
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert settings.ready_file is not None and {str(settings.ready_file.parent), cache} <= mounts


def test_keda_scales_each_worker_on_the_rq_queues_of_the_model_it_serves(docs: list[Doc]) -> None:
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in find(docs, "ScaledObject")}
    assert scaled.keys() == {deployment["metadata"]["name"] for deployment, _ in workers(docs)}
    auths = {doc["metadata"]["name"] for doc in find(docs, "TriggerAuthentication")}
    database = urlsplit(example_secrets()["llamaq-redis"]["url"]).path.strip("/")
    for deployment, container in workers(docs):
        model = settings_of(docs, container)[1].model_name
        spec = scaled[deployment["metadata"]["name"]]["spec"]
        assert spec["maxReplicaCount"] > spec["minReplicaCount"] >= 0 and spec["cooldownPeriod"] > 0
        lists = {}
        for trigger in spec["triggers"]:
            if trigger["type"] == "prometheus":
                continue  # the wake trigger, checked below
            assert trigger["type"] == "redis" and trigger["authenticationRef"]["name"] in auths
            assert trigger["metadata"]["databaseIndex"] == database and int(trigger["metadata"]["listLength"]) > 0
            lists[trigger["name"]] = trigger["metadata"]["listName"]
        assert lists["interactive"] == rqcontract.queue_key(model, names.INTERACTIVE)
        assert set(lists.values()) <= {rqcontract.queue_key(model, lane) for lane in names.LANES}
        assert (spec["minReplicaCount"] == 0) == (wake_query(spec) is not None)


def wake_query(spec: Doc) -> str | None:
    queries = [trigger["metadata"]["query"] for trigger in spec["triggers"] if trigger["type"] == "prometheus"]
    return queries[0] if queries else None


def test_scale_to_zero_is_off_by_default() -> None:
    for overlay in ("bundled-redis", "external-redis", "embeddings", "model-volume"):
        for doc in find(kustomize.build(DEPLOY / "overlays" / overlay), "ScaledObject"):
            assert doc["spec"]["minReplicaCount"] == 1, (overlay, doc["metadata"]["name"])


def test_scaled_to_zero_a_refused_request_wakes_a_worker() -> None:
    """No live worker: the API answers 503 no_workers and queues nothing, so only the refusals can wake one."""
    rendered = kustomize.build(DEPLOY / "overlays" / "scale-to-zero")
    (deployment, container), *_ = workers(rendered)
    model = settings_of(rendered, container)[1].model_name
    query = wake_query(one(rendered, "ScaledObject", deployment["metadata"]["name"])["spec"])
    assert query is not None
    (family,) = [family for family in HttpMetrics().rejected.collect()]
    assert f"{family.name}_total{{" in query
    assert f'model="{model}"' in query and 'status="503"' in query and NoWorkers.status == 503
    assert query.startswith("clamp_max(") and query.endswith(", 1)"), "one worker, not one per refusal"


def test_every_secret_key_read_is_in_the_example_secrets(docs: list[Doc]) -> None:
    secrets = example_secrets()
    refs = set(secret_refs(docs))
    assert ("llamaq-redis", "url") in refs and ("llamaq-redis", "address") in refs
    missing = {(name, key) for name, key in refs if key not in secrets.get(name, {})}
    assert not missing


def test_the_example_redis_secret_agrees_with_itself_and_the_bundled_redis() -> None:
    redis = example_secrets()["llamaq-redis"]
    url = urlsplit(redis["url"])
    assert url.password == redis["password"] and url.port == 6379
    rendered = kustomize.build(DEPLOY / "overlays" / "bundled-redis")
    service = one(rendered, "Service", "llamaq-redis")
    assert url.hostname == service["metadata"]["name"]
    # KEDA connects from its own namespace: the address needs the Service's namespace-qualified name.
    assert redis["address"].startswith(f"{service['metadata']['name']}.") and redis["address"].endswith(":6379")


def test_the_bundled_redis_is_durable_never_evicts_and_needs_the_password() -> None:
    rendered = kustomize.build(DEPLOY / "overlays" / "bundled-redis")
    redis = one(rendered, "StatefulSet", "llamaq-redis")
    (container,) = pod(redis)["containers"]
    line = " ".join(container["command"])
    assert "--appendonly yes" in line and "--appendfsync everysec" in line
    assert "--maxmemory-policy noeviction" in line and '--requirepass "$REDIS_PASSWORD"' in line
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert one(rendered, "Service", "llamaq-redis")["spec"]["ports"][0]["port"] == 6379
    assert not find(kustomize.build(DEPLOY / "overlays" / "external-redis"), "StatefulSet")


def test_the_service_monitor_scrapes_metrics_with_the_key_metrics_auth_needs(docs: list[Doc]) -> None:
    monitor = one(docs, "ServiceMonitor", "llamaq-api")
    service = one(docs, "Service", "llamaq-api")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and "/metrics" in {
        getattr(route, "path", "") for route in metrics.router.routes
    }
    _, settings = settings_of(docs, pod(one(docs, "Deployment", "llamaq-api"))["containers"][0])
    if settings.metrics_auth:
        assert endpoint["authorization"]["type"] == "Bearer"
        credentials = endpoint["authorization"]["credentials"]
        metrics_key = example_secrets()[credentials["name"]][credentials["key"]]
        assert metrics_key in example_secrets()["llamaq-api-keys"]["api-keys"].split(",")


def test_images_are_tagged_with_the_project_version(docs: list[Doc]) -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version
    images = {
        container["image"] for deployment in find(docs, "Deployment") for container in pod(deployment)["containers"]
    }
    assert {image for image in images if image.startswith("llamaq-")} <= {
        f"llamaq-api:{version.group(1)}",
        f"llamaq-worker:{version.group(1)}",
    }


def test_every_overlay_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for overlay in OVERLAYS:
        assert f"deploy/kubernetes/overlays/{overlay}" in readme, overlay
    assert Path(DEPLOY / "secrets.example.yaml").exists() and "secrets.example.yaml" in readme
