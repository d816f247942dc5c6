"""STOW-RS indexes the parts of a request together, and every outcome stays as if alone."""

from __future__ import annotations

import io
from typing import Any

import pydicom
import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

import imaging.dicomweb.stow as stow
import imaging.ingest_batch as ingest_batch
from audit.models import AuditEvent
from imaging.ingest import Prepared
from imaging.models import Instance, Series, Study
from objectstore import get_store
from objectstore.errors import ObjectNotFound
from tests.imaging.test_stow import FAILURE_REASON, multipart, post, sequence, value

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.imaging.stow_urls")]

SERIES = generate_uid()
STUDY = generate_uid()


def ct_slice(
    number: int, *, sop_uid: str | None = None, patient_id: str = "BATCH-1", overlay: bytes = b""
) -> tuple[str, bytes]:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID, ds.StudyInstanceUID = SERIES, STUDY
    ds.InstanceNumber = number
    ds.PatientID = patient_id
    if overlay:
        ds.add_new(0x60003000, "OW", overlay)  # Overlay Data
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ("application/dicom", out.getvalue())


@pytest.fixture
def township(client, actors):
    client.force_login(actors.township)
    return client


@pytest.fixture
def prepared_keys(monkeypatch) -> list[str]:
    """The object key of every part prepared (stored, not yet indexed) by STOW-RS."""
    keys: list[str] = []
    real = stow.instance_prepare

    def recording(*args: Any, **kwargs: Any) -> Prepared:
        item = real(*args, **kwargs)
        keys.append(item.key)
        return item

    monkeypatch.setattr(stow, "instance_prepare", recording)
    return keys


def in_store(key: str) -> bool:
    try:
        get_store().stat(key)
    except ObjectNotFound:
        return False
    return True


def inserts(queries: CaptureQueriesContext, table: str) -> int:
    return sum(q["sql"].startswith(f'INSERT INTO "{table}"') for q in queries.captured_queries)


def test_a_series_in_one_request_is_inserted_together_and_counted_once(township):
    with CaptureQueriesContext(connection) as queries:
        response = post(township, multipart(*(ct_slice(n) for n in range(1, 13))))
    assert response.status_code == 200
    assert len(sequence(response.json(), "00081199")) == 12
    series = Series.objects.select_related("study").get(series_uid=SERIES)
    assert series.num_instances == 12
    assert series.study.num_instances == 12
    assert series.study.num_series == 1
    assert Instance.objects.filter(series=series).count() == 12
    # The first instance finds (here: creates) study and series; the other 11 go together.
    assert inserts(queries, "imaging_instance") == 2
    assert inserts(queries, "audit_auditevent") == 1
    events = AuditEvent.objects.filter(action="imaging.ingest", outcome="allowed")
    assert events.count() == 12
    assert {e.detail["study"] for e in events} == {STUDY}


def test_a_long_request_is_indexed_a_batch_at_a_time(township, monkeypatch):
    monkeypatch.setattr(stow, "BATCH_SIZE", 4)
    with CaptureQueriesContext(connection) as queries:
        response = post(township, multipart(*(ct_slice(n) for n in range(1, 11))))
    assert response.status_code == 200
    assert Series.objects.get(series_uid=SERIES).num_instances == 10
    assert Study.objects.get(study_uid=STUDY).num_instances == 10
    assert inserts(queries, "imaging_instance") == 3 * 2  # batches of 4, 4 and 2


def test_a_duplicate_inside_the_request_is_stored_once_and_its_copy_removed(
    township, prepared_keys
):
    twice = ct_slice(1)
    response = post(township, multipart(twice, ct_slice(2), twice))
    assert response.status_code == 200  # a duplicate counts as stored (PS3.18)
    assert len(sequence(response.json(), "00081199")) == 3
    assert Series.objects.get(series_uid=SERIES).num_instances == 2
    kept = set(Instance.objects.values_list("object_key", flat=True))
    assert len(kept) == 2
    assert [in_store(key) for key in prepared_keys] == [key in kept for key in prepared_keys]


def test_a_conflict_inside_the_request_fails_alone_and_nothing_is_overwritten(
    township, prepared_keys
):
    taken = generate_uid()
    assert post(township, multipart(ct_slice(1, sop_uid=taken))).status_code == 200
    original = Instance.objects.get(sop_uid=taken)
    response = post(
        township,
        multipart(
            ct_slice(2),
            ct_slice(3, sop_uid=taken, patient_id="SOMEONE-ELSE"),
            ct_slice(4),
        ),
    )
    assert response.status_code == 202
    (failed,) = sequence(response.json(), "00081198")
    assert value(failed, "00081155") == taken
    assert value(failed, FAILURE_REASON) == 0xC410  # UID conflict (imaging.dicom.failures)
    assert len(sequence(response.json(), "00081199")) == 2
    assert Instance.objects.get(sop_uid=taken).object_key == original.object_key
    assert Series.objects.get(series_uid=SERIES).num_instances == 3
    assert not in_store(prepared_keys[2])  # the refused copy
    assert AuditEvent.objects.filter(action="imaging.ingest", outcome="failed").count() == 1


def test_when_the_database_fails_the_batch_is_refused_whole_and_its_objects_removed(
    township, prepared_keys, monkeypatch
):
    def failing(events: object) -> None:
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(ingest_batch, "audit_record_many", failing)
    response = post(township, multipart(ct_slice(1), ct_slice(2), ct_slice(3)))
    assert response.status_code == 409
    failed = sequence(response.json(), "00081198")
    assert [value(f, "00091001") for f in failed] == ["processing_failure"] * 3
    assert Instance.objects.count() == 0
    assert Study.objects.count() == 0
    assert len(prepared_keys) == 3
    assert not any(in_store(key) for key in prepared_keys)


def test_a_large_value_is_read_while_its_part_is_still_open(township):
    # Larger than validation's 64 KiB deferral: read for the metadata before the part's
    # temporary file is closed, and kept as bulk data.
    big = ct_slice(1, overlay=b"\x01" * (100 * 1024))
    response = post(township, multipart(big, ct_slice(2)))
    assert response.status_code == 200
    instance = Instance.objects.get(instance_number=1)
    assert "BulkDataURI" in instance.metadata["60003000"]
