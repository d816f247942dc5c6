"""The consult pages in a browser's place: the right people act, others get 403, bad input is a 400.

Named actors from the demo: ``township`` asks, ``coordinator`` pre-reviews and routes,
``specialist`` (cardiology, county hospital) accepts and books; ``outsider`` (another
association) and ``radiologist`` have no part. 刘桂兰 is a resident of Xiba township.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from association.models import Institution, Specialty
from audit.models import AuditEvent, Outcome
from consult.models import Attachment, AttachmentKind, Consult, ExpertStatus, Slot, Status
from consult.services import consult_request, consult_respond, consult_review, slot_create
from tests.i18n.test_catalogues import english_left_on

pytestmark = pytest.mark.django_db

QUESTION = "胸痛两小时,心电图ST段抬高,请会诊。"


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture
def login_as(client: Client, actors: Any) -> Callable[..., Client]:
    def _login(username: str, *, language: str = "en") -> Client:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


@pytest.fixture
def liu(residents):
    return residents["刘桂兰"]


@pytest.fixture
def county():
    return Institution.objects.get(code="county")


@pytest.fixture
def cardiology():
    return Specialty.objects.get(code="cardiology")


def _form(patient, county, cardiology, **changes: Any) -> dict[str, Any]:
    data = {
        "patient": patient.pk,
        "question": QUESTION,
        "history": "高血压十年。",
        "priority": "urgent",
        "mode": "video",
        "target_kind": "specialty",
        "target_institution": county.pk,
        "target_specialty": cardiology.pk,
        "share_consent": "on",
    }
    return data | changes


@pytest.fixture
def requested(actors, liu, county, cardiology) -> Consult:
    """An urgent video consult from township to cardiology, waiting for pre-review."""
    return consult_request(
        actor=actors.township,
        patient_id=liu.pk,
        question=QUESTION,
        priority="urgent",
        mode="video",
        target_kind="specialty",
        target_institution_id=county.pk,
        target_specialty_id=cardiology.pk,
        consent_given=True,
    )


@pytest.fixture
def routed(actors, requested) -> Consult:
    return consult_review(
        actor=actors.coordinator,
        consult_id=requested.pk,
        decision="route",
        expert_ids=[actors.specialist.pk],
    )


@pytest.fixture
def accepted(actors, routed) -> Consult:
    return consult_respond(actor=actors.specialist, consult_id=routed.pk, accept=True)


@pytest.fixture
def free_slot(actors) -> Slot:
    start = timezone.now().replace(second=0, microsecond=0) + dt.timedelta(days=3, hours=1)
    return slot_create(actor=actors.specialist, start=start, end=start + dt.timedelta(minutes=30))


def _denied(**filters: Any) -> bool:
    return AuditEvent.objects.filter(outcome=Outcome.DENIED, **filters).exists()


# --- The whole way, page by page ------------------------------------------------------------


def test_township_requests_coordinator_routes_specialist_accepts_and_books(
    login_as, actors, liu, county, cardiology, free_slot
):
    township = login_as("township")
    response = township.post("/consults/new/", _form(liu, county, cardiology))
    consult = Consult.objects.filter(patient=liu).latest("created_at")
    assert response.status_code == 302
    assert response["Location"] == f"/consults/{consult.pk}/"
    assert consult.status == Status.PENDING_REVIEW

    coordinator = login_as("coordinator")
    html = coordinator.get("/consults/?scope=review").content.decode()
    assert consult.number in html
    response = coordinator.post(
        f"/consults/{consult.pk}/review/",
        {"decision": "route", "experts": [actors.specialist.pk], "note": ""},
    )
    assert response.status_code == 302
    consult.refresh_from_db()
    assert consult.status == Status.PENDING_EXPERT

    specialist = login_as("specialist")
    assert consult.number in specialist.get("/consults/?scope=invited").content.decode()
    response = specialist.post(f"/consults/{consult.pk}/respond/", {"decision": "accept"})
    assert response.status_code == 302
    assert response["Location"] == f"/consults/{consult.pk}/book/"
    book_page = specialist.get(response["Location"])
    assert book_page.status_code == 200
    assert f'value="{free_slot.pk}"' in book_page.content.decode()
    response = specialist.post(f"/consults/{consult.pk}/book/", {"slot": free_slot.pk})
    assert response.status_code == 302
    consult.refresh_from_db()
    assert consult.status == Status.SCHEDULED
    assert consult.scheduled_start == free_slot.start

    html = login_as("township").get(f"/consults/{consult.pk}/").content.decode()
    assert "Scheduled" in html
    assert QUESTION in html
    assert "孙主任" in html
    assert f"/consults/{consult.pk}/room/" in html  # join the room
    assert "Consultation requested" in html
    assert "Slot booked" in html


def test_the_list_shows_status_priority_masked_resident_id_and_clock(login_as, requested, liu):
    html = login_as("township").get("/consults/?scope=mine").content.decode()
    assert requested.number in html
    assert liu.masked_resident_id in html
    assert liu.resident_id not in html
    assert "Waiting for pre-review" in html
    assert "Urgent" in html
    assert 'class="sla' in html
    assert "data-due=" in html


def test_unknown_list_filter_is_a_400_and_the_list_still_shows(login_as, requested):
    response = login_as("township").get("/consults/?status=whenever")
    assert response.status_code == 400
    assert "Unknown filter" in response.content.decode()


def test_list_filters_by_priority(login_as, requested):
    client = login_as("township")
    assert requested.number in client.get("/consults/?scope=mine&priority=urgent").content.decode()
    assert (
        requested.number
        not in client.get("/consults/?scope=mine&priority=routine").content.decode()
    )


# --- The request form -----------------------------------------------------------------------


def test_the_request_form_offers_experts_hospitals_and_consent(login_as, liu):
    response = login_as("township").get(f"/consults/new/?patient={liu.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Request a consultation" in html
    assert "孙主任" in html
    assert "青山县人民医院" in html
    assert "心血管内科" in html
    assert 'name="share_consent"' in html
    assert 'name="files"' in html
    assert liu.masked_resident_id in html


def test_without_a_resident_the_form_searches_for_one(login_as, liu):
    client = login_as("township")
    assert "Which resident?" in client.get("/consults/new/").content.decode()
    html = client.get("/consults/new/", {"q": "刘桂兰"}).content.decode()
    assert f"/consults/new/?patient={liu.pk}" in html


def test_files_are_stored_and_downloaded_with_an_audit_event(login_as, liu, county, cardiology):
    client = login_as("township")
    upload = SimpleUploadedFile("ecg.pdf", b"%PDF-1.4 ecg", content_type="application/pdf")
    response = client.post("/consults/new/", _form(liu, county, cardiology, files=[upload]))
    assert response.status_code == 302
    attachment = Attachment.objects.get(kind=AttachmentKind.FILE, title="ecg.pdf")
    url = f"/consults/{attachment.consult_id}/attachments/{attachment.pk}/"
    assert url in client.get(response["Location"]).content.decode()
    download = client.get(url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"%PDF-1.4 ecg"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert AuditEvent.objects.filter(
        action="consult.attachment", resource_id=str(attachment.consult_id)
    ).exists()


def test_requester_adds_a_file_later_from_the_consult_page(login_as, requested):
    client = login_as("township")
    photo = SimpleUploadedFile("rash.png", b"\x89PNG fake", content_type="image/png")
    response = client.post(f"/consults/{requested.pk}/attach/", {"files": [photo]})
    assert response.status_code == 302
    assert requested.attachments.filter(title="rash.png").exists()
    response = client.post(f"/consults/{requested.pk}/attach/", {})
    assert response.status_code == 400
    assert "Choose a file or a study to attach." in response.content.decode()


def test_bad_form_input_is_a_400_with_the_message_and_nothing_stored(
    login_as, liu, county, cardiology
):
    before = Consult.objects.count()
    response = login_as("township").post(
        "/consults/new/",
        _form(liu, county, cardiology, question="", priority="whenever", target_institution=""),
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "This field is required." in html
    assert "Choose the hospital to ask." in html
    assert Consult.objects.count() == before
    assert AuditEvent.objects.filter(action="consult.request", outcome=Outcome.FAILED).exists()


def test_a_refused_file_stores_nothing_at_all(login_as, liu, county, cardiology):
    before = Consult.objects.count()
    page = SimpleUploadedFile("page.html", b"<script>alert(1)</script>", content_type="text/html")
    response = login_as("township").post(
        "/consults/new/", _form(liu, county, cardiology, files=[page])
    )
    assert response.status_code == 400
    assert "cannot be attached" in response.content.decode()
    assert Consult.objects.count() == before
    assert not Attachment.objects.filter(title="page.html").exists()
    assert AuditEvent.objects.filter(action="consult.request", outcome=Outcome.FAILED).exists()


def test_a_multidisciplinary_request_needs_two_experts(login_as, actors, liu, county, cardiology):
    response = login_as("township").post(
        "/consults/new/",
        _form(liu, county, cardiology, target_kind="mdt", experts=[actors.specialist.pk]),
    )
    assert response.status_code == 400
    assert "at least two experts" in response.content.decode()


def test_outsider_cannot_open_the_form_for_another_associations_resident(login_as, liu):
    response = login_as("outsider").get(f"/consults/new/?patient={liu.pk}")
    assert response.status_code == 403
    assert _denied(action="patient.consult_form", patient_id=liu.pk)


def test_radiologist_may_not_request_a_consult(login_as, liu):
    assert login_as("radiologist").get(f"/consults/new/?patient={liu.pk}").status_code == 403
    assert _denied(action="consult.request")


# --- The consult page and its refusals --------------------------------------------------------


def test_outsider_gets_403_and_an_audit_event(login_as, requested):
    response = login_as("outsider").get(f"/consults/{requested.pk}/")
    assert response.status_code == 403
    assert _denied(action="consult.view", resource_id=str(requested.pk))


def test_an_unknown_consult_is_a_404(login_as):
    assert login_as("township").get("/consults/999999/").status_code == 404


def test_requester_cannot_use_the_coordinators_review_page(login_as, requested):
    response = login_as("township").get(f"/consults/{requested.pk}/review/")
    assert response.status_code == 403
    assert _denied(action="consult.review", resource_id=str(requested.pk))


def test_returning_without_a_note_is_a_400_and_changes_nothing(login_as, requested):
    response = login_as("coordinator").post(
        f"/consults/{requested.pk}/review/", {"decision": "return", "note": ""}
    )
    assert response.status_code == 400
    assert "Say what is missing" in response.content.decode()
    requested.refresh_from_db()
    assert requested.status == Status.PENDING_REVIEW


def test_returned_consult_is_completed_and_sent_again(login_as, requested):
    login_as("coordinator").post(
        f"/consults/{requested.pk}/review/", {"decision": "return", "note": "请补充心电图。"}
    )
    client = login_as("township")
    html = client.get(f"/consults/{requested.pk}/").content.decode()
    assert "请补充心电图。" in html
    response = client.post(
        f"/consults/{requested.pk}/resubmit/", {"question": QUESTION, "history": "已附心电图。"}
    )
    assert response.status_code == 302
    requested.refresh_from_db()
    assert requested.status == Status.PENDING_REVIEW


def test_declining_needs_a_reason(login_as, routed):
    client = login_as("specialist")
    response = client.post(f"/consults/{routed.pk}/respond/", {"decision": "decline"})
    assert response.status_code == 400
    assert "Give a reason for declining." in response.content.decode()
    assert routed.experts.get().status == ExpertStatus.INVITED
    response = client.post(
        f"/consults/{routed.pk}/respond/", {"decision": "decline", "reason": "本周出差。"}
    )
    assert response.status_code == 302
    assert routed.experts.get().status == ExpertStatus.DECLINED


def test_booking_someone_elses_slot_is_refused(login_as, accepted):
    response = login_as("specialist").post(f"/consults/{accepted.pk}/book/", {"slot": 999999})
    assert response.status_code == 400
    accepted.refresh_from_db()
    assert accepted.status == Status.ACCEPTED


def test_requester_cancels_with_a_reason(login_as, requested):
    client = login_as("township")
    assert client.post(f"/consults/{requested.pk}/cancel/", {"reason": ""}).status_code == 400
    response = client.post(f"/consults/{requested.pk}/cancel/", {"reason": "病人已转院。"})
    assert response.status_code == 302
    requested.refresh_from_db()
    assert requested.status == Status.CANCELLED
    assert "病人已转院。" in client.get(f"/consults/{requested.pk}/").content.decode()


def test_no_show_before_the_appointment_is_refused(login_as, accepted):
    response = login_as("specialist").get(f"/consults/{accepted.pk}/no-show/")
    assert response.status_code == 403


def test_changes_need_a_post_with_a_csrf_token(actors, requested):
    client = Client(enforce_csrf_checks=True)
    client.force_login(actors.township)
    response = client.post(f"/consults/{requested.pk}/cancel/", {"reason": "x"})
    assert response.status_code == 403
    requested.refresh_from_db()
    assert requested.status == Status.PENDING_REVIEW


# --- Availability -----------------------------------------------------------------------------


def test_specialist_adds_a_range_of_slots_and_removes_a_free_one(login_as, actors):
    client = login_as("specialist")
    day = timezone.localdate() + dt.timedelta(days=20)
    response = client.post(
        "/consults/availability/",
        {"day": day.isoformat(), "start": "08:00", "end": "09:30", "minutes": "30"},
    )
    assert response.status_code == 302
    slots = list(Slot.objects.filter(expert=actors.specialist, start__date=day).order_by("start"))
    assert len(slots) == 3
    html = client.get("/consults/availability/").content.decode()
    assert day.isoformat() in html
    assert "08:30" in html
    response = client.post("/consults/availability/remove/", {"slot": slots[0].pk})
    assert response.status_code == 302
    assert not Slot.objects.filter(pk=slots[0].pk).exists()


def test_a_range_ending_before_it_starts_is_a_400(login_as, actors):
    day = timezone.localdate() + dt.timedelta(days=21)
    response = login_as("specialist").post(
        "/consults/availability/",
        {"day": day.isoformat(), "start": "10:00", "end": "09:00", "minutes": "30"},
    )
    assert response.status_code == 400
    assert "The end must be after the start." in response.content.decode()
    assert not Slot.objects.filter(expert=actors.specialist, start__date=day).exists()


def test_only_specialists_manage_availability(login_as):
    assert login_as("township").get("/consults/availability/").status_code == 403
    assert _denied(action="consult.slot.create")


# --- Chinese first ------------------------------------------------------------------------------


def _visible_pages(login_as, actors, consult: Consult) -> dict[str, str]:
    pages = {}
    for username, path in [
        ("township", "/consults/"),
        ("township", f"/consults/new/?patient={consult.patient_id}"),
        ("township", "/consults/new/?q=刘"),
        ("township", f"/consults/{consult.pk}/"),
        ("township", f"/consults/{consult.pk}/cancel/"),
        ("specialist", f"/consults/{consult.pk}/"),
        ("specialist", f"/consults/{consult.pk}/book/"),
        ("specialist", "/consults/availability/"),
    ]:
        response = login_as(username, language="zh-hans").get(path)
        assert response.status_code == 200, path
        pages[f"{username} {path}"] = response.content.decode()
    return pages


def test_pages_show_no_english_in_chinese(login_as, actors, accepted, free_slot):
    pages = _visible_pages(login_as, actors, accepted)
    data = frozenset({QUESTION, accepted.number})
    leftovers = {
        label: found for label, html in pages.items() if (found := english_left_on(html, data))
    }
    assert not leftovers


def test_the_home_page_links_to_the_consultations(login_as):
    html = login_as("township").get("/").content.decode()
    assert re.search(r'href="/consults/', html)
