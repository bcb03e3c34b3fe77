"""Kustomize: every kustomization is well-formed, and the overlays render to what each environment needs.

The structural checks always run; rendering with a real kustomize (`kustomize build` or
`kubectl kustomize`) runs where one is installed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest

from ._k8s import (
    INFRA,
    K8S_SCHEMA_VERSION,
    OVERLAYS,
    RUNBOOK,
    Doc,
    containers,
    find,
    kustomization_dirs,
    kustomize_command,
    load_docs,
    load_kustomization,
    of_kind,
    patch_targets,
    pod_template,
    render_structurally,
    render_with_kustomize,
    selector_matches,
    workloads,
)

DIRS = kustomization_dirs()
NAMESPACES = {"local": "dbmeta-local", "staging": "dbmeta-staging", "prod": "dbmeta"}


def _id(path: Path) -> str:
    return str(path.relative_to(INFRA))


def test_the_three_overlays_and_the_base_exist() -> None:
    assert {_id(d) for d in DIRS} >= {
        "k8s/base",
        "k8s/overlays/local",
        "k8s/overlays/staging",
        "k8s/overlays/prod",
        "environments/prod/k8s/base",
        "environments/prod/k8s/secrets",
    }


@pytest.mark.parametrize("directory", DIRS, ids=_id)
def test_every_resource_and_patch_path_exists(directory: Path) -> None:
    kust = load_kustomization(directory)
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and kust["kind"] == "Kustomization"
    for entry in kust.get("resources", []):
        target = directory / entry
        assert target.is_file() or any(
            (target / n).is_file() for n in ("kustomization.yaml", "kustomization.yml")
        ), f"{_id(directory)}: resource {entry} does not exist"
    for patch in kust.get("patches", []):
        assert ("path" in patch) != ("patch" in patch)
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), (
                f"{_id(directory)}: patch {patch['path']} does not exist"
            )


@pytest.mark.parametrize("directory", DIRS, ids=_id)
def test_patch_targets_and_image_names_exist(directory: Path) -> None:
    kust = load_kustomization(directory)
    docs = render_structurally(directory)  # raises when a patch target matches nothing
    for patch in kust.get("patches", []):
        assert patch["target"].keys() <= {"kind", "name"}
    images = {c["image"].split(":")[0] for d in workloads(docs) for c in containers(d)}
    for image in kust.get("images", []):
        assert image["name"] in images or image.get("newName") in images


def _created_by_runbook() -> set[str]:
    return set(re.findall(r"create secret generic ([a-z0-9-]+)", RUNBOOK.read_text(encoding="utf-8")))


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_references_resolve(overlay: str) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    by_runbook = _created_by_runbook()
    for doc in workloads(docs):
        spec = pod_template(doc)["spec"]
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in names
        for c in containers(doc):
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    assert ("ConfigMap", src["configMapRef"]["name"]) in names
                elif not src["secretRef"].get("optional"):
                    assert ("Secret", src["secretRef"]["name"]) in names
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    secret = ref["name"]
                    assert ("Secret", secret) in names or secret in by_runbook, f"{overlay}: Secret {secret}"
                    if ("Secret", secret) in names:
                        held = find(docs, "Secret", secret)
                        assert ref["key"] in {**held.get("data", {}), **held.get("stringData", {})}
    for sts in of_kind(docs, "StatefulSet"):
        service = find(docs, "Service", sts["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        assert ("Deployment", hpa["spec"]["scaleTargetRef"]["name"]) in names
    for svc in of_kind(docs, "Service"):
        assert any(
            selector_matches(svc["spec"]["selector"], pod_template(w)["metadata"]["labels"])
            for w in workloads(docs)
        ), f"{overlay}: Service {svc['metadata']['name']} selects no pod"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_has_one_db_meta_and_one_redis_in_its_namespace(overlay: str) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    labels = find(docs, "Namespace", NAMESPACES[overlay])["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for kind, name in [("Deployment", "db-meta"), ("Service", "db-meta"), ("Service", "redis"),
                       ("CronJob", "db-meta-index"), ("NetworkPolicy", "redis-allow-db-meta")]:  # fmt: skip
        assert find(docs, kind, name)["metadata"]["namespace"] == NAMESPACES[overlay]
    redis = [d for d in workloads(docs) if d["metadata"]["name"] == "redis"]
    assert len(redis) == 1


def _redis(docs: list[Doc]) -> Doc:
    (redis,) = [d for d in workloads(docs) if d["metadata"]["name"] == "redis"]
    return redis


def test_local_overlay_uses_the_throwaway_redis_and_the_sample_database() -> None:
    docs = render_structurally(OVERLAYS["local"])
    assert _redis(docs)["kind"] == "Deployment"
    assert of_kind(docs, "PersistentVolumeClaim") == [] and of_kind(docs, "StatefulSet") == []
    assert of_kind(docs, "PodDisruptionBudget") == []
    config = find(docs, "ConfigMap", "db-meta-config")["data"]
    assert config["ENV"] == "local" and "PROFILES_FILE" not in config
    assert config["MILVUS_URI"].startswith(config["DATA_DIR"]) and config["INDEX_ON_STARTUP"] == "true"
    assert find(docs, "CronJob", "db-meta-index")["spec"]["suspend"] is True


@pytest.mark.parametrize(
    ("overlay", "storage", "maxmemory"), [("staging", "2Gi", "256mb"), ("prod", "5Gi", "512mb")]
)
def test_staging_and_prod_overlays_use_their_redis_statefulset(
    overlay: str, storage: str, maxmemory: str
) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    redis = _redis(docs)
    assert redis["kind"] == "StatefulSet"
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == storage
    args = pod_template(redis)["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory") + 1] == maxmemory
    assert find(docs, "ConfigMap", "db-meta-config")["data"]["ENV"] == overlay


def test_prod_overlay_carries_the_secret_template_and_staging_none() -> None:
    assert find(render_structurally(OVERLAYS["prod"]), "Secret", "redis-secret")
    assert of_kind(render_structurally(OVERLAYS["staging"]), "Secret") == []
    assert "redis-secret" in _created_by_runbook() and "db-meta-secrets" in _created_by_runbook()


def test_prod_overlay_scales_wider_than_staging() -> None:
    prod = find(render_structurally(OVERLAYS["prod"]), "HorizontalPodAutoscaler", "db-meta")["spec"]
    staging = find(render_structurally(OVERLAYS["staging"]), "HorizontalPodAutoscaler", "db-meta")["spec"]
    assert prod["minReplicas"] > staging["minReplicas"] and prod["maxReplicas"] > staging["maxReplicas"]


def test_structural_renderer_rejects_a_patch_without_a_target(tmp_path: Path) -> None:
    (tmp_path / "cm.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {}\n")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [cm.yml]\n"
        "patches:\n  - target: {kind: ConfigMap, name: b}\n    patch: '[]'\n"
    )
    with pytest.raises(LookupError):
        render_structurally(tmp_path)
    assert patch_targets(load_docs(tmp_path / "cm.yml"), {"kind": "ConfigMap", "name": "a"})


# --- a real kustomize ----------------------------------------------------------------------------

needs_kustomize = pytest.mark.skipif(
    kustomize_command() is None, reason="neither kustomize nor kubectl is installed: rendering not checked"
)


def _key(d: Doc) -> tuple[str, str, str]:
    return d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")


@needs_kustomize
@pytest.mark.parametrize("directory", DIRS, ids=_id)
def test_kustomize_renders_valid_manifests_matching_the_structural_model(directory: Path) -> None:
    rendered = render_with_kustomize(directory)
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)
    modelled = render_structurally(directory)
    assert Counter(map(_key, rendered)) == Counter(map(_key, modelled))
    for ours in modelled:
        theirs = find(rendered, ours["kind"], ours["metadata"]["name"])
        if ours["kind"] == "ConfigMap":
            assert theirs["data"] == ours["data"]
        if ours["kind"] in ("HorizontalPodAutoscaler", "CronJob"):
            assert theirs["spec"] == ours["spec"]
        if ours["kind"] in ("Deployment", "StatefulSet", "CronJob"):
            assert [c["image"] for c in containers(theirs)] == [c["image"] for c in containers(ours)]
            assert [c.get("resources") for c in containers(theirs)] == [
                c.get("resources") for c in containers(ours)
            ]
