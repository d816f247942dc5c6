"""The signaling benchmark's arithmetic and table (no servers; the benchmark itself is
``python bench/signaling.py``, never part of the suite)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _signaling() -> Any:
    name = "bench_signaling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "signaling.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_percentiles_are_nearest_rank() -> None:
    bench = _signaling()
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert bench._percentile(values, 50) == pytest.approx(0.050)
    assert bench._percentile(values, 99) == pytest.approx(0.099)
    assert bench._percentile([0.007], 99) == pytest.approx(0.007)


def test_table_says_whether_the_target_is_met(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _signaling()
    result = {
        "rooms": 200,
        "sockets": 400,
        "kind": "viewer",
        "connect_seconds": 3.2,
        "messages_per_second": 200.0,
        "measured": 3600,
        "lost": 0,
        "errors": {},
        "p50_ms": 4.1,
        "p90_ms": 9.0,
        "p99_ms": 21.5,
        "max_ms": 40.0,
        "server_cpu_cores": 0.6,
        "client_cpu_cores": 0.2,
    }
    bench.print_table(result, markdown=True)
    out = capsys.readouterr().out
    assert "| Latency p99 | 21.5 ms |" in out
    assert "| Target p99 < 50 ms | met |" in out
    bench.print_table({**result, "lost": 3}, markdown=False)
    assert "NOT met" in capsys.readouterr().out
