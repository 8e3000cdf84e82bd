"""tests/kustomize.py renders what kustomize renders for the features deploy/kubernetes uses, and refuses the rest."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import kustomize

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "web:1",
                        "args": ["serve", "--fast"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    },
                    {"name": "sidecar", "image": "registry.example:5000/side:2"},
                ],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            }
        }
    },
}
SCALED: dict[str, Any] = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "web"},
    "spec": {"triggers": [{"type": "redis", "name": "a"}, {"type": "redis", "name": "b"}], "maxReplicaCount": 3},
}


def write(directory: Path, kustomization: dict, files: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    for name, content in files.items():
        (directory / name).write_text(yaml.safe_dump_all(content if isinstance(content, list) else [content]))
    return directory


def test_a_strategic_merge_patch_merges_lists_by_their_keys_and_replaces_the_others(tmp_path: Path) -> None:
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "args": ["serve"],
                            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                            "image": None,
                        }
                    ],
                    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}}],
                }
            }
        },
    }
    base = write(tmp_path / "base", {"resources": ["app.yaml"]}, {"app.yaml": DEPLOYMENT})
    overlay = write(
        tmp_path / "overlay", {"resources": ["../base"], "patches": [{"path": "p.yaml"}]}, {"p.yaml": patch}
    )
    assert base.exists()
    (rendered,) = kustomize.build(overlay)
    app, sidecar = rendered["spec"]["template"]["spec"]["containers"]
    assert app["args"] == ["serve"] and "image" not in app
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert [mount["mountPath"] for mount in app["volumeMounts"]] == ["/tmp", "/models"]
    assert [volume["name"] for volume in rendered["spec"]["template"]["spec"]["volumes"]] == ["tmp", "models"]
    assert sidecar == DEPLOYMENT["spec"]["template"]["spec"]["containers"][1]


def test_a_custom_resource_list_is_replaced_whole(tmp_path: Path) -> None:
    patch = {**SCALED, "spec": {"triggers": [{"type": "redis", "name": "c"}]}}
    overlay = write(
        tmp_path, {"resources": ["s.yaml"], "patches": [{"path": "p.yaml"}]}, {"s.yaml": SCALED, "p.yaml": patch}
    )
    (rendered,) = kustomize.build(overlay)
    assert rendered["spec"] == {"triggers": [{"type": "redis", "name": "c"}], "maxReplicaCount": 3}


def test_labels_and_images_apply_to_the_resources_of_their_kustomization(tmp_path: Path) -> None:
    write(
        tmp_path / "base",
        {
            "resources": ["app.yaml"],
            "labels": [{"pairs": {"part-of": "x"}}],
            "images": [{"name": "web", "newTag": "2"}, {"name": "registry.example:5000/side", "newName": "side"}],
        },
        {"app.yaml": DEPLOYMENT},
    )
    overlay = write(tmp_path / "overlay", {"resources": ["../base", "more.yaml"]}, {"more.yaml": SCALED})
    deployment, scaled = kustomize.build(overlay)
    assert deployment["metadata"]["labels"] == {"part-of": "x"} and "labels" not in scaled["metadata"]
    images = [container["image"] for container in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == ["web:2", "side:2"]


@pytest.mark.parametrize(
    "kustomization",
    [
        {"resources": ["a.yaml"], "namePrefix": "x-"},
        {"resources": ["a.yaml"], "labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]},
        {"resources": ["a.yaml"], "patches": [{"path": "a.yaml", "target": {"kind": "Deployment"}}]},
        {"resources": ["a.yaml", "a.yaml"]},
    ],
)
def test_what_it_does_not_implement_is_refused(tmp_path: Path, kustomization: dict) -> None:
    directory = write(tmp_path, kustomization, {"a.yaml": DEPLOYMENT})
    with pytest.raises(kustomize.Unsupported):
        kustomize.build(directory)


def test_a_patch_matching_nothing_is_refused(tmp_path: Path) -> None:
    other = {**DEPLOYMENT, "metadata": {"name": "other"}}
    directory = write(
        tmp_path, {"resources": ["a.yaml"], "patches": [{"path": "p.yaml"}]}, {"a.yaml": DEPLOYMENT, "p.yaml": other}
    )
    with pytest.raises(kustomize.Unsupported):
        kustomize.build(directory)
