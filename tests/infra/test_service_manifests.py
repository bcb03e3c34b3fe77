"""The db-meta manifests: settings names and values, probes, secrets, scaling, network policy."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from dbmeta_app.config import Settings, load_settings

from ._k8s import (
    K8S,
    OVERLAYS,
    RUNBOOK,
    Doc,
    containers,
    env_of,
    find,
    load_docs,
    pod_template,
    render_structurally,
    selector_matches,
)

APP = K8S / "app"
CONFIG = find(load_docs(APP / "configmap.yml"), "ConfigMap", "db-meta-config")
PROFILES = find(load_docs(APP / "configmap.yml"), "ConfigMap", "db-meta-profiles")
DEPLOYMENT = find(load_docs(APP / "deployment.yml"), "Deployment", "db-meta")
SERVICE = find(load_docs(APP / "deployment.yml"), "Service", "db-meta")
CRONJOB = find(load_docs(APP / "index-cronjob.yml"), "CronJob", "db-meta-index")
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}


def _app(doc: Doc) -> Doc:
    (c,) = pod_template(doc)["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def _profile_vars() -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", PROFILES["data"]["profiles.yaml"]))


def test_config_map_keys_are_settings_fields() -> None:
    assert set(CONFIG["data"]) <= SETTINGS_ENV, set(CONFIG["data"]) - SETTINGS_ENV
    assert {
        "REDIS_HOST", "REDIS_PORT", "REDIS_CACHE_ENABLED", "MILVUS_URI", "PROFILES_FILE", "CLIENT", "ENV", "DATA_DIR",
    } <= set(CONFIG["data"])  # fmt: skip


@pytest.mark.parametrize("doc", [DEPLOYMENT, CRONJOB], ids=["deployment", "cronjob"])
def test_container_env_names_are_settings_fields(doc: Doc) -> None:
    names = set(env_of(_app(doc)))
    assert names <= SETTINGS_ENV, names - SETTINGS_ENV


@pytest.mark.parametrize("overlay", sorted(OVERLAYS), ids=str)
def test_mcp_answers_the_service_names_of_its_namespace_in_every_overlay(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers in other namespaces (the NetworkPolicy admits them) reach the Service as db-meta.<namespace>…"""
    docs = render_structurally(OVERLAYS[overlay])
    namespace = find(docs, "Deployment", "db-meta")["metadata"]["namespace"]
    value = find(docs, "ConfigMap", "db-meta-config")["data"]["MCP_ALLOWED_HOSTS"]
    for name in list(os.environ):
        if name.upper() in SETTINGS_ENV:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    hosts = load_settings(data_dir=tmp_path, mcp_allowed_hosts=value).mcp_allowed_hosts
    for host in (
        "db-meta",
        f"db-meta.{namespace}",
        f"db-meta.{namespace}.svc",
        f"db-meta.{namespace}.svc.cluster.local",
    ):
        assert host in hosts and f"{host}:*" in hosts, (overlay, host, hosts)


def test_every_overlay_config_map_patch_sets_only_settings_fields() -> None:
    for overlay in OVERLAYS.values():
        config = find(render_structurally(overlay), "ConfigMap", "db-meta-config")
        assert set(config["data"]) <= SETTINGS_ENV, (overlay.name, set(config["data"]) - SETTINGS_ENV)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS), ids=str)
