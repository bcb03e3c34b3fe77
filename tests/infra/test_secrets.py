"""Secrets: nothing committed holds a secret or a placeholder for one; the optional ways of providing
them (files through kustomize's generator, a secret manager through External Secrets) produce the
Secrets the workloads read, by name and key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ._k8s import (
    INFRA,
    OVERLAYS,
    PROD,
    REPO,
    Doc,
    containers,
    find,
    in_copy,
    load_docs,
    load_kustomization,
    of_kind,
    pod_template,
    read_env_file,
    render_structurally,
    workloads,
)

SECRETS = PROD / "secrets"


def _committed(pattern: str) -> list[Path]:
    """Return the files under infra/ git tracks whose name matches the glob."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", f"infra/{pattern}"], cwd=REPO, capture_output=True, check=False
    )
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPO / name for name in out.stdout.decode().split("\0") if name]


def test_no_committed_manifest_holds_a_secret_or_a_placeholder_value() -> None:
    manifests = _committed("*.y*ml")
    assert manifests
    for path in manifests:
        for doc in load_docs(path):
            if doc.get("kind") == "Secret":
                pytest.fail(f"{path.relative_to(REPO)} commits a Secret")
            for gen in doc.get("secretGenerator", []):
                for literal in gen.get("literals", []):
                    # the local overlay's development values, and only those, are literals
                    assert path == OVERLAYS["local"] / "kustomization.yaml", (path, literal)
                    assert literal.split("=", 1)[1] == "local-development-only", literal


def test_the_committed_examples_name_the_keys_and_hold_no_value() -> None:
    examples = _committed("**/*.env.example")
    assert {p.name for p in examples} == {"redis.env.example", "db-meta.env.example", "db-urls.env.example"}
    for path in examples:
        values = read_env_file(path)
        assert values and all(v == "" for v in values.values()), path


