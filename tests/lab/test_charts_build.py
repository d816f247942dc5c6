"""The committed Chart.js bundle: present, minified, defines TelemedCharts, pinned exactly."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "frontend" / "charts"
BUILT = ROOT / "frontend" / "static" / "charts"
CHARTS_JS = BUILT / "charts.js"
EXACT = re.compile(r"^\d+\.\d+\.\d+$")


def test_the_built_file_is_committed_and_minified():
    text = CHARTS_JS.read_text(encoding="utf-8")
    assert len(text) > 100_000  # all of Chart.js
    lines = text.splitlines()
    assert len(lines) <= 5
    assert max(len(line) for line in lines) > 50_000
    assert "sourceMappingURL" not in text
    assert not list(BUILT.glob("*.map"))


def test_the_bundle_defines_telemed_charts_as_a_classic_script():
    text = CHARTS_JS.read_text(encoding="utf-8")
    assert "window.TelemedCharts=" in text
    # An IIFE: no module syntax, so a plain <script defer> loads it on old browsers.
    assert text.startswith("(function(){")
    assert not re.search(r"(^|[;}])\s*(import|export)\s*[{*]", text)


def test_third_party_notices_carry_the_chart_js_licence():
    notices = (BUILT / "THIRD-PARTY-NOTICES.txt").read_text(encoding="utf-8")
    assert re.search(r"^chart\.js 4\.\d+\.\d+ \(MIT\)$", notices, re.MULTILINE)
    assert "Permission is hereby granted, free of charge" in notices


def test_package_json_and_lockfile_pin_chart_js_exactly():
    package = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((SOURCE / "package-lock.json").read_text(encoding="utf-8"))
    wanted = package["dependencies"]["chart.js"]
    assert EXACT.match(wanted), wanted
    assert wanted.startswith("4.")
    assert lock["packages"][""]["dependencies"]["chart.js"] == wanted
    assert lock["packages"]["node_modules/chart.js"]["version"] == wanted
    assert lock["packages"]["node_modules/chart.js"]["integrity"].startswith("sha512-")
    for name, version in package.get("devDependencies", {}).items():
        assert EXACT.match(version), (name, version)


def test_the_bundle_is_the_locked_version():
    wanted = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))["dependencies"][
        "chart.js"
    ]
    notices = (BUILT / "THIRD-PARTY-NOTICES.txt").read_text(encoding="utf-8")
    assert f"chart.js {wanted} (MIT)" in notices


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_bundle_runs_and_registers_the_chart_types(tmp_path):
    script = (
        "globalThis.window = globalThis;"
        "require('vm').runInThisContext(require('fs').readFileSync(process.argv[1], 'utf8'));"
        "const C = window.TelemedCharts.Chart;"
        "console.log(JSON.stringify({version: C.version,"
        " bar: !!C.registry.getController('bar'), line: !!C.registry.getController('line')}));"
    )
    out = subprocess.run(
        ["node", "-e", script, str(CHARTS_JS)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["bar"]
    assert result["line"]
    assert result["version"].startswith("4.")