def test_overlay_configuration_is_accepted_by_settings(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render_structurally(OVERLAYS[overlay])
    data: dict[str, str] = dict(find(docs, "ConfigMap", "db-meta-config")["data"])
    for name in list(os.environ):
        if name.upper() in SETTINGS_ENV:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # Settings reads ./.env
    if "PROFILES_FILE" in data:
        profiles = find(docs, "ConfigMap", "db-meta-profiles")["data"]
        target = tmp_path / PurePosixPath(data["PROFILES_FILE"]).name
        target.write_text(profiles[target.name])
        data["PROFILES_FILE"] = str(target)
    # the Secret volume at SECRETS_DIR: one file per setting, and the ${VAR}s of profiles.yaml
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "REDIS_PASSWORD").write_text("from-the-secret")
    (secrets / "ADMIN_TOKEN").write_text("0123456789abcdef0123456789abcdef")
    for var in _profile_vars():
        (secrets / var).write_text("postgresql://reader@warehouse-db:5432/warehouse")
    assert data["SECRETS_DIR"] == CONFIG["data"]["SECRETS_DIR"]
    data["SECRETS_DIR"] = str(secrets)
    data["DATA_DIR"] = str(tmp_path / "data")
    for key, value in data.items():
        monkeypatch.setenv(key, value)

    settings = load_settings()

    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "from-the-secret"
    assert settings.admin_token is not None

    assert settings.env == overlay.removesuffix("-sentinel")  # prod-sentinel is prod, one Redis setup apart
    assert settings.redis_host == "redis" and settings.redis_port == 6379
    if overlay == "prod-sentinel":
        assert settings.redis_url is not None
        assert settings.redis_url.get_secret_value().startswith("redis+sentinel://redis-sentinel:26379/")
    assert settings.redis_cache_enabled is True
    assert settings.default_profile in settings.profiles


def test_profiles_file_is_mounted_where_profiles_file_points() -> None:
    path = PurePosixPath(CONFIG["data"]["PROFILES_FILE"])
    mounts = {m["name"]: m for m in _app(DEPLOYMENT)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_template(DEPLOYMENT)["spec"]["volumes"]}
    (name,) = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "db-meta-profiles"]
    assert mounts[name]["mountPath"] == str(path.parent) and mounts[name]["readOnly"] is True
    assert path.name in PROFILES["data"]
    assert "profiles" in yaml.safe_load(PROFILES["data"][path.name])


def _secret_sources(doc: Doc) -> list[Doc]:
    """The Secrets of the volume mounted at SECRETS_DIR (the only way the app gets a secret)."""
    mounts = {m["mountPath"]: m for m in _app(doc)["volumeMounts"]}
    mount = mounts[CONFIG["data"]["SECRETS_DIR"]]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in pod_template(doc)["spec"]["volumes"]}
    projected = volumes[mount["name"]]["projected"]
    assert projected["defaultMode"] == 0o440
    return [source["secret"] for source in projected["sources"]]


def _secret_files(doc: Doc) -> dict[str, tuple[str, str, bool]]:
    """File name in SECRETS_DIR → (Secret, key, optional), for the sources that name their items."""
    return {
        item["path"]: (secret["name"], item["key"], bool(secret.get("optional")))
        for secret in _secret_sources(doc)
        for item in secret.get("items", [])
    }


def test_profile_database_urls_come_from_a_secret_the_runbook_creates() -> None:
    # every key of db-meta-db-urls is a file named like the ${VAR} it fills
    assert {"name": "db-meta-db-urls", "optional": True} in _secret_sources(DEPLOYMENT)
    runbook = RUNBOOK.read_text(encoding="utf-8")
    assert "create secret generic db-meta-db-urls" in runbook
    for var in _profile_vars():
        assert f"--from-literal={var}=" in runbook, var


