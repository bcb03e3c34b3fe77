"""Session fixtures: a prepared copy of infra/, every rendering an operator can apply, checkov's verdicts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ._k8s import (
    COMPONENTS,
    K8S,
    NAMESPACES,
    OVERLAYS,
    REPO,
    Doc,
    in_copy,
    kustomize_command,
    prepare_infra_copy,
    render_text,
    write_overlay,
)


@pytest.fixture(scope="session")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of infra/ with the git-ignored secret files created, as an operator would."""
    return prepare_infra_copy(tmp_path_factory.mktemp("infra"))


# The optional components, each switched on in a test-only overlay over prod (a wrapping overlay
# must name the namespace again: kustomize matches references to generated Secrets by namespace).
VARIANTS = {
    "prod+secrets+servicemonitor": ("prod", ["secrets", "servicemonitor"]),
    "prod+external-secrets": ("prod", ["external-secrets"]),
}
RENDERINGS = [*OVERLAYS, *VARIANTS]


def variant_dir(copied: Path, name: str) -> Path:
    """Write the test-only overlay of a variant into the copy and return its directory."""
    overlay, components = VARIANTS[name]
    directory = in_copy(copied, K8S / "overlays" / f"_test-{name.replace('+', '-')}")
    lines = [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        f"namespace: {NAMESPACES[overlay]}",
        "resources:",
        f"  - {os.path.relpath(in_copy(copied, OVERLAYS[overlay]), directory)}",
        "components:",
        *(f"  - {os.path.relpath(in_copy(copied, COMPONENTS[c]), directory)}" for c in components),
    ]
    return write_overlay(directory.parent, directory.name, "\n".join(lines) + "\n")


def rendering_dir(copied: Path, name: str) -> Path:
    return in_copy(copied, OVERLAYS[name]) if name in OVERLAYS else variant_dir(copied, name)


@pytest.fixture(scope="session")
def rendered_text(infra_copy: Path) -> dict[str, str]:
    """The YAML kustomize renders for every overlay and variant, rendered once."""
    if kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl is installed: the overlays cannot be rendered")
    return {name: render_text(rendering_dir(infra_copy, name)) for name in RENDERINGS}


@pytest.fixture(scope="session")
def rendered(rendered_text: dict[str, str]) -> dict[str, list[Doc]]:
    import yaml

    return {
        name: [d for d in yaml.safe_load_all(text) if d is not None] for name, text in rendered_text.items()
    }


# --- checkov --------------------------------------------------------------------------------------


#: checkov lives in a virtual environment of its own (scripts/install.sh): it pins shared packages (packaging,
#: networkx, cachetools, boto3) to versions the project's own dependencies must not be held to.
CHECKOV_VENV = REPO / ".tools" / "checkov"


def checkov_binary() -> str | None:
    """The checkov executable: the install step's tool environment, else one on PATH."""
    local = CHECKOV_VENV / "bin" / "checkov"
    return str(local) if local.is_file() else shutil.which("checkov")


def checkov_available() -> bool:
    return checkov_binary() is not None


@dataclass(frozen=True)
class CheckovReport:
    passed: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


def checkov_file(path: Path, framework: str) -> list[str]:
    """Return the checkov arguments that scan one file with one framework."""
    return ["--file", str(path), "--framework", framework]


KEYS = ("passed_checks", "failed_checks", "skipped_checks")


def run_checkov(targets: dict[str, list[str]]) -> dict[str, CheckovReport]:
    """Run checkov once per target (its arguments), all at once from the repository root, and
    return each report (the results of every framework it ran, together)."""
    # --skip-download: no call to the vendor's platform (guidelines, custom policies): offline
    common = ["--output", "json", "--skip-download", "--compact"]
    binary = checkov_binary()
    assert binary is not None
    # checkov's own worker processes talk to a multiprocessing manager, whose pipe broke once (BrokenPipeError,
    # exit 2) with several checkov runs on two cores: each run works in its own process, sequentially
    env = {**os.environ, "CHECKOV_PARALLELIZATION_TYPE": "none"}
    procs = {
        name: subprocess.Popen(
            [binary, *args, *common],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in targets.items()
    }
    reports: dict[str, CheckovReport] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode in (0, 1), f"checkov on {name} exited {proc.returncode}:\n{err[-3000:]}"
        data = json.loads(out)
        results = [f["results"] for f in (data if isinstance(data, list) else [data])]
        passed, failed, skipped = ([r for res in results for r in res.get(key, [])] for key in KEYS)
        reports[name] = CheckovReport(passed, failed, skipped)
    return reports


@pytest.fixture(scope="session")
def checkov_reports(
    rendered_text: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CheckovReport]:
    """checkov's verdict on every rendering, on the repository (the Dockerfile with it) and on a bare
    Deployment it must fail, each run once and all at the same time."""
    if not checkov_available():
        pytest.skip("checkov is not installed (scripts/install.sh puts it in .tools/checkov)")
    out_dir = tmp_path_factory.mktemp("rendered")
    targets: dict[str, list[str]] = {}
    for name, text in rendered_text.items():
        path = out_dir / f"{name.replace('+', '-')}.yaml"
        path.write_text(text, encoding="utf-8")
        targets[name] = checkov_file(path, "kubernetes")
    # what someone running checkov on the repository sees (.checkov.yaml there says what is scanned)
    targets["repository"] = ["--directory", "."]
    bare = out_dir / "bare.yaml"
    bare.write_text(BARE_DEPLOYMENT, encoding="utf-8")
    targets["bare"] = checkov_file(bare, "kubernetes")
    return run_checkov(targets)


# no digest, no pull policy, no NetworkPolicy: what the gate must refuse
BARE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bare, namespace: dbmeta}
spec:
  selector: {matchLabels: {app: bare}}
  template:
    metadata: {labels: {app: bare}}
    spec:
      containers:
        - {name: bare, image: 'db-meta:0.1.0'}
"""
