"""Static checks of the multi-machine deployment: docker-compose.yaml, Dockerfile, .dockerignore.

No Docker engine is needed: the compose file is parsed with PyYAML (anchors and ``<<`` merge keys
resolved by the loader) and compose's ``${VAR:-default}`` interpolation is resolved with the
defaults only, so the assertions do not depend on the caller's environment. When a Compose CLI is
installed, ``config`` (which renders without an engine) validates the file against the spec too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PATH = ROOT / "docker-compose.yaml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"

IMAGE = "${AIRFLOW_IMAGE_NAME:-reranker-airflow:latest}"
AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-worker-gpu": "celery worker",
    "airflow-triggerer": "triggerer",
}
AIRFLOW_SERVICES = [*AIRFLOW_COMMANDS, "airflow-init"]
LONG_RUNNING = list(AIRFLOW_COMMANDS)
ARTIFACTS_ROOT = "/opt/airflow/artifacts"
WORKERS = ("airflow-worker", "airflow-worker-gpu")
HF_TOKEN_LITERAL = re.compile(r"hf_[A-Za-z0-9]{10,}")
# ${HF_TOKEN}, ${HF_TOKEN:-}, ${HF_TOKEN-x}: compose interpolation from the host environment.
HF_TOKEN_INTERPOLATION = re.compile(r"^\$\{HF_TOKEN(:?-[^}]*)?\}$")

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _defaults(value: str) -> str:
    """Resolve compose interpolation as if no variable were set: ``${X:-d}`` -> ``d``, ``$$`` -> ``$``."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        return ""

    return _INTERPOLATION.sub(sub, value)


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(raw: str) -> dict[str, Any]:
    doc = yaml.safe_load(raw)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return env


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (host path or named volume) of the short-syntax volume entries."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"short volume syntax expected, got {entry!r}"
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


# --- topology ----------------------------------------------------------------------------------------


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    required = {"postgres", "redis", *AIRFLOW_SERVICES}
    assert required <= set(services), f"missing: {sorted(required - set(services))}"
    assert re.fullmatch(r"postgres:1[56](\b.*)?", services["postgres"]["image"])
    assert services["redis"]["image"].startswith("redis:")


def test_airflow_services_share_the_project_image_and_celery_executor(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in AIRFLOW_SERVICES:
        service = services[name]
        build = service.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        assert context in (".", "./"), f"{name} builds the repo's Dockerfile"
        assert service.get("image") == IMAGE, name
        assert _env(service).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
        assert str(_env(service).get("AIRFLOW__CORE__LOAD_EXAMPLES")).lower() == "false", name


def test_database_and_broker_urls_point_at_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    pg_env = {key: _defaults(str(value)) for key, value in _env(services["postgres"]).items()}
    redis_ports = {str(port) for port in services["redis"].get("expose", [])}
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        for key, scheme in (
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2"),
            ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql"),
        ):
            url = urlsplit(_defaults(env[key]))
            assert url.scheme == scheme, (name, key)
            assert url.hostname == "postgres" and url.hostname in services, (name, key)
            assert url.port in (None, 5432), (name, key)
            assert url.username == pg_env["POSTGRES_USER"], (name, key)
            assert url.password == pg_env["POSTGRES_PASSWORD"], (name, key)
            assert url.path.lstrip("/") == pg_env["POSTGRES_DB"], (name, key)
        broker = urlsplit(_defaults(env["AIRFLOW__CELERY__BROKER_URL"]))
        assert broker.scheme == "redis" and broker.hostname == "redis", name
        assert str(broker.port or 6379) in redis_ports, name


def test_execution_api_url_points_at_the_api_server(services: dict[str, dict[str, Any]]) -> None:
    published = {str(port).split(":")[-1] for port in services["airflow-apiserver"].get("ports", [])}
    assert "8080" in published
    for name in AIRFLOW_SERVICES:
        url = urlsplit(_defaults(_env(services[name])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]))
        assert url.scheme == "http" and url.hostname == "airflow-apiserver", name
        assert str(url.port) in published, name
        assert url.path == "/execution/", name


