"""Load, walk and (structurally) render the Kubernetes manifests under infra/."""

from __future__ import annotations

import copy
import re
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
# what an operator applies: every one renders into its own namespace
OVERLAYS = {name: K8S / "overlays" / name for name in ("local", "staging", "prod", "prod-sentinel")}
NAMESPACES = {
    "local": "dbmeta-local",
    "staging": "dbmeta-staging",
    "prod": "dbmeta",
    "prod-sentinel": "dbmeta",
}
COMPONENTS = {
    "servicemonitor": K8S / "components" / "servicemonitor",
    "secrets": PROD / "secrets",
    "external-secrets": PROD / "external-secrets",
}
# kinds of CRDs (Prometheus Operator, External Secrets Operator): not in the Kubernetes schema
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("external-secrets.io/v1", "ExternalSecret")}
# a digest the release pipeline sets (kustomize edit set image ...@sha256:...)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

# The Kubernetes API version every manifest is validated against (bundled by kubernetes-validate).
K8S_SCHEMA_VERSION = "1.33.0"

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
KUSTOMIZATION_API = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}


def is_kustomization(path: Path) -> bool:
    return path.name in KUSTOMIZATION_NAMES


def is_component(directory: Path) -> bool:
    return load_kustomization(directory)["kind"] == "Component"


def manifest_files() -> list[Path]:
    """Return every YAML manifest under infra/ (kustomization files excluded)."""
    found = [p for ext in ("*.yml", "*.yaml") for p in INFRA.rglob(ext)]
    return sorted(p for p in found if not is_kustomization(p))


def kustomization_dirs() -> list[Path]:
    return sorted({p.parent for name in KUSTOMIZATION_NAMES for p in INFRA.rglob(name)})


def root_kustomizations() -> list[Path]:
    """Return the kustomizations no other one includes: the ones an operator applies."""
    dirs = kustomization_dirs()
    included = set()
    for directory in dirs:
        kust = load_kustomization(directory)
        for entry in [*kust.get("resources", []), *kust.get("components", [])]:
            included.add((directory / entry).resolve())
    return [d for d in dirs if d.resolve() not in included and not is_component(d)]


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


# --- a copy of infra/ an operator has prepared: what the optional parts need to render ---------

TEST_DATABASE_URL = "postgresql://dbmeta_ro:not-a-real-password@warehouse-db:5432/warehouse"


def prepare_infra_copy(dest: Path) -> Path:
    """Copy infra/ to dest and create the git-ignored secret files as an operator would.

    Returns the copy of infra/. The secret files come from the committed init-secrets.sh, plus a
    db-urls.env written from its example with a test URL, so the optional components render.
    """
    copied = dest / "infra"
    shutil.copytree(INFRA, copied, ignore=shutil.ignore_patterns("*.env"))
    secrets = copied / PROD.relative_to(INFRA) / "secrets"
    example = (secrets / "db-urls.env.example").read_text(encoding="utf-8")
    (secrets / "db-urls.env").write_text(
        re.sub(r"^([A-Z_][A-Z0-9_]*)=$", rf"\1={TEST_DATABASE_URL}", example, flags=re.M), encoding="utf-8"
    )
    done = subprocess.run(
        ["sh", str(secrets / "init-secrets.sh")], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return copied


def in_copy(copied: Path, path: Path) -> Path:
    """Return where `path` (under infra/) lies in a copy made by prepare_infra_copy."""
    return copied / path.relative_to(INFRA)


def write_overlay(parent: Path, name: str, body: str) -> Path:
    """Write a kustomization.yaml into parent/name (in a copy of infra/) and return the directory."""
    directory = parent / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(body, encoding="utf-8")
    return directory


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

    Supports resources (files and directories), components, namespace, images (tag and digest),
    secret/configMap generators with literals or env files, and patches that are JSON 6902
    operation lists or a `$patch: delete`. Generated names keep no hash suffix. Anything else
    raises, so that a new feature in an overlay is noticed here.
    """
    return _build(directory, [])


def _build(directory: Path, docs: list[Doc]) -> list[Doc]:
    """Apply one kustomization (or component) to `docs` in kustomize's order and return the result."""
    kust = load_kustomization(directory)
    known = {
        "apiVersion", "kind", "resources", "components", "namespace", "images", "patches",
        "secretGenerator", "configMapGenerator", "generatorOptions",
    }  # fmt: skip
    unknown = set(kust) - known
    if unknown:
        raise NotImplementedError(f"{directory}: kustomization fields {sorted(unknown)} not modelled")
    for entry in kust.get("resources", []):
        target = (directory / entry).resolve()
        docs += _build(target, []) if target.is_dir() else copy.deepcopy(load_docs(target))
    for entry in kust.get("components", []):
        component = (directory / entry).resolve()
        assert is_component(component), f"{directory}: {entry} is not a Component"
        docs = _build(component, docs)
    for kind, key in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for gen in kust.get(key, []):
            data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
            for env_file in gen.get("envs", []):
                data.update(read_env_file(directory / env_file))
            labels = dict(gen.get("options", {}).get("labels", {}))
            meta: Doc = {"name": gen["name"], **({"labels": labels} if labels else {})}
            docs.append({"apiVersion": "v1", "kind": kind, "metadata": meta, "data": data})
    for patch in kust.get("patches", []):
        docs = _apply_patch(directory, docs, patch)
    for image in kust.get("images", []):
        for doc in workloads(docs):
            for c in containers(doc):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
                    if "digest" in image:
                        c["image"] += f"@{image['digest']}"
    if "namespace" in kust:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kust["namespace"]
    return docs


def read_env_file(path: Path) -> dict[str, str]:
    """Read a kustomize env file: KEY=value lines; blank lines and # comments skipped."""
    data: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {line!r} is not KEY=value"
            data[key.strip()] = value
    return data


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
    return [d for d in yaml.safe_load_all(render_text(directory)) if d is not None]


def render_text(directory: Path) -> str:
    """Return the YAML stream kustomize renders for a directory."""
    cmd = kustomize_command()
    assert cmd is not None
    out = subprocess.run([*cmd, str(directory)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, f"{' '.join(cmd)} {directory} failed:\n{out.stderr}"
    return out.stdout


GENERATED_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def unhashed(name: str) -> str:
    """Drop the content hash kustomize appends to a generated Secret or ConfigMap name."""
    return GENERATED_SUFFIX.sub("", name)
