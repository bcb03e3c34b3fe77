"""Load, walk and (structurally) render the Kubernetes manifests under infra/."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
PROD = INFRA / "environments" / "prod" / "k8s"
RUNBOOK = K8S / "REDIS_DEPLOYMENT.md"
OVERLAYS = {name: K8S / "overlays" / name for name in ("local", "staging", "prod")}

# The Kubernetes API version every manifest is validated against (bundled by kubernetes-validate).
K8S_SCHEMA_VERSION = "1.33.0"

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def is_kustomization(path: Path) -> bool:
    return path.name in KUSTOMIZATION_NAMES


def manifest_files() -> list[Path]:
    """Return every YAML manifest under infra/ (kustomization files excluded)."""
    found = [p for ext in ("*.yml", "*.yaml") for p in INFRA.rglob(ext)]
    return sorted(p for p in found if not is_kustomization(p))


def kustomization_dirs() -> list[Path]:
    return sorted({p.parent for name in KUSTOMIZATION_NAMES for p in INFRA.rglob(name)})


def load_docs(path: Path) -> list[Doc]:
    """Parse a (multi-document) YAML file, dropping empty documents."""
    with path.open(encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise TypeError(f"{path}: a document is a {type(doc).__name__}, not a mapping")
    return docs


def load_kustomization(directory: Path) -> Doc:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            docs = load_docs(directory / name)
            assert len(docs) == 1, f"{directory / name}: expected one document"
            return docs[0]
    raise FileNotFoundError(f"no kustomization file in {directory}")


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def pod_template(doc: Doc) -> Doc:
    """Return the pod template (metadata + spec) of a workload."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]  # type: ignore[no-any-return]


def containers(doc: Doc, *, init: bool = True) -> list[Doc]:
    spec = pod_template(doc)["spec"]
    found: list[Doc] = list(spec.get("containers", []))
    if init:
        found += spec.get("initContainers", [])
    return found


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    return (d for d in docs if d.get("kind") in POD_KINDS)


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


# --- a small, structural kustomize: enough to reason about the overlays without a binary --------


def render_structurally(directory: Path) -> list[Doc]:
    """Build a kustomization the way kustomize would for what these overlays use.

    Supports resources (files and directories), namespace, images, secret/configMap generators
    with literals, and patches that are JSON 6902 operation lists or a `$patch: delete`.
    Anything else raises, so that a new feature in an overlay is noticed here.
    """
    kust = load_kustomization(directory)
    known = {
        "apiVersion", "kind", "resources", "namespace", "images", "patches",
        "secretGenerator", "configMapGenerator", "generatorOptions",
    }  # fmt: skip
    unknown = set(kust) - known
    if unknown:
        raise NotImplementedError(f"{directory}: kustomization fields {sorted(unknown)} not modelled")
    docs: list[Doc] = []
    for entry in kust.get("resources", []):
        target = (directory / entry).resolve()
        docs += render_structurally(target) if target.is_dir() else copy.deepcopy(load_docs(target))
    for kind, key in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for gen in kust.get(key, []):
            data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
            docs.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}, "data": data})
    for patch in kust.get("patches", []):
        docs = _apply_patch(directory, docs, patch)
    for image in kust.get("images", []):
        for doc in workloads(docs):
            for c in containers(doc):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    if "namespace" in kust:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kust["namespace"]
    return docs


def patch_targets(docs: list[Doc], target: Doc) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == target.get("kind", d["kind"])
        and d["metadata"]["name"] == target.get("name", d["metadata"]["name"])
    ]


def _apply_patch(directory: Path, docs: list[Doc], patch: Doc) -> list[Doc]:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text(encoding="utf-8")
    body = yaml.safe_load(text)
    targets = patch_targets(docs, patch.get("target", {}))
    if not targets:
        raise LookupError(f"{directory}: patch target {patch.get('target')} matches no resource")
    if isinstance(body, dict) and body.get("$patch") == "delete":
        return [d for d in docs if not any(d is t for t in targets)]
    if not isinstance(body, list):
        raise NotImplementedError(f"{directory}: only JSON 6902 lists and $patch: delete are modelled")
    for doc in targets:
        for op in body:
            _json6902(doc, op)
    return docs


def _json6902(doc: Doc, op: Doc) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    key: Any = int(last) if isinstance(parent, list) else last
    if op["op"] == "add":
        parent[key] = op["value"]
    elif op["op"] == "replace":
        assert (key < len(parent)) if isinstance(parent, list) else (key in parent), (
            f"replace of a missing {op['path']}"
        )
        parent[key] = op["value"]
    elif op["op"] == "remove":
        del parent[key]
    else:
        raise NotImplementedError(f"JSON 6902 op {op['op']!r}")


# --- real kustomize ------------------------------------------------------------------------------


def kustomize_command() -> list[str] | None:
    """Return the command that renders a kustomization directory, or None if neither tool exists."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render_with_kustomize(directory: Path) -> list[Doc]:
    cmd = kustomize_command()
    assert cmd is not None
    out = subprocess.run([*cmd, str(directory)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, f"{' '.join(cmd)} {directory} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]
