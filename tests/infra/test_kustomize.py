"""Kustomize: every kustomization is well-formed, and the overlays render to what each environment needs.

The structural checks always run; rendering with a real kustomize (`kustomize build` or
`kubectl kustomize`) runs where one is installed. Both work on a copy of infra/ in which the
git-ignored secret files exist (conftest.py), as they would on an operator's machine.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest

from ._k8s import (
    COMPONENTS,
    CRD_KINDS,
    DIGEST,
    INFRA,
    K8S_SCHEMA_VERSION,
    KUSTOMIZATION_API,
    NAMESPACES,
    OVERLAYS,
    RUNBOOK,
    Doc,
    containers,
    find,
    in_copy,
    is_component,
    kustomization_dirs,
    kustomize_command,
    load_docs,
    load_kustomization,
    of_kind,
    patch_targets,
    pod_template,
    render_structurally,
    render_with_kustomize,
    root_kustomizations,
    selector_matches,
    unhashed,
    workloads,
)
from .conftest import VARIANTS, rendering_dir

DIRS = kustomization_dirs()


def _id(path: Path) -> str:
    return str(path.relative_to(INFRA))


def test_the_overlays_the_bases_and_the_components_exist() -> None:
    assert {_id(d) for d in DIRS} >= {
        "k8s/base",
        "k8s/overlays/local",
        "k8s/overlays/staging",
        "k8s/overlays/prod",
        "k8s/overlays/prod-sentinel",
        "environments/prod/k8s/base",
        "environments/prod/k8s/sentinel",
        *(_id(c) for c in COMPONENTS.values()),
    }
    assert all(is_component(c) for c in COMPONENTS.values())


def test_every_kustomization_an_operator_applies_is_a_known_overlay() -> None:
    """Anything that is not included elsewhere gets applied: each of those is an overlay with a namespace."""
    assert {d.resolve() for d in root_kustomizations()} <= {d.resolve() for d in OVERLAYS.values()}
    for overlay, directory in OVERLAYS.items():
        assert load_kustomization(directory)["namespace"] == NAMESPACES[overlay]


@pytest.mark.parametrize("directory", DIRS, ids=_id)
def test_every_resource_and_patch_path_exists(directory: Path) -> None:
    kust = load_kustomization(directory)
    assert kust["apiVersion"] == KUSTOMIZATION_API[kust["kind"]]
    for entry in kust.get("resources", []):
        target = directory / entry
        assert target.is_file() or any(
            (target / n).is_file() for n in ("kustomization.yaml", "kustomization.yml")
        ), f"{_id(directory)}: resource {entry} does not exist"
    for entry in kust.get("components", []):
        assert is_component(directory / entry), f"{_id(directory)}: component {entry}"
    for gen in kust.get("secretGenerator", []) + kust.get("configMapGenerator", []):
        for env_file in gen.get("envs", []):
            # the real file is the operator's and git-ignored; its example is committed
            assert (directory / f"{env_file}.example").is_file(), f"{_id(directory)}: {env_file}.example"
    for patch in kust.get("patches", []):
        assert ("path" in patch) != ("patch" in patch)
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), (
                f"{_id(directory)}: patch {patch['path']} does not exist"
            )


@pytest.mark.parametrize("directory", DIRS, ids=_id)
def test_patch_targets_and_image_names_exist(directory: Path, infra_copy: Path) -> None:
    kust = load_kustomization(directory)
    docs = render_structurally(in_copy(infra_copy, directory))  # raises when a patch target matches nothing
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
def test_overlay_puts_everything_in_its_own_restricted_namespace(overlay: str) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    (namespace,) = of_kind(docs, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACES[overlay] != "default"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACES[overlay], (doc["kind"], doc["metadata"]["name"])
    for kind, name in [("Deployment", "db-meta"), ("Service", "db-meta"), ("CronJob", "db-meta-index"),
                       ("NetworkPolicy", "db-meta"), ("NetworkPolicy", "redis-allow-db-meta")]:  # fmt: skip
        assert find(docs, kind, name)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_has_one_redis_setup(overlay: str) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    names = sorted(d["metadata"]["name"] for d in workloads(docs) if d["metadata"]["name"] != "db-meta-index")
    if overlay == "prod-sentinel":
        assert names == ["db-meta", "redis-ha", "redis-sentinel"]
        assert of_kind(docs, "Service") and not [
            s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "redis"
        ]
        config = find(docs, "ConfigMap", "db-meta-config")["data"]
        assert config["REDIS_URL"] == "redis+sentinel://redis-sentinel:26379/mymaster/0"
    else:
        assert names == ["db-meta", "redis"]
        assert find(docs, "Service", "redis")


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


def test_only_the_local_overlay_carries_secrets_and_the_runbook_creates_the_others() -> None:
    for overlay in OVERLAYS:
        secrets = {s["metadata"]["name"] for s in of_kind(render_structurally(OVERLAYS[overlay]), "Secret")}
        assert secrets == ({"redis-secret", "db-meta-secrets"} if overlay == "local" else set()), overlay
    assert {"redis-secret", "db-meta-secrets", "db-meta-db-urls"} <= _created_by_runbook()


@pytest.mark.parametrize("overlay", ["prod", "prod-sentinel"])
def test_prod_overlays_render_every_container_image_by_digest(overlay: str) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    images = [c["image"] for d in workloads(docs) for c in containers(d)]
    assert images and all(DIGEST.search(image) for image in images), images
    for doc in workloads(docs):
        for c in containers(doc):
            # a digest never changes: pulling it again on every start would only add a registry round trip
            assert c["imagePullPolicy"] == "IfNotPresent", (doc["metadata"]["name"], c["name"])


def test_prod_image_digest_is_set_by_the_release_pipeline_with_kustomize_edit() -> None:
    (image,) = load_kustomization(OVERLAYS["prod"])["images"]
    assert DIGEST.search(f"@{image['digest']}")
    assert "kustomize edit set image db-meta=" in (OVERLAYS["prod"] / "kustomization.yaml").read_text()
    assert "kustomize edit set image db-meta=" in RUNBOOK.read_text(encoding="utf-8")


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


def _unhashed_key(d: Doc) -> tuple[str, str, str]:
    kind, name, namespace = _key(d)
    return kind, unhashed(name) if kind in ("Secret", "ConfigMap") else name, namespace


BUILDABLE = [d for d in DIRS if not is_component(d)]


def _without_hashes(docs: list[Doc]) -> list[Doc]:
    """Replace every generated name (and each reference to it) by the name before its hash."""
    text = json.dumps(docs)
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] in ("Secret", "ConfigMap") and unhashed(name) != name:
            text = text.replace(f'"{name}"', f'"{unhashed(name)}"')
    return json.loads(text)  # type: ignore[no-any-return]


@needs_kustomize
@pytest.mark.parametrize("directory", BUILDABLE, ids=_id)
def test_kustomize_renders_valid_manifests_matching_the_structural_model(
    directory: Path, infra_copy: Path
) -> None:
    _renders_as_modelled(in_copy(infra_copy, directory))


@needs_kustomize
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kustomize_renders_each_component_as_modelled(variant: str, infra_copy: Path) -> None:
    _renders_as_modelled(rendering_dir(infra_copy, variant))


def _renders_as_modelled(directory: Path) -> None:
    rendered = _without_hashes(render_with_kustomize(directory))
    for doc in rendered:
        if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS:
            kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)
    modelled = render_structurally(directory)
    assert Counter(map(_unhashed_key, rendered)) == Counter(map(_unhashed_key, modelled))
    for ours in modelled:
        (theirs,) = [d for d in rendered if _unhashed_key(d) == _unhashed_key(ours)]
        if ours["kind"] == "ConfigMap":
            assert theirs["data"] == ours["data"]
        if ours["kind"] in ("HorizontalPodAutoscaler", "CronJob"):
            assert theirs["spec"] == ours["spec"]
        if ours["kind"] in ("Deployment", "StatefulSet", "CronJob"):
            assert [c["image"] for c in containers(theirs)] == [c["image"] for c in containers(ours)]
            assert [c.get("resources") for c in containers(theirs)] == [
                c.get("resources") for c in containers(ours)
            ]
