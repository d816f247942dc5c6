"""A centre sees what was sent to it, for as long as the consent under it holds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from association.models import DiagnosticCentre, Institution
from records.models import ConsentScope, ShareReason
from records.selectors import AccessDenied, patient_get_for_user
from records.sharing import consent_record, consent_withdraw, share_grant


@pytest.fixture
def zhang_san_sent_to_imaging(actors, residents):
    county = Institution.objects.get(code="county")
    consent = consent_record(
        actor=actors.village,
        patient_id=residents["张三"].pk,
        scope=ConsentScope.IMAGING,
        grantee_institution=county,
    )
    share = share_grant(
        actor=actors.village,
        patient=residents["张三"],
        reason=ShareReason.ORDER,
        reference="imaging-request-1",
        centre=DiagnosticCentre.objects.get(code="qingshan-imaging"),
        consent_scope=ConsentScope.IMAGING,
    )
    return consent, share


def test_radiologist_sees_a_resident_sent_to_the_imaging_centre(
    actors, residents, zhang_san_sent_to_imaging
):
    assert patient_get_for_user(actor=actors.radiologist, patient_id=residents["张三"].pk)


def test_lab_technician_does_not_see_what_was_sent_to_imaging(
    actors, residents, zhang_san_sent_to_imaging
):
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.labtech, patient_id=residents["张三"].pk)


def test_specialist_at_the_host_hospital_does_not_see_a_centre_share(
    actors, residents, zhang_san_sent_to_imaging
):
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.specialist, patient_id=residents["张三"].pk)


def test_withdrawn_consent_ends_the_share_at_once(actors, residents, zhang_san_sent_to_imaging):
    consent, _share = zhang_san_sent_to_imaging
    consent_withdraw(actor=actors.village, consent_id=consent.pk, reason="patient asked")
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.radiologist, patient_id=residents["张三"].pk)


def test_expired_share_gives_no_access(actors, residents, zhang_san_sent_to_imaging):
    _consent, share = zhang_san_sent_to_imaging
    share.expires_at = timezone.now() - dt.timedelta(minutes=1)
    share.save(update_fields=["expires_at"])
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.radiologist, patient_id=residents["张三"].pk)


def test_share_to_a_named_expert_reaches_only_that_person(actors, residents):
    patient = residents["张三"]
    consent_record(
        actor=actors.village,
        patient_id=patient.pk,
        scope=ConsentScope.CONSULT,
        grantee_institution=Institution.objects.get(code="county"),
    )
    share_grant(
        actor=actors.village,
        patient=patient,
        reason=ShareReason.CONSULT,
        institution=Institution.objects.get(code="county"),
        user=actors.specialist,
        consent_scope=ConsentScope.CONSULT,
    )
    assert patient_get_for_user(actor=actors.specialist, patient_id=patient.pk)
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.coordinator, patient_id=patient.pk)


def test_share_without_consent_is_refused(actors, residents):
    with pytest.raises(AccessDenied):
        share_grant(
            actor=actors.village,
            patient=residents["张三"],
            reason=ShareReason.CONSULT,
            institution=Institution.objects.get(code="county"),
        )


def test_association_consent_opens_the_record_to_every_clinic_of_the_association(actors, residents):
    patient = residents["张三"]
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.township, patient_id=patient.pk)
    consent_record(
        actor=actors.village,
        patient_id=patient.pk,
        scope=ConsentScope.RECORD,
        grantee_association=patient.home_institution.association,
    )
    assert patient_get_for_user(actor=actors.township, patient_id=patient.pk)
    with pytest.raises(AccessDenied):
        patient_get_for_user(actor=actors.outsider, patient_id=patient.pk)


def test_consent_outside_the_association_is_refused(actors, residents):
    from records.services import InvalidRecord

    with pytest.raises(InvalidRecord):
        consent_record(
            actor=actors.village,
            patient_id=residents["张三"].pk,
            scope=ConsentScope.RECORD,
            grantee_institution=Institution.objects.get(code="hexi-clinic"),
        )


def test_only_the_home_institution_records_consent(actors, residents):
    with pytest.raises(AccessDenied):
        consent_record(
            actor=actors.specialist,
            patient_id=residents["刘桂兰"].pk,
            scope=ConsentScope.RECORD,
            grantee_institution=Institution.objects.get(code="county"),
        )


def test_withdrawn_consent_shows_on_the_timeline(actors, residents):
    from records.selectors import timeline_for_patient

    patient = residents["刘桂兰"]
    consent = patient.consents.get()
    consent_withdraw(actor=actors.township, consent_id=consent.pk, reason="moved away")
    kinds = [e.kind for e in timeline_for_patient(actor=actors.township, patient_id=patient.pk)]
    assert kinds[0] == "consent.withdrawn"
    assert "registered" in kinds


def test_family_doctor_must_work_at_the_home_institution(actors, residents):
    from records.services import InvalidRecord, patient_update

    with pytest.raises(InvalidRecord):
        patient_update(
            actor=actors.village,
            patient_id=residents["张三"].pk,
            family_doctor_id=actors.specialist.pk,
        )
    patient_update(
        actor=actors.village, patient_id=residents["张三"].pk, family_doctor_id=actors.village.pk
    )


def test_a_second_withdrawal_is_refused_and_audited(actors, residents):
    from audit.models import AuditEvent
    from records.services import InvalidRecord

    consent = residents["刘桂兰"].consents.get()
    consent_withdraw(actor=actors.township, consent_id=consent.pk)
    with pytest.raises(InvalidRecord):
        consent_withdraw(actor=actors.township, consent_id=consent.pk)
    assert AuditEvent.objects.filter(action="consent.withdraw", outcome="failed").exists()
