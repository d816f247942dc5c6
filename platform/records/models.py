"""Residents' health records: the association's patient index, consent and timeline."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from records.resident_id import mask


class Sex(models.TextChoices):
    MALE = "M", _("Male")
    FEMALE = "F", _("Female")


class Patient(models.Model):
    """A resident in the association's shared index; one row per resident ID."""

    resident_id = models.CharField(_("resident ID"), max_length=18, unique=True)
    name = models.CharField(_("full name"), max_length=100)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices)
    birth_date = models.DateField(_("birth date"))
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    home_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("home institution"),
        on_delete=models.PROTECT,
        related_name="residents",
    )
    family_doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("contracted family doctor"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contracted_residents",
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("registered by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    registered_at = models.DateTimeField(_("registered at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("resident")
        verbose_name_plural = _("residents")
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["home_institution", "name"], name="patient_home_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked_resident_id})"

    @property
    def masked_resident_id(self) -> str:
        return mask(self.resident_id)

    @property
    def age(self) -> int:
        today = timezone.localdate()
        born = self.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class ConsentScope(models.TextChoices):
    RECORD = "record", _("Health record")
    IMAGING = "imaging", _("Imaging")
    LAB = "lab", _("Laboratory results")
    CONSULT = "consult", _("Remote consultation")
    RECORDING = "recording", _("Consultation recording")


class ConsentQuerySet(models.QuerySet["Consent"]):
    def active(self) -> ConsentQuerySet:
        now = timezone.now()
        return self.filter(withdrawn_at__isnull=True, valid_from__lte=now).filter(
            Q(valid_until__isnull=True) | Q(valid_until__gt=now)
        )


class Consent(models.Model):
    """The resident's consent to share a part of the record with an association or institution."""

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="consents"
    )
    scope = models.CharField(_("what is shared"), max_length=20, choices=ConsentScope.choices)
    grantee_association = models.ForeignKey(
        "association.Association",
        verbose_name=_("shared with association"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    grantee_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("shared with institution"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    valid_from = models.DateTimeField(_("valid from"), default=timezone.now)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    note = models.CharField(_("note"), max_length=300, blank=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("withdrawn by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    withdrawal_reason = models.CharField(_("reason for withdrawal"), max_length=300, blank=True)

    objects = ConsentQuerySet.as_manager()

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        ordering = ["-recorded_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(grantee_association__isnull=False, grantee_institution__isnull=True)
                    | Q(grantee_association__isnull=True, grantee_institution__isnull=False)
                ),
                name="consent_one_grantee",
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient} · {self.get_scope_display()}"

    @property
    def grantee(self) -> Any:
        return self.grantee_association or self.grantee_institution

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return (
            self.withdrawn_at is None
            and self.valid_from <= now
            and (self.valid_until is None or self.valid_until > now)
        )


class ShareReason(models.TextChoices):
    CONSULT = "consult", _("Consultation")
    ORDER = "order", _("Diagnostic order")
    REFERRAL = "referral", _("Referral")


class PatientShare(models.Model):
    """Access to one resident granted to an institution, a centre or a person.

    Created by the capabilities that send a patient somewhere (a consult, an imaging or
    lab order, a referral); it rests on a consent and lapses with it.
    """

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="shares"
    )
    consent = models.ForeignKey(
        Consent, verbose_name=_("consent"), on_delete=models.PROTECT, related_name="shares"
    )
    reason = models.CharField(_("reason"), max_length=20, choices=ShareReason.choices)
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    grantee_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("institution"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    grantee_centre = models.ForeignKey(
        "association.DiagnosticCentre",
        verbose_name=_("diagnostic centre"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    grantee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned person"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("granted by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    granted_at = models.DateTimeField(_("granted at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("record share")
        verbose_name_plural = _("record shares")
        ordering = ["-granted_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(grantee_institution__isnull=False)
                    | Q(grantee_centre__isnull=False)
                    | Q(grantee_user__isnull=False)
                ),
                name="share_has_grantee",
            )
        ]

    def __str__(self) -> str:
        grantee = self.grantee_user or self.grantee_centre or self.grantee_institution
        return f"{self.patient} → {grantee}"


class TimelineEvent(models.Model):
    """An entry on the patient's timeline; later capabilities add their own kinds."""

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="timeline"
    )
    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    kind = models.CharField(_("kind"), max_length=40)
    title = models.CharField(_("title"), max_length=200)
    summary = models.TextField(_("summary"), blank=True)
    institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("institution"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    link = models.CharField(_("link"), max_length=300, blank=True)
    data: models.JSONField[Any] = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        verbose_name = _("timeline event")
        verbose_name_plural = _("timeline events")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d} {self.headline}"

    @property
    def headline(self) -> str:
        from records.timeline import headline

        return headline(self)
