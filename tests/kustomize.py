"""`kustomize build` for the subset deploy/kubernetes uses, so the suite renders overlays without the binary.

Implemented as kustomize v5 does it: `resources` (files and directories holding a kustomization.yaml), `labels`
(pairs added to every resource's metadata.labels, without `includeSelectors`/`includeTemplates`), `images`
(`name` → `newName`/`newTag`/`digest` on containers and init containers) and `patches` given by `path`: strategic
merge patches of the resource with the patch's kind and name. Built-in kinds merge the lists Kubernetes gives a
merge key (containers and volumes by name, env by name, volume mounts by mountPath, ports by containerPort or
port); every other list, and every list of a custom resource, is replaced whole; a null deletes a key. Anything
else (another field, a patch `target`, `$patch` directives) raises instead of rendering something kustomize would
not. Output order is resource order, not kustomize's kind order.
"""

from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "labels", "images", "patches"}
BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
PORT_KEYS = ("containerPort", "port")


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not implement."""


def build(directory: Path) -> list[Doc]:
    """The documents `kustomize build directory` prints (in resource order)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown or kustomization.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported(f"{directory}: {sorted(unknown) or kustomization['kind']}")
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs += build(path) if path.is_dir() else load(path)
    ids = [identity(doc) for doc in docs]
    if len(set(ids)) != len(ids):
        raise Unsupported(f"{directory}: a resource is listed twice")  # kustomize refuses it too
    for patch in kustomization.get("patches", []):
        apply_patch(docs, patch, directory)
    for label in kustomization.get("labels", []):
        if set(label) - {"pairs"}:
            raise Unsupported(f"{directory}: labels {sorted(set(label) - {'pairs'})}")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for container in containers(docs):
            container["image"] = retag(container["image"], image)
    return docs


def load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def apply_patch(docs: list[Doc], patch: dict[str, Any], directory: Path) -> None:
    if set(patch) != {"path"}:
        raise Unsupported(f"{directory}: patch fields {sorted(patch)}")
    (change,) = load(directory / patch["path"])
    matches = [doc for doc in docs if identity(doc) == identity(change)]
    if len(matches) != 1:
        raise Unsupported(f"{directory}: patch {patch['path']} matches {len(matches)} resources")
    merged = merge(matches[0], change, builtin=change["apiVersion"] in BUILTIN_GROUPS)
    matches[0].clear()
    matches[0].update(merged)


def identity(doc: Doc) -> tuple[str, str, str]:
    return doc["apiVersion"].split("/")[0], doc["kind"], doc["metadata"]["name"]


def merge(base: Any, patch: Any, builtin: bool, field: str = "") -> Any:
    """Strategic merge of `patch` into `base` (new objects; neither argument changes)."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if any(key.startswith("$") for key in patch):
            raise Unsupported(f"patch directive in {sorted(patch)}")
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base[key], value, builtin, key) if key in base else value
        return out
    key = merge_key(field, patch) if builtin and isinstance(patch, list) and isinstance(base, list) else None
    if key is None:
        return patch
    items = list(base)
    for item in patch:
        index = next((i for i, old in enumerate(items) if old.get(key) == item.get(key)), None)
        if index is None:
            items.append(item)
        else:
            items[index] = merge(items[index], item, builtin)
    return items


def merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        return next((key for key in PORT_KEYS if items and key in items[0]), None)
    return MERGE_KEYS.get(field)


def containers(docs: list[Doc]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        found += pod.get("initContainers", []) + pod.get("containers", [])
    return found


def retag(reference: str, image: dict[str, str]) -> str:
    """`image`'s change applied to `reference` when their names match (kustomize's `images` field)."""
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise Unsupported(f"images fields {sorted(image)}")
    name = reference.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if name != image["name"]:
        return reference
    suffix = reference[len(name) :]
    if "digest" in image:
        suffix = f"@{image['digest']}"
    elif "newTag" in image:
        suffix = f":{image['newTag']}"
    return image.get("newName", name) + suffix
