"""The optional Sentinel (HA) variant: shape, and the start scripts choosing the right master."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ._k8s import PROD, Doc, find, load_docs, pod_template

SENTINEL = PROD / "sentinel"
DOCS = load_docs(SENTINEL / "redis-sentinel.yml")
SCRIPTS: dict[str, str] = find(DOCS, "ConfigMap", "redis-ha-scripts")["data"]
NS = "dbmeta"
HEADLESS = f"redis-ha.{NS}.svc.cluster.local"


def test_three_redis_and_three_sentinels() -> None:
    redis = find(DOCS, "StatefulSet", "redis-ha")
    sentinel = find(DOCS, "StatefulSet", "redis-sentinel")
    assert redis["spec"]["replicas"] == 3 and sentinel["spec"]["replicas"] == 3
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    limits = pod_template(redis)["spec"]["containers"][0]["resources"]["limits"]
    assert (limits["cpu"], limits["memory"]) == ("1", "1Gi")
    assert find(DOCS, "Service", "redis-sentinel")["spec"]["ports"][0]["port"] == 26379


def test_redis_pods_are_covered_by_the_db_meta_only_network_policy() -> None:
    labels = pod_template(find(DOCS, "StatefulSet", "redis-ha"))["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "redis"


def test_readme_gives_the_sentinel_redis_url() -> None:
    text = (SENTINEL / "README.md").read_text(encoding="utf-8")
    assert "REDIS_URL=redis+sentinel://redis-sentinel:26379/mymaster/0" in text


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_start_script_is_valid_posix_shell(name: str) -> None:
    out = subprocess.run(["sh", "-n"], input=SCRIPTS[name], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


FAKE_CLI = """#!/bin/sh
case "$*" in
  *"sentinel get-master-addr-by-name mymaster"*)
    [ -n "${FAKE_SENTINEL_MASTER:-}" ] || exit 1
    printf '%s\\n6379\\n' "$FAKE_SENTINEL_MASTER" ;;
  *"info replication"*)
    if [ "$2" = "${FAKE_ROLE_MASTER:-}" ]; then printf 'role:master\\r\\n'; else printf 'role:slave\\r\\n'; fi ;;
esac
"""


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A PATH directory whose redis-cli answers from FAKE_* variables and whose servers print their input."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {
        "redis-cli": FAKE_CLI,
        "redis-server": "#!/bin/sh\nprintf '%s\\n' \"$@\"\n",
        "redis-sentinel": '#!/bin/sh\ncat "$1"\n',
    }.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return bin_dir


PASSWORD = "a-test-password-of-some-length"


def _run(script: str, fake_bin: Path, hostname: str, **fake: str) -> str:
    """Run a start script with the pod's files under fake_bin's parent and redis-* faked."""
    root = fake_bin.parent
    (root / "secret").mkdir(exist_ok=True)
    (root / "run").mkdir(exist_ok=True)
    (root / "secret" / "redis-password").write_text(PASSWORD)
    script = script.replace("/run/secrets/redis/redis-password", str(root / "secret" / "redis-password"))
    script = script.replace("/run/redis", str(root / "run"))
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "HOSTNAME": hostname, "POD_NAMESPACE": NS, **fake}
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
@pytest.mark.parametrize(
    ("hostname", "sentinel_master", "replicaof"),
    [
        ("redis-ha-0", "", None),  # fresh group: pod 0 is the master
        ("redis-ha-1", "", f"redis-ha-0.{HEADLESS}"),
        ("redis-ha-0", f"redis-ha-2.{HEADLESS}", f"redis-ha-2.{HEADLESS}"),  # after a failover
        ("redis-ha-2", f"redis-ha-2.{HEADLESS}", None),  # restarted master the sentinels still know
    ],
)
def test_redis_start_script_follows_the_master_the_sentinels_know(
    fake_bin: Path, hostname: str, sentinel_master: str, replicaof: str | None
) -> None:
    config, *args = _run(
        SCRIPTS["redis.sh"], fake_bin, hostname, FAKE_SENTINEL_MASTER=sentinel_master
    ).splitlines()
    opts = dict(zip(args[::2], args[1::2], strict=False))
    assert opts["--maxmemory"] == "512mb" and opts["--maxmemory-policy"] == "allkeys-lru"
    # the password reaches redis-server through its config file only
    assert Path(config).read_text().splitlines() == [f'requirepass "{PASSWORD}"', f'masterauth "{PASSWORD}"']
    assert Path(config).stat().st_mode & 0o077 == 0
    assert not any(PASSWORD in a for a in args)
    assert opts["--replica-announce-ip"] == f"{hostname}.{HEADLESS}"
    if replicaof is None:
        assert "--replicaof" not in args
    else:
        assert args[args.index("--replicaof") + 1 : args.index("--replicaof") + 3] == [replicaof, "6379"]


@pytest.mark.parametrize(
    ("sentinel_master", "role_master", "monitored"),
    [
        ("", "", f"redis-ha-0.{HEADLESS}"),
        ("", f"redis-ha-1.{HEADLESS}", f"redis-ha-1.{HEADLESS}"),
        (f"redis-ha-2.{HEADLESS}", f"redis-ha-1.{HEADLESS}", f"redis-ha-2.{HEADLESS}"),
    ],
)
def test_sentinel_start_script_monitors_the_current_master_with_quorum_two(
    fake_bin: Path, tmp_path: Path, sentinel_master: str, role_master: str, monitored: str
) -> None:
    script = SCRIPTS["sentinel.sh"].replace("/etc/redis-sentinel", str(tmp_path))
    conf = _run(
        script,
        fake_bin,
        "redis-sentinel-1",
        FAKE_SENTINEL_MASTER=sentinel_master,
        FAKE_ROLE_MASTER=role_master,
    ).splitlines()
    assert f"sentinel monitor mymaster {monitored} 6379 2" in conf
    assert f"sentinel auth-pass mymaster {PASSWORD}" in conf
    assert conf.index("sentinel resolve-hostnames yes") < conf.index(
        f"sentinel monitor mymaster {monitored} 6379 2"
    )
    assert f"sentinel announce-ip redis-sentinel-1.redis-sentinel-headless.{NS}.svc.cluster.local" in conf


def _doc_names(docs: list[Doc]) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}


def test_every_pod_reads_the_password_from_the_mounted_secret_and_keeps_configs_in_memory() -> None:
    for name in ("redis-ha", "redis-sentinel"):
        pod = pod_template(find(DOCS, "StatefulSet", name))["spec"]
        (c,) = pod["containers"]
        assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in c.get("env", [])), name
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts["/run/secrets/redis"]]["secret"]["secretName"] == "redis-secret"
        config_dir = "/run/redis" if name == "redis-ha" else "/etc/redis-sentinel"
        assert volumes[mounts[config_dir]]["emptyDir"]["medium"] == "Memory", name


def test_network_policies_let_the_group_and_db_meta_through() -> None:
    assert {"NetworkPolicy/redis-ha-allow-group", "NetworkPolicy/redis-sentinel-allow"} <= _doc_names(DOCS)
    sentinel_np = find(DOCS, "NetworkPolicy", "redis-sentinel-allow")
    sources = [p["podSelector"]["matchLabels"] for p in sentinel_np["spec"]["ingress"][0]["from"]]
    assert {"app.kubernetes.io/name": "db-meta"} in sources
    assert sentinel_np["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 26379}]
