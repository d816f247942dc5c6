"""Ingest CPU per instance, in process: where C-STORE and STOW-RS spend their own time.

    python bench/ingest_cpu.py [--slices 300] [--debug] [--repeat 3] [--profile FILE]

Migrates a fresh SQLite database in a temporary folder (the embedded defaults: local
object store beside it), seeds the demo association, generates a CT series with
``bench/dicom_gen.py`` and passes every slice through ``imaging.ingest.instance_ingest``
for the Xiba township health centre, as the SCP does for each C-STORE: validation, the
object store (SHA-256, one ``fsync``), the index and the audit event. No HTTP, no DIMSE:
what is left is the ingest itself. Prints wall and CPU milliseconds per instance for
each repetition (a fresh series each time). ``--debug`` runs with ``TELEMED_DEBUG=1``
(Django's debug cursor logs every query); ``--profile FILE`` writes a cProfile of the
last repetition. Not part of the test suite; docs/benchmarks.md has figures.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup(data_dir: Path, *, debug: bool) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TELEMED_DATA_DIR"] = str(data_dir)
    os.environ["TELEMED_DEBUG"] = "1" if debug else "0"
    os.environ.setdefault("TELEMED_SECRET_KEY", "bench-ingest-" + "x" * 50)
    os.environ.setdefault("TELEMED_ALLOWED_HOSTS", "127.0.0.1")
    for name in ("DATABASE_URL", "REDIS_URL", "TELEMED_S3_ENDPOINT"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
    import django

    django.setup()
    from django.core.management import call_command

    from demo.services import demo_seed

    call_command("migrate", interactive=False, verbosity=0)
    demo_seed(password="bench-ingest")  # noqa: S106  (a throw-away database)


def _series(folder: Path, slices: int, key: str) -> list[Path]:
    generator = str(ROOT / "bench" / "dicom_gen.py")
    subprocess.run(
        [sys.executable, generator, str(folder), "--slices", str(slices), "--key", key],
        check=True,
        capture_output=True,
    )
    return sorted(folder.glob("*.dcm"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--debug", action="store_true", help="TELEMED_DEBUG=1")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output file")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="telemed-bench-ingest-") as work:
        _setup(Path(work) / "data", debug=ns.debug)
        from association.models import Institution
        from imaging.ingest import IngestStatus, Origin, instance_ingest

        origin = Origin(
            institution=Institution.objects.get(code="xiba"), channel="dimse", calling_ae="BENCH"
        )
        print(f"TELEMED_DEBUG={int(ns.debug)}, {ns.slices} slices per run")
        for run in range(ns.repeat):
            paths = _series(Path(work) / f"series{run}", ns.slices, f"ingest{run}")
            profile = cProfile.Profile() if ns.profile and run == ns.repeat - 1 else None
            wall, cpu = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.enable()
            for path in paths:
                with path.open("rb") as fileobj:
                    result = instance_ingest(fileobj, origin=origin)
                if result.status != IngestStatus.STORED:
                    raise SystemExit(f"{path.name} was not stored: {result.status}")
            if profile is not None:
                profile.disable()
                profile.dump_stats(ns.profile)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"run {run + 1}: wall {wall / len(paths) * 1000:.2f} ms, "
                f"CPU {cpu / len(paths) * 1000:.2f} ms per instance"
                + (" (profiled)" if profile is not None else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
