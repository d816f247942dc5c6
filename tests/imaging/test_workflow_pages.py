"""The reading workflow's pages: the right people see them, others get 403, bad input is a 400."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pydicom
import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.utils import timezone
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from accounts.models import User
from association.models import DiagnosticCentre, Institution, Membership, Role
from audit.models import AuditEvent, Outcome
from imaging.home import imaging_home_context, patient_imaging_context
from imaging.ingest import Origin, instance_ingest
from imaging.models import ImagingRequest, Priority, ReportVersion, RequestStatus
from imaging.services import imaging_request_create, report_save_draft, report_sign, worklist_claim

pytestmark = pytest.mark.django_db


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture
def login_as(client: Client, actors: Any) -> Callable[..., Client]:
    def _login(username: str, *, language: str = "en") -> Client:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


@pytest.fixture
def centre():
    return DiagnosticCentre.objects.get(code="qingshan-imaging")


@pytest.fixture
def liu(residents):
    return residents["刘桂兰"]


@pytest.fixture
def chen(residents):
    return residents["陈志强"]


@pytest.fixture
def make_request(actors, centre):
    def _make(patient, *, priority=Priority.ROUTINE, record_consent=False):
        return imaging_request_create(
            actor=actors.township,
            patient_id=patient.pk,
            centre=centre,
            modality="CT",
            exam="Head CT without contrast",
            clinical_question="Sudden headache since this morning.",
            priority=priority,
            record_consent=record_consent,
        )

    return _make


@pytest.fixture
def with_images(actors, tmp_path):
    def _send(imaging_request):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.AccessionNumber = imaging_request.accession_number
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path)
        origin = Origin(
            institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
        )
        with open(path, "rb") as f:
            return instance_ingest(f, origin=origin).instance.series.study

    return _send


@pytest.fixture
def claimed(actors, liu, make_request, with_images):
    imaging_request = make_request(liu, priority=Priority.URGENT)
    with_images(imaging_request)
    worklist_claim(actor=actors.radiologist, request_id=imaging_request.pk)
    return imaging_request


@pytest.fixture
def signed(actors, claimed):
    report_save_draft(
        actor=actors.radiologist,
        request_id=claimed.pk,
        template="ct-head",
        findings="No abnormal density.",
        impression="Unremarkable head CT.",
        critical=False,
        mutual_recognition=True,
        valid_until=timezone.localdate() + dt.timedelta(days=30),
        measurements=[],
        key_images=[],
    )
    report_sign(actor=actors.radiologist, request_id=claimed.pk)
    return claimed


def _report_post(**changes: str) -> dict[str, str]:
    data = {
        "template": "ct-head",
        "findings": "No abnormal density in the brain parenchyma.",
        "impression": "Unremarkable non-contrast CT of the head.",
        "mutual_recognition": "on",
        "valid_until": (timezone.localdate() + dt.timedelta(days=30)).isoformat(),
        "measurements": json.dumps(
            [{"uid": "m1", "type": "length", "seriesUid": "1.2", "stats": {"length": 8}}]
        ),
        "key_images": "[]",
        "action": "save",
    }
    return data | changes


# --- The request form -----------------------------------------------------------------------


def test_township_doctor_opens_the_request_form_from_the_patient_page(login_as, liu):
    response = login_as("township").get(f"/imaging/requests/new/?patient={liu.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Request imaging" in html
    assert "青山县医学影像中心" in html
    assert "Clinical question" in html


def test_the_form_asks_for_consent_when_none_covers_the_centre(login_as, chen):
    html = login_as("township").get(f"/imaging/requests/new/?patient={chen.pk}").content.decode()
    assert 'name="record_consent"' in html


def test_the_form_without_a_patient_is_a_400(login_as):
    response = login_as("township").get("/imaging/requests/new/")
    assert response.status_code == 400
    assert "Open the resident" in response.content.decode()
    assert login_as("township").get("/imaging/requests/new/?patient=abc").status_code == 400


def test_outsider_gets_403_on_the_request_form(login_as, liu):
    assert login_as("outsider").get(f"/imaging/requests/new/?patient={liu.pk}").status_code == 403


def test_radiologist_cannot_request_imaging(login_as, liu):
    assert (
        login_as("radiologist").get(f"/imaging/requests/new/?patient={liu.pk}").status_code == 403
    )


def test_sending_the_form_creates_the_request_and_shows_it(login_as, liu):
    client = login_as("township")
    response = client.post(
        "/imaging/requests/new/",
        {
            "patient": liu.pk,
            "centre": DiagnosticCentre.objects.get(code="qingshan-imaging").pk,
            "modality": "DX",
            "exam": "Chest PA",
            "clinical_question": "Cough for three weeks.",
            "priority": "urgent",
        },
    )
    imaging_request = ImagingRequest.objects.get(patient=liu)
    assert response.status_code == 302
    assert response["Location"] == f"/imaging/requests/{imaging_request.pk}/"
    html = client.get(response["Location"]).content.decode()
    assert imaging_request.accession_number in html
    assert "Cough for three weeks." in html


def test_bad_form_input_is_a_400_with_messages_and_audited(login_as, liu, centre):
    response = login_as("township").post(
        "/imaging/requests/new/",
        {"patient": liu.pk, "centre": centre.pk, "modality": "XX", "priority": "whenever"},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Please correct the fields marked below." in html
    assert "This field is required." in html
    assert not ImagingRequest.objects.exists()
    assert AuditEvent.objects.filter(
        action="imaging.request.create", outcome=Outcome.FAILED, actor_username="township"
    ).exists()


def test_no_consent_ticked_is_a_400_saying_so(login_as, chen, centre):
    response = login_as("township").post(
        "/imaging/requests/new/",
        {
            "patient": chen.pk,
            "centre": centre.pk,
            "modality": "CT",
            "exam": "Head CT",
            "clinical_question": "Fall.",
            "priority": "routine",
        },
    )
    assert response.status_code == 400
    assert "has not consented" in response.content.decode()


# --- The clinic's pages ----------------------------------------------------------------------


def test_clinic_list_shows_its_requests(login_as, liu, make_request):
    imaging_request = make_request(liu)
    html = login_as("township").get("/imaging/requests/").content.decode()
    assert imaging_request.accession_number in html


def test_radiologist_has_no_clinic_list(login_as):
    assert login_as("radiologist").get("/imaging/requests/").status_code == 403


def test_the_request_page_is_403_for_outsider_and_404_for_nothing(login_as, liu, make_request):
    imaging_request = make_request(liu)
    assert login_as("outsider").get(f"/imaging/requests/{imaging_request.pk}/").status_code == 403
    assert login_as("township").get("/imaging/requests/999999/").status_code == 404


def test_cancel_without_reason_is_a_400_and_with_reason_cancels(login_as, liu, make_request):
    imaging_request = make_request(liu)
    client = login_as("township")
    url = f"/imaging/requests/{imaging_request.pk}/cancel/"
    assert client.post(url, {"reason": ""}).status_code == 400
    assert client.post(url, {"reason": "Went to the county hospital"}).status_code == 302
    imaging_request.refresh_from_db()
    assert imaging_request.status == RequestStatus.CANCELLED


def test_attach_with_a_malformed_uid_is_a_400(login_as, liu, make_request):
    imaging_request = make_request(liu)
    response = login_as("township").post(
        f"/imaging/requests/{imaging_request.pk}/attach/", {"study_uid": "not-a-uid"}
    )
    assert response.status_code == 400
    assert "digits and dots" in response.content.decode()


# --- The worklist and the reading page --------------------------------------------------------


def test_radiologist_sees_the_worklist_with_clocks_and_claim_buttons(
    login_as, liu, make_request, with_images
):
    imaging_request = make_request(liu, priority=Priority.EMERGENCY)
    with_images(imaging_request)
    html = login_as("radiologist").get("/imaging/worklist/").content.decode()
    assert "刘桂兰" in html
    assert "priority-emergency" in html
    assert 'data-since="' in html
    assert f"/imaging/worklist/{imaging_request.pk}/claim/" in html


def test_clinic_doctor_gets_403_on_the_worklist(login_as):
    assert login_as("township").get("/imaging/worklist/").status_code == 403


def test_an_unknown_worklist_filter_is_a_400(login_as):
    response = login_as("radiologist").get("/imaging/worklist/?status=bogus")
    assert response.status_code == 400
    assert "Unknown status filter" in response.content.decode()


def test_claiming_opens_the_reading_page(login_as, liu, make_request, with_images):
    imaging_request = make_request(liu)
    study = with_images(imaging_request)
    client = login_as("radiologist")
    response = client.post(f"/imaging/worklist/{imaging_request.pk}/claim/")
    assert response.status_code == 302
    assert response["Location"] == f"/imaging/requests/{imaging_request.pk}/read/"
    html = client.get(response["Location"]).content.decode()
    assert study.study_uid in html  # in the viewer options
    assert 'id="viewer-options"' in html
    assert "Viewer loading" in html
    assert 'name="action" value="sign"' in html
    assert "Sudden headache" in html


def test_a_second_radiologist_gets_409_when_claiming_a_claimed_study(client, claimed, centre):
    other = User.objects.create_user(username="radiologist2")
    Membership.objects.create(
        user=other, institution=centre.host, centre=centre, role=Role.RADIOLOGIST
    )
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(other)
    response = client.post(f"/imaging/worklist/{claimed.pk}/claim/")
    assert response.status_code == 409
    assert "Another radiologist is already reading" in response.content.decode()


def test_clinic_doctor_gets_403_on_the_reading_page(login_as, claimed):
    assert login_as("township").get(f"/imaging/requests/{claimed.pk}/read/").status_code == 403
    assert login_as("township").post(f"/imaging/worklist/{claimed.pk}/claim/").status_code == 403


def test_save_draft_then_sign_from_the_reading_page(login_as, actors, claimed):
    client = login_as("radiologist")
    url = f"/imaging/requests/{claimed.pk}/read/"
    assert client.post(url, _report_post()).status_code == 302
    assert claimed.report.measurements[0]["uid"] == "m1"
    response = client.post(url, _report_post(action="sign"))
    assert response.status_code == 302
    assert response["Location"] == f"/imaging/requests/{claimed.pk}/"
    claimed.refresh_from_db()
    assert claimed.status == RequestStatus.REPORTED

    html = login_as("township").get(f"/imaging/requests/{claimed.pk}/").content.decode()
    assert "Unremarkable non-contrast CT of the head." in html
    assert "Signed by" in html
    assert "Mutually recognised" in html
    assert "Open the images" in html


def test_bad_report_input_is_a_400_with_messages(login_as, claimed):
    client = login_as("radiologist")
    url = f"/imaging/requests/{claimed.pk}/read/"
    past = client.post(url, _report_post(valid_until="2000-01-01"))
    assert past.status_code == 400
    assert "must not be in the past" in past.content.decode()
    bad_json = client.post(url, _report_post(measurements="{not json"))
    assert bad_json.status_code == 400
    assert "could not be read" in bad_json.content.decode()
    bad_template = client.post(url, _report_post(template="nonsense"))
    assert bad_template.status_code == 400
    empty = client.post(url, _report_post(action="sign", impression=""))
    assert empty.status_code == 400
    assert "Write the findings and the impression" in empty.content.decode()
    assert not ReportVersion.objects.exists()


def test_amend_page_needs_a_reason_and_adds_a_version(login_as, signed):
    client = login_as("radiologist")
    url = f"/imaging/requests/{signed.pk}/amend/"
    assert client.get(url).status_code == 200
    missing = client.post(url, _report_post(impression="Small subdural haematoma."))
    assert missing.status_code == 400
    ok = client.post(
        url, _report_post(impression="Small subdural haematoma.", reason="Missed on first read")
    )
    assert ok.status_code == 302
    html = login_as("township").get(f"/imaging/requests/{signed.pk}/").content.decode()
    assert "Version history" in html
    assert "Missed on first read" in html
    assert "Small subdural haematoma." in html
    assert "Unremarkable head CT." in html  # version 1 kept


def test_the_requester_opens_the_images_read_only_and_outsider_cannot(login_as, signed):
    study = signed.studies.get()
    url = f"/imaging/studies/{study.study_uid}/view/"
    response = login_as("township").get(url)
    assert response.status_code == 200
    options = json.loads(
        response.content.decode()
        .split('id="viewer-options" type="application/json">')[1]
        .split("</script>")[0]
    )
    assert options["readOnly"] is True
    assert options["studyUid"] == study.study_uid
    assert login_as("outsider").get(url).status_code == 403


def test_pages_need_a_session(client, liu):
    response = client.get("/imaging/worklist/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# --- Home and patient page context --------------------------------------------------------------


def test_home_context_for_a_radiologist_lists_the_top_of_the_worklist(actors, claimed):
    request = RequestFactory().get("/")
    request.user = actors.radiologist
    membership = Membership.objects.get(user=actors.radiologist)
    context = imaging_home_context(request, membership)
    assert context["imaging"]["waiting"] == 1
    assert context["imaging"]["worklist"][0].request == claimed


def test_home_context_for_a_clinic_doctor_lists_open_requests(actors, liu, make_request):
    imaging_request = make_request(liu)
    request = RequestFactory().get("/")
    request.user = actors.township
    context = imaging_home_context(request, Membership.objects.get(user=actors.township))
    assert context["imaging"]["requests"] == [imaging_request]
    request.user = actors.admin
    assert imaging_home_context(request, Membership.objects.get(user=actors.admin)) == {}


def test_patient_context_lists_studies_and_offers_a_request(actors, liu, signed):
    context = patient_imaging_context(actors.township, liu)["patient_imaging"]
    assert context["can_request"] is True
    assert [s.request_id for s in context["studies"]] == [signed.pk]
    assert (
        patient_imaging_context(actors.radiologist, liu)["patient_imaging"]["can_request"] is False
    )


# --- Query counts -----------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    ("username", "url"), [("radiologist", "/imaging/worklist/"), ("township", "/imaging/requests/")]
)
def test_list_pages_do_not_query_per_row(login_as, liu, make_request, username, url):
    make_request(liu)
    client = login_as(username)
    one = _queries(client, url)
    for priority in (Priority.URGENT, Priority.EMERGENCY, Priority.ROUTINE):
        make_request(liu, priority=priority)
    assert _queries(client, url) == one


# --- Home and patient pages, wired as the lead will wire them -----------------------------------


@pytest.fixture
def wired(monkeypatch):
    """core.views and records.views with the imaging context added (see imaging/home.py)."""
    import core.views
    import records.views

    original_home = core.views._home_context

    def home_context(request, membership):
        return {**original_home(request, membership), **imaging_home_context(request, membership)}

    original_render = records.views.render

    def render(request, template, context=None, **kwargs):
        if template == "records/detail.html" and context is not None:
            context = {**context, **patient_imaging_context(request.user, context["patient"])}
        return original_render(request, template, context, **kwargs)

    monkeypatch.setattr(core.views, "_home_context", home_context)
    monkeypatch.setattr(records.views, "render", render)


def test_radiologist_home_shows_the_top_of_the_worklist(wired, login_as, claimed):
    html = login_as("radiologist").get("/").content.decode()
    assert "Reading worklist" in html
    assert f"/imaging/requests/{claimed.pk}/read/" in html
    assert "Open the worklist" in html


def test_township_home_links_to_imaging_and_lists_open_requests(wired, login_as, liu, make_request):
    imaging_request = make_request(liu)
    html = login_as("township").get("/").content.decode()
    assert "Request imaging" in html
    assert f"/imaging/requests/{imaging_request.pk}/" in html


def test_patient_page_offers_imaging_and_lists_studies(wired, login_as, liu, signed):
    html = login_as("township").get(f"/patients/{liu.pk}/").content.decode()
    assert f"/imaging/requests/new/?patient={liu.pk}" in html
    assert "/imaging/studies/" in html
    html = login_as("radiologist").get(f"/patients/{liu.pk}/").content.decode()
    assert "/imaging/requests/new/" not in html
