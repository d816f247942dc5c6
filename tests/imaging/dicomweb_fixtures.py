"""Fixtures for the DICOMweb tests (a pytest plugin: ``pytest_plugins`` in each module).

See :mod:`tests.imaging.dicomweb_support` for the test data itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction

from association.models import Institution
from imaging.dicom.header import Header, header_of
from imaging.dicom.validate import validate_instance
from imaging.ingest import Origin, Prepared, _index
from imaging.models import Instance
from objectstore import get_store
from tests.imaging.dicomweb_support import TRANSFER_SYNTAX_FILES, UNDECODABLE, Sample, prepare


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    folder = tmp_path_factory.mktemp("dicomweb-samples")
    prepared = {n: prepare(n, folder) for n in [*TRANSFER_SYNTAX_FILES, UNDECODABLE]}
    for copy in (2, 3):
        prepared[f"CT_small.dcm#{copy}"] = prepare("CT_small.dcm", folder, copy=copy)
    return prepared


Ingest = Callable[..., list[Instance]]


_STORED: dict[str, tuple[Header, str, str]] = {}


def _validated_and_stored(sample: Sample) -> tuple[Header, str, str]:
    """Validate and store a sample once per session (the object store outlives tests)."""
    if str(sample.path) not in _STORED:
        with open(sample.path, "rb") as f:
            valid = header_of(validate_instance(f))
            f.seek(0)
            stored = get_store().put(f, prefix="dicom", content_type="application/dicom")
        _STORED[str(sample.path)] = (valid, stored.key, stored.sha256)
    return _STORED[str(sample.path)]


@pytest.fixture
def ingest(actors: Any, samples: dict[str, Sample]) -> Ingest:
    """``ingest("CT_small.dcm", ...)``: send samples as the township doctor, from Xiba.

    Validation and storage run once per session; each test indexes the files with
    ingest's own indexing step, so a test pays for a few inserts, not for parsing.
    ``test_dicomweb_auth_cors`` runs the full :func:`instance_ingest` once as a check.
    """
    cache.clear()  # access decisions and audit windows of earlier tests' rows
    origin = Origin(
        institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
    )

    def send(*names: str) -> list[Instance]:
        result = []
        for name in names:
            valid, key, sha256 = _validated_and_stored(samples[name])
            with transaction.atomic():
                result.append(_index(Prepared(valid, key, sha256), origin))
        return result

    return send


@pytest.fixture
def ct_series(ingest: Ingest) -> list[Instance]:
    """Three CT slices in one series (instance numbers 1-3)."""
    return ingest("CT_small.dcm", "CT_small.dcm#2", "CT_small.dcm#3")
