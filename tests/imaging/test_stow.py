"""STOW-RS: instances stored from a multipart body, answered per instance as PS3.18 says."""

from __future__ import annotations

import base64
import io

import pydicom
import pytest
from pydicom.data import get_testdata_file

from audit.models import AuditEvent
from demo.services import DEFAULT_PASSWORD as PASSWORD
from imaging.dicomweb.multipart_related import MalformedMultipart, MultipartReader
from imaging.models import Instance, Study

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.imaging.stow_urls")]

URL = "/dicomweb/studies"
BOUNDARY = "telemed-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FAILURE_REASON = "00081197"
REASON_CODE = "00091001"
REASON_TEXT = "00091002"


def read(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as f:
        return f.read()


def multipart(*parts: tuple[str, bytes], boundary: str = BOUNDARY) -> bytes:
    body = b""
    for content_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def dicom(name: str) -> tuple[str, bytes]:
    return ("application/dicom", read(name))


def with_patient_id(name: str, patient_id: str) -> tuple[str, bytes]:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientID = patient_id
    out = io.BytesIO()
    ds.save_as(out)
    return ("application/dicom", out.getvalue())


def sequence(body: dict, tag: str) -> list[dict]:
    return body.get(tag, {}).get("Value", [])


def value(item: dict, tag: str) -> object:
    return item[tag].get("Value", [None])[0]


@pytest.fixture
def township(client, actors):
    client.force_login(actors.township)
    return client


def post(client, body: bytes, *, url: str = URL, content_type: str = CONTENT_TYPE):
    return client.post(
        url, data=body, content_type=content_type, HTTP_ACCEPT="application/dicom+json"
    )


def test_several_instances_are_stored_and_each_is_referenced(township):
    response = post(township, multipart(dicom("CT_small.dcm"), dicom("MR_small.dcm")))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    body = response.json()
    stored = sequence(body, "00081199")
    assert len(stored) == 2
    assert "00081198" not in body
    ct = Instance.objects.select_related("series__study").get(sop_uid=value(stored[0], "00081155"))
    assert ct.received_via == "stow"
    assert value(stored[0], "00081150") == ct.sop_class_uid
    assert value(stored[0], "00081190") == (
        f"http://testserver/dicomweb/studies/{ct.series.study.study_uid}"
        f"/series/{ct.series.series_uid}/instances/{ct.sop_uid}"
    )
    assert Study.objects.get(study_uid=ct.series.study.study_uid).source_institution.code == "xiba"


def test_the_study_retrieve_url_is_given_when_all_instances_are_of_one_study(township):
    body = post(township, multipart(dicom("CT_small.dcm"))).json()
    study_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm")).StudyInstanceUID
    assert value(body, "00081190") == f"http://testserver/dicomweb/studies/{study_uid}"


def test_an_instance_sent_again_counts_as_stored(township):
    post(township, multipart(dicom("CT_small.dcm")))
    response = post(township, multipart(dicom("CT_small.dcm")))
    assert response.status_code == 200
    assert len(sequence(response.json(), "00081199")) == 1
    assert Instance.objects.count() == 1


def test_a_non_dicom_part_and_a_truncated_file_fail_with_reasons_and_the_rest_is_stored(
    township,
):
    body = multipart(dicom("CT_small.dcm"), ("text/plain", b"hello"), dicom("MR_truncated.dcm"))
    response = post(township, body)
    assert response.status_code == 202
    failed = sequence(response.json(), "00081198")
    assert [value(f, FAILURE_REASON) for f in failed] == [0xC000, 0xC000]
    assert [value(f, REASON_CODE) for f in failed] == ["not_application_dicom", "truncated"]
    assert all(value(f, REASON_TEXT) for f in failed)
    assert value(failed[0], "00090010") == "TELEMED 1"
    assert len(sequence(response.json(), "00081199")) == 1
    assert Instance.objects.count() == 1


def test_every_part_is_audited_including_those_refused_before_ingest(township):
    before = AuditEvent.objects.filter(action="imaging.ingest").count()
    post(
        township, multipart(dicom("CT_small.dcm"), ("text/plain", b"x"), dicom("MR_truncated.dcm"))
    )
    events = AuditEvent.objects.filter(action="imaging.ingest").order_by("id")[before:]
    # Refusals are written as each part is read; the stored part's event when its batch
    # is indexed, at the end of this request.
    assert [(e.outcome, e.reason) for e in events] == [
        ("failed", "not_application_dicom"),
        ("failed", "truncated"),
        ("allowed", ""),
    ]
    assert {e.detail["channel"] for e in events} == {"stow"}


def test_when_nothing_is_stored_the_answer_is_409(township):
    response = post(township, multipart(("text/plain", b"x"), dicom("MR_truncated.dcm")))
    assert response.status_code == 409
    assert len(sequence(response.json(), "00081198")) == 2
    assert "00081199" not in response.json()
    assert Instance.objects.count() == 0


def test_a_sop_uid_reused_for_another_patient_fails_as_a_conflict_and_nothing_is_overwritten(
    township,
):
    post(township, multipart(dicom("CT_small.dcm")))
    original = Instance.objects.select_related("series__study").get()
    response = post(township, multipart(with_patient_id("CT_small.dcm", "SOMEONE-ELSE")))
    assert response.status_code == 409
    (failed,) = sequence(response.json(), "00081198")
    assert value(failed, FAILURE_REASON) == 0xC410
    assert value(failed, REASON_CODE) == "other_patient"
    assert value(failed, "00081155") == original.sop_uid
    again = Instance.objects.select_related("series__study").get()
    assert (again.sha256, again.series.study.dicom_patient_id) == (
        original.sha256,
        original.series.study.dicom_patient_id,
    )


def test_an_instance_of_another_study_than_the_url_names_is_refused(township):
    url = f"{URL}/1.2.826.0.1.3680043.8.498.1"
    response = post(township, multipart(dicom("CT_small.dcm")), url=url)
    assert response.status_code == 409
    (failed,) = sequence(response.json(), "00081198")
    assert value(failed, FAILURE_REASON) == 0xC409
    assert value(response.json(), "00081190").endswith(
        "/dicomweb/studies/1.2.826.0.1.3680043.8.498.1"
    )
    assert Instance.objects.count() == 0


def test_an_instance_of_the_study_the_url_names_is_stored(township):
    study_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm")).StudyInstanceUID
    response = post(township, multipart(dicom("CT_small.dcm")), url=f"{URL}/{study_uid}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "multipart/form-data; boundary=x",
        'multipart/related; type="application/dicom+json"; boundary=x',
    ],
)
def test_a_body_that_is_not_multipart_related_dicom_is_415(township, content_type):
    assert post(township, read("CT_small.dcm"), content_type=content_type).status_code == 415


