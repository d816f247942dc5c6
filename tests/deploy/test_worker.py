"""`telemed worker` runs tasks from the database queue, as compose's worker service does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TELEMED = shutil.which("telemed", path=str(Path(sys.executable).parent)) or "telemed"


def test_worker_runs_a_task_enqueued_by_the_web_process(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "TELEMED_DATA_DIR": str(tmp_path),
        "TELEMED_TASK_BACKEND": "database",
        "PYTHONPATH": f"{REPO}:{REPO / 'platform'}",
    }
    run = lambda *args: subprocess.run(  # noqa: E731
        [TELEMED, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    run("manage", "migrate", "--verbosity", "0")
    marker = tmp_path / "ran.txt"
    run(
        "manage",
        "shell",
        "-c",
        f"from tests.deploy.worker_tasks import touch; touch.enqueue({str(marker)!r}, 'done')",
    )
    assert not marker.exists()  # queued, not run in the enqueuing process
    result = run("worker", "--batch")
    assert marker.read_text() == "done", result.stdout + result.stderr
