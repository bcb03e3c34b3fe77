"""The Redis manifests: figures per environment, password handling, persistence, probes.

The argument lists and probe commands are also run against a real redis-server started here on
a free loopback port (skipped where redis-server is not installed).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

from ._k8s import K8S, PROD, RUNBOOK, Doc, env_of, find, load_docs, pod_template


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    kind: str
    maxmemory: str
    cpu_limit: str
    memory_limit: str
    storage: str | None  # None: no persistent volume at all


VARIANTS = [
    Variant("prod", PROD / "base" / "redis.yml", "StatefulSet", "512mb", "1", "1Gi", "5Gi"),
    Variant("base", K8S / "base" / "redis.yml", "StatefulSet", "256mb", "500m", "512Mi", "2Gi"),
    Variant("local", K8S / "local" / "redis.yml", "Deployment", "128mb", "250m", "256Mi", None),
]
IDS = [v.name for v in VARIANTS]
PLACEHOLDER_PREFIX = "REPLACE_ME"


def _workload(v: Variant) -> Doc:
    return find(load_docs(v.path), v.kind, "redis")


def _redis(v: Variant) -> Doc:
    pod = pod_template(_workload(v))["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "redis"]
    return container  # type: ignore[no-any-return]


def _args(v: Variant) -> dict[str, str]:
    c = _redis(v)
    assert c["command"] == ["redis-server"]
    args: list[str] = c["args"]
    assert all(a.startswith("--") for a in args[::2]) and len(args) % 2 == 0, args
    return dict(zip(args[::2], args[1::2], strict=True))


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_redis_is_an_lru_cache_of_the_environment_size(v: Variant) -> None:
    args = _args(v)
    assert args["--maxmemory"] == v.maxmemory
    assert args["--maxmemory-policy"] == "allkeys-lru"
    assert args["--appendonly"] == "no"
    limits = _redis(v)["resources"]["limits"]
    assert (limits["cpu"], limits["memory"]) == (v.cpu_limit, v.memory_limit)


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_redis_password_comes_from_redis_secret_via_requirepass(v: Variant) -> None:
    args = _args(v)
    assert args["--requirepass"] == "$(REDIS_PASSWORD)"  # expanded by Kubernetes from env
    env = env_of(_redis(v))
    for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "redis-secret", "key": "redis-password"}


@pytest.mark.parametrize("v", [v for v in VARIANTS if v.storage], ids=[v.name for v in VARIANTS if v.storage])
def test_statefulset_keeps_rdb_snapshots_on_a_pvc_of_the_environment_size(v: Variant) -> None:
    sts = _workload(v)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == v.storage
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in _redis(v)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == _args(v)["--dir"]
    assert _args(v)["--save"].strip() != ""


@pytest.mark.parametrize("v", [v for v in VARIANTS if v.storage], ids=[v.name for v in VARIANTS if v.storage])
def test_statefulset_is_served_by_a_headless_service_named_redis(v: Variant) -> None:
    sts = _workload(v)
    service = find(load_docs(v.path), "Service", sts["spec"]["serviceName"])
    assert service["metadata"]["name"] == "redis"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod_template(sts)["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == 6379


def test_local_redis_is_a_deployment_without_any_persistence() -> None:
    v = VARIANTS[2]
    docs = load_docs(v.path)
    assert [d["kind"] for d in docs if d["kind"] in ("StatefulSet", "PersistentVolumeClaim")] == []
    args = _args(v)
    assert args["--save"] == ""
    assert args["--appendonly"] == "no"
    volumes = pod_template(_workload(v))["spec"]["volumes"]
    assert all("emptyDir" in vol for vol in volumes)


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_requests_are_below_limits(v: Variant) -> None:
    res = _redis(v)["resources"]
    assert res["requests"] != res["limits"]


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_probes_ping_with_auth_and_check_the_reply(v: Variant) -> None:
    c = _redis(v)
    for probe in ("livenessProbe", "readinessProbe"):
        command = c[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        # redis-cli exits 0 on a NOAUTH reply: the reply must be checked
        assert "redis-cli" in command[2] and " ping" in command[2] and "grep" in command[2]
    assert "PONG" in c["readinessProbe"]["exec"]["command"][2]
    assert "LOADING" not in c["readinessProbe"]["exec"]["command"][2]


# --- the Secret template and the placeholder guard -----------------------------------------------

SECRET_TEMPLATE = PROD / "secrets" / "redis-secret.yml"


def test_secret_template_holds_only_a_placeholder() -> None:
    (secret,) = load_docs(SECRET_TEMPLATE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "redis-secret"
    assert "data" not in secret
    assert set(secret["stringData"]) == {"redis-password"}
    value = secret["stringData"]["redis-password"]
    # words joined by underscores: nothing that could pass for a generated password
    assert re.fullmatch(rf"{PLACEHOLDER_PREFIX}(_[a-z0-9]+)*", value), value


def test_secret_template_explains_how_to_generate_the_password() -> None:
    text = SECRET_TEMPLATE.read_text(encoding="utf-8")
    assert "openssl rand -base64 32" in text
    assert "kubectl create secret generic redis-secret" in text
    assert "--dry-run=client -o yaml" in text


def test_no_other_manifest_or_overlay_holds_a_secret_value() -> None:
    for path in (K8S.parent).rglob("*.y*ml"):
        for doc in load_docs(path):
            if doc.get("kind") == "Secret" and path != SECRET_TEMPLATE:
                pytest.fail(f"{path} holds a Secret")
            for gen in doc.get("secretGenerator", []):
                for literal in gen.get("literals", []):
                    assert "local-development" in literal, f"{path}: {literal}"


def _guard(v: Variant) -> Doc:
    (init,) = pod_template(_workload(v))["spec"]["initContainers"]
    assert init["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "redis-secret", "key": "redis-password"}
    return init  # type: ignore[no-any-return]


@pytest.mark.parametrize("v", VARIANTS[:2], ids=IDS[:2])
@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        (yaml.safe_load(SECRET_TEMPLATE.read_text())["stringData"]["redis-password"], False),
        ("short", False),
        (secrets.token_urlsafe(32), True),
    ],
    ids=["template-placeholder", "too-short", "generated"],
)
def test_statefulset_refuses_to_start_with_the_template_password(
    v: Variant, password: str, accepted: bool
) -> None:
    command = _guard(v)["command"]
    out = subprocess.run(
        command,
        env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": password},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (out.returncode == 0) is accepted, out.stderr


# --- the real thing: redis-server with the manifest's arguments ----------------------------------

needs_redis = pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("redis-cli")),
    reason="redis-server/redis-cli not installed",
)


@pytest.fixture
def redis_from_manifest(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Variant, int, str]]:
    v: Variant = request.param
    port, password = free_port(), secrets.token_urlsafe(24)
    args = [a.replace("$(REDIS_PASSWORD)", password) for a in _redis(v)["args"]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dir") + 1] = str(tmp_path)
    proc = subprocess.Popen(
        [
            "redis-server",
            *args,
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--logfile",
            str(tmp_path / "log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while _cli(port, password, "ping") != "PONG":
            assert proc.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)
        yield v, port, password
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cli(port: int, password: str, *command: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        env={**os.environ, "REDISCLI_AUTH": password},
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


@needs_redis
@pytest.mark.parametrize("redis_from_manifest", VARIANTS, ids=IDS, indirect=True)
def test_redis_server_runs_with_the_manifest_arguments(redis_from_manifest: tuple[Variant, int, str]) -> None:
    v, port, password = redis_from_manifest
    expected_bytes = int(v.maxmemory.removesuffix("mb")) * 2**20
    assert _cli(port, password, "config", "get", "maxmemory").splitlines() == [
        "maxmemory",
        str(expected_bytes),
    ]
    assert _cli(port, password, "config", "get", "maxmemory-policy").splitlines()[1] == "allkeys-lru"
    assert _cli(port, password, "config", "get", "appendonly").splitlines()[1] == "no"
    save = _cli(port, password, "config", "get", "save").splitlines()
    assert (save[1] if len(save) > 1 else "") == ("" if v.storage is None else "3600 1 300 100")
    assert "NOAUTH" in _cli(port, "", "ping") or "NOAUTH" in _cli(port, "wrong-password", "ping")


@needs_redis
@pytest.mark.parametrize("redis_from_manifest", VARIANTS, ids=IDS, indirect=True)
def test_probes_pass_with_the_password_and_fail_without(
    redis_from_manifest: tuple[Variant, int, str],
) -> None:
    v, port, password = redis_from_manifest
    for probe in ("livenessProbe", "readinessProbe"):
        command = [part.replace("-p 6379", f"-p {port}") for part in _redis(v)[probe]["exec"]["command"]]
        for auth, ok in ((password, True), ("wrong-password", False)):
            out = subprocess.run(
                command, env={**os.environ, "REDISCLI_AUTH": auth}, capture_output=True, check=False
            )
            assert (out.returncode == 0) is ok, (probe, auth == password)


def test_runbook_checks_maxmemory_and_policy_with_info_memory() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    assert "redis-cli ping" in text
    assert "redis-cli info memory" in text and "maxmemory_policy:allkeys-lru" in text
