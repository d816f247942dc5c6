"""Resumable browser upload: the API a clinic's browser talks to (docs/upload.md).

Chunks at the server's offset only, resume after a drop or a reload, nothing sent twice,
the checksum verified end to end, zips unpacked safely, and nobody touches another
doctor's upload.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pydicom.data import get_testdata_file

from association.models import DiagnosticCentre, Institution
from audit.models import AuditEvent
from imaging import upload_ingest, uploads
from imaging.models import ImagingRequest, Instance, Study, Upload, UploadStatus
from objectstore import StoreUnavailable

API = "/api/imaging/uploads/"
OCTETS = "application/offset+octet-stream"
THREE_STUDIES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


def _bytes(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _start(client: Client, data: bytes, *, name: str = "CT_small.dcm", **extra: Any):
    payload = {"filename": name, "size": len(data), "sha256": _sha(data), **extra}
    return client.post(API, payload, content_type="application/json")


def _patch(client: Client, upload_id: str, chunk: bytes, offset: int, **headers: Any):
    return client.generic(
        "PATCH",
        f"{API}{upload_id}/",
        chunk,
        content_type=headers.pop("content_type", OCTETS),
        HTTP_UPLOAD_OFFSET=str(offset),
        **headers,
    )


def _send_all(client: Client, upload_id: str, data: bytes, *, offset: int = 0, chunk: int = 16384):
    while offset < len(data):
        response = _patch(client, upload_id, data[offset : offset + chunk], offset)
        assert response.status_code == 204, response.content
        offset = int(response["Upload-Offset"])
    return offset


def _finish(client: Client, upload_id: str):
    return client.post(f"{API}{upload_id}/finish/")


def _upload(client: Client, data: bytes, *, name: str = "CT_small.dcm") -> dict[str, Any]:
    started = _start(client, data, name=name)
    assert started.status_code == 201, started.content
    _send_all(client, started.json()["id"], data)
    finished = _finish(client, started.json()["id"])
    assert finished.status_code == 202, finished.content
    return client.get(f"{API}{started.json()['id']}/", {"files": "1"}).json()


def _zip(members: dict[str, bytes], *, directories: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in directories:
            archive.writestr(zipfile.ZipInfo(folder), b"")
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- Chunks, offsets, resume ---------------------------------------------------------------


def test_township_doctor_uploads_a_file_in_chunks_and_it_is_indexed(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")

    started = _start(client, data)
    assert started.status_code == 201
    body = started.json()
    assert body["offset"] == 0
    assert body["status"] == "receiving"
    assert started["Location"].endswith(f"/api/imaging/uploads/{body['id']}/")

    assert _send_all(client, body["id"], data, chunk=10_000) == len(data)
    finished = _finish(client, body["id"])
    assert finished.status_code == 202

    result = client.get(f"{API}{body['id']}/", {"files": "1"}).json()
    assert result["status"] == "complete"
    assert result["state"] == "done"
    assert result["counts"]["stored"] == 1
    assert result["processed"] == result["total"] == 1
    [entry] = result["files"]
    assert entry["status"] == "stored"
    instance = Instance.objects.get(sop_uid=entry["sop_uid"])
    assert instance.received_via == "upload"
    assert instance.series.study.source_institution.code == "xiba"
    assert [s["study_uid"] for s in result["studies"]] == [entry["study_uid"]]
    assert not list((uploads.uploads_dir()).glob("*.part")), "the part file is deleted"


def test_a_chunk_at_the_wrong_offset_gets_409_with_the_current_offset(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    upload_id = _start(client, data).json()["id"]
    assert _patch(client, upload_id, data[:1000], 0).status_code == 204

    again = _patch(client, upload_id, data[:1000], 0)  # the first chunk once more
    ahead = _patch(client, upload_id, data[5000:6000], 5000)

    for response in (again, ahead):
        assert response.status_code == 409
        assert response.json()["offset"] == 1000
        assert response["Upload-Offset"] == "1000"
        assert response.json()["detail"]
    assert Upload.objects.get(pk=upload_id).received == 1000


def test_after_a_dropped_link_and_a_reload_the_upload_resumes_where_it_stopped(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    first = _start(client, data).json()
    _patch(client, first["id"], data[:20_000], 0)

    # The page is reloaded: the browser announces the same bytes again.
    again = _start(client, data)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["offset"] == 20_000
    head = client.head(f"{API}{first['id']}/")
    assert head.status_code == 200
    assert head["Upload-Offset"] == "20000"
    assert head["Upload-Length"] == str(len(data))
    assert head["Cache-Control"] == "no-store"

    _send_all(client, first["id"], data, offset=20_000)
    _finish(client, first["id"])
    assert Upload.objects.get(pk=first["id"]).status == UploadStatus.COMPLETE
    assert Upload.objects.filter(user=actors.township).count() == 1


def test_a_chunk_cut_short_by_the_link_keeps_the_bytes_that_arrived(actors):
    data = _bytes("CT_small.dcm")
    upload, _created = uploads.upload_start(
        actor=actors.township, filename="CT.dcm", size=len(data), sha256=_sha(data)
    )
    cut = io.BytesIO(data[:3000])  # Content-Length said 8000; the link dropped after 3000
    upload = uploads.upload_append(
        actor=actors.township, upload_id=upload.pk, offset=0, chunk_stream=cut, length=8000
    )
    assert upload.received == 3000
    assert uploads.part_path(upload).read_bytes() == data[:3000]


def test_finishing_before_every_byte_arrived_is_409_with_the_offset(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    upload_id = _start(client, data).json()["id"]
    _patch(client, upload_id, data[:4096], 0)
    response = _finish(client, upload_id)
    assert response.status_code == 409
    assert response.json()["offset"] == 4096
    assert Instance.objects.count() == 0


def test_the_same_file_again_returns_the_completed_upload_and_no_bytes_are_sent(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    first = _upload(client, data)

    second = _start(client, data, name="copy-of-CT.dcm")
    assert second.status_code == 200
    assert second.json()["id"] == first["id"]
    assert second.json()["status"] == "complete"
    assert second.json()["offset"] == len(data)
    assert second.json()["studies"] == first["studies"]
    assert Upload.objects.count() == 1
    assert Instance.objects.count() == 1


# --- Checksums and zips --------------------------------------------------------------------


def test_a_checksum_mismatch_fails_the_upload_and_indexes_nothing(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    announced = data[:-1] + bytes([data[-1] ^ 0xFF])  # one bit differs somewhere
    upload_id = client.post(
        API,
        {"filename": "CT.dcm", "size": len(data), "sha256": _sha(announced)},
        content_type="application/json",
    ).json()["id"]
    _send_all(client, upload_id, data)
    assert _finish(client, upload_id).status_code == 202

    result = client.get(f"{API}{upload_id}/").json()
    assert result["status"] == "failed"
    assert result["code"] == "checksum_mismatch"
    assert result["reason"]  # a sentence in the uploader's language
    assert Instance.objects.count() == 0
    assert not uploads.part_path(Upload.objects.get(pk=upload_id)).exists()
    assert AuditEvent.objects.filter(
        action="imaging.upload", outcome="failed", reason="checksum_mismatch"
    ).exists()


def test_a_zip_of_three_studies_and_junk_reports_every_file(actors):
    client = _client(actors.township)
    archive = _zip(
        {
            "CD/IMAGES/CT": _bytes("CT_small.dcm"),
            "CD/IMAGES/MR": _bytes("MR_small.dcm"),
            "CD/IMAGES/NM": _bytes("JPEG2000.dcm"),
            "CD/readme.txt": b"Burnt by the county hospital's PACS.",
            "CD/DICOMDIR": b"not read",
            "__MACOSX/CD/._CT": b"resource fork",
            "CD/.DS_Store": b"finder",
        },
        directories=("CD/", "CD/IMAGES/"),
    )
    result = _upload(client, archive, name="cd.zip")

    assert result["status"] == "complete"
    assert result["counts"] == {
        "stored": 3,
        "duplicate": 0,
        "rejected": 1,
        "conflict": 0,
        "error": 0,
    }
    assert result["total"] == result["processed"] == 4
    assert result["skipped"] == 3
    by_name = {f["name"]: f for f in result["files"]}
    assert set(by_name) == {"CD/IMAGES/CT", "CD/IMAGES/MR", "CD/IMAGES/NM", "CD/readme.txt"}
    assert by_name["CD/readme.txt"]["status"] == "rejected"
    assert by_name["CD/readme.txt"]["code"] == "not_dicom"
    assert by_name["CD/readme.txt"]["reason"]
    assert [p["name"] for p in result["problems"]] == ["CD/readme.txt"]
    assert len(result["studies"]) == 3
    assert Study.objects.count() == 3
    assert {m for s in result["studies"] for m in s["modalities"]} == {"CT", "MR", "NM"}


def test_the_same_instances_in_a_new_zip_are_reported_as_duplicates(actors):
    client = _client(actors.township)
    _upload(client, _bytes("CT_small.dcm"))
    result = _upload(client, _zip({"again/CT": _bytes("CT_small.dcm")}), name="again.zip")
    assert result["counts"]["duplicate"] == 1
    assert result["studies"][0]["duplicate"] == 1
    assert Instance.objects.count() == 1


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(actors):
    client = _client(actors.township)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CT", _bytes("CT_small.dcm"))
        with archive.open("zeros", "w") as member:
            for _ in range(24):
                member.write(bytes(1024 * 1024))
    result = _upload(client, buffer.getvalue(), name="bomb.zip")
    assert result["status"] == "failed"
    assert result["code"] == "zip_bomb"
    assert result["processed"] == 0
    assert Instance.objects.count() == 0


def test_an_archive_with_too_many_files_is_refused(actors, monkeypatch):
    monkeypatch.setattr(upload_ingest, "ZIP_MAX_MEMBERS", 2)
    client = _client(actors.township)
    archive = _zip({name: _bytes(name) for name in THREE_STUDIES})
    result = _upload(client, archive, name="many.zip")
    assert result["status"] == "failed"
    assert result["code"] == "too_many_files"
    assert Instance.objects.count() == 0


def test_an_ingest_interrupted_by_the_store_resumes_after_the_files_already_done(
    actors, monkeypatch
):
    client = _client(actors.township)
    archive = _zip({name: _bytes(name) for name in THREE_STUDIES})
    real_ingest = upload_ingest.instance_ingest
    calls: list[str] = []

    def flaky(fileobj, *, origin):
        calls.append("x")
        if len(calls) == 2:
            raise StoreUnavailable("the object store went away")
        return real_ingest(fileobj, origin=origin)

    monkeypatch.setattr(upload_ingest, "instance_ingest", flaky)
    first = _upload(client, archive, name="three.zip")
    assert first["status"] == "receiving"
    assert first["state"] == "interrupted"
    assert first["processed"] == 1

    monkeypatch.setattr(upload_ingest, "instance_ingest", real_ingest)
    assert _finish(client, first["id"]).status_code == 202
    done = client.get(f"{API}{first['id']}/").json()
    assert done["status"] == "complete"
    assert done["counts"]["stored"] == 3, "the first file was not ingested twice"
    assert Instance.objects.count() == 3


def test_finishing_twice_ingests_once(actors):
    client = _client(actors.township)
    result = _upload(client, _bytes("CT_small.dcm"))
    again = _finish(client, result["id"])
    assert again.status_code == 202
    assert again.json()["counts"]["stored"] == 1
    assert AuditEvent.objects.filter(action="imaging.ingest", outcome="allowed").count() == 1


# --- Who may do what -----------------------------------------------------------------------


def test_another_doctor_cannot_read_append_to_or_finish_someones_upload_and_it_is_audited(
    actors,
):
    data = _bytes("CT_small.dcm")
    upload_id = _start(_client(actors.township), data).json()["id"]
    intruder = _client(actors.village)

    assert intruder.get(f"{API}{upload_id}/").status_code == 404
    assert _patch(intruder, upload_id, data[:100], 0).status_code == 404
    assert _finish(intruder, upload_id).status_code == 404
    assert Upload.objects.get(pk=upload_id).received == 0
    denials = AuditEvent.objects.filter(
        action="imaging.upload", outcome="denied", actor=actors.village, resource_id=upload_id
    )
    assert denials.count() == 3
    assert _start(intruder, data).status_code == 201, "the intruder's own upload is separate"


def test_an_association_admin_without_a_clinic_cannot_upload(actors):
    response = _start(_client(actors.admin), _bytes("CT_small.dcm"))
    assert response.status_code == 403
    assert response.json()["detail"]
    assert AuditEvent.objects.filter(
        action="imaging.upload", outcome="denied", actor=actors.admin
    ).exists()


def test_anonymous_callers_are_refused(db):
    assert Client().post(API, {}, content_type="application/json").status_code in (401, 403)


@pytest.fixture
def township_request(actors, residents) -> ImagingRequest:
    return ImagingRequest.objects.create(
        patient=residents["陈志强"],
        requesting_institution=Institution.objects.get(code="xiba"),
        requested_by=actors.township,
        centre=DiagnosticCentre.objects.get(code="qingshan-imaging"),
        accession_number="UPL0001",
        modality="CT",
        exam="Head CT",
        clinical_question="Headache after a fall.",
    )


def test_images_uploaded_for_a_request_are_attached_to_it(actors, township_request):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    started = _start(client, data, request=township_request.pk)
    assert started.json()["request"] == township_request.pk
    _send_all(client, started.json()["id"], data)
    _finish(client, started.json()["id"])
    study = Study.objects.get()
    assert study.request == township_request
    assert study.patient == township_request.patient


def test_a_request_of_another_clinic_cannot_be_named(actors, township_request):
    response = _start(_client(actors.village2), _bytes("CT_small.dcm"), request=township_request.pk)
    assert response.status_code == 404
    assert Upload.objects.count() == 0


# --- Bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"sha256": "not-hex"}, 400),
        ({"size": 0}, 400),
        ({"size": uploads.MAX_UPLOAD_BYTES + 1}, 413),
        ({"filename": ""}, 400),
    ],
)
def test_a_bad_announcement_is_refused_with_a_message(actors, payload, status):
    body = {"filename": "a.dcm", "size": 10, "sha256": "a" * 64, **payload}
    response = _client(actors.township).post(API, body, content_type="application/json")
    assert response.status_code == status
    assert response.json()["detail"]
    assert Upload.objects.count() == 0


def test_a_chunk_over_the_limit_is_413_and_nothing_is_written(actors, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_CHUNK_BYTES", 1000)
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    upload_id = _start(client, data).json()["id"]
    response = _patch(client, upload_id, data[:1001], 0)
    assert response.status_code == 413
    assert Upload.objects.get(pk=upload_id).received == 0


def test_a_chunk_past_the_end_of_the_file_is_refused(actors):
    client = _client(actors.township)
    data = _bytes("MR_small.dcm")
    upload_id = _start(client, data).json()["id"]
    assert _patch(client, upload_id, data + b"extra", 0).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"content_type": "application/octet-stream"},
        {"HTTP_UPLOAD_OFFSET": "minus one"},
    ],
)
def test_a_chunk_with_wrong_headers_is_refused(actors, headers):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    upload_id = _start(client, data).json()["id"]
    if "HTTP_UPLOAD_OFFSET" in headers:
        response = client.generic(
            "PATCH", f"{API}{upload_id}/", data[:10], content_type=OCTETS, **headers
        )
        assert response.status_code == 400
    else:
        response = _patch(client, upload_id, data[:10], 0, **headers)
        assert response.status_code == 415
    assert response.json()["detail"]


def test_the_openapi_schema_documents_the_upload_protocol(client, actors):
    client.force_login(actors.township)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    detail = schema["paths"]["/api/imaging/uploads/{upload_id}/"]
    assert {"get", "patch"} <= set(detail)
    assert OCTETS in detail["patch"]["requestBody"]["content"]
    assert "post" in schema["paths"]["/api/imaging/uploads/{upload_id}/finish/"]


# --- The page ------------------------------------------------------------------------------


def test_the_upload_page_is_drawn_for_a_clinic_doctor_with_translated_labels(actors):
    client = _client(actors.township)
    response = client.get("/imaging/upload/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-api="/api/imaging/uploads/"' in page
    assert "webkitdirectory" in page
    assert "js/upload.js" in page
    assert "css/imaging.css" in page


def test_the_upload_page_offers_to_resume_unfinished_uploads(actors):
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    _patch(client, _start(client, data, name="knee.dcm").json()["id"], data[:1000], 0)
    page = client.get("/imaging/upload/").content.decode()
    assert 'id="upload-unfinished"' in page
    assert "knee.dcm" in page


def test_the_upload_page_names_the_request_it_attaches_to(actors, township_request):
    client = _client(actors.township)
    page = client.get(f"/imaging/upload/?request={township_request.pk}").content.decode()
    assert f'data-request="{township_request.pk}"' in page
    assert "陈志强" in page


def test_the_upload_page_refuses_an_admin_and_an_unknown_request(actors):
    assert _client(actors.admin).get("/imaging/upload/").status_code == 403
    assert _client(actors.township).get("/imaging/upload/?request=999999").status_code == 404


def test_with_a_worker_finish_only_queues_and_the_task_ingests_later(actors, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    client = _client(actors.township)
    data = _bytes("CT_small.dcm")
    upload_id = _start(client, data).json()["id"]
    _send_all(client, upload_id, data)

    queued = _finish(client, upload_id)
    assert queued.status_code == 202
    assert queued.json()["state"] == "queued"
    assert _finish(client, upload_id).json()["state"] == "queued", "finishing again is harmless"
    assert Instance.objects.count() == 0

    uploads.upload_ingest_task.call(upload_id, "en")  # what `telemed worker` runs
    assert client.get(f"{API}{upload_id}/").json()["status"] == "complete"
    assert Instance.objects.count() == 1


def test_a_script_with_a_bearer_token_uploads_without_a_session(actors):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=actors.township)
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token.key}")
    data = _bytes("MR_small.dcm")
    started = _start(client, data, name="MR.dcm")
    assert started.status_code == 201
    _send_all(client, started.json()["id"], data, chunk=4096)
    assert _finish(client, started.json()["id"]).status_code == 202
    assert Upload.objects.get(pk=started.json()["id"]).status == UploadStatus.COMPLETE
