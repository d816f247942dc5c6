"""Imaging benchmark: our DICOMweb and DIMSE side by side with Orthanc, same data, same run.

    python bench/imaging.py [--slices 300] [--quick] [--full] [--markdown]

Starts, on 127.0.0.1 only and in a temporary folder:

* Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) from a generated configuration
  (no compression, no authentication, loopback only, ``TCP_NODELAY=1`` as DCMTK needs);
* our platform: ``telemed demo`` (Daphne on embedded defaults) and ``telemed dicom-scp``
  with the calling AE title ``BENCH`` registered for the Xiba township health centre;
  ``--web-workers N`` then serves the demo's data with ``telemed serve --workers N`` (Redis
  on loopback as the channel layer, ``BENCH_REDIS_URL``), as a deployment on N cores runs;
* ``bench/dimse_floor.py``: pynetdicom configured as our SCP, doing only what any archive
  must (parse, hash, write with fsync), for the C-STORE ceiling on this machine.

Then, for each server on the same generated CT series (``bench/dicom_gen.py``; one fresh
study per ingest path, identical for both servers): STOW-RS ingest with dicomweb-client
(one client, then four at once), C-STORE ingest with DCMTK's ``storescu`` (one
association), QIDO by PatientID, WADO-RS (instance, series metadata, one frame, whole
study), ``/rendered`` JPEG, peak RSS of every server process during each phase, and
pydicom's bundled test files (stored / refused / server errors / crashes, then rendered).
``--full`` also ingests and retrieves a study twice as big, to show memory does not grow
with the study. A path our server does not offer yet is reported as ``not available: ...``.

Prints a table (ours | Orthanc | target met?); ``--markdown`` prints it as Markdown too,
``--json FILE`` writes every figure. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_gen

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEMO_USER = "township"
DEMO_PASSWORD = "telemed-demo"  # noqa: S105  (the documented demo password)
PATIENT_ID = "BENCH-CT-0001"
BATCH = 10
HTTP_TIMEOUT = 120
MIB = 1024 * 1024

ACCEPT_DICOM = 'multipart/related; type="application/dicom"'
ACCEPT_FRAME_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
ACCEPT_FRAME = 'multipart/related; type="application/octet-stream"'


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process in its own session; stopped (by its own id) at exit."""

    live: list[Proc] = []

    def __init__(self, name: str, cmd: Sequence[str], *, env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.env, self.log_path = name, list(cmd), env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed with the process)
        self.popen = subprocess.Popen(
            self.cmd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        Proc.live.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self in Proc.live:
            Proc.live.remove(self)

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    @classmethod
    def stop_all(cls) -> None:
        for proc in list(reversed(cls.live)):
            with contextlib.suppress(Exception):
                proc.stop()


atexit.register(Proc.stop_all)


class Child:
    """A process one of ours started (a ``telemed serve --workers`` child): watched only.

    Stopped with its parent, whose process group it shares."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def alive(self) -> bool:
        return Path(f"/proc/{self.pid}").exists()

    def tail(self, lines: int = 3) -> str:
        return ""


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- memory


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes (empty if the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def _reset_hwm(pid: int) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class MemWatch:
    """Peak RSS of some processes during a phase: VmHWM reset before, plus 20 ms sampling."""

    pids: dict[str, int]
    before: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemWatch:
        for label, pid in self.pids.items():
            _reset_hwm(pid)
            rss = _status(pid).get("VmRSS", 0)
            self.before[label] = rss
            self.peak[label] = rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for label, pid in self.pids.items():
                rss = _status(pid).get("VmRSS", 0)
                self.peak[label] = max(self.peak[label], rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for label, pid in self.pids.items():
            self.peak[label] = max(self.peak[label], _status(pid).get("VmHWM", 0))

    def growth(self, label: str) -> int:
        return max(0, self.peak.get(label, 0) - self.before.get(label, 0))


# --------------------------------------------------------------------------- results


@dataclass
class Figure:
    value: float | None = None
    text: str = ""
    note: str = ""


class Unavailable(Exception):
    """The server does not offer this path (yet)."""


@dataclass
class Server:
    name: str
    root: str  # DICOMweb base URL, no trailing slash
    auth: tuple[str, str] | None
    procs: dict[str, Proc] = field(default_factory=dict)  # label -> process (memory)
    dimse: tuple[int, str] | None = None  # (port, called AE title)
    missing: dict[str, str] = field(default_factory=dict)  # capability -> reason
    peak_rss: dict[str, int] = field(default_factory=dict)
    results: dict[str, Figure] = field(default_factory=dict)
    restart: Callable[[], None] | None = None
    stored: list[DataSet] = field(default_factory=list)  # studies stored whole, in order
    # Instances of a study counted without QIDO (ours: the index, via `telemed manage shell`)
    count_fallback: Callable[[str], int | None] | None = None

    def session(self) -> requests.Session:
        s = requests.Session()
        s.auth = self.auth
        return s

    def client(self) -> DICOMwebClient:
        return DICOMwebClient(self.root, session=self.session())

    def pids(self) -> dict[str, int]:
        return {label: p.pid for label, p in self.procs.items() if p.alive()}

    def record_peaks(self, watch: MemWatch) -> None:
        for label, value in watch.peak.items():
            self.peak_rss[label] = max(self.peak_rss.get(label, 0), value)

    def put(self, key: str, value: float | None, text: str, note: str = "") -> None:
        self.results[key] = Figure(value, text, note)

    def skip(self, key: str, reason: str) -> None:
        self.results[key] = Figure(None, f"not available: {reason}")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def log(message: str) -> None:
    print(message, flush=True)


def _http_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        r = exc.response
        return f"HTTP {r.status_code} on {r.request.method} {_path(r.url)}"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    return f"{type(exc).__name__}: {exc}"[:160]


def _path(url: str | None) -> str:
    """The URL's path with UIDs shown as their resource's placeholder."""
    if not url:
        return ""
    parts = url.split("//", 1)[-1].split("?", 1)[0].split("/")[1:]
    names = {"studies": "{study}", "series": "{series}", "instances": "{instance}"}
    for i in range(1, len(parts)):
        if parts[i - 1] in names and parts[i][:1].isdigit():
            parts[i] = names[parts[i - 1]]
    return "/" + "/".join(parts)


def _check(response: requests.Response) -> requests.Response:
    if response.status_code in (404, 405, 501):
        raise Unavailable(
            f"HTTP {response.status_code} on {response.request.method} {_path(response.url)}"
        )
    response.raise_for_status()
    return response


# --------------------------------------------------------------------------- servers


def start_orthanc(work: Path) -> Server:
    orthanc = shutil.which("Orthanc")
    server = Server("Orthanc", "", None)
    if orthanc is None:
        server.missing["*"] = "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
        return server
    plugin = _dicomweb_plugin()
    http_port, dicom_port = free_port(), free_port()
    folder = work / "orthanc"
    (folder / "db").mkdir(parents=True)
    config = {
        "Name": "bench",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "Plugins": [plugin] if plugin else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False,
        "DicomAet": "ORTHANC",
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": False,
        "StorageCompression": False,
        "HttpCompressionEnabled": False,
        "SaveJobs": False,
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    env = {**os.environ, "TCP_NODELAY": "1"}
    proc = Proc("orthanc", [orthanc, str(folder / "orthanc.json")], env=env, log=folder / "log")
    server.root = f"http://127.0.0.1:{http_port}/dicom-web"
    server.dimse = (dicom_port, "ORTHANC")
    server.procs["Orthanc"] = proc
    if not plugin:
        server.missing["dicomweb"] = "libOrthancDicomWeb.so not found (orthanc-dicomweb)"

    def restart() -> None:
        proc.stop()
        proc.start()
        _wait_http(f"http://127.0.0.1:{http_port}/system", None, 30)

    server.restart = restart
    proc.start()
    if not _wait_http(f"http://127.0.0.1:{http_port}/system", None, 60):
        server.missing["*"] = "Orthanc did not start: " + proc.tail(3)
    return server


def _dicomweb_plugin() -> str | None:
    candidates = [Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listing = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, timeout=20
        ).stdout
        candidates += [Path(line) for line in listing.splitlines() if ".so" in line]
    for path in candidates:
        if path.exists():
            return str(path)
    return None


def _ours_env(data_dir: Path, *, debug: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("TELEMED_S3_ENDPOINT", None)
    env.update({"TELEMED_DATA_DIR": str(data_dir), "TELEMED_DEBUG": "1", "TCP_NODELAY": "1"})
    if not debug:
        # What a deployment runs, as Orthanc runs here: no debug (Django's debug cursor
        # logs every query, and on SQLite quotes its parameters with one more query).
        # Loopback, so no redirect to HTTPS.
        env["TELEMED_DEBUG"] = "0"
        env["TELEMED_SECRET_KEY"] = "bench-" + uuid.uuid4().hex * 2
        env["TELEMED_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
        env["TELEMED_SSL_REDIRECT"] = "0"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _telemed() -> str | None:
    candidate = VENV_BIN / "telemed"
    return str(candidate) if candidate.exists() else shutil.which("telemed")


def start_ours(work: Path, *, debug: bool = False, web_workers: int = 1) -> Server:
    server = Server("ours", "", (DEMO_USER, DEMO_PASSWORD))
    telemed = _telemed()
    if telemed is None:
        server.missing["*"] = "the telemed command is missing (pip install -e .)"
        return server
    folder = work / "ours"
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    env = _ours_env(data_dir, debug=debug)
    port = free_port()
    web = Proc(
        "telemed demo",
        [telemed, "demo", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        log=folder / "demo.log",
    ).start()
    server.root = f"http://127.0.0.1:{port}/dicomweb"
    server.procs["ours web (Daphne)"] = web
    status = _wait_http(f"{server.root}/studies", server.auth, 180)
    if status is None:
        server.missing["*"] = "telemed demo did not answer: " + web.tail(3)
        return server
    if status in (404, 405, 501):
        # Logged only: each DICOMweb path is tried and reports its own "not available".
        log(f"  ours: GET /dicomweb/studies answers HTTP {status}")
    if web_workers > 1 and not _serve_workers(server, telemed, env, folder, port, web_workers):
        return server

    def count(study_uid: str) -> int | None:
        code = (
            "from imaging.models import Instance; "
            f"print(Instance.objects.filter(series__study__study_uid='{study_uid}').count())"
        )
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError, IndexError):
            run = subprocess.run(
                [telemed, "manage", "shell", "-c", code],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            return int(run.stdout.split()[-1])
        return None

    server.count_fallback = count
    help_run = subprocess.run(
        [telemed, "dicom-scp", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    if help_run.returncode != 0:
        server.missing["dimse"] = "telemed dicom-scp is missing"
        return server
    register = (
        "from imaging.models import AETitle; from association.models import Institution; "
        "AETitle.objects.get_or_create(ae_title='BENCH', "
        "defaults={'institution': Institution.objects.get(code='xiba')})"
    )
    reg = subprocess.run(
        [telemed, "manage", "shell", "-c", register],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if reg.returncode != 0:
        server.missing["dimse"] = "could not register AE title BENCH: " + reg.stderr[-200:]
        return server
    dimse_port = free_port()
    scp = Proc(
        "telemed dicom-scp",
        [telemed, "dicom-scp", "--port", str(dimse_port), "--ae-title", "TELEMED"],
        env=env,
        log=folder / "scp.log",
    ).start()
    server.procs["ours SCP"] = scp
    server.dimse = (dimse_port, "TELEMED")
    if not _wait_echo(dimse_port, "TELEMED", 60):
        server.missing["dimse"] = "telemed dicom-scp did not answer C-ECHO: " + scp.tail(3)
    return server


def _serve_workers(
    server: Server, telemed: str, env: dict[str, str], folder: Path, port: int, workers: int
) -> bool:
    """Replace the seeded demo by ``telemed serve --workers N`` on the same data and port,
    as a deployment runs it (a Redis channel layer: ``REDIS_URL``, loopback by default)."""
    server.procs.pop("ours web (Daphne)").stop()
    env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    cmd = [telemed, "serve", "--host", "127.0.0.1", "--port", str(port)]
    parent = Proc(
        "telemed serve", [*cmd, "--workers", str(workers)], env=env, log=folder / "serve.log"
    )
    server.procs["ours web parent"] = parent.start()
    deadline = time.monotonic() + 180
    while (
        len(_children(parent.pid)) < workers
        or _wait_http(f"{server.root}/studies", server.auth, 1) is None
    ):
        if not parent.alive() or time.monotonic() > deadline:
            server.missing["*"] = (
                f"telemed serve --workers {workers} did not answer: " + parent.tail(3)
            )
            return False
    for number, pid in enumerate(sorted(_children(parent.pid)), 1):
        server.procs[f"ours web {number}"] = Child(pid)  # type: ignore[assignment]
    log(f"  ours: telemed serve --workers {workers} (Redis channel layer) on the demo's data")
    return True


def _wait_http(url: str, auth: tuple[str, str] | None, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return requests.get(url, auth=auth, timeout=10).status_code
        except requests.RequestException:
            time.sleep(0.5)
    return None


def _wait_echo(port: int, aec: str, seconds: float) -> bool:
    echoscu = shutil.which("echoscu")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if echoscu:
            ok = (
                subprocess.run(
                    [echoscu, "-aet", "BENCH", "-aec", aec, "127.0.0.1", str(port)],
                    capture_output=True,
                    timeout=30,
                ).returncode
                == 0
            )
        else:
            with socket.socket() as s:
                ok = s.connect_ex(("127.0.0.1", port)) == 0
        if ok:
            return True
        time.sleep(0.5)
    return False


# --------------------------------------------------------------------------- data


@dataclass
class DataSet:
    key: str
    ids: dicom_gen.SeriesIds
    paths: list[Path]

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    @property
    def count(self) -> int:
        return len(self.paths)


def generate(work: Path, key: str, slices: int) -> DataSet:
    ids = dicom_gen.series_ids(f"{key}-{uuid.uuid4()}", PATIENT_ID)
    paths = dicom_gen.write_ct_series(work / "data" / key, slices, ids)
    return DataSet(key, ids, paths)


# --------------------------------------------------------------------------- measurements


def usable(server: Server, capability: str) -> str | None:
    """Why ``server`` cannot do ``capability`` now, or None."""
    reason = server.missing.get("*") or server.missing.get(capability)
    if reason:
        return reason
    if not all(p.alive() for p in server.procs.values()):
        dead = [label for label, p in server.procs.items() if not p.alive()]
        return f"process exited: {', '.join(dead)}"
    return None


def stored_count(server: Server, ds: DataSet) -> int | None:
    """Instances of the study the server reports after ingest (QIDO), or None."""
    try:
        r = server.session().get(
            f"{server.root}/studies",
            params={"StudyInstanceUID": ds.ids.study_uid, "includefield": "00201208"},
            headers={"Accept": "application/dicom+json"},
            timeout=HTTP_TIMEOUT,
        )
        if r.status_code == 200:
            return int(r.json()[0]["00201208"]["Value"][0])
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        pass
    if server.count_fallback is not None:
        return server.count_fallback(ds.ids.study_uid)
    return None


def _ingest_result(server: Server, key: str, ds: DataSet, seconds: float, watch: MemWatch) -> None:
    server.record_peaks(watch)
    stored = stored_count(server, ds)
    if stored == ds.count:
        server.stored.append(ds)
    note = f"{stored}/{ds.count} stored" if stored is not None else "stored count unknown"
    if stored is not None and stored < ds.count:
        note += " (INCOMPLETE)"
    rate = ds.count / seconds
    mbs = ds.nbytes / MIB / seconds
    server.put(f"{key}.ips", rate, f"{rate:.0f}", note)
    server.put(f"{key}.mbs", mbs, f"{mbs:.1f}")
    for label in watch.pids:
        server.put(f"{key}.mem.{label}", watch.growth(label) / MIB, _mb(watch.growth(label)))
    log(f"  {server.name}: {rate:.0f} instances/s, {mbs:.1f} MB/s, {note}, {seconds:.1f} s")


def _mb(nbytes: float) -> str:
    return f"{nbytes / MIB:.0f} MB"


def stow(server: Server, key: str, ds: DataSet, clients: int) -> None:
    reason = usable(server, "dicomweb")
    if reason:
        server.skip(f"{key}.ips", reason)
        return
    datasets = [pydicom.dcmread(p) for p in ds.paths]
    chunks = [datasets[i : i + BATCH] for i in range(0, len(datasets), BATCH)]
    lanes = [chunks[i::clients] for i in range(clients)]
    failed: list[str] = []

    def send(lane: list[list[pydicom.Dataset]]) -> None:
        client = server.client()
        for batch in lane:
            result = client.store_instances(datasets=batch)
            failed.extend(str(x) for x in getattr(result, "FailedSOPSequence", []))

    try:
        with MemWatch(server.pids()) as watch:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                for future in [pool.submit(send, lane) for lane in lanes]:
                    future.result()
            seconds = time.perf_counter() - t0
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status in (404, 405, 501):
            server.skip(f"{key}.ips", _http_reason(exc))
        else:
            server.put(f"{key}.ips", None, "failed: " + _http_reason(exc))
        return
    except requests.RequestException as exc:
        server.put(f"{key}.ips", None, "failed: " + _http_reason(exc))
        return
    _ingest_result(server, key, ds, seconds, watch)
    if failed:
        server.results[f"{key}.ips"].note += f", {len(failed)} failed"


def cstore(server: Server, key: str, ds: DataSet) -> None:
    reason = usable(server, "dimse")
    storescu = shutil.which("storescu")
    if reason or server.dimse is None:
        server.skip(f"{key}.ips", reason or "no DICOM port")
        return
    if storescu is None:
        server.skip(f"{key}.ips", "storescu is missing (apt-get install dcmtk)")
        return
    port, aec = server.dimse
    cmd = [storescu, "-aet", "BENCH", "-aec", aec, "127.0.0.1", str(port), *map(str, ds.paths)]
    env = {**os.environ, "TCP_NODELAY": "1"}
    with MemWatch(server.pids()) as watch:
        t0 = time.perf_counter()
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t0
    if run.returncode != 0 and "Association" in run.stderr:
        server.put(f"{key}.ips", None, "failed: " + run.stderr.strip().splitlines()[-1][:120])
        return
    _ingest_result(server, key, ds, seconds, watch)
    if run.returncode != 0:
        server.results[f"{key}.ips"].note += f", storescu exit {run.returncode}"


def cstore_floor(ours: Server, ds: DataSet, work: Path) -> None:
    """The same series into ``bench/dimse_floor.py``: pynetdicom parsing, hashing and
    writing (one fsync) each image and nothing else, the ceiling of any ingest on it."""
    key = "cstore_floor.ips"
    storescu = shutil.which("storescu")
    if storescu is None:
        ours.skip(key, "storescu is missing (apt-get install dcmtk)")
        return
    port, folder = free_port(), work / "floor"
    script = Path(__file__).with_name("dimse_floor.py")
    cmd = [sys.executable, str(script), "--port", str(port), "--out", str(folder / "out")]
    folder.mkdir(parents=True, exist_ok=True)
    proc = Proc("floor", cmd, env=dict(os.environ), log=folder / "log").start()
    try:
        if not _wait_echo(port, "FLOOR", 60):
            ours.skip(key, "the floor SCP did not answer")
            return
        cmd = [storescu, "-aet", "BENCH", "-aec", "FLOOR", "127.0.0.1", str(port)]
        env = {**os.environ, "TCP_NODELAY": "1"}
        t0 = time.perf_counter()
        run = subprocess.run(cmd + [str(p) for p in ds.paths], env=env, capture_output=True)
        seconds = time.perf_counter() - t0
    finally:
        proc.stop()
    written = len(list((folder / "out").iterdir()))
    rate = ds.count / seconds
    note = f"{written}/{ds.count} written" + (
        f", storescu exit {run.returncode}" if run.returncode else ""
    )
    ours.put(key, rate, f"{rate:.0f}", note)
    log(f"  pynetdicom floor: {rate:.0f} instances/s, {note}, {seconds:.1f} s")


def association(server: Server, key: str, reps: int) -> None:
    """One whole association per C-ECHO (``echoscu``): what a modality sending one image per
    association pays each time (set-up, negotiation, release); p50 over ``reps`` runs."""
    reason = usable(server, "dimse")
    echoscu = shutil.which("echoscu")
    if reason or server.dimse is None or echoscu is None:
        server.skip(f"{key}.p50", reason or ("no DICOM port" if echoscu else "echoscu missing"))
        return
    port, aec = server.dimse
    cmd = [echoscu, "-aet", "BENCH", "-aec", aec, "127.0.0.1", str(port)]
    env = {**os.environ, "TCP_NODELAY": "1"}
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        if run.returncode != 0:
            server.put(f"{key}.p50", None, "failed: " + (run.stderr.strip()[-120:] or "exit"))
            return
    p50 = percentile(times, 50)
    server.put(f"{key}.p50", p50, f"{p50:.1f}")
    log(f"  {server.name}: {key} p50 {p50:.1f} ms (n={reps}, echoscu included)")


def _timed_gets(
    server: Server,
    urls: Sequence[str],
    headers: dict[str, str],
    check: Callable[[requests.Response], None] | None = None,
) -> list[float]:
    session = server.session()
    times = []
    for url in urls:
        t0 = time.perf_counter()
        r = _check(session.get(url, headers=headers, timeout=HTTP_TIMEOUT))
        _ = r.content
        times.append((time.perf_counter() - t0) * 1000)
        if check is not None:
            check(r)
    return times


def _latency(
    server: Server,
    key: str,
    urls: Sequence[str],
    headers: dict[str, str],
    check: Callable[[requests.Response], None] | None = None,
    warmup: int = 2,
) -> None:
    reason = usable(server, "dicomweb")
    if reason:
        server.skip(f"{key}.p50", reason)
        return
    try:
        _timed_gets(server, urls[:warmup], headers, check)  # not counted
        times = _timed_gets(server, urls[warmup:], headers, check)
    except Unavailable as exc:
        server.skip(f"{key}.p50", str(exc))
        return
    except (requests.RequestException, AssertionError, ValueError) as exc:
        server.put(f"{key}.p50", None, "failed: " + _http_reason(exc))
        return
    p50, p95 = percentile(times, 50), percentile(times, 95)
    server.put(f"{key}.p50", p50, f"{p50:.1f}")
    server.put(f"{key}.p95", p95, f"{p95:.1f}")
    log(f"  {server.name}: {key} p50 {p50:.1f} ms, p95 {p95:.1f} ms (n={len(times)})")


def _instance_url(server: Server, ds: DataSet, index: int) -> str:
    ids = ds.ids
    return (
        f"{server.root}/studies/{ids.study_uid}/series/{ids.series_uid}"
        f"/instances/{ids.sop_uid(index)}"
    )


READ_KEYS = (
    "floor.p50",
    "qido.p50",
    "wado.p50",
    "wado_identity.p50",
    "metadata.p50",
    "frame.p50",
    "rendered.p50",
    "study.mbs",
)


def reads(server: Server, ds: DataSet, reps: int) -> None:
    ids = ds.ids
    n = ds.count

    def qido_check(r: requests.Response) -> None:
        studies = r.json()
        assert any(s.get("0020000D", {}).get("Value") == [ids.study_uid] for s in studies)

    # The floor of one authenticated request: our service root; Orthanc's /system.
    floor = (
        server.root + "/" if server.name == "ours" else server.root.rsplit("/", 1)[0] + "/system"
    )
    _latency(server, "floor", [floor] * (reps + 2), {"Accept": "application/json"})
    qido = f"{server.root}/studies?PatientID={PATIENT_ID}"
    _latency(server, "qido", [qido] * (reps + 2), {"Accept": "application/dicom+json"}, qido_check)

    picks = [(i * 7) % n for i in range(reps + 2)]  # a different instance each time

    def dicom_check(r: requests.Response) -> None:
        assert r.headers.get("Content-Type", "").startswith("multipart/related"), r.headers
        assert len(r.content) > 512 * 512 * 2, len(r.content)

    wado = [_instance_url(server, ds, i) for i in picks]
    _latency(server, "wado", wado, {"Accept": ACCEPT_DICOM}, dicom_check)
    _latency(
        server,
        "wado_identity",
        wado,
        {"Accept": ACCEPT_DICOM, "Accept-Encoding": "identity"},
        dicom_check,
    )

    def metadata_check(r: requests.Response) -> None:
        assert len(r.json()) == n, f"{len(r.json())} instances in metadata"

    meta = f"{server.root}/studies/{ids.study_uid}/series/{ids.series_uid}/metadata"
    meta_reps = max(3, reps // 5)
    _latency(
        server,
        "metadata",
        [meta] * (meta_reps + 2),
        {"Accept": "application/dicom+json"},
        metadata_check,
    )

    def frame_check(r: requests.Response) -> None:
        assert r.headers.get("Content-Type", "").startswith("multipart/related"), r.headers
        assert len(r.content) >= 512 * 512 * 2, len(r.content)

    frames = [_instance_url(server, ds, i) + "/frames/1" for i in picks]
    _latency(server, "frame", frames, {"Accept": ACCEPT_FRAME_ANY}, frame_check)
    if server.results["frame.p50"].value is None and usable(server, "dicomweb") is None:
        _latency(server, "frame", frames, {"Accept": ACCEPT_FRAME}, frame_check)
        if server.results["frame.p50"].value is not None:
            server.results["frame.p50"].note = "transfer-syntax=* refused; plain octet-stream"

    def jpeg_check(r: requests.Response) -> None:
        assert r.content[:2] == b"\xff\xd8", r.headers.get("Content-Type")

    rendered = [_instance_url(server, ds, i) + "/rendered" for i in picks]
    _latency(server, "rendered", rendered, {"Accept": "image/jpeg"}, jpeg_check)


def retrieve_study(server: Server, key: str, ds: DataSet, reps: int) -> None:
    """WADO-RS of the whole study, streamed and discarded by the client; server memory."""
    reason = usable(server, "dicomweb")
    if reason:
        server.skip(f"{key}.mbs", reason)
        return
    url = f"{server.root}/studies/{ds.ids.study_uid}"
    session = server.session()
    times, sizes = [], []
    try:
        with MemWatch(server.pids()) as watch:
            for _ in range(reps):
                t0 = time.perf_counter()
                with session.get(
                    url, headers={"Accept": ACCEPT_DICOM}, stream=True, timeout=HTTP_TIMEOUT
                ) as r:
                    _check(r)
                    size = 0
                    for chunk in r.iter_content(MIB):
                        size += len(chunk)
                times.append(time.perf_counter() - t0)
                sizes.append(size)
    except Unavailable as exc:
        server.skip(f"{key}.mbs", str(exc))
        return
    except requests.RequestException as exc:
        server.put(f"{key}.mbs", None, "failed: " + _http_reason(exc))
        return
    server.record_peaks(watch)
    best = min(times)
    mbs = sizes[0] / MIB / best
    note = f"{sizes[0] / 1e6:.1f} MB body" + (
        "" if sizes[0] >= ds.nbytes else " (SHORTER THAN THE STUDY)"
    )
    server.put(f"{key}.mbs", mbs, f"{mbs:.0f}", note)
    server.put(f"{key}.s", best, f"{best:.2f}")
    for label in watch.pids:
        server.put(f"{key}.mem.{label}", watch.growth(label) / MIB, _mb(watch.growth(label)))
    log(f"  {server.name}: whole study {best:.2f} s, {mbs:.0f} MB/s, {note}")


# --------------------------------------------------------------------------- hostile files


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _alive(server: Server) -> bool:
    return all(p.alive() for p in server.procs.values()) and (
        _wait_http(f"{server.root}/studies?limit=1", server.auth, 5) is not None
    )


def test_files(server: Server, files: Sequence[Path]) -> None:
    reason = usable(server, "dicomweb")
    if reason:
        server.skip("files.stow", reason)
        return
    session = server.session()
    counts = {"stored": 0, "refused": 0, "server error": 0, "crash": 0}
    rendered = {"ok": 0, "refused": 0, "server error": 0, "crash": 0}
    crashed: list[str] = []
    accepted: list[Path] = []
    names: dict[str, list[str]] = {}
    for path in files:
        body, ctype = _multipart(path.read_bytes())
        try:
            r = session.post(
                f"{server.root}/studies",
                data=body,
                headers={"Content-Type": ctype, "Accept": "application/dicom+json"},
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException:
            r = None
        if r is not None and r.status_code in (404, 405, 501) and not accepted and not crashed:
            server.skip("files.stow", f"HTTP {r.status_code} on POST /studies")
            return
        if r is None or not _alive(server):
            counts["crash"] += 1
            crashed.append(path.name)
            if not _recover(server):
                break
        elif r.status_code < 300 and not _any_failed(r):
            counts["stored"] += 1
            accepted.append(path)
        elif r.status_code >= 500:
            counts["server error"] += 1
            names.setdefault("stow 5xx", []).append(path.name)
        else:
            counts["refused"] += 1
            names.setdefault("stow refused", []).append(path.name)
    for path in accepted:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            url = (
                f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}/rendered"
            )
        except (AttributeError, pydicom.errors.InvalidDicomError, OSError):
            continue
        try:
            r = session.get(url, headers={"Accept": "image/jpeg"}, timeout=HTTP_TIMEOUT)
        except requests.RequestException:
            r = None
        if r is None or not _alive(server):
            rendered["crash"] += 1
            crashed.append(path.name + " (rendered)")
            if not _recover(server):
                break
        elif r.status_code == 200 and r.content[:2] in (b"\xff\xd8", b"\x89P", b"GI"):
            rendered["ok"] += 1
        elif r.status_code >= 500:
            rendered["server error"] += 1
            names.setdefault("rendered 5xx", []).append(path.name)
        else:
            rendered["refused"] += 1
            names.setdefault("rendered refused", []).append(path.name)
    text = ", ".join(f"{v} {k}" for k, v in counts.items() if v or k == "stored")
    server.put("files.stow", counts["stored"], text, f"of {len(files)} files")
    text = ", ".join(f"{v} {k}" for k, v in rendered.items() if v or k == "ok")
    server.put("files.rendered", rendered["ok"], text, f"of {len(accepted)} stored")
    for kind, which in names.items():
        server.put(f"files.{kind.replace(' ', '_')}", len(which), ", ".join(which))
        log(f"  {server.name}: {kind}: {', '.join(which)}")
    if crashed:
        server.put("files.crashes", len(crashed), ", ".join(crashed)[:300])
    log(f"  {server.name}: test files: {server.results['files.stow'].text}; rendered: {text}")


def _any_failed(r: requests.Response) -> bool:
    try:
        return bool(r.json().get("00081198", {}).get("Value"))
    except (ValueError, AttributeError):
        return False


def _recover(server: Server) -> bool:
    if server.restart is None:
        return False
    log(f"  {server.name} went down; restarting it to go on")
    with contextlib.suppress(Exception):
        server.restart()
    return _alive(server)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Row:
    label: str
    key: str
    better: str | None = None  # "higher" / "lower": a target comparing ours with Orthanc
    unit: str = ""


def table_rows(slices: int, full: bool) -> list[Row]:
    rows = [
        Row("STOW-RS ingest, 1 client (instances/s)", "stow1.ips", "higher"),
        Row("STOW-RS ingest, 1 client (MB/s)", "stow1.mbs", "higher"),
        Row("STOW-RS ingest, 4 clients (instances/s)", "stow4.ips", "higher"),
        Row("STOW-RS ingest, 4 clients (MB/s)", "stow4.mbs", "higher"),
        Row("C-STORE storescu, 1 association (instances/s)", "cstore.ips", "higher"),
        Row("C-STORE storescu, 1 association (MB/s)", "cstore.mbs", "higher"),
        Row(
            "C-STORE floor: pynetdicom parse + SHA-256 + write/fsync, nothing else (instances/s)",
            "cstore_floor.ips",
        ),
        Row("C-ECHO, one association each, p50 (ms; echoscu included)", "assoc.p50"),
        Row("one small request p50 (ms): ours GET /dicomweb/, Orthanc GET /system", "floor.p50"),
        Row("QIDO /studies?PatientID p50 (ms)", "qido.p50", "lower"),
        Row("QIDO /studies?PatientID p95 (ms)", "qido.p95"),
        Row("WADO-RS one instance p50 (ms)", "wado.p50"),
        Row("WADO-RS one instance, no gzip p50 (ms)", "wado_identity.p50"),
        Row(f"WADO-RS series metadata, {slices} instances p50 (ms)", "metadata.p50"),
        Row("WADO-RS one frame p50 (ms)", "frame.p50"),
        Row("/rendered JPEG p50 (ms)", "rendered.p50", "lower"),
        Row("/rendered JPEG p95 (ms)", "rendered.p95"),
        Row("WADO-RS whole study (MB/s)", "study.mbs"),
    ]
    if full:
        rows.append(Row(f"WADO-RS whole study, {2 * slices} slices (MB/s)", "study2.mbs"))
    return rows


# Growth below this is noise (allocator, caches, first use of a code path), not the study.
MEMORY_FLOOR_MB = 32
MEMORY_PHASES = (
    ("STOW-RS 1 client", "stow1"),
    ("STOW-RS 4 clients", "stow4"),
    ("C-STORE", "cstore"),
    ("whole-study retrieve", "study"),
)
FULL_PHASES = (
    ("STOW-RS 1 client, 2× study", "stow2x"),
    ("whole-study retrieve, 2× study", "study2"),
)


def _short(label: str) -> str:
    short = {"ours web (Daphne)": "web", "ours SCP": "SCP", "ours web parent": "parent"}
    return short.get(label, label.removeprefix("ours "))


def _mem_cell(server: Server, key: str) -> tuple[str, float | None]:
    parts, worst = [], None
    for label in server.procs:
        fig = server.results.get(f"{key}.mem.{label}")
        if fig is not None and fig.value is not None:
            parts.append(f"{_short(label)} {fig.text}" if len(server.procs) > 1 else fig.text)
            worst = fig.value if worst is None else max(worst, fig.value)
    return (", ".join(parts) or "—"), worst


def memory_lines(
    ours: Server, peer: Server, slices: int, study_bytes: int, full: bool
) -> list[tuple[str, str, str, str]]:
    """Rows: peak RSS growth per phase (target: never the whole study in memory), peaks,
    and with ``--full`` the growth for a study twice as big (target: flat)."""
    study_mb = study_bytes / MIB
    lines = []
    phases = MEMORY_PHASES + (FULL_PHASES if full else ())
    for title, key in phases:
        mine, worst = _mem_cell(ours, key)
        theirs, _ = _mem_cell(peer, key)
        if worst is None:
            target = ""
        else:
            size = 2 * study_mb if key in ("stow2x", "study2") else study_mb
            limit = max(size / 2, MEMORY_FLOOR_MB)
            met = worst < limit
            target = f"{'yes' if met else 'NO'} (< {limit:.0f} MB)"
        lines.append((f"peak RSS growth during {title}", mine, theirs, target))
    if full:
        for small, big in (("stow1", "stow2x"), ("study", "study2")):
            _, a = _mem_cell(ours, small)
            _, b = _mem_cell(ours, big)
            if a is None or b is None:
                continue
            flat = b <= a + 0.1 * study_mb
            lines.append(
                (
                    f"growth {slices} → {2 * slices} slices ({small})",
                    f"{a:.0f} → {b:.0f} MB",
                    "",
                    f"{'yes' if flat else 'NO'} (flat: ≤ +{0.1 * study_mb:.0f} MB)",
                )
            )
    peaks = []
    for server in (ours, peer):
        cells = [
            (f"{_short(label)} " if len(server.procs) > 1 else "") + _mb(value)
            for label, value in server.peak_rss.items()
        ]
        peaks.append(", ".join(cells) or "—")
    lines.append(("peak RSS over the run (VmHWM)", peaks[0], peaks[1], ""))
    return lines


def verdict(row: Row, ours: Figure | None, peer: Figure | None) -> str:
    if row.better is None:
        return ""
    if ours is None or ours.value is None:
        return "n/a (ours missing)"
    if peer is None or peer.value is None:
        return "n/a (Orthanc missing)"
    ratio = ours.value / peer.value if peer.value else float("inf")
    met = ours.value >= peer.value if row.better == "higher" else ours.value <= peer.value
    return f"{'yes' if met else 'NO'} (×{ratio:.2f})"


def render_table(
    rows: Sequence[Row], ours: Server, peer: Server
) -> list[tuple[str, str, str, str]]:
    lines = []
    for row in rows:
        a, b = ours.results.get(row.key), peer.results.get(row.key)
        lines.append(
            (row.label, _cell(a, row.key, ours), _cell(b, row.key, peer), verdict(row, a, b))
        )
    return lines


def _cell(fig: Figure | None, key: str, server: Server) -> str:
    if fig is None:
        # a derived figure (MB/s, p95) is missing when its primary one was skipped
        primary = key.rsplit(".", 1)[0]
        for suffix in (".ips", ".p50", ".mbs"):
            p = server.results.get(primary + suffix)
            if p is not None and p.value is None:
                return "—"
        return "—"
    return fig.text + (f" ({fig.note})" if fig.note else "")


def print_table(lines: Sequence[tuple[str, str, str, str]], markdown: bool) -> None:
    head = ("What", "ours", "Orthanc", "target met?")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|---|---|---|---|")
        for line in lines:
            print("| " + " | ".join(x.replace("|", "/") for x in line) + " |")
        return
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(4)]
    widths = [min(w, 60) for w in widths]
    for line in [head, *lines]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())


# --------------------------------------------------------------------------- main


def versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "cpus": str(os.cpu_count()),
        "kernel": platform.release(),
    }
    with contextlib.suppress(Exception):
        import dicomweb_client

        out["dicomweb-client"] = dicomweb_client.__version__
    for pkg in ("orthanc", "orthanc-dicomweb", "dcmtk"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            run = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                capture_output=True,
                text=True,
                timeout=20,
            )
            if run.returncode == 0:
                out[pkg] = run.stdout
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        run = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        out["commit"] = run.stdout.strip()
    return out


def phase(title: str) -> None:
    log(f"\n== {title}  [load average {os.getloadavg()[0]:.1f}]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="slices in the CT series")
    parser.add_argument("--quick", action="store_true", help="30 slices, fewer repetitions")
    parser.add_argument("--full", action="store_true", help="also a 2× study (memory flatness)")
    parser.add_argument("--reps", type=int, default=None, help="requests per latency figure")
    parser.add_argument("--servers", default="ours,orthanc", help="ours,orthanc (default both)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--debug", action="store_true", help="serve ours with TELEMED_DEBUG=1 (the demo's default)"
    )
    parser.add_argument(
        "--web-workers",
        type=int,
        default=1,
        help="serve ours with telemed serve --workers N (Redis on loopback, BENCH_REDIS_URL)"
        " instead of the demo's one process",
    )
    ns = parser.parse_args(argv)
    slices = 30 if ns.quick else ns.slices
    reps = ns.reps or (15 if ns.quick else 50)
    wanted = {s.strip().lower() for s in ns.servers.split(",")}
    signal.signal(signal.SIGTERM, _on_signal)

    work = Path(tempfile.mkdtemp(prefix="telemed-bench-imaging-"))
    started = time.perf_counter()
    try:
        return _run(work, slices=slices, reps=reps, full=ns.full, wanted=wanted, ns=ns)
    finally:
        Proc.stop_all()
        if ns.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        log(f"total {time.perf_counter() - started:.0f} s")


def _run(
    work: Path, *, slices: int, reps: int, full: bool, wanted: set[str], ns: argparse.Namespace
) -> int:
    phase(f"generating {slices}-slice CT series (one study per ingest path) in {work}")
    t0 = time.perf_counter()
    sets = {key: generate(work, key, slices) for key in ("stow1", "stow4", "cstore")}
    sets["warm"] = generate(work, "warm", 5)
    if full:
        sets["stow2x"] = generate(work, "stow2x", 2 * slices)
    files = dicom_gen.pydicom_test_files()
    study_bytes = sets["stow1"].nbytes
    log(
        f"  {slices} slices = {study_bytes / 1e6:.1f} MB per study, "
        f"{len(files)} pydicom test files ({time.perf_counter() - t0:.0f} s)"
    )

    phase("starting servers")
    peer = start_orthanc(work) if "orthanc" in wanted else Server("Orthanc", "", None)
    if "orthanc" not in wanted:
        peer.missing["*"] = "not requested (--servers)"
    ours = (
        start_ours(work, debug=ns.debug, web_workers=ns.web_workers)
        if "ours" in wanted
        else Server("ours", "", None)
    )
    if "ours" not in wanted:
        ours.missing["*"] = "not requested (--servers)"
    servers = [ours, peer]
    for s in servers:
        for cap, reason in s.missing.items():
            log(f"  {s.name}: {'everything' if cap == '*' else cap} not available: {reason}")
        for label, p in s.procs.items():
            rss = _status(p.pid).get("VmRSS", 0) if p.alive() else 0
            log(f"  {s.name}: {label} pid {p.pid}, RSS after start {_mb(rss)}")
            children = _children(p.pid)
            if children:
                log(f"  WARNING: {label} has child processes {children}; memory is the parent's")

    phase("warm-up (5 slices by each path, not measured)")
    for s in servers:
        with contextlib.suppress(Exception):
            if usable(s, "dicomweb") is None:
                s.client().store_instances(
                    datasets=[pydicom.dcmread(p) for p in sets["warm"].paths]
                )
        with contextlib.suppress(Exception):
            if usable(s, "dimse") is None and s.dimse and shutil.which("storescu"):
                port, aec = s.dimse
                subprocess.run(
                    ["storescu", "-aet", "BENCH", "-aec", aec, "127.0.0.1", str(port)]
                    + [str(p) for p in sets["warm"].paths],
                    env={**os.environ, "TCP_NODELAY": "1"},
                    capture_output=True,
                    timeout=300,
                )

    phase(f"STOW-RS, one client, batches of {BATCH}")
    for s in servers:
        stow(s, "stow1", sets["stow1"], 1)
    phase(f"STOW-RS, four clients at once, batches of {BATCH}")
    for s in servers:
        stow(s, "stow4", sets["stow4"], 4)
    phase("C-STORE with storescu (TCP_NODELAY=1), one association")
    for s in servers:
        cstore(s, "cstore", sets["cstore"])

    if "ours" in wanted:
        phase("C-STORE floor: pynetdicom parsing, hashing and writing only (bench/dimse_floor.py)")
        cstore_floor(ours, sets["cstore"], work)

    phase("DICOM association set-up: one echoscu per association")
    for s in servers:
        association(s, "assoc", max(5, reps // 2))

    phase(f"reads on a stored study ({reps} requests each; metadata {max(3, reps // 5)})")
    read_sets: dict[str, DataSet | None] = {}
    for s in servers:
        read_sets[s.name] = next(iter(s.stored), None)
        chosen = read_sets[s.name]
        if chosen is None:
            for key in READ_KEYS:
                s.skip(key, "no study stored whole by any ingest path")
        else:
            log(f"  {s.name}: reading the {chosen.key} study")
            reads(s, chosen, reps)
    phase("WADO-RS whole study, streamed by the client")
    for s in servers:
        chosen = read_sets[s.name]
        if chosen is not None:
            retrieve_study(s, "study", chosen, 1 if ns.quick else 2)

    if full:
        phase(f"memory with a 2× study ({2 * slices} slices): STOW-RS then whole-study retrieve")
        for s in servers:
            stow(s, "stow2x", sets["stow2x"], 1)
            retrieve_study(s, "study2", sets["stow2x"], 1)

    phase(f"pydicom's {len(files)} bundled test files: STOW-RS one by one, then /rendered")
    for s in servers:
        test_files(s, files)

    phase("results")
    info = versions()
    log("  " + ", ".join(f"{k} {v}" for k, v in info.items()))
    log(f"  data: {slices}-slice 512×512 16-bit CT, {study_bytes / 1e6:.1f} MB per study")
    rows = table_rows(slices, full)
    rows += [
        Row("pydicom test files via STOW-RS", "files.stow"),
        Row("pydicom test files /rendered", "files.rendered"),
        Row("crashes (server went down)", "files.crashes"),
    ]
    lines = render_table(rows, ours, peer)
    lines += memory_lines(ours, peer, slices, study_bytes, full)
    log("")
    print_table(lines, markdown=False)
    for s in servers:
        for cap, reason in s.missing.items():
            log(f"{s.name}: {'everything' if cap == '*' else cap} not available: {reason}")
    if ns.markdown:
        log("")
        print_table(lines, markdown=True)
    if ns.json:
        ns.json.write_text(
            json.dumps(
                {
                    "versions": info,
                    "slices": slices,
                    "study_bytes": study_bytes,
                    "servers": {
                        s.name: {
                            "missing": s.missing,
                            "peak_rss": s.peak_rss,
                            "results": {k: vars(v) for k, v in s.results.items()},
                        }
                        for s in servers
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
