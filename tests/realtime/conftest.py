"""Fixtures for the realtime tests: the actors loaded before an async test starts."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def village(actors: Any) -> Any:
    return actors.village


@pytest.fixture
def village2(actors: Any) -> Any:
    return actors.village2