def test_each_airflow_service_runs_its_component(services: dict[str, dict[str, Any]]) -> None:
    for name, expected in AIRFLOW_COMMANDS.items():
        command = _command(services[name])
        assert command == expected or command.startswith(expected + " "), (name, command)


def _queues(service: dict[str, Any]) -> list[str]:
    argv = _defaults(_command(service)).split()
    queues: list[str] = []
    for flag_index, arg in enumerate(argv):
        if arg in ("--queues", "-q") and flag_index + 1 < len(argv):
            queues += argv[flag_index + 1].split(",")
        elif arg.startswith("--queues="):
            queues += arg.split("=", 1)[1].split(",")
    return queues


def test_one_worker_takes_the_default_queue_and_another_the_training_queue(
    services: dict[str, dict[str, Any]],
) -> None:
    """The topology of tests/stack: a CPU worker for everything but training, a GPU worker for training only."""
    cpu, gpu = (services[name] for name in WORKERS)
    train_queue = _defaults(_env(cpu)["RERANKER_TRAIN_QUEUE"])
    assert train_queue == "gpu" and _defaults(_env(gpu)["RERANKER_TRAIN_QUEUE"]) == train_queue
    default_queue = _env(cpu).get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
    assert _queues(cpu) == [default_queue], "the CPU worker never trains"
    assert _queues(gpu) == [train_queue], "the GPU worker only trains"
    assert _defaults(str(_env(gpu)["AIRFLOW__CELERY__WORKER_CONCURRENCY"])) == "1"


def test_worker_has_a_commented_gpu_reservation_example(raw: str) -> None:
    worker_block = raw.split("\n  airflow-worker-gpu:\n", 1)[1].split("\n  airflow-triggerer:\n", 1)[0]
    for line in ("deploy:", "reservations:", "driver: nvidia", "capabilities: [gpu]"):
        assert re.search(r"^\s*#\s*(-\s*)?" + re.escape(line), worker_block, re.MULTILINE), line


# --- mounts and volumes -------------------------------------------------------------------------------


