"""Ingest: a valid file is stored whole and indexed; the same file again changes nothing."""

from __future__ import annotations

import pytest
from pydicom.data import get_testdata_file

from association.models import Institution
from imaging.ingest import Conflict, IngestStatus, Origin, instance_ingest
from imaging.models import Instance, Study
from objectstore import get_store


@pytest.fixture
def origin(actors):
    return Origin(
        institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
    )


def test_a_ct_slice_is_stored_and_indexed(origin):
    with open(get_testdata_file("CT_small.dcm"), "rb") as f:
        result = instance_ingest(f, origin=origin)
    assert result.status == IngestStatus.STORED
    instance = result.instance
    assert instance.rows == 128
    stored = b"".join(get_store().open(instance.object_key, expected_sha256=instance.sha256))
    assert stored[:128] == b"\0" * 128
    assert stored[128:132] == b"DICM"
    study = Study.objects.get(pk=instance.series.study_id)
    assert study.num_instances == 1
    assert study.modalities == "CT"


def test_the_same_file_again_is_a_duplicate(origin):
    path = get_testdata_file("CT_small.dcm")
    with open(path, "rb") as f:
        instance_ingest(f, origin=origin)
    with open(path, "rb") as f:
        assert instance_ingest(f, origin=origin).status == IngestStatus.DUPLICATE
    assert Instance.objects.count() == 1


def test_same_sop_uid_for_another_patient_is_a_conflict_and_nothing_is_overwritten(
    origin, tmp_path
):
    import pydicom

    path = get_testdata_file("CT_small.dcm")
    with open(path, "rb") as f:
        first = instance_ingest(f, origin=origin).instance
    ds = pydicom.dcmread(path)
    ds.PatientID = "SOMEONE-ELSE"
    forged = tmp_path / "forged.dcm"
    ds.save_as(forged)
    with open(forged, "rb") as f, pytest.raises(Conflict):
        instance_ingest(f, origin=origin)
    first.refresh_from_db()
    assert first.series.study.dicom_patient_id != "SOMEONE-ELSE"
    assert len(list(get_store().open(first.object_key))) >= 1
