"""The consult opinion: the specialist signs, the township doctor reads the PDF, amendments.

The consults are set up in the database as the workflow leaves them once an expert accepted
(the requesting township doctor, the county specialist as accepted expert); everything from
the draft on goes through ``consult.opinion`` and the opinion pages.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone, translation

from association.models import Institution
from audit.models import AuditEvent, Outcome
from consult.models import (
    Consult,
    ConsultEvent,
    ConsultExpert,
    ExpertStatus,
    Mode,
    Opinion,
    OpinionVersion,
    Recommendation,
    Status,
    TargetKind,
)
from consult.numbering import consult_create_numbered
from consult.opinion import (
    opinion_amend,
    opinion_pdf_for_user,
    opinion_save_draft,
    opinion_sign,
)
from objectstore import get_store
from objectstore.local import LocalStore
from realtime.models import Notification, Severity
from records.models import TimelineEvent
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """Messages are matched in English (the default language is Chinese)."""
    with translation.override("en"):
        yield


@pytest.fixture
def liu(residents):
    """A resident of Xiba township (the township doctor's own patient)."""
    return residents["刘桂兰"]


@pytest.fixture
def make_consult(actors, liu):
    """A consult from the township doctor about 刘桂兰 that the county specialist accepted."""

    def _make(*, status=Status.ACCEPTED, target_kind=TargetKind.EXPERT, mode=Mode.WRITTEN):
        county = Institution.objects.get(code="county")
        consult = consult_create_numbered(
            patient=liu,
            requesting_institution=Institution.objects.get(code="xiba"),
            requested_by=actors.township,
            question="胸闷两周，心电图ST段压低，请协助诊治。",
            history="高血压十年。",
            priority="routine",
            mode=mode,
            target_kind=target_kind,
            target_institution=county,
            status=status,
        )
        ConsultExpert.objects.create(
            consult=consult,
            user=actors.specialist,
            institution=county,
            status=ExpertStatus.ACCEPTED,
            lead=True,
        )
        return consult

    return _make


@pytest.fixture
def consult(make_consult):
    return make_consult()


FIELDS = {
    "findings": "ST depression in V4-V6; troponin normal.",
    "diagnosis": "Stable angina pectoris (稳定型心绞痛).",
    "advice": "Aspirin 100 mg daily; statin; exercise test within 2 weeks. EF 55% is fine.",
    "recommendation": Recommendation.MANAGE_LOCALLY,
}


def _sign(actor, consult, **changes):
    return opinion_sign(actor=actor, consult_id=consult.pk, **(FIELDS | changes))


def _audits(action, outcome):
    return AuditEvent.objects.filter(action=action, outcome=outcome)


# --- Signing ----------------------------------------------------------------------------------


def test_specialist_signs_and_the_consult_is_completed(actors, consult):
    opinion = _sign(actors.specialist, consult)

    assert opinion.status == "signed"
    assert opinion.version == 1
    version = OpinionVersion.objects.get(opinion=opinion)
    assert version.version == 1
    assert version.author == actors.specialist
    info = get_store().stat(version.pdf_key)
    assert info.size == version.pdf_size > 1000
    assert len(version.pdf_sha256) == 64
    consult.refresh_from_db()
    assert consult.status == Status.COMPLETED
    assert consult.ended_at is not None
    assert ConsultEvent.objects.filter(consult=consult, kind="signed").exists()
    assert _audits("consult.opinion.sign", Outcome.ALLOWED).filter(resource_id=consult.pk).exists()


def test_signing_files_the_opinion_to_the_patient_record(actors, consult, liu):
    _sign(actors.specialist, consult)

    entry = TimelineEvent.objects.get(patient=liu, kind="consult.opinion")
    assert entry.link
    assert str(consult.pk) in entry.link
    assert entry.data["consult"] == consult.pk
    assert entry.data["version"] == 1
    assert "Stable angina" in entry.summary


def test_the_requester_is_notified_at_once(actors, consult):
    _sign(actors.specialist, consult)

    note = Notification.objects.get(recipient=actors.township, kind="consult.opinion_signed")
    assert note.severity == Severity.INFO
    assert consult.number in note.title
    assert note.link
    assert note.payload["version"] == 1
    assert not Notification.objects.filter(
        recipient=actors.specialist, kind="consult.opinion_signed"
    ).exists()


def test_the_other_accepted_experts_of_an_mdt_are_notified(actors, make_consult):
    consult = make_consult(target_kind=TargetKind.MDT)
    ConsultExpert.objects.create(
        consult=consult,
        user=actors.radiologist,
        institution=Institution.objects.get(code="county"),
        status=ExpertStatus.ACCEPTED,
    )
    _sign(actors.specialist, consult)

    assert Notification.objects.filter(
        recipient=actors.radiologist, kind="consult.opinion_signed"
    ).exists()


def test_in_an_mdt_only_the_lead_expert_signs(actors, make_consult):
    consult = make_consult(target_kind=TargetKind.MDT)
    ConsultExpert.objects.create(
        consult=consult,
        user=actors.radiologist,
        institution=Institution.objects.get(code="county"),
        status=ExpertStatus.ACCEPTED,
    )
    with pytest.raises(AccessDenied, match="only the lead expert"):
        _sign(actors.radiologist, consult)
    assert _audits("consult.opinion.sign", Outcome.DENIED).filter(actor=actors.radiologist).exists()


def test_requester_cannot_sign(actors, consult):
    with pytest.raises(AccessDenied, match="Only an expert who accepted"):
        _sign(actors.township, consult)
    assert not Opinion.objects.filter(consult=consult).exists()


def test_outsider_cannot_sign_and_is_audited(actors, consult):
    with pytest.raises(AccessDenied):
        _sign(actors.outsider, consult)
    assert _audits("consult.opinion.sign", Outcome.DENIED).filter(actor=actors.outsider).exists()


def test_signing_an_unknown_consult_is_not_found(actors):
    with pytest.raises(NotFound):
        opinion_sign(actor=actors.specialist, consult_id=999_999, **FIELDS)


def test_an_invited_expert_cannot_sign_yet(actors, consult):
    ConsultExpert.objects.filter(consult=consult).update(status=ExpertStatus.INVITED)
    with pytest.raises(AccessDenied):
        _sign(actors.specialist, consult)


@pytest.mark.parametrize("status", [Status.PENDING_EXPERT, Status.CANCELLED, Status.NO_SHOW])
def test_an_opinion_needs_an_open_accepted_consult(actors, make_consult, status):
    consult = make_consult(status=status)
    with pytest.raises(InvalidRecord, match="once an expert has accepted"):
        _sign(actors.specialist, consult)


@pytest.mark.parametrize("status", [Status.SCHEDULED, Status.IN_PROGRESS])
def test_a_live_consult_is_signed_when_scheduled_or_in_progress(actors, make_consult, status):
    consult = make_consult(status=status, mode=Mode.VIDEO)
    assert _sign(actors.specialist, consult).version == 1


def _store_files() -> set[Path]:
    store = get_store()
    assert isinstance(store, LocalStore)
    return {p for p in Path(store.root).rglob("*") if p.is_file()}


def test_missing_fields_are_refused_and_nothing_is_stored(actors, consult):
    with pytest.raises(InvalidRecord, match="before signing"):
        _sign(actors.specialist, consult, diagnosis="   ")

    consult.refresh_from_db()
    assert consult.status == Status.ACCEPTED
    assert not OpinionVersion.objects.filter(opinion__consult=consult).exists()
    assert _audits("consult.opinion.sign", Outcome.FAILED).filter(resource_id=consult.pk).exists()


def test_follow_up_needs_a_date_after_today(actors, consult):
    with pytest.raises(InvalidRecord, match="follow-up date"):
        _sign(actors.specialist, consult, recommendation=Recommendation.FOLLOW_UP)
    with pytest.raises(InvalidRecord, match="after today"):
        _sign(
            actors.specialist,
            consult,
            recommendation=Recommendation.FOLLOW_UP,
            follow_up_on=timezone.localdate(),
        )
    later = timezone.localdate() + dt.timedelta(days=30)
    opinion = _sign(
        actors.specialist, consult, recommendation=Recommendation.FOLLOW_UP, follow_up_on=later
    )
    assert opinion.follow_up_on == later


def test_refer_upward_needs_no_date(actors, consult):
    opinion = _sign(actors.specialist, consult, recommendation=Recommendation.REFER_UPWARD)
    assert opinion.recommendation == Recommendation.REFER_UPWARD


def test_an_unknown_recommendation_is_refused(actors, consult):
    with pytest.raises(InvalidRecord, match="recommendations offered"):
        _sign(actors.specialist, consult, recommendation="pray")


def test_a_database_failure_after_the_pdf_leaves_no_pdf_behind(actors, consult):
    """A version row that already exists (inconsistent data) makes the insert fail."""
    if not isinstance(get_store(), LocalStore):
        pytest.skip("counts the files of the local store")
    opinion = Opinion.objects.create(consult=consult, author=actors.specialist)
    OpinionVersion.objects.create(
        opinion=opinion,
        version=1,
        author=actors.specialist,
        findings="x",
        diagnosis="x",
        advice="x",
        recommendation=Recommendation.MANAGE_LOCALLY,
        signed_at=timezone.now(),
    )
    before = _store_files()
    with pytest.raises(InvalidRecord, match="signed meanwhile"):
        _sign(actors.specialist, consult)
    assert _store_files() == before
    consult.refresh_from_db()
    assert consult.status == Status.ACCEPTED


# --- Drafts -----------------------------------------------------------------------------------


def test_the_expert_saves_a_partial_draft_then_signs(actors, consult):
    draft = opinion_save_draft(
        actor=actors.specialist, consult_id=consult.pk, findings="  ST depression.  "
    )
    assert draft.status == "draft"
    assert draft.findings == "ST depression."
    assert _sign(actors.specialist, consult).pk == draft.pk


def test_a_draft_cannot_replace_a_signed_opinion(actors, consult):
    _sign(actors.specialist, consult)
    with pytest.raises(InvalidRecord, match="amend it instead"):
        opinion_save_draft(actor=actors.specialist, consult_id=consult.pk, findings="new")


def test_a_second_signature_is_refused(actors, consult):
    _sign(actors.specialist, consult)
    with pytest.raises(InvalidRecord, match="amend it instead"):
        _sign(actors.specialist, consult)
    assert OpinionVersion.objects.filter(opinion__consult=consult).count() == 1


# --- Amendments -------------------------------------------------------------------------------


def test_an_amendment_adds_a_version_and_tells_the_requester(actors, consult):
    _sign(actors.specialist, consult)
    opinion = opinion_amend(
        actor=actors.specialist,
        consult_id=consult.pk,
        reason="Troponin came back raised.",
        diagnosis="Non-ST elevation myocardial infarction.",
        recommendation=Recommendation.REFER_UPWARD,
    )

    assert opinion.version == 2
    assert opinion.diagnosis.startswith("Non-ST")
    first, second = OpinionVersion.objects.filter(opinion=opinion).order_by("version")
    assert first.diagnosis.startswith("Stable")
    assert first.amendment_reason == ""
    assert second.amendment_reason == "Troponin came back raised."
    assert first.pdf_key != second.pdf_key
    note = Notification.objects.get(recipient=actors.township, kind="consult.opinion_amended")
    assert "修订" in note.title  # in the recipient's language (zh-Hans by default)
    assert note.payload["version"] == 2
    assert ConsultEvent.objects.filter(consult=consult, kind="amended").exists()


def test_every_signed_version_stays_readable(actors, consult):
    _sign(actors.specialist, consult)
    opinion_amend(actor=actors.specialist, consult_id=consult.pk, reason="typo", advice="Rest.")

    chunks, filename = opinion_pdf_for_user(actor=actors.township, consult_id=consult.pk, version=1)
    assert b"".join(chunks).startswith(b"%PDF")
    assert filename.endswith("-v1.pdf")
    _chunks, latest = opinion_pdf_for_user(actor=actors.township, consult_id=consult.pk)
    assert latest.endswith("-v2.pdf")
    with pytest.raises(NotFound):
        opinion_pdf_for_user(actor=actors.township, consult_id=consult.pk, version=3)


def test_an_amendment_needs_a_reason_and_a_change(actors, consult):
    _sign(actors.specialist, consult)
    with pytest.raises(InvalidRecord, match="Say why"):
        opinion_amend(actor=actors.specialist, consult_id=consult.pk, reason=" ", advice="x")
    with pytest.raises(InvalidRecord, match="Nothing was changed"):
        opinion_amend(actor=actors.specialist, consult_id=consult.pk, reason="again", **FIELDS)
    with pytest.raises(InvalidRecord, match="cannot be amended"):
        opinion_amend(actor=actors.specialist, consult_id=consult.pk, reason="r", author=1)
    assert OpinionVersion.objects.filter(opinion__consult=consult).count() == 1


def test_only_a_signed_opinion_is_amended(actors, consult):
    opinion_save_draft(actor=actors.specialist, consult_id=consult.pk, findings="draft")
    with pytest.raises(InvalidRecord, match="Only a signed opinion"):
        opinion_amend(actor=actors.specialist, consult_id=consult.pk, reason="r", advice="x")


# --- Reading the PDF --------------------------------------------------------------------------


def test_the_township_doctor_reads_the_pdf_and_it_is_audited(actors, consult):
    _sign(actors.specialist, consult)
    chunks, filename = opinion_pdf_for_user(actor=actors.township, consult_id=consult.pk)

    assert b"".join(chunks).startswith(b"%PDF-")
    assert filename == f"{consult.number}-v1.pdf"
    event = _audits("consult.opinion.pdf", Outcome.ALLOWED).get(actor=actors.township)
    assert event.detail == {"version": 1}
    assert event.patient_id == consult.patient_id


def test_outsider_cannot_read_the_pdf_and_is_audited(actors, consult):
    _sign(actors.specialist, consult)
    with pytest.raises(AccessDenied):
        opinion_pdf_for_user(actor=actors.outsider, consult_id=consult.pk)
    assert _audits("consult.opinion.pdf", Outcome.DENIED).filter(actor=actors.outsider).exists()


def test_there_is_no_pdf_before_signing(actors, consult):
    with pytest.raises(NotFound, match="not signed yet"):
        opinion_pdf_for_user(actor=actors.township, consult_id=consult.pk)


# --- Pages ------------------------------------------------------------------------------------


@pytest.fixture
def login_as(client, actors):
    def _login(username, *, language="en"):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        client.force_login(getattr(actors, username))
        return client

    return _login


def _form(action, **changes):
    return {**FIELDS, "follow_up_on": "", "action": action, **changes}


def test_the_expert_opens_the_opinion_form(login_as, consult):
    response = login_as("specialist").get(f"/consults/{consult.pk}/opinion/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "胸闷两周" in html
    assert 'name="findings"' in html
    assert 'value="sign"' in html


def test_the_expert_saves_a_draft_and_signs_through_the_page(login_as, consult):
    client = login_as("specialist")
    url = f"/consults/{consult.pk}/opinion/"
    response = client.post(url, _form("save", diagnosis=""))
    assert response.status_code == 302
    assert response["Location"] == url
    assert Opinion.objects.get(consult=consult).status == "draft"

    response = client.post(url, _form("sign"))
    assert response.status_code == 302
    consult.refresh_from_db()
    assert consult.status == Status.COMPLETED


def test_signing_an_incomplete_opinion_shows_the_reason_as_a_400(login_as, consult):
    response = login_as("specialist").post(
        f"/consults/{consult.pk}/opinion/", _form("sign", advice="")
    )
    assert response.status_code == 400
    assert "before signing" in response.content.decode()
    assert not OpinionVersion.objects.filter(opinion__consult=consult).exists()


def test_a_past_follow_up_date_is_a_400(login_as, consult):
    response = login_as("specialist").post(
        f"/consults/{consult.pk}/opinion/",
        _form("sign", recommendation="follow_up", follow_up_on="2020-01-01"),
    )
    assert response.status_code == 400
    assert "after today" in response.content.decode()


def test_the_requester_sees_the_signed_opinion_without_a_form(login_as, actors, consult):
    _sign(actors.specialist, consult)
    html = login_as("township").get(f"/consults/{consult.pk}/opinion/").content.decode()
    assert "Stable angina" in html
    assert 'name="findings"' not in html
    assert f"/consults/{consult.pk}/opinion.pdf" in html


def test_the_requester_cannot_post_an_opinion(login_as, consult):
    response = login_as("township").post(f"/consults/{consult.pk}/opinion/", _form("sign"))
    assert response.status_code == 403


def test_the_expert_amends_through_the_page(login_as, actors, consult):
    _sign(actors.specialist, consult)
    client = login_as("specialist")
    url = f"/consults/{consult.pk}/opinion/"
    assert 'name="reason"' in client.get(url + "?amend=1").content.decode()

    response = client.post(url, {**_form("sign"), "reason": ""})
    assert response.status_code == 400
    response = client.post(url, {**_form("sign", advice="Refer today."), "reason": "New ECG."})
    assert response.status_code == 302
    assert Opinion.objects.get(consult=consult).version == 2


def test_the_township_doctor_downloads_the_pdf(login_as, actors, consult):
    _sign(actors.specialist, consult)
    response = login_as("township").get(f"/consults/{consult.pk}/opinion.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert "inline" in response["Content-Disposition"]


def test_outsider_gets_403_on_the_pdf(login_as, actors, consult):
    _sign(actors.specialist, consult)
    assert login_as("outsider").get(f"/consults/{consult.pk}/opinion.pdf").status_code == 403


def test_a_bad_version_is_a_400(login_as, actors, consult):
    _sign(actors.specialist, consult)
    client = login_as("township")
    assert client.get(f"/consults/{consult.pk}/opinion.pdf?version=abc").status_code == 400
    assert client.get(f"/consults/{consult.pk}/opinion.pdf?version=7").status_code == 404


def test_consult_status_is_unchanged_by_a_refused_page_post(login_as, consult):
    Consult.objects.filter(pk=consult.pk).update(status=Status.CANCELLED)
    response = login_as("specialist").post(f"/consults/{consult.pk}/opinion/", _form("sign"))
    assert response.status_code == 400
    consult.refresh_from_db()
    assert consult.status == Status.CANCELLED


def test_the_consult_page_shows_the_signed_opinion_and_its_versions(login_as, actors, consult):
    _sign(actors.specialist, consult)
    opinion_amend(actor=actors.specialist, consult_id=consult.pk, reason="New ECG.", advice="Rest.")
    html = login_as("township").get(f"/consults/{consult.pk}/").content.decode()
    assert "Stable angina" in html
    assert f"/consults/{consult.pk}/opinion.pdf?version=1" in html
    assert "New ECG." in html
