"""Consult-room signaling benchmark: message latency with many rooms open at once.

    python bench/signaling.py [--rooms 200] [--messages 20] [--interval 0.5] [--kind viewer]
                              [--conn-max-age N] [--markdown] [--json FILE] [--keep]

Starts, on 127.0.0.1 and in a temporary folder, ``telemed demo`` (Daphne, SQLite, the
in-memory channel layer), then through ``telemed manage shell`` creates ``--rooms``
consults of the demo association (scheduled, the county specialist accepted, the
township doctor already let in) and one session for each of the two doctors.

Opens two WebSockets per room (requester and expert; aiohttp's client, real TCP to
Daphne, the browser's Origin and session cookie) and waits for every ``welcome``. Then
every room, started at a random offset, sends ``--messages`` messages alternately from
each side, one every ``--interval`` seconds: ``viewer.state`` (the viewport sync; the
default) or ``chat`` (stored in the database, audited). The latency of a message is the
time from handing it to the client socket to its arrival at the other client of the room
(one process, one monotonic clock); the first two messages of each room are a warm-up.

Prints connection time, p50/p90/p99/max latency, lost messages, the server's and this
process's CPU during the measurement and whether the issue's target (p99 under 50 ms) is
met; ``--markdown`` prints the table as Markdown too, ``--json FILE`` writes every figure
and a per-second timeline. Not part of the test suite.

Each client message is checked against the connection's standing, re-read from the
database when it is a few seconds old (docs/protocols.md). The server freezes its start-up
objects for the garbage collector (``config.startup``); ``--no-gc-freeze`` serves without
that, to compare (a full collection of an unfrozen Django process pauses its loop for tens
of milliseconds). This process freezes its own objects too and reports its collector's
pauses, so a pause of the measuring side is told apart from one of the server.
``telemed demo`` keeps its SQLite connection open (``TELEMED_DB_CONN_MAX_AGE``,
600 s by default); ``--conn-max-age N`` serves the same SQLite file through
``DATABASE_URL`` with ``TELEMED_DB_CONN_MAX_AGE=N`` (and ``telemed serve``) to compare,
e.g. ``--conn-max-age 0`` for a new connection per database call.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TARGET_P99_MS = 50.0
WARMUP = 2

SETUP_SCRIPT = r"""
import json, uuid
from django.conf import settings
from django.test import Client
from accounts.models import User
from association.models import Institution
from consult.models import (
    Consult, ConsultEvent, ConsultExpert, ExpertStatus, Mode, Status, TargetKind,
)
from consult.room.services import ADMITTED_EVENT
from records.models import Patient

township = User.objects.get(username="township")
specialist = User.objects.get(username="specialist")
patient = Patient.objects.get(name="刘桂兰")
xiba = Institution.objects.get(code="xiba")
county = Institution.objects.get(code="county")
ids = []
for n in range(ROOMS):
    consult = Consult.objects.create(
        number=f"BS{uuid.uuid4().hex[:12]}", patient=patient, requesting_institution=xiba,
        requested_by=township, question="bench", mode=Mode.VIDEO,
        target_kind=TargetKind.EXPERT, status=Status.SCHEDULED,
    )
    ConsultExpert.objects.create(
        consult=consult, user=specialist, institution=county,
        status=ExpertStatus.ACCEPTED, lead=True,
    )
    ConsultEvent.objects.create(
        consult=consult, actor=specialist, kind=ADMITTED_EVENT,
        detail={"user_id": township.pk},
    )
    ids.append(consult.pk)
sessions = {}
for user in (township, specialist):
    client = Client()
    client.force_login(user)
    sessions[user.username] = client.cookies[settings.SESSION_COOKIE_NAME].value
