"""A study leaves the association only de-identified, and the export is audited."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from pydicom.data import get_testdata_file

from association.models import Institution
from audit.models import AuditEvent
from imaging.ingest import Origin, instance_ingest


@pytest.fixture
def study_uid(actors):
    origin = Origin(
        institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
    )
    with open(get_testdata_file("CT_small.dcm"), "rb") as f:
        return instance_ingest(f, origin=origin).instance.series.study.study_uid


def test_export_is_a_zip_of_deidentified_instances(client, actors, study_uid):
    client.force_login(actors.township)
    response = client.get(f"/imaging/studies/{study_uid}/export.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    [name] = archive.namelist()
    ds = pydicom.dcmread(io.BytesIO(archive.read(name)))
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.StudyInstanceUID != study_uid
    assert "CompressedSamples" not in str(ds.PatientName)
    assert AuditEvent.objects.filter(action="study.export", actor=actors.township).exists()


def test_someone_who_cannot_see_the_study_cannot_export_it(client, actors, study_uid):
    client.force_login(actors.outsider)
    assert client.get(f"/imaging/studies/{study_uid}/export.zip").status_code in {403, 404}
