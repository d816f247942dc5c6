"""A task for the worker test: writes a file, so the test sees it ran in the worker."""

from __future__ import annotations

from pathlib import Path

from django_tasks import task


@task()
def touch(path: str, text: str) -> str:
    Path(path).write_text(text, encoding="utf-8")
    return text
