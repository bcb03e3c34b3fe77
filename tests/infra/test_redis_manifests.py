"""The Redis manifests: figures per environment, password handling, persistence, probes.

The start script, argument lists and probe commands are also run against a real redis-server
started here on a free loopback port (skipped where redis-server is not installed).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import free_port

from ._k8s import K8S, PROD, RUNBOOK, Doc, find, load_docs, pod_template


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
# where every Redis pod mounts the Secret redis-secret, and where the start script writes auth.conf
PASSWORD_FILE = "/run/secrets/redis/redis-password"
RUN_DIR = "/run/redis"


def _workload(v: Variant) -> Doc:
    return find(load_docs(v.path), v.kind, "redis")


def _redis(v: Variant) -> Doc:
    pod = pod_template(_workload(v))["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "redis"]
    return container  # type: ignore[no-any-return]


def _start_script(v: Variant) -> str:
    """Return the shell script that starts redis-server (`sh -c SCRIPT redis-server ARGS...`)."""
    command = _redis(v)["command"]
    assert command[:2] == ["sh", "-c"] and command[3:] == ["redis-server"], command
    return str(command[2])


def _args(v: Variant) -> dict[str, str]:
    c = _redis(v)
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


def _volume_at(doc: Doc, container: Doc, mount_path: str) -> Doc:
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == mount_path]
    (volume,) = [vol for vol in pod_template(doc)["spec"]["volumes"] if vol["name"] == mount["name"]]
    return volume  # type: ignore[no-any-return]


@pytest.mark.parametrize("v", VARIANTS, ids=IDS)
def test_redis_password_is_a_file_from_redis_secret_never_an_argument_or_variable(v: Variant) -> None:
    workload = _workload(v)
    for c in [*pod_template(workload)["spec"].get("initContainers", []), _redis(v)]:
        assert "env" not in c and "envFrom" not in c, c["name"]
        secret = _volume_at(workload, c, str(PurePosixPath(PASSWORD_FILE).parent))["secret"]
        assert secret["secretName"] == "redis-secret"
        assert secret["items"] == [{"key": "redis-password", "path": "redis-password"}]
        assert secret["defaultMode"] & 0o007 == 0, "not readable by other users"
    assert not any("requirepass" in a or "REDIS_PASSWORD" in a for a in _redis(v)["args"])
    assert PASSWORD_FILE in _start_script(v) and "requirepass" in _start_script(v)
    # the generated config holds the password: in memory, not on the node's disk
    assert _volume_at(workload, _redis(v), RUN_DIR)["emptyDir"]["medium"] == "Memory"


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
    assert all(
        "emptyDir" in vol or vol.get("secret", {}).get("secretName") == "redis-secret" for vol in volumes
    )


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
        assert f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})"' in command[2]
    assert "PONG" in c["readinessProbe"]["exec"]["command"][2]
    assert "LOADING" not in c["readinessProbe"]["exec"]["command"][2]


# --- the guard against a placeholder, short or malformed password -------------------------------


def _guard(v: Variant) -> Doc:
    (init,) = pod_template(_workload(v))["spec"]["initContainers"]
    return init  # type: ignore[no-any-return]


@pytest.mark.parametrize("v", VARIANTS[:2], ids=IDS[:2])
@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("REPLACE_ME_generate_with_openssl_rand_base64_32", False),  # the template this repository once had
        ("short", False),
        ("0123456789abcdef\n0123456789abcdef", False),
        (secrets.token_hex(32), True),
        (secrets.token_hex(32) + "\n", True),  # `echo` into the file adds a newline: still one line
    ],
    ids=["old-template-placeholder", "too-short", "two-lines", "generated", "trailing-newline"],
)
def test_statefulset_refuses_to_start_with_a_placeholder_or_malformed_password(
    v: Variant, password: str, accepted: bool, tmp_path: Path
) -> None:
    (tmp_path / "redis-password").write_text(password)
    command = [part.replace(PASSWORD_FILE, str(tmp_path / "redis-password")) for part in _guard(v)["command"]]
    out = subprocess.run(
        command, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=False
    )
    assert (out.returncode == 0) is accepted, out.stderr


# --- the real thing: redis-server with the manifest's arguments ----------------------------------

needs_redis = pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("redis-cli")),
    reason="redis-server/redis-cli not installed",
)


def _in(tmp_path: Path, text: str) -> str:
    """Point the pod paths of a command at files under tmp_path."""
    return text.replace(PASSWORD_FILE, str(tmp_path / "secret" / "redis-password")).replace(
        RUN_DIR, str(tmp_path / "run")
    )


@pytest.fixture
def redis_from_manifest(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Variant, int, str, Path]]:
    """Start redis-server the way the pod does: the start script, the Secret as a file, the manifest's args."""
    v: Variant = request.param
    # quotes, a backslash and a dollar sign: the script must escape them for the config file
    port, password = free_port(), secrets.token_urlsafe(24) + '"\\$x'
    (tmp_path / "secret").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "secret" / "redis-password").write_text(password)
    args = list(_redis(v)["args"])
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dir") + 1] = str(tmp_path / "data")
    extra = ["--bind", "127.0.0.1", "--daemonize", "no", "--logfile", str(tmp_path / "log")]
    proc = subprocess.Popen(
        ["sh", "-c", _in(tmp_path, _start_script(v)), "redis-server", *args, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while _cli(port, password, "ping") != "PONG":
            assert proc.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)
        yield v, port, password, tmp_path
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
def test_redis_server_runs_with_the_manifest_arguments(
    redis_from_manifest: tuple[Variant, int, str, Path],
) -> None:
    v, port, password, tmp_path = redis_from_manifest
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
    # the password is in a file only the Redis user reads, not on the command line
    assert (tmp_path / "run" / "auth.conf").stat().st_mode & 0o077 == 0
    assert not any(
        password in part
        for part in Path(f"/proc/{_server_pid(port, password)}/cmdline").read_text().split("\0")
    )


def _server_pid(port: int, password: str) -> int:
    for line in _cli(port, password, "info", "server").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no process_id in INFO server")


@needs_redis
@pytest.mark.parametrize("redis_from_manifest", VARIANTS, ids=IDS, indirect=True)
def test_probes_pass_with_the_password_and_fail_without(
    redis_from_manifest: tuple[Variant, int, str, Path],
) -> None:
    v, port, _, tmp_path = redis_from_manifest
    wrong = tmp_path / "wrong"
    (wrong / "secret").mkdir(parents=True)
    (wrong / "secret" / "redis-password").write_text("wrong-password")
    env = {k: val for k, val in os.environ.items() if k != "REDISCLI_AUTH"}
    for probe in ("livenessProbe", "readinessProbe"):
        command = [part.replace("-p 6379", f"-p {port}") for part in _redis(v)[probe]["exec"]["command"]]
        for where, ok in ((tmp_path, True), (wrong, False)):
            out = subprocess.run(
                [_in(where, part) for part in command], env=env, capture_output=True, check=False
            )
            assert (out.returncode == 0) is ok, (probe, where)


def test_runbook_checks_maxmemory_and_policy_with_info_memory() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    assert "rcli ping" in text and f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})"' in text
    assert "rcli info memory" in text and "maxmemory_policy:allkeys-lru" in text
