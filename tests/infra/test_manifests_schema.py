"""Every manifest under infra/ is valid Kubernetes (strict schema of a pinned version) and secure."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils
import pytest

from ._k8s import (
    CRD_KINDS,
    DIGEST,
    INFRA,
    K8S_SCHEMA_VERSION,
    POD_KINDS,
    Doc,
    containers,
    find,
    load_docs,
    manifest_files,
    pod_template,
)

FILES = manifest_files()
ALL_DOCS = [(path, doc) for path in FILES for doc in load_docs(path)]


def _id(path: Path) -> str:
    return str(path.relative_to(INFRA))


def test_schema_version_is_bundled_by_kubernetes_validate() -> None:
    assert K8S_SCHEMA_VERSION in kubernetes_validate.utils.all_versions()


def test_the_manifests_the_runbook_names_exist() -> None:
    names = {_id(p) for p in FILES}
    assert {
        "environments/prod/k8s/base/redis.yml",
        "environments/prod/k8s/external-secrets/external-secrets.yml",
        "environments/prod/k8s/sentinel/redis-sentinel.yml",
        "k8s/components/servicemonitor/servicemonitor.yml",
        "k8s/base/redis.yml",
        "k8s/local/redis.yml",
        "k8s/app/deployment.yml",
        "k8s/app/configmap.yml",
        "k8s/app/index-cronjob.yml",
        "k8s/app/hpa.yml",
        "k8s/app/pdb.yml",
        "k8s/app/networkpolicy.yml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_manifest_validates_against_the_pinned_kubernetes_schema(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no document"
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # not in the Kubernetes schema: tests/infra/test_components.py checks their shape
        kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(find([d for _, d in ALL_DOCS], "Deployment", "db-meta"))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_SCHEMA_VERSION, strict=True)


def test_every_resource_carries_the_app_name_label() -> None:
    missing = [
        f"{_id(p)}: {d['kind']}/{d['metadata']['name']}"
        for p, d in ALL_DOCS
        if d["kind"] != "Namespace" and "app.kubernetes.io/name" not in d["metadata"].get("labels", {})
    ]
    assert not missing


WORKLOADS = [(p, d) for p, d in ALL_DOCS if d["kind"] in POD_KINDS]


@pytest.mark.parametrize(
    ("path", "doc"), WORKLOADS, ids=[f"{_id(p)}:{d['kind']}/{d['metadata']['name']}" for p, d in WORKLOADS]
)
def test_workload_meets_the_restricted_pod_security_standard(path: Path, doc: Doc) -> None:
    pod = pod_template(doc)["spec"]
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] != 0
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # no REDIS_PORT=tcp://... injected by service links (it would break int settings)
    assert pod["enableServiceLinks"] is False
    for c in containers(doc):
        csc = c["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False, c["name"]
        assert csc["readOnlyRootFilesystem"] is True, c["name"]
        assert csc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert not csc.get("privileged", False)


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.mark.parametrize(
    ("path", "doc"), WORKLOADS, ids=[f"{_id(p)}:{d['kind']}/{d['metadata']['name']}" for p, d in WORKLOADS]
)
def test_every_container_requests_no_more_than_its_limits(path: Path, doc: Doc) -> None:
    for c in containers(doc):
        res = c["resources"]
        for what in ("cpu", "memory"):
            assert _quantity(res["requests"][what]) <= _quantity(res["limits"][what]), (c["name"], what)


def test_images_are_pinned_to_a_tag() -> None:
    for _, doc in WORKLOADS:
        for c in containers(doc):
            assert ":" in c["image"] and not c["image"].endswith(":latest"), c["image"]


def test_redis_images_are_pinned_by_digest_in_every_manifest() -> None:
    images = {c["image"] for _, d in WORKLOADS for c in containers(d) if c["image"].startswith("redis:")}
    assert len(images) == 1, images  # one Redis build everywhere
    (image,) = images
    assert DIGEST.search(image), image


def test_every_container_sets_its_pull_policy() -> None:
    for path, doc in WORKLOADS:
        for c in containers(doc):
            assert c.get("imagePullPolicy") in ("IfNotPresent", "Always"), (_id(path), c["name"])
