"""compose.yaml and the Dockerfile agree with the settings, the CLI and each other.

Docker is not needed: compose.yaml is read as YAML and checked against the variables
platform/config/settings.py reads (found with ``ast``), the ``telemed`` console script
declared in pyproject.toml, and .env.example. Where a check needs a running part (the
deployment checklist, the database roles) it runs that part on this machine.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
import yaml

from config.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
SETTINGS_PY = REPO / "platform" / "config" / "settings.py"
ENV_READERS = {
    "env_str",
    "env_bool",
    "env_int",
    "env_list",
    "env_url",
    "env_optional",
    "env_choice",
}
APP_SERVICES = ("web", "worker", "media")
# Each has an embedded default that is wrong for production, so compose must set it.
REQUIRED_IN_PRODUCTION = {
    "DATABASE_URL",
    "REDIS_URL",
    "TELEMED_SECRET_KEY",
    "TELEMED_DEBUG",
    "TELEMED_ALLOWED_HOSTS",
    "TELEMED_TASK_BACKEND",
}
# Values for the variables .env.example leaves empty, as an operator would fill them.
SAMPLE_ENV = {
    "TELEMED_ALLOWED_HOSTS": "telemed.example.org",
    "TELEMED_TURN_HOST": "turn.example.org",
    "TELEMED_TURN_EXTERNAL_IP": "203.0.113.7",
    "TELEMED_TURN_TLS_DIR": "/etc/telemed/turn-tls",
}

# `$$` is a literal dollar; `${NAME...}` and `$NAME` are compose interpolations.
_DOLLAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A value taken whole from .env that stops compose while missing or empty.
_REQUIRED = re.compile(r"\$\{[A-Z0-9_]+:\?[^}]*\}")


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


@functools.cache
def settings_variables() -> frozenset[str]:
    """Every variable name passed as the first argument to an env_* reader in settings.py."""
    tree = ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ENV_READERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return frozenset(names)


def interpolated_names(text: str) -> set[str]:
    names = set()
    for match in _DOLLAR.finditer(text):
        if match["braced"] is not None:
            name = _NAME.match(match["braced"])
            assert name, f"malformed interpolation {match[0]!r}"
            names.add(name[0])
        elif match["bare"] is not None:
            names.add(match["bare"])
    return names


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Substitute like compose does, for the forms compose.yaml uses."""

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        body = match["braced"] if match["braced"] is not None else match["bare"]
        name = _NAME.match(body)
        assert name
        value = values.get(name[0], "")
        rest = body[name.end() :]
        if rest.startswith(":-") and not value:
            return rest[2:]
        if rest.startswith(":?") and not value:
            raise AssertionError(f"{name[0]} is required: {rest[2:]}")
        return value

    return _DOLLAR.sub(substitute, text)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@functools.cache
def operator_env() -> dict[str, str]:
    """.env.example filled in as an operator would: hosts, and random secrets."""
    values = env_example()
    for name, value in values.items():
        if not value and name in required_names():
            values[name] = SAMPLE_ENV.get(name) or secrets.token_hex(32)
    return values


def required_names() -> set[str]:
    """Names compose refuses to run without (``${NAME:?message}``)."""
    return {
        match[1]
        for text in strings(compose())
        for match in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text)
    }


def app_environment(name: str) -> dict[str, str]:
    environment = service(name)["environment"]
    assert isinstance(environment, dict), f"{name}: environment should be a mapping"
    return {key: str(value) for key, value in environment.items()}


def resolved_app_environment(name: str) -> dict[str, str]:
    return {key: interpolate(value, operator_env()) for key, value in app_environment(name).items()}


def provided(environment: Mapping[str, str]) -> set[str]:
    """Variable names given, counting ``NAME_FILE`` as providing ``NAME``."""
    return {key.removesuffix("_FILE") for key in environment}


def published(ports: list[Any]) -> set[tuple[int, int, str]]:
    """(host port, container port, protocol) for each published port, ranges expanded."""
    result = set()
    for entry in ports:
        text, _, protocol = str(entry).partition("/")
        parts = text.rsplit(":", 2)
        host, container = parts[-2], parts[-1]
        host_ports = _port_range(host)
        container_ports = _port_range(container)
        assert len(host_ports) == len(container_ports), entry
        for host_port, container_port in zip(host_ports, container_ports, strict=True):
            result.add((host_port, container_port, protocol or "tcp"))
    return result


