"""platform/ is a package root: the standard library's platform module must not be shadowed."""

import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_standard_library_platform_module_still_works() -> None:
    assert platform.system()
    assert not (REPO / "platform" / "__init__.py").exists()


def test_platform_module_works_from_the_repository_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'platform'}", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip()


def test_no_folder_named_platform_is_a_package() -> None:
    offenders = [p for p in REPO.rglob("platform/__init__.py") if ".venv" not in p.parts]
    assert offenders == []