def test_dags_plugins_logs_config_are_mounted_from_the_repo(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        mounts = _mounts(services[name])
        for folder in ("dags", "plugins", "logs", "config"):
            assert mounts.get(f"/opt/airflow/{folder}") == f"./{folder}", (name, folder)
    for folder in ("dags", "plugins"):
        assert (COMPOSE_PATH.parent / folder).is_dir(), f"mounted host folder {folder}/ exists"


def test_artifacts_volume_is_shared_by_the_airflow_services(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    sources = set()
    for name in AIRFLOW_SERVICES:
        assert _defaults(_env(services[name]).get("RERANKER_ARTIFACTS_ROOT", "")) == ARTIFACTS_ROOT, name
        sources.add(_mounts(services[name]).get(ARTIFACTS_ROOT))
    assert len(sources) == 1, f"one volume for every service, got {sources}"
    (volume,) = sources
    assert volume and not volume.startswith((".", "/")), "a named volume, not a host folder"
    assert volume in (compose.get("volumes") or {}), "declared at top level"
    for name in ("airflow-scheduler", *WORKERS, "airflow-apiserver", "airflow-dag-processor"):
        assert _mounts(services[name])[ARTIFACTS_ROOT] == volume, name


# --- Hugging Face settings and secrets ----------------------------------------------------------------


def test_hugging_face_environment(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        endpoint = str(env.get("HF_ENDPOINT"))
        assert endpoint.startswith("${HF_ENDPOINT"), f"{name}: HF_ENDPOINT overridable from the host"
        assert _defaults(endpoint) == "https://huggingface.co", name
        assert str(env.get("HF_HUB_DISABLE_TELEMETRY")) == "1", name
        assert str(env.get("TOKENIZERS_PARALLELISM")).lower() == "false", name
        assert HF_TOKEN_INTERPOLATION.match(str(env.get("HF_TOKEN"))), f"{name}: HF_TOKEN from the host"


def test_no_literal_hugging_face_token(raw: str, compose: dict[str, Any]) -> None:
    assert not HF_TOKEN_LITERAL.search(raw), "token-looking literal in docker-compose.yaml"
    for service in compose["services"].values():
        value = (service.get("environment") or {}).get("HF_TOKEN")
        assert value is None or HF_TOKEN_INTERPOLATION.match(str(value)), value
    # Anywhere else, HF_TOKEN is only read: ${HF_TOKEN...} interpolation or an escaped shell $${HF_TOKEN}.
    reference = re.compile(r"\$\$?\{HF_TOKEN(:?-[^}]*)?\}|\$\$HF_TOKEN\b")
    for text in _strings(compose):
        leftover = reference.sub("", text)
        assert not re.search(r"HF_TOKEN\s*[=:]\s*[^\s\"'$]", leftover), f"HF_TOKEN assigned a literal in {text!r}"


def test_secrets_are_never_empty_literals(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            value = env.get(key)
            assert value is None or re.fullmatch(r"\$\{" + key + r"(:?-[^}]*)?\}", str(value)), (name, key)


def test_init_migrates_and_creates_the_hf_connection_only_with_a_token(services: dict[str, dict[str, Any]]) -> None:
    script = _command(services["airflow-init"])
    assert "airflow db migrate" in script
    lines = [line.strip() for line in script.splitlines()]
    add = next(i for i, line in enumerate(lines) if "connections add huggingface_default" in line)
    assert "--conn-type generic" in lines[add]
    assert '--conn-password "$${HF_TOKEN}"' in lines[add], "shell variable, escaped from compose"
    guard = max(i for i in range(add) if lines[i].startswith("if "))
    assert re.search(r'-n "\$\$\{HF_TOKEN(:-)?\}"', lines[guard]), lines[guard]
    assert not re.search(r"(?<!\$)\$\{?HF_TOKEN", script), "unescaped: compose would bake the token in"


# --- health and start order ---------------------------------------------------------------------------


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, probe in (("postgres", "pg_isready"), ("redis", "redis-cli"), ("airflow-apiserver", ":8080/")):
        test = services[name].get("healthcheck", {}).get("test")
        assert test and probe in " ".join(test if isinstance(test, list) else [test]), name
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), name


def test_depends_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        deps = services[name].get("depends_on", {})
        assert deps.get("postgres", {}).get("condition") == "service_healthy", name
        assert deps.get("redis", {}).get("condition") == "service_healthy", name
    for name in LONG_RUNNING:
        deps = services[name]["depends_on"]
        assert deps.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
    worker_deps = services["airflow-worker"]["depends_on"]
    assert worker_deps.get("airflow-apiserver", {}).get("condition") == "service_healthy"


def test_hub_emulator_is_an_optional_profile(services: dict[str, dict[str, Any]], raw: str) -> None:
    hub = services["hub-emulator"]
    assert hub.get("profiles") == ["local-hub"]
    assert _command(hub) == "python -m hub_emulator serve --host 0.0.0.0 --port 8791 --root /data/localhub"
    assert "/data/localhub" in _mounts(hub)
    # Dev tooling, not in the image: mounted read-only from the checkout into a folder on PYTHONPATH.
    (target,) = [target for target, source in _mounts(hub).items() if source == "./hub_emulator"]
    assert target.endswith("/hub_emulator"), target
    assert f"./hub_emulator:{target}:ro" in hub["volumes"], "the checkout's code is not writable from the container"
    assert target.rsplit("/", 1)[0] in str(_env(hub).get("PYTHONPATH", "")).split(":"), "python -m finds the mount"
    assert (COMPOSE_PATH.parent / "hub_emulator" / "__main__.py").is_file()
    for name in AIRFLOW_SERVICES:
        assert "hub-emulator" not in services[name].get("depends_on", {}), name
    assert "http://hub-emulator:8791" in raw, "the comment tells HF_ENDPOINT for the emulator"


# --- image ----------------------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE_PATH.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_extends_airflow_332_and_installs_with_constraints() -> None:
    instructions = _dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms and froms[0].startswith("apache/airflow:3.3.2"), froms
    copied = " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    for path in ("pyproject.toml", "constraints.txt", "reranker_tasks/", "reranker_airflow/"):
        assert path in copied, path
    assert "hub_emulator" not in copied, "dev tooling: the local-hub profile mounts it from the checkout"
    user = None
    installs = []
    for keyword, rest in instructions:
        if keyword == "USER":
            user = rest
        elif keyword == "RUN" and "pip install" in rest:
            installs.append((user, rest))
    assert installs, "the project is pip-installed"
    for run_user, command in installs:
        assert run_user == "airflow", "pip installs run as the airflow user"
        assert "--no-cache-dir" in command
        assert re.search(r"(-c|--constraint)[ =]constraints\.txt", command), command
        assert '".[demo]"' in command or "'.[demo]'" in command, command


def _wheel_config() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]


def test_the_image_installs_every_project_package_the_dags_import() -> None:
    """The DAG files are mounted, the packages they import are not: those must be in the wheel the image installs."""
    import ast

    packaged = set(_wheel_config()["packages"])
    imported = set()
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    project = {name for name in imported if (ROOT / name / "__init__.py").is_file()}
    assert project >= {"reranker_tasks", "reranker_airflow"}, project
    assert project <= packaged, project - packaged


def test_the_wheel_leaves_the_hub_emulator_out() -> None:
    """hub_emulator is dev tooling: not a wheel package, not pulled in by any other hatch inclusion option."""
    wheel = _wheel_config()
    assert set(wheel["packages"]) == {"reranker_tasks", "reranker_airflow"}, wheel["packages"]
    for option in ("packages", "include", "only-include", "force-include", "sources", "shared-data"):
        assert "hub_emulator" not in str(wheel.get(option, "")), option
    # The dev workflow (make hub-ls, tests, scripts/run_dag.py) imports it from the checkout the editable install
    # puts on sys.path.
    assert wheel.get("dev-mode-dirs") == ["."], wheel.get("dev-mode-dirs")


def test_the_built_wheel_holds_the_pipeline_packages_only(tmp_path: Path) -> None:
    """Build the wheel as pip would (where the build backend is importable) and list its top-level entries."""
    import zipfile

    builders = pytest.importorskip("hatchling.builders.wheel", reason="hatchling (the build backend) not installed")
    (wheel_path,) = builders.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel_path) as wheel:
        top = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"reranker_tasks", "reranker_airflow"}, top


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    entries = {line.strip().strip("/") for line in DOCKERIGNORE_PATH.read_text().splitlines()}
    for entry in (".venv", ".airflow", "artifacts", ".localhub", "tests", "hub_emulator", ".git", ".env"):
        assert entry in entries, entry
    assert any("__pycache__" in entry for entry in entries)