@pytest.mark.parametrize("doc", [DEPLOYMENT, CRONJOB], ids=["deployment", "cronjob"])
def test_data_dir_is_a_writable_empty_dir_on_a_read_only_root(doc: Doc) -> None:
    c = _app(doc)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod_template(doc)["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    for path in (CONFIG["data"]["DATA_DIR"], "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path


@pytest.mark.parametrize("doc", [DEPLOYMENT, CRONJOB], ids=["deployment", "cronjob"])
def test_secrets_are_files_from_secrets_and_settings_come_from_the_config_map(doc: Doc) -> None:
    c = _app(doc)
    assert _secret_files(doc)["REDIS_PASSWORD"] == ("redis-secret", "redis-password", False)
    assert _secret_files(doc)["MILVUS_TOKEN"] == ("db-meta-secrets", "milvus-token", True)
    assert c["envFrom"] == [{"configMapRef": {"name": "db-meta-config"}}]
    assert "env" not in c, "no secret (nor setting) is an environment variable of the pod"
    assert set(_secret_files(doc)) <= SETTINGS_ENV


def test_admin_and_api_tokens_come_from_a_secret() -> None:
    files = _secret_files(DEPLOYMENT)
    assert files["ADMIN_TOKEN"] == ("db-meta-secrets", "admin-token", False)
    assert files["API_TOKEN"] == ("db-meta-secrets", "api-token", True)


def test_probes_use_healthz_readyz_and_a_generous_startup_budget() -> None:
    c = _app(DEPLOYMENT)
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # degraded but warm replicas stay in service (see deployment.yml); warming ones get no traffic
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz?allow_degraded=true", "port": "http"}
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180, (
        "model load needs minutes on a cold node"
    )


def test_service_exposes_port_8000_of_the_api_pods() -> None:
    assert SERVICE["spec"]["ports"][0]["port"] == 8000
    assert SERVICE["spec"]["ports"][0]["targetPort"] == "http"
    assert selector_matches(SERVICE["spec"]["selector"], pod_template(DEPLOYMENT)["metadata"]["labels"])
    assert not selector_matches(SERVICE["spec"]["selector"], pod_template(CRONJOB)["metadata"]["labels"])


def test_deployment_leaves_the_replica_count_to_the_autoscaler() -> None:
    assert "replicas" not in DEPLOYMENT["spec"]
    hpa = find(load_docs(APP / "hpa.yml"), "HorizontalPodAutoscaler", "db-meta")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "db-meta"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_disruption_budget_covers_the_api_pods_only() -> None:
    pdb = find(load_docs(APP / "pdb.yml"), "PodDisruptionBudget", "db-meta")
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector == DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert not selector_matches(selector, pod_template(CRONJOB)["metadata"]["labels"])


def test_index_cronjob_runs_dbmeta_index_once_at_a_time() -> None:
    assert _app(CRONJOB)["command"] == ["dbmeta", "index"]
    assert CRONJOB["spec"]["concurrencyPolicy"] == "Forbid"
    assert _app(CRONJOB)["image"] == _app(DEPLOYMENT)["image"]
    manual = "create job --from=cronjob/db-meta-index"
    assert manual in (APP / "index-cronjob.yml").read_text() and manual in RUNBOOK.read_text()


NETPOL = find(load_docs(APP / "networkpolicy.yml"), "NetworkPolicy", "redis-allow-db-meta")


def _redis_pod_labels() -> list[dict[str, str]]:
    sources = [
        K8S / "base" / "redis.yml",
        K8S / "local" / "redis.yml",
        K8S.parent / "environments/prod/k8s/base/redis.yml",
    ]
    return [pod_template(find(load_docs(p), k, "redis"))["metadata"]["labels"]
            for p, k in zip(sources, ["StatefulSet", "Deployment", "StatefulSet"], strict=True)]  # fmt: skip


def test_network_policy_selects_every_redis_variant() -> None:
    selector = NETPOL["spec"]["podSelector"]["matchLabels"]
    assert all(selector_matches(selector, labels) for labels in _redis_pod_labels())
    assert NETPOL["spec"]["policyTypes"] == ["Ingress"]


def test_network_policy_admits_only_db_meta_pods_on_6379() -> None:
    (rule,) = NETPOL["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}, "no namespaceSelector or ipBlock"
    selector = peer["podSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "db-meta"}
    for doc in (DEPLOYMENT, CRONJOB):  # the API and the index job
        assert selector_matches(selector, pod_template(doc)["metadata"]["labels"])
    for labels in _redis_pod_labels():
        assert not selector_matches(selector, labels)


def test_every_pod_runs_as_the_image_user() -> None:
    for doc in (DEPLOYMENT, CRONJOB):
        assert pod_template(doc)["spec"]["securityContext"]["runAsUser"] == 10001
        for c in containers(doc):
            assert c["securityContext"]["runAsNonRoot"] is True