def test_no_secret_file_is_committed_and_git_ignores_them() -> None:
    assert not [p for p in _committed("**/*.env") if p.suffix == ".env"]
    names = [str((SECRETS / n).relative_to(REPO)) for n in ("redis.env", "db-meta.env", "db-urls.env")]
    out = subprocess.run(
        ["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert sorted(out.stdout.split()) == sorted(names)
    example = str((SECRETS / "redis.env.example").relative_to(REPO))
    assert subprocess.run(["git", "check-ignore", "-q", example], cwd=REPO, check=False).returncode == 1


def test_no_overlay_carries_a_secret_except_the_local_development_ones() -> None:
    for overlay, directory in OVERLAYS.items():
        for secret in of_kind(render_structurally(directory), "Secret"):
            assert overlay == "local", (overlay, secret["metadata"]["name"])
            assert set(secret["data"].values()) == {"local-development-only"}


# --- init-secrets.sh -------------------------------------------------------------------------------


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    target = tmp_path / "secrets"
    shutil.copytree(SECRETS, target, ignore=shutil.ignore_patterns("*.env"))
    return target


def _init(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"]}
    return subprocess.run(
        ["sh", str(directory / "init-secrets.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_init_secrets_writes_random_private_values_and_waits_for_the_database_urls(secrets_dir: Path) -> None:
    first = _init(secrets_dir)
    assert first.returncode == 1 and "db-urls.env is missing" in first.stderr
    values = {name: read_env_file(secrets_dir / name) for name in ("redis.env", "db-meta.env")}
    assert set(values["redis.env"]) == {"redis-password"} and set(values["db-meta.env"]) == {"admin-token"}
    for name, data in values.items():
        (value,) = data.values()
        assert re.fullmatch(r"[0-9a-f]{64}", value), name
        assert (secrets_dir / name).stat().st_mode & 0o077 == 0, f"{name} is readable by others"
    assert values["redis.env"]["redis-password"] != values["db-meta.env"]["admin-token"]
    assert not any(v in first.stdout + first.stderr for data in values.values() for v in data.values())


def test_init_secrets_never_overwrites_and_refuses_an_empty_value(secrets_dir: Path) -> None:
    _init(secrets_dir)
    before = (secrets_dir / "redis.env").read_text()
    shutil.copy(secrets_dir / "db-urls.env.example", secrets_dir / "db-urls.env")
    unfilled = _init(secrets_dir)
    assert unfilled.returncode == 1 and "db-urls.env: the lines above have no value" in unfilled.stderr
    (secrets_dir / "db-urls.env").write_text("WAREHOUSE_DATABASE_URL=postgresql://ro:pw@db:5432/w\n")
    done = _init(secrets_dir)
    assert done.returncode == 0, done.stderr
    assert (secrets_dir / "redis.env").read_text() == before


# --- the components produce what the workloads read ----------------------------------------------


def _references(docs: list[Doc]) -> set[tuple[str, str | None]]:
    """Return every (Secret, key) a workload reads; key None for a whole Secret (envFrom, volume)."""
    refs: set[tuple[str, str | None]] = set()
    for doc in workloads(docs):
        for vol in pod_template(doc)["spec"].get("volumes", []):
            if "secret" in vol:
                refs |= {
                    (vol["secret"]["secretName"], item["key"]) for item in vol["secret"].get("items", [])
                }
            for source in vol.get("projected", {}).get("sources", []):
                secret = source.get("secret")
                if secret is not None and not secret.get("optional"):
                    items = secret.get("items")
                    refs |= {(secret["name"], i["key"]) for i in items} if items else {(secret["name"], None)}
        for c in containers(doc):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    refs.add((ref["name"], ref["key"]))
            refs |= {(src["secretRef"]["name"], None) for src in c.get("envFrom", []) if "secretRef" in src}
    return refs


@pytest.mark.parametrize("overlay", ["prod", "prod-sentinel"])
def test_the_secrets_component_generates_every_secret_and_key_the_workloads_read(
    overlay: str, infra_copy: Path
) -> None:
    kust = load_kustomization(SECRETS)
    generated = {
        gen["name"]: read_env_file(in_copy(infra_copy, SECRETS) / gen["envs"][0])
        for gen in kust["secretGenerator"]
    }
    docs = render_structurally(in_copy(infra_copy, OVERLAYS[overlay]))
    for name, key in _references(docs):
        assert name in generated, name
        assert key is None or key in generated[name], (name, key)
    assert set(generated["db-meta-db-urls"]) >= set(re.findall(r"\$\{([A-Z_]+)\}", _profiles(docs)))


def _profiles(docs: list[Doc]) -> str:
    return str(find(docs, "ConfigMap", "db-meta-profiles")["data"]["profiles.yaml"])


def test_generated_secrets_are_hashed_and_every_reference_follows(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["prod+secrets+servicemonitor"]
    names = {s["metadata"]["name"] for s in of_kind(docs, "Secret")}
    assert {re.sub(r"-[a-z0-9]{10}$", "", n) for n in names} == {
        "redis-secret",
        "db-meta-secrets",
        "db-meta-db-urls",
    }
    assert not names & {"redis-secret", "db-meta-secrets", "db-meta-db-urls"}, "no hash suffix"
    assert {name for name, _ in _references(docs)} <= names, "a reference still names the unhashed Secret"


def test_external_secrets_produce_every_secret_and_key_the_workloads_read(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["prod+external-secrets"]
    assert of_kind(docs, "Secret") == []
    targets: dict[str, set[str] | None] = {}
    for es in of_kind(docs, "ExternalSecret"):
        spec = es["spec"]
        assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "dbmeta"}
        assert es["metadata"]["namespace"] == "dbmeta"
        # dataFrom copies every property: any key
        targets[spec["target"]["name"]] = (
            None if "dataFrom" in spec else {d["secretKey"] for d in spec["data"]}
        )
    for name, key in _references(docs):
        assert name in targets, name
        keys = targets[name]
        assert key is None or keys is None or key in keys, (name, key)


def test_the_secrets_component_is_in_no_overlay_by_default() -> None:
    for directory in OVERLAYS.values():
        assert "components" not in load_kustomization(directory), directory.relative_to(INFRA)
