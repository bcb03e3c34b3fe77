"""Session fixtures: a prepared copy of infra/, every rendering an operator can apply, checkov's verdicts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ._k8s import (
    COMPONENTS,
    K8S,
    NAMESPACES,
    OVERLAYS,
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


def checkov_available() -> bool:
    return importlib.util.find_spec("checkov") is not None


@dataclass(frozen=True)
class CheckovReport:
    passed: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


def _checkov_command(target: Path, framework: str) -> list[str]:
    # --skip-download: no call to the vendor's platform (guidelines, custom policies), offline and quiet
    return [
        sys.executable, "-m", "checkov.main", "--file", str(target), "--framework", framework,
        "--output", "json", "--skip-download", "--compact",
    ]  # fmt: skip


def run_checkov(targets: dict[str, tuple[Path, str]]) -> dict[str, CheckovReport]:
    """Run checkov once per target (file, framework), all at once, and return each report."""
    procs = {
        name: subprocess.Popen(
            _checkov_command(path, framework), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (path, framework) in targets.items()
    }
    reports: dict[str, CheckovReport] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode in (0, 1), f"checkov on {name} exited {proc.returncode}:\n{err[-3000:]}"
        data = json.loads(out)
        results = data["results"]
        reports[name] = CheckovReport(
            results.get("passed_checks", []),
            results.get("failed_checks", []),
            results.get("skipped_checks", []),
        )
    return reports


@pytest.fixture(scope="session")
def checkov_reports(
    rendered_text: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CheckovReport]:
    """checkov's verdict on every rendering (kubernetes) and on the Dockerfile, each run once."""
    if not checkov_available():
        pytest.skip("checkov is not installed (pip install checkov, see the dev extras of pyproject.toml)")
    out_dir = tmp_path_factory.mktemp("rendered")
    targets: dict[str, tuple[Path, str]] = {}
    for name, text in rendered_text.items():
        path = out_dir / f"{name.replace('+', '-')}.yaml"
        path.write_text(text, encoding="utf-8")
        targets[name] = (path, "kubernetes")
    targets["Dockerfile"] = (K8S.parents[1] / "Dockerfile", "dockerfile")
    return run_checkov(targets)
