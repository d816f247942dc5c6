"""The ``telemed`` command.

``telemed demo``      run the whole platform on embedded defaults with a demo association
``telemed serve``     serve the ASGI application with Daphne (production)
``telemed worker``    run background tasks (production: database-backed queue)
``telemed dicom-scp`` receive DICOM by DIMSE (C-ECHO, C-STORE) from registered AE titles
``telemed media``     run the media service (aiortc SFU for consult video)
``telemed manage``    any Django management command, e.g. ``telemed manage migrate``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def _port_or_off(value: str) -> int:
    return 0 if value.strip() == "0" else _port(value)


def _password(value: str) -> str:
    if len(value) < 8:
        raise argparse.ArgumentTypeError("the demo password needs at least 8 characters")
    return value


def _daphne(*, host: str, port: int, proxy_headers: bool, adopt: str | None = None) -> None:
    from config.startup import daphne_cli, warm_and_freeze

    warm_and_freeze()
    # ``adopt``: a listening socket inherited from ``telemed serve --workers`` (its parent).
    args = ["-e", adopt] if adopt else ["-b", host, "-p", str(port)]
    if proxy_headers:
        args.append("--proxy-headers")
    daphne_cli().run([*args, "config.asgi:application"])


def _start_media_child(port: int) -> subprocess.Popen[bytes]:
    """``telemed media`` on 127.0.0.1:``port`` for the demo, offering loopback ICE candidates."""
    env = {**os.environ, "TELEMED_MEDIA_HOST_ADDRESSES": "127.0.0.1"}
    return subprocess.Popen(  # noqa: S603  (our own interpreter and fixed arguments)
        [sys.executable, "-m", "config.cli", "media", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def cmd_demo(ns: argparse.Namespace) -> int:
    data_dir = Path(ns.data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TELEMED_DATA_DIR"] = str(data_dir)
    for name in ("DATABASE_URL", "REDIS_URL", "TELEMED_S3_ENDPOINT"):
        os.environ.pop(name, None)  # the demo always runs on embedded defaults
    os.environ.setdefault("TELEMED_DEBUG", "1")
    if ns.media_port:
        os.environ["TELEMED_MEDIA_URL"] = f"http://127.0.0.1:{ns.media_port}"
    _setup_django()
    from django.core.management import call_command

    from demo.services import DEFAULT_PASSWORD, DEMO_ACCOUNTS, demo_seed

    call_command("migrate", interactive=False, verbosity=0)
    result = demo_seed(password=ns.demo_password)
    from imaging.demo import demo_seed_imaging

    demo_seed_imaging()
    from consult.demo import demo_seed_consults
    from consult.escalation import start_periodic

    demo_seed_consults()
    from lab.demo import demo_seed_lab
    from lab.demo_orders import demo_seed_lab_orders
    from lab.escalation import start_periodic as start_lab_periodic

    demo_seed_lab()
    demo_seed_lab_orders()
    _thread, periodic = start_periodic()
    _lab_thread, lab_periodic = start_lab_periodic()
    url = f"http://127.0.0.1:{ns.port}/"
    print(f"Telemed demo: {url}")
    print(f"Data folder: {data_dir}  ({'created' if result.created else 'reused'})")
    password = result.password or f"as set before; {DEFAULT_PASSWORD} unless changed"
    print(f"Demo accounts (password: {password}):")
    for username, description in DEMO_ACCOUNTS:
        print(f"  {username:<12} {description}")
    media = None
    if ns.media_port:
        print(f"Media service: http://127.0.0.1:{ns.media_port}/health")
        sys.stdout.flush()
        media = _start_media_child(ns.media_port)
    sys.stdout.flush()
    try:
        _daphne(host="127.0.0.1", port=ns.port, proxy_headers=False)
    finally:
        periodic.set()
        lab_periodic.set()
        if media is not None:
            _stop_child(media)
    return 0


def cmd_serve(ns: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings  # the settings only: a parent of workers loads no app

    workers = ns.workers if ns.workers is not None else settings.WEB_WORKERS
    if ns.adopt is None and workers > 1:
        from config.web_workers import WorkersUnavailable, serve_workers

        try:
            return serve_workers(host=ns.host, port=ns.port, workers=workers)
        except WorkersUnavailable as exc:
            print(f"telemed serve: {exc}", file=sys.stderr)
            return 2
    _setup_django()
    _daphne(host=ns.host, port=ns.port, proxy_headers=True, adopt=ns.adopt)
    return 0


def _workers(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= MAX_WEB_WORKERS:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_WEB_WORKERS}")
    return number


def cmd_worker(ns: argparse.Namespace) -> int:
    _setup_django()
    from django.core.management import call_command

    from consult.escalation import start_periodic
    from lab.escalation import start_periodic as start_lab_periodic

    _thread, stop = start_periodic()  # consult escalation and recording retention
    _lab_thread, lab_stop = start_lab_periodic()  # critical-value escalation
    try:
        call_command("db_worker", *ns.args)
    finally:
        stop.set()
        lab_stop.set()
    return 0


def cmd_dicom_scp(ns: argparse.Namespace) -> int:
    _setup_django()
    from django.core.management import CommandError, call_command

    # As strings, so that the command's own parser checks them; unset ones come from settings.
    options = {"--bind": ns.bind, "--port": ns.port, "--ae-title": ns.ae_title}
    args = [f"{flag}={value}" for flag, value in options.items() if value is not None]
    try:
        call_command("dicom_scp", *args)
    except CommandError as exc:
        print(f"telemed dicom-scp: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_media(ns: argparse.Namespace) -> int:
    _setup_django()
    from consult.media.main import run

    with contextlib.suppress(KeyboardInterrupt):
        run(host=ns.host, port=ns.port)
    return 0


def cmd_manage(ns: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["telemed manage", *ns.args])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run on embedded defaults with a demo association")
    demo.add_argument("--port", type=_port, default=8000)
    demo.add_argument("--data-dir", default=os.environ.get("TELEMED_DATA_DIR", "./data"))
    demo.add_argument(
        "--demo-password",
        type=_password,
        default=None,
        help="password of every demo account (default: kept from the last run, or telemed-demo)",
    )
    demo.add_argument(
        "--media-port",
        type=_port_or_off,
        default=8001,
        help="port of the media service started alongside on 127.0.0.1 (0: do not start it)",
    )
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="serve the platform with Daphne")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104  (inside a container)
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="Daphne processes sharing the port (default TELEMED_WEB_WORKERS, or 1);"
        " more than 1 needs REDIS_URL",
    )
    serve.add_argument("--adopt", default=None, help=argparse.SUPPRESS)  # set by --workers
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run background tasks")
    worker.add_argument("args", nargs=argparse.REMAINDER)
    worker.set_defaults(func=cmd_worker)

    scp = sub.add_parser("dicom-scp", help="receive DICOM by DIMSE (C-ECHO, C-STORE)")
    scp.add_argument("--bind", default=None, help="address to listen on (default 0.0.0.0)")
    scp.add_argument("--port", type=_port, default=None, help="TCP port (default 11112)")
    scp.add_argument("--ae-title", default=None, help="our AE title (default TELEMED)")
    scp.set_defaults(func=cmd_dicom_scp)

    media = sub.add_parser("media", help="run the media service (consult video)")
    media.add_argument("--host", default="127.0.0.1", help="address of the control API")
    media.add_argument("--port", type=_port, default=8001)
    media.set_defaults(func=cmd_media)

    manage = sub.add_parser("manage", help="run a Django management command", add_help=False)
    manage.add_argument("args", nargs=argparse.REMAINDER)
    manage.set_defaults(func=cmd_manage)
    return parser


PASS_THROUGH = {"worker", "manage"}
MAX_WEB_WORKERS = 64


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra:
        if ns.command not in PASS_THROUGH:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        # argparse leaves options before the first positional (``worker --batch``) unparsed.
        ns.args = [*extra, *ns.args]
    return int(ns.func(ns))


if __name__ == "__main__":
    raise SystemExit(main())