def _port_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def one_shot_services() -> set[str]:
    """Services others wait for to *finish*: everything else runs for good."""
    return {
        dependency
        for spec in compose()["services"].values()
        for dependency, condition in (spec.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }


def coturn_config() -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for line in compose()["configs"]["coturn-config"]["content"].splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            options.setdefault(key, []).append(value)
    return options


def console_script() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = pyproject["project"]["scripts"]
    (name,) = [name for name, target in scripts.items() if target == "config.cli:main"]
    return name


# --- Environment of web and worker --------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_gets_every_required_production_variable(name: str) -> None:
    required = REQUIRED_IN_PRODUCTION | {
        variable
        for variable in settings_variables()
        if variable.startswith(("TELEMED_S3_", "TELEMED_TURN_"))
    }
    assert required <= settings_variables(), "settings.py no longer reads some of these"
    assert required - provided(app_environment(name)) == set()


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_app_service_gets_only_variables_the_settings_read(name: str) -> None:
    assert provided(app_environment(name)) - settings_variables() == set()


def test_web_and_worker_share_one_environment() -> None:
    assert app_environment("web") == app_environment("worker")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_runs_in_production_mode_with_the_database_task_queue(name: str) -> None:
    environment = app_environment(name)
    assert environment["TELEMED_DEBUG"] == "0"
    assert environment["TELEMED_TASK_BACKEND"] == "database"


@pytest.mark.parametrize(
    ("variable", "service_name", "port", "image"),
    [
        ("DATABASE_URL", "postgres", 5432, "postgres:"),
        ("REDIS_URL", "redis", 6379, "redis:"),
        ("TELEMED_S3_ENDPOINT", "minio", 9000, "minio/minio:"),
    ],
)
def test_backing_service_is_reached_by_its_service_name_and_standard_port(
    variable: str, service_name: str, port: int, image: str
) -> None:
    for name in APP_SERVICES:
        value = resolved_app_environment(name)[variable]
        parsed = urlparse(value if "://" in value else f"s3://{value}")
        assert parsed.hostname == service_name, f"{name}: {variable}={value}"
        assert parsed.port == port, f"{name}: {variable}={value}"
    assert service(service_name)["image"].startswith(image)


def test_minio_listens_on_its_default_s3_port() -> None:
    command = service("minio")["command"]
    assert command[0] == "server"
    assert "--address" not in command


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_waits_for_healthy_backing_services_and_finished_setup(name: str) -> None:
    depends_on = service(name)["depends_on"]
    for backing in ("postgres", "redis", "minio"):
        assert depends_on[backing]["condition"] == "service_healthy"
    for setup in ("migrate", "minio-init"):
        assert depends_on[setup]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_healthcheck() -> None:
    long_running = set(compose()["services"]) - one_shot_services()
    assert {"web", "worker", "media", "postgres", "redis", "minio", "coturn"} <= long_running
    missing = {
        name for name in long_running if not service(name).get("healthcheck", {}).get("test")
    }
    assert missing == set()


def test_one_shot_services_are_not_restarted() -> None:
    assert one_shot_services() == {"migrate", "minio-init"}
    for name in one_shot_services():
        assert service(name).get("restart", "no") == "no"


def test_healthcheck_scripts_are_valid_python() -> None:
    for name in APP_SERVICES:
        test = service(name)["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        compile(test[3], f"{name} healthcheck", "exec")


def test_named_volumes_keep_database_and_object_data() -> None:
    declared = set(compose()["volumes"])
    used = {
        str(mount).split(":", 1)[0]
        for spec in compose()["services"].values()
        for mount in spec.get("volumes", [])
        if not str(mount).startswith(("$", ".", "/"))
    }
    assert used <= declared
    assert any(
        v.startswith("postgres-data:/var/lib/postgresql/data")
        for v in service("postgres")["volumes"]
    )
    assert any(v.startswith("minio-data:/data") for v in service("minio")["volumes"])


def test_migrate_runs_the_migrations_as_the_table_owner() -> None:
    migrate = service("migrate")
    assert migrate["command"] == [console_script(), "manage", "migrate", "--noinput"]
    owner = urlparse(interpolate(migrate["environment"]["DATABASE_URL"], operator_env()))
    app = urlparse(resolved_app_environment("web")["DATABASE_URL"])
    assert owner.username == service("postgres")["environment"]["POSTGRES_USER"]
    assert app.username != owner.username
    assert f"CREATE ROLE {app.username} " in compose()["configs"]["postgres-app-role"]["content"]


# --- Web port, commands and the image -----------------------------------------------------


def test_web_serves_probes_and_publishes_the_same_port() -> None:
    web = service("web")
    command = web["command"]
    serve_port = int(command[command.index("--port") + 1])
    assert command[:2] == [console_script(), "serve"]
    assert {
        container
        for _, container, _ in published(
            [interpolate(str(p), operator_env()) for p in web["ports"]]
        )
    } == {serve_port}
    assert f"http://127.0.0.1:{serve_port}/health/ready" in web["healthcheck"]["test"][3]


def test_dockerfile_exposes_and_serves_the_web_port() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    command = service("web")["command"]
    port = command[command.index("--port") + 1]
    assert re.search(rf"^EXPOSE {port}$", dockerfile, re.MULTILINE)


def test_dockerfile_starts_the_telemed_console_script() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    command = json.loads(cmd)
    assert command[0] == console_script()
    assert command[1] == "serve"
    assert "ENTRYPOINT" not in dockerfile


@pytest.mark.parametrize("name", ["web", "worker", "media", "migrate"])
def test_service_command_is_a_valid_telemed_command(name: str) -> None:
    command = service(name)["command"]
    assert command[0] == console_script()
    build_parser().parse_args(command[1:])


def test_dockerfile_keeps_no_secret_and_env_files_stay_out_of_the_build() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"^(ENV|ARG)\b.*SECRET", dockerfile, re.MULTILINE)
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored
    assert ".git" in ignored


def test_dockerfile_collectstatic_step_runs_with_production_settings(tmp_path: Path) -> None:
    """Run the Dockerfile's own collectstatic instruction, with a local STATIC_ROOT."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    (step,) = [line for line in dockerfile.splitlines() if "collectstatic" in line]
    command = step.removeprefix("RUN").strip()
    assert "TELEMED_DEBUG=0" in command
    result = subprocess.run(
        ["sh", "-c", command],
        cwd=REPO,
        env={
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO / "platform"),
            "TELEMED_STATIC_ROOT": str(tmp_path / "static"),
            "TELEMED_DATA_DIR": str(tmp_path / "data"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()


# --- TURN -----------------------------------------------------------------------------------


def test_coturn_signs_credentials_with_the_platform_turn_secret() -> None:
    options = coturn_config()
    assert "use-auth-secret" in options
    (secret,) = options["static-auth-secret"]
    platform_secret = app_environment("web")["TELEMED_TURN_SECRET"]
    assert (
        interpolated_names(secret) == interpolated_names(platform_secret) == {"TELEMED_TURN_SECRET"}
    )
    (realm,) = options["realm"]
    assert realm


def test_turn_urls_offer_turn_over_tls_on_443_for_firewalled_clinics() -> None:
    urls = resolved_app_environment("web")["TELEMED_TURN_URLS"].split(",")
    over_443 = re.compile(r"turns:[^:?]+:443(\?transport=tcp)?|turn:[^:?]+:443\?transport=tcp")
    assert any(over_443.fullmatch(url) for url in urls), urls
    assert any("transport=udp" in url for url in urls), "UDP first: it is what media prefers"


def test_turn_urls_point_at_ports_coturn_publishes() -> None:
    ports = published([interpolate(str(p), operator_env()) for p in service("coturn")["ports"]])
    options = coturn_config()
    listening = {
        int(options["listening-port"][0]): False,
        int(options["tls-listening-port"][0]): True,
    }
    for url in resolved_app_environment("web")["TELEMED_TURN_URLS"].split(","):
        match = re.fullmatch(r"(turns?):([^:?]+):(\d+)\?transport=(udp|tcp)", url)
        assert match, url
        scheme, host, port, transport = match.groups()
        assert host == SAMPLE_ENV["TELEMED_TURN_HOST"]
        targets = {c for h, c, p in ports if h == int(port) and p == transport}
        assert len(targets) == 1, f"{url}: not published"
        assert listening[targets.pop()] is (scheme == "turns"), url
    relay = [int(options["min-port"][0]), int(options["max-port"][0])]
    relay_ports = {h for h, c, p in ports if p == "udp" and h == c and h != 3478}
    assert relay_ports == set(range(relay[0], relay[1] + 1))


def test_coturn_refuses_to_relay_into_the_stacks_private_network() -> None:
    denied = coturn_config()["denied-peer-ip"]
    for network in ("10.0.0.0-", "172.16.0.0-", "192.168.0.0-", "127.0.0.0-"):
        assert any(entry.startswith(network) for entry in denied), network


# --- Secrets and .env.example ---------------------------------------------------------------


def test_env_example_lists_every_variable_compose_interpolates() -> None:
    used = set().union(*(interpolated_names(text) for text in strings(compose())))
    assert used - set(env_example()) == set()
    assert set(env_example()) - used == set(), "documented but unused"


def test_env_example_leaves_every_secret_empty() -> None:
    secret_like = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|ROOT_USER")
    filled = {k: v for k, v in env_example().items() if secret_like.search(k) and v}
    assert filled == {}


def test_no_secret_is_written_into_compose() -> None:
    secret_like = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|ROOT_USER")
    for name, spec in compose()["services"].items():
        environment = spec.get("environment") or {}
        for key, value in environment.items():
            value = str(value)
            if secret_like.search(key):
                assert re.fullmatch(_REQUIRED, value), f"{name}: {key}"
            userinfo = re.search(r"://[^/@:]*:(?P<password>[^@]*)@", value)
            if userinfo:
                assert re.fullmatch(_REQUIRED, userinfo["password"]), f"{name}: {key}"


def test_configuration_doc_lists_every_variable_of_the_settings_and_the_stack() -> None:
    documented = set(
        re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO / "docs" / "configuration.md").read_text())
    )
    assert settings_variables() - documented == set()
    assert set(env_example()) - documented == set()


# --- The parts themselves -------------------------------------------------------------------


def test_the_compose_environment_passes_the_deployment_checklist(tmp_path: Path) -> None:
    """The web's environment, filled from .env.example, starts Django and passes check --deploy."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "config.cli",
            "manage",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ],
        cwd=REPO,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO / "platform"),
            "TELEMED_DATA_DIR": str(tmp_path),
            **resolved_app_environment("web"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_binary() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("no Docker Compose v2 here (it parses without a Docker engine)")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in operator_env().items()))
    result = subprocess.run(
        [
            *binary,
            "--env-file",
            str(env_file),
            "--file",
            str(REPO / "compose.yaml"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stderr.strip() == ""


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="runs with the production parts (DATABASE_URL on PostgreSQL)",
)
@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql")
def test_app_database_role_cannot_drop_or_bypass_the_audit_triggers(tmp_path: Path) -> None:
    """The postgres init script, then `migrate` as owner: the app role may write rows only."""
    admin = urlparse(os.environ["DATABASE_URL"])
    suffix = uuid.uuid4().hex[:8]
    owner, app, database = (
        f"telemed_owner_{suffix}",
        f"telemed_app_{suffix}",
        f"telemed_roles_{suffix}",
    )
    owner_password, app_password = secrets.token_hex(16), secrets.token_hex(16)
    host, port = admin.hostname or "127.0.0.1", admin.port or 5432

    def connect(user: str, password: str, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=host, port=port, user=user, password=password, dbname=dbname, autocommit=True
        )

    with connect(admin.username or "postgres", admin.password or "", "postgres") as root:
        root.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD '{owner_password}'")
        root.execute(f"CREATE DATABASE {database} OWNER {owner}")
        try:
            script = interpolate(compose()["configs"]["postgres-app-role"]["content"], {})
            script = script.replace("telemed_app", app)
            base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
            init = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                env={
                    **base_env,
                    "POSTGRES_USER": owner,
                    "POSTGRES_DB": database,
                    "TELEMED_DB_APP_PASSWORD": app_password,
                    "PGHOST": host,
                    "PGPORT": str(port),
                    "PGPASSWORD": owner_password,
                },
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert init.returncode == 0, init.stderr
            migrate = subprocess.run(
                [sys.executable, "-m", "config.cli", "manage", "migrate", "--noinput", "-v0"],
                cwd=REPO,
                env={
                    **base_env,
                    "PYTHONPATH": str(REPO / "platform"),
                    "TELEMED_DATA_DIR": str(tmp_path),
                    "DATABASE_URL": f"postgres://{owner}:{owner_password}@{host}:{port}/{database}",
                },
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert migrate.returncode == 0, migrate.stderr

            with connect(app, app_password, database) as conn:
                conn.execute(
                    "INSERT INTO django_session (session_key, session_data, expire_date)"
                    " VALUES ('probe', '', now())"
                )
                conn.execute("SELECT count(*) FROM audit_auditevent")
                for statement in (
                    "DROP TRIGGER audit_event_no_update_delete ON audit_auditevent",
                    "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
                    "TRUNCATE audit_auditevent",
                    "DROP TABLE audit_auditevent",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(statement)
        finally:
            root.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            root.execute(f"DROP ROLE IF EXISTS {app}")
            root.execute(f"DROP ROLE IF EXISTS {owner}")
