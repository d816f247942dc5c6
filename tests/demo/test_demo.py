"""`telemed demo`: the seed is complete and idempotent; the command validates its arguments."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import authenticate

from association.models import Association, Institution, InstitutionLevel
from demo.services import DEMO_ACCOUNTS, demo_seed
from records.models import Patient

TELEMED = shutil.which("telemed", path=str(Path(sys.executable).parent)) or "telemed"


def test_demo_association_has_what_the_issue_names(db):
    qingshan = Association.objects.get(code="qingshan")
    levels = list(Institution.objects.filter(association=qingshan).values_list("level", flat=True))
    assert levels.count(InstitutionLevel.COUNTY_HOSPITAL) == 1
    assert levels.count(InstitutionLevel.TOWNSHIP_CENTRE) == 2
    assert levels.count(InstitutionLevel.VILLAGE_CLINIC) == 4
    assert qingshan.lead_institution.code == "county"
    assert {c.kind for c in qingshan.centres.all()} >= {"imaging", "lab"}
    for clinic in Institution.objects.filter(association=qingshan):
        assert Patient.objects.filter(home_institution=clinic).count() >= 2, clinic.name


@pytest.mark.parametrize("username", [name for name, _ in DEMO_ACCOUNTS])
def test_every_demo_account_has_the_demo_password(db, username):
    assert authenticate(username=username, password="telemed-demo") is not None


def test_seeding_again_reuses_everything(db):
    before = (Patient.objects.count(), Institution.objects.count())
    result = demo_seed()
    assert result.created is False
    assert result.password is None
    assert (Patient.objects.count(), Institution.objects.count()) == before


def test_a_new_demo_password_is_set_on_every_account(db):
    demo_seed(password="another-secret")
    assert authenticate(username="village", password="another-secret") is not None
    assert authenticate(username="village", password="telemed-demo") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "http"], "is not a port number"),
        (["--port", "70000"], "is not between 1 and 65535"),
        (["--demo-password", "short"], "at least 8 characters"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(args, message):
    result = subprocess.run([TELEMED, "demo", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_demo_until_ready(data_dir: Path) -> str:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    process = subprocess.Popen(
        [TELEMED, "demo", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    return output


def test_running_the_demo_twice_reuses_the_data(tmp_path):
    first = _run_demo_until_ready(tmp_path)
    assert "(created)" in first
    assert "http://127.0.0.1:" in first
    assert "village" in first
    assert "radiologist" in first
    second = _run_demo_until_ready(tmp_path)
    assert "(reused)" in second