def test_a_body_that_is_not_valid_multipart_is_400(township):
    response = post(township, b"no boundary anywhere")
    assert response.status_code == 400
    assert response.json()["detail"]


def test_a_missing_boundary_is_400(township):
    content_type = 'multipart/related; type="application/dicom"'
    assert post(township, b"--x--", content_type=content_type).status_code == 400


def test_an_anonymous_request_is_401(client):
    response = post(client, multipart(dicom("CT_small.dcm")))
    assert response.status_code == 401
    assert Instance.objects.count() == 0


def test_a_user_who_treats_at_no_institution_is_403(client, actors):
    client.force_login(actors.radiologist)  # centre-scoped: sends for no institution
    assert post(client, multipart(dicom("CT_small.dcm"))).status_code == 403


def test_http_basic_credentials_are_enough(client):
    token = base64.b64encode(f"township:{PASSWORD}".encode()).decode()
    response = client.post(
        URL,
        data=multipart(dicom("CT_small.dcm")),
        content_type=CONTENT_TYPE,
        HTTP_AUTHORIZATION=f"Basic {token}",
    )
    assert response.status_code == 200


# --- the multipart reader on its own --------------------------------------------------


def parts_of(body: bytes, boundary: str, chunk_size: int) -> list[tuple[dict[str, str], bytes]]:
    reader = MultipartReader(io.BytesIO(body), boundary, chunk_size=chunk_size)
    parts = []
    while (headers := reader.next_part()) is not None:
        out = io.BytesIO()
        reader.copy_body(out)
        parts.append((headers, out.getvalue()))
    return parts


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, 1024 * 1024])
def test_the_reader_finds_boundaries_across_chunk_edges(chunk_size):
    body = (
        b"preamble to ignore\r\n"
        b"--xyz\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--xy not yet\r\n"
        b"--xyz  \r\n\r\n\r\nsecond, no headers\r\n"
        b"--xyz\r\nContent-Type: application/dicom\r\nContent-ID: <3>\r\n\r\n\r\n"
        b"--xyz--\r\nepilogue"
    )
    assert parts_of(body, "xyz", chunk_size) == [
        ({"content-type": "application/dicom"}, b"first\r\n--xy not yet"),
        ({}, b"\r\nsecond, no headers"),
        ({"content-type": "application/dicom", "content-id": "<3>"}, b""),
    ]


def test_the_reader_cuts_a_body_at_the_limit_and_reports_its_whole_size():
    reader = MultipartReader(io.BytesIO(b"--b\r\n\r\n0123456789\r\n--b--"), "b", chunk_size=3)
    reader.next_part()
    out = io.BytesIO()
    assert reader.copy_body(out, limit=4) == 10
    assert out.getvalue() == b"0123"
    assert reader.next_part() is None


@pytest.mark.parametrize(
    "body",
    [
        b"--b\r\n\r\nno closing boundary",
        b"--b\r\nContent-Type application/dicom\r\n\r\nx\r\n--b--",
        b"--bb\r\n\r\nx\r\n--b--",
        b"",
    ],
)
def test_the_reader_refuses_malformed_bodies(body):
    with pytest.raises(MalformedMultipart):
        parts_of(body, "b", 4)


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_stores_instances_over_http_basic(live_server):
    from dicomweb_client.api import DICOMwebClient
    from requests import Session

    datasets = [
        pydicom.dcmread(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    # Closed before the live server stops, so that no request thread outlives it.
    with Session() as session:
        session.auth = ("township", PASSWORD)
        web = DICOMwebClient(url=live_server.url + "/dicomweb", session=session)
        result = web.store_instances(datasets)
    stored = {item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence}
    assert stored == {ds.SOPInstanceUID for ds in datasets}
    assert Instance.objects.filter(received_via="stow").count() == 2