print("BENCH-SETUP " + json.dumps(
    {"consults": ids, "sessions": sessions, "cookie": settings.SESSION_COOKIE_NAME}
))
"""


SEED_SCRIPT = "from demo.services import demo_seed; demo_seed()"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``telemed demo`` in its own session; stopped by its own process id at exit."""

    def __init__(
        self,
        work: Path,
        *,
        conn_max_age: int | None = None,
        production: bool = False,
        gc_freeze: bool = True,
    ) -> None:
        self.work = work
        if production and conn_max_age is None:
            conn_max_age = 600  # served like --conn-max-age, with production settings
        self.conn_max_age = conn_max_age
        self.data_dir = work / "data"
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.log_path = work / "demo.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "TELEMED_S3_ENDPOINT")
        }
        env.update({"TELEMED_DATA_DIR": str(self.data_dir), "TELEMED_DEBUG": "1"})
        if conn_max_age is not None:
            # The same SQLite file, through DATABASE_URL so that connections can be kept.
            env["DATABASE_URL"] = f"sqlite:///{self.data_dir / 'telemed.sqlite3'}"
            env["TELEMED_DB_CONN_MAX_AGE"] = str(conn_max_age)
        if production:
            # What a deployment runs: no debug (no query log, no debug cursor), behind a
            # proxy that terminates TLS (so no redirect to HTTPS on loopback here).
            env["TELEMED_DEBUG"] = "0"
            env["TELEMED_SECRET_KEY"] = secrets.token_urlsafe(50)
            env["TELEMED_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
            env["TELEMED_SSL_REDIRECT"] = "0"
        env["TELEMED_GC_FREEZE"] = "1" if gc_freeze else "0"
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    @staticmethod
    def telemed() -> str:
        candidate = VENV_BIN / "telemed"
        found = str(candidate) if candidate.exists() else shutil.which("telemed")
        if found is None:
            raise SystemExit("the telemed command is missing (pip install -e .)")
        return found

    def _manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.telemed(), "manage", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def start(self) -> None:
        command = [self.telemed(), "demo", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir)]
        if self.conn_max_age is not None:
            # `telemed demo` always uses its embedded database settings: seed, then serve.
            for args in (("migrate", "-v0"), ("shell", "-c", SEED_SCRIPT)):
                done = self._manage(*args)
                if done.returncode != 0:
                    raise SystemExit(f"telemed manage {args[0]} failed:\n{done.stderr}")
            command = [self.telemed(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(
                command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise SystemExit("telemed demo exited:\n" + self.tail())
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(0.3)
        raise SystemExit("telemed demo did not start:\n" + self.tail())

    def setup(self, rooms: int) -> dict[str, Any]:
        done = self._manage("shell", "-c", SETUP_SCRIPT.replace("ROOMS", str(int(rooms))))
        for line in done.stdout.splitlines():
            if line.startswith("BENCH-SETUP "):
                return dict(json.loads(line.removeprefix("BENCH-SETUP ")))
        raise SystemExit(f"setting up the consults failed:\n{done.stdout}\n{done.stderr}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the Daphne process (the demo's own process)."""
        if self.popen is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


# --------------------------------------------------------------------------- clients


@dataclass
class Room:
    consult_id: int
    sockets: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    sent: dict[int, tuple[float, str]] = field(default_factory=dict)  # n -> (when, by whom)
    latencies: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _open(
    session: aiohttp.ClientSession,
    base: str,
    room: Room,
    who: str,
    cookie: str,
) -> None:
    ws = await session.ws_connect(
        f"{base}/ws/consults/{room.consult_id}/",
        headers={"Origin": base.replace("ws://", "http://"), "Cookie": cookie},
        max_msg_size=1 << 20,
        autoping=True,
    )
    welcome = await ws.receive_json(timeout=60)
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"room {room.consult_id} as {who}: {welcome}")
    if not welcome["you"]["admitted"]:
        raise RuntimeError(f"room {room.consult_id}: {who} not admitted")
    room.sockets[who] = ws


async def _read(room: Room, who: str, kind: str) -> None:
    ws = room.sockets[who]
    async for frame in ws:
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
        arrived = time.monotonic()
        message = json.loads(frame.data)
        if message["type"] == "error":
            room.errors.append(message["code"])
            continue
        if kind == "viewer" and message["type"] == "viewer.state":
            n = int(message["state"]["n"])
        elif kind == "chat" and message["type"] == "chat" and message["text"].startswith("n="):
            n = int(message["text"][2:])
        else:
            continue
        sent = room.sent.get(n)
        # The sender's own copy of a chat message is not a delivery to the other side.
        if sent is not None and sent[1] != who and n >= WARMUP:
            room.latencies.append(arrived - sent[0])
            room.arrivals.append(arrived)


async def _talk(room: Room, kind: str, messages: int, interval: float) -> None:
    await asyncio.sleep(random.uniform(0, interval))  # spread the rooms over the interval
    sides = ["township", "specialist"]
    for n in range(messages):
        who = sides[n % 2]
        ws = room.sockets[who]
        if kind == "viewer":
            payload = {
                "type": "viewer.state",
                "state": {
                    "n": n,
                    "imageIndex": n % 300,
                    "voi": {"windowCenter": 40, "windowWidth": 400},
                },
            }
        else:
            payload = {"type": "chat", "text": f"n={n}"}
        frame = json.dumps(payload)
        room.sent[n] = (time.monotonic(), who)
        await ws.send_str(frame)
        await asyncio.sleep(interval)


def _timeline(rooms: list[Room], start: float) -> list[dict[str, float]]:
    """p50 and max latency per second of the measurement, to show stalls."""
    seconds: dict[int, list[float]] = {}
    for room in rooms:
        for at, latency in zip(room.arrivals, room.latencies, strict=True):
            seconds.setdefault(int(at - start), []).append(latency)
    return [
        {
            "second": second,
            "count": len(values),
            "p50_ms": _percentile(values, 50) * 1000,
            "max_ms": max(values) * 1000,
        }
        for second, values in sorted(seconds.items())
    ]


class GcPauses:
    """The durations of this process's garbage collections, by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> dict[str, Any]:
        full = self.pauses[2]
        return {
            "collections": {str(g): len(v) for g, v in self.pauses.items()},
            "full_max_ms": max(full) * 1000 if full else 0.0,
        }


def _percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[index]


async def run_clients(
    *, port: int, setup: dict[str, Any], kind: str, messages: int, interval: float, server: Server
) -> dict[str, Any]:
    base = f"ws://127.0.0.1:{port}"
    cookie_name = setup["cookie"]
    cookies = {who: f"{cookie_name}={key}" for who, key in setup["sessions"].items()}
    rooms = [Room(consult_id=int(i)) for i in setup["consults"]]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        pending = [
            _open(session, base, room, who, cookies[who])
            for room in rooms
            for who in ("specialist", "township")
        ]
        # Open in waves of 50, as clinics would not all press "join" in the same millisecond.
        for wave in range(0, len(pending), 50):
            await asyncio.gather(*pending[wave : wave + 50])
        connect_seconds = time.monotonic() - started
        log(f"  {len(rooms) * 2} sockets open in {connect_seconds:.1f} s")
        # Let the presence chatter of the joins settle before measuring.
        await asyncio.sleep(1.0)
        readers = [
            asyncio.ensure_future(_read(room, who, kind)) for room in rooms for who in room.sockets
        ]
        gc.collect()
        gc.freeze()  # the client's own start-up objects: its pauses stay short too
        pauses = GcPauses()
        gc.callbacks.append(pauses)
        cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
        client_before = time.process_time()
        await asyncio.gather(*(_talk(room, kind, messages, interval) for room in rooms))
        await asyncio.sleep(1.0)  # the last messages arrive
        gc.callbacks.remove(pauses)
        cpu = server.cpu_seconds() - cpu_before
        wall = time.monotonic() - wall_before
        client_cpu = time.process_time() - client_before
        for room in rooms:
            for ws in room.sockets.values():
                await ws.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    latencies = [lat for room in rooms for lat in room.latencies]
    expected = len(rooms) * max(0, messages - WARMUP)
    errors: dict[str, int] = {}
    for room in rooms:
        for code in room.errors:
            errors[code] = errors.get(code, 0) + 1
    return {
        "rooms": len(rooms),
        "sockets": len(rooms) * 2,
        "kind": kind,
        "connect_seconds": connect_seconds,
        "messages_per_second": len(rooms) / interval,
        "measured": len(latencies),
        "lost": expected - len(latencies),
        "errors": errors,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p90_ms": _percentile(latencies, 90) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "server_cpu_cores": cpu / wall if wall else 0.0,
        "client_cpu_cores": client_cpu / wall if wall else 0.0,
        "client_gc": pauses.summary(),
        "timeline": _timeline(rooms, wall_before),
    }


# --------------------------------------------------------------------------- output


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    met = result["p99_ms"] < TARGET_P99_MS and result["lost"] == 0
    client_gc = result.get("client_gc", {"collections": {"2": 0}, "full_max_ms": 0.0})
    return [
        ("Rooms / sockets", f"{result['rooms']} / {result['sockets']}"),
        ("Message", "viewer.state" if result["kind"] == "viewer" else "chat (stored)"),
        ("Offered load", f"{result['messages_per_second']:.0f} messages/s"),
        ("All sockets open in", f"{result['connect_seconds']:.1f} s"),
        ("Messages measured", str(result["measured"])),
        ("Lost", str(result["lost"])),
        ("Errors", ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "none"),
        ("Latency p50", f"{result['p50_ms']:.1f} ms"),
        ("Latency p90", f"{result['p90_ms']:.1f} ms"),
        ("Latency p99", f"{result['p99_ms']:.1f} ms"),
        ("Latency max", f"{result['max_ms']:.1f} ms"),
        ("Server CPU (Daphne)", f"{result['server_cpu_cores']:.2f} cores"),
        ("Client CPU (this process)", f"{result['client_cpu_cores']:.2f} cores"),
        ("Server start-up objects frozen", "yes" if result.get("gc_freeze", True) else "no"),
        (
            "Client full collections (longest)",
            f"{client_gc['collections']['2']} ({client_gc['full_max_ms']:.1f} ms)",
        ),
        (f"Target p99 < {TARGET_P99_MS:.0f} ms", "met" if met else "NOT met"),
    ]


def print_table(result: dict[str, Any], *, markdown: bool) -> None:
    table = rows(result)
    width = max(len(name) for name, _ in table)
    print("\nConsult-room signaling")
    for name, value in table:
        print(f"  {name:<{width}}  {value}")
    if markdown:
        print("\n| Figure | Value |\n|---|---|")
        for name, value in table:
            print(f"| {name} | {value} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20, help="per room (2 are warm-up)")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between a room's messages"
    )
    parser.add_argument("--kind", choices=["viewer", "chat"], default="viewer")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="serve with `telemed serve` and TELEMED_DB_CONN_MAX_AGE=N (same SQLite file) "
        "instead of `telemed demo` (which keeps its connection for 600 s)",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="serve with production settings (TELEMED_DEBUG=0, connections kept 600 s)",
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="serve without freezing the start-up objects (TELEMED_GC_FREEZE=0), to compare",
    )
    ns = parser.parse_args(argv)
    if ns.rooms < 1 or ns.messages <= WARMUP or ns.interval <= 0:
        parser.error("need at least 1 room, more than 2 messages and a positive interval")
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    work = Path(tempfile.mkdtemp(prefix="telemed-bench-signaling-"))
    server = Server(
        work, conn_max_age=ns.conn_max_age, production=ns.production, gc_freeze=not ns.no_gc_freeze
    )
    try:
        log(f"Starting telemed demo in {work} ...")
        server.start()
        server.wait_ready()
        log(f"Creating {ns.rooms} consults ...")
        setup = server.setup(ns.rooms)
        log("Opening sockets and measuring ...")
        result = asyncio.run(
            run_clients(
                port=server.port,
                setup=setup,
                kind=ns.kind,
                messages=ns.messages,
                interval=ns.interval,
                server=server,
            )
        )
    finally:
        server.stop()
        if ns.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["load_average"] = os.getloadavg()
    result["gc_freeze"] = not ns.no_gc_freeze
    print_table(result, markdown=ns.markdown)
    if ns.json is not None:
        ns.json.write_text(json.dumps(result, indent=2))
    return 0 if result["p99_ms"] < TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