# --- Compose CLI (renders without an engine) -------------------------------------------------------------


def _compose_cli() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not on PATH: `docker compose config` cannot run here")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if probe.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    pytest.skip("docker CLI found but no Compose (neither the `docker compose` plugin nor docker-compose)")


def _render(
    *args: str, hf_token: str | None = None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "RERANKER_ARTIFACTS_ROOT")}
    if hf_token is not None:
        env["HF_TOKEN"] = hf_token
    env.update(extra or {})
    return subprocess.run(
        [*_compose_cli(), "-f", str(COMPOSE_PATH), "config", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docker_compose_config_validates() -> None:
    result = _render("-q")
    assert result.returncode == 0, result.stderr


def test_rendered_config_passes_the_token_through_without_baking_it_in() -> None:
    token = "dummy-token-for-render-test"
    result = _render(hf_token=token)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        assert rendered[name]["environment"]["HF_TOKEN"] == token, name
    assert token not in _command(rendered["airflow-init"]), "init reads the token at run time"


def test_the_artifacts_root_can_be_an_object_store_uri() -> None:
    """RERANKER_ARTIFACTS_ROOT from the host: every Airflow service gets the same URI (the store mode)."""
    uri = "s3://aws_default@reranker-bucket/artifacts"
    result = _render(extra={"RERANKER_ARTIFACTS_ROOT": uri})
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        assert rendered[name]["environment"]["RERANKER_ARTIFACTS_ROOT"] == uri, name


def test_dockerfile_can_add_the_object_store_filesystem() -> None:
    text = DOCKERFILE_PATH.read_text(encoding="utf-8")
    assert re.search(r"^ARG EXTRA_PIP=\"\"$", text, re.MULTILINE)
    install = next(line for line in text.splitlines() if '".[demo]"' in line)
    assert install.rstrip().endswith("${EXTRA_PIP}")
