"""``bench/media.py --smoke`` runs end to end and meets the issue's targets on a small clip
(the benchmark itself, ``python bench/media.py``, is never part of the suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "media.py"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_media_benchmark_smoke_run_prints_its_figures(tmp_path: Path):
    out = tmp_path / "media.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--markdown", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| join -> first decoded frame" in run.stdout
    figures = json.loads(out.read_text())
    assert max(figures["join"]) < 2.0
    two = figures["load"][1]
    assert two["receivers"] == 2
    assert two["fps_min"] > 10
    assert two["service_cores"] > 0
    assert two["transit_p50"] < 0.1
    assert figures["reconnect"]["republish_to_frame"] < 2.0
