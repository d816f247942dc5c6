"""Remote consultations: the request, its experts, slots, room chat, files, opinion, recordings.

A consult is asked by a clinician of a requesting institution for one patient, routed
(after a coordinator's pre-review when the association's policy says so) to a specialty at
a hospital, to a named expert or to several experts (MDT). Experts accept or decline, book a
slot, meet the requester in the consult room (live video) or answer in writing, and the
lead expert signs a structured opinion that is filed to the patient's record.

Every read or write goes through ``consult.selectors`` / ``consult.services``; nothing here
checks access.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Priority(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent (within 24 h)")
    EMERGENCY = "emergency", _("Emergency")


class Mode(models.TextChoices):
    VIDEO = "video", _("Live video")
    WRITTEN = "written", _("In writing (store and forward)")


class TargetKind(models.TextChoices):
    SPECIALTY = "specialty", _("A specialty at a hospital")
    EXPERT = "expert", _("A named expert")
    MDT = "mdt", _("Several experts (multidisciplinary)")


class Status(models.TextChoices):
    PENDING_REVIEW = "pending_review", _("Waiting for pre-review")
    RETURNED = "returned", _("Returned to the requester")
    PENDING_EXPERT = "pending_expert", _("Waiting for an expert")
    ACCEPTED = "accepted", _("Accepted")
    SCHEDULED = "scheduled", _("Scheduled")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Opinion signed")
    DECLINED = "declined", _("Declined")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "no_show", _("No-show")


OPEN_STATUSES = frozenset(
    {
        Status.PENDING_REVIEW,
        Status.RETURNED,
        Status.PENDING_EXPERT,
        Status.ACCEPTED,
        Status.SCHEDULED,
        Status.IN_PROGRESS,
    }
)


class Consult(models.Model):
    """One consult request and where it stands."""

    number = models.CharField(_("consult number"), max_length=20, unique=True)
    patient = models.ForeignKey(
        "records.Patient",
        verbose_name=_("patient"),
        on_delete=models.PROTECT,
        related_name="consults",
    )
    requesting_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("requesting institution"),
        on_delete=models.PROTECT,
        related_name="consults_requested",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.PROTECT,
        related_name="consults_requested",
    )
    question = models.TextField(_("question"))
    history = models.TextField(_("history"), blank=True)
    priority = models.CharField(
        _("priority"), max_length=12, choices=Priority.choices, default=Priority.ROUTINE
    )
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices, default=Mode.VIDEO)
    target_kind = models.CharField(_("target"), max_length=12, choices=TargetKind.choices)
    target_institution = models.ForeignKey(
        "association.Institution",
        verbose_name=_("hospital"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="consults_targeted",
    )
    target_specialty = models.ForeignKey(
        "association.Specialty",
        verbose_name=_("specialty"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING_REVIEW
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(_("pre-review note"), max_length=500, blank=True)
    # SLA: by when an expert must answer (accept/decline) and by when the opinion is due.
    respond_due_at = models.DateTimeField(_("answer due"), null=True, blank=True)
    complete_due_at = models.DateTimeField(_("opinion due"), null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    scheduled_start = models.DateTimeField(_("starts"), null=True, blank=True)
    scheduled_end = models.DateTimeField(_("ends"), null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(_("reason"), max_length=500, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recording_consent = models.BooleanField(_("patient consents to recording"), default=False)
    created_at = models.DateTimeField(_("requested at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("consult")
        verbose_name_plural = _("consults")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "priority"])]

    def __str__(self) -> str:
        return self.number

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class ExpertStatus(models.TextChoices):
    INVITED = "invited", _("Invited")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ConsultExpert(models.Model):
    """An expert asked to take part; the lead expert signs the opinion."""

    consult = models.ForeignKey(Consult, on_delete=models.CASCADE, related_name="experts")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="consult_invitations"
    )
    institution = models.ForeignKey(
        "association.Institution", on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=12, choices=ExpertStatus.choices, default=ExpertStatus.INVITED
    )
    lead = models.BooleanField(_("lead expert"), default=False)
    decline_reason = models.CharField(_("reason for declining"), max_length=500, blank=True)
    invited_at = models.DateTimeField(default=timezone.now)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("consult expert")
        verbose_name_plural = _("consult experts")
        constraints = [
            models.UniqueConstraint(fields=["consult", "user"], name="consult_expert_once")
        ]

    def __str__(self) -> str:
        return f"{self.consult_id}:{self.user_id}"


class Slot(models.Model):
    """A period an expert offers for live consults; booked by at most one consult."""

    expert = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consult_slots"
    )
    start = models.DateTimeField(_("starts"), db_index=True)
    end = models.DateTimeField(_("ends"))
    consult = models.ForeignKey(
        Consult, on_delete=models.SET_NULL, null=True, blank=True, related_name="slots"
    )

    class Meta:
        verbose_name = _("availability slot")
        verbose_name_plural = _("availability slots")
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="slot_ends_after_start"
            ),
            models.UniqueConstraint(fields=["expert", "start"], name="slot_once_per_start"),
        ]

    def __str__(self) -> str:
        return f"{self.expert_id}@{self.start:%Y-%m-%d %H:%M}"


class AttachmentKind(models.TextChoices):
    FILE = "file", _("File")
    STUDY = "study", _("Imaging study")
    LAB = "lab", _("Lab result")


class Attachment(models.Model):
    """A file (in object storage), an imaging study or a lab result attached to a consult."""

    consult = models.ForeignKey(Consult, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(_("kind"), max_length=8, choices=AttachmentKind.choices)
    title = models.CharField(_("title"), max_length=200)
    object_key = models.CharField(max_length=300, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    study = models.ForeignKey(
        "imaging.Study", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lab_reference = models.CharField(_("lab result"), max_length=100, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.title


class MessageKind(models.TextChoices):
    TEXT = "text", _("Message")
    FILE = "file", _("File")
    SYSTEM = "system", _("Event")


class ChatMessage(models.Model):
    """A persisted consult-room message; ``seq`` orders a consult's messages for resume."""

    consult = models.ForeignKey(Consult, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=MessageKind.choices, default=MessageKind.TEXT)
    body = models.TextField(blank=True)
    attachment = models.ForeignKey(
        Attachment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["consult", "seq"]
        constraints = [models.UniqueConstraint(fields=["consult", "seq"], name="chat_seq_once")]

    def __str__(self) -> str:
        return f"{self.consult_id}#{self.seq}"


class Recommendation(models.TextChoices):
    MANAGE_LOCALLY = "manage_locally", _("Manage locally")
    REFER_UPWARD = "refer_upward", _("Refer upward")
    FOLLOW_UP = "follow_up", _("Follow up on a date")


class OpinionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SIGNED = "signed", _("Signed")


class Opinion(models.Model):
    """The structured consult opinion; signed versions are kept in ``OpinionVersion``."""

    consult = models.OneToOneField(Consult, on_delete=models.PROTECT, related_name="opinion")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    findings = models.TextField(_("findings"), blank=True)
    diagnosis = models.TextField(_("diagnosis"), blank=True)
    advice = models.TextField(_("advice"), blank=True)
    recommendation = models.CharField(
        _("recommendation"), max_length=20, choices=Recommendation.choices, blank=True
    )
    follow_up_on = models.DateField(_("follow up on"), null=True, blank=True)
    status = models.CharField(
        max_length=8, choices=OpinionStatus.choices, default=OpinionStatus.DRAFT
    )
    version = models.PositiveIntegerField(default=0)  # signed versions so far
    signed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("consult opinion")
        verbose_name_plural = _("consult opinions")

    def __str__(self) -> str:
        return f"opinion {self.consult_id} v{self.version}"


class OpinionVersion(models.Model):
    """One signed version of an opinion, with its PDF in object storage."""

    opinion = models.ForeignKey(Opinion, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    findings = models.TextField()
    diagnosis = models.TextField()
    advice = models.TextField()
    recommendation = models.CharField(max_length=20, choices=Recommendation.choices)
    follow_up_on = models.DateField(null=True, blank=True)
    amendment_reason = models.CharField(max_length=300, blank=True)
    pdf_key = models.CharField(max_length=300, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    pdf_size = models.PositiveBigIntegerField(default=0)
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["opinion", "version"]
        constraints = [
            models.UniqueConstraint(fields=["opinion", "version"], name="opinion_version_once")
        ]

    def __str__(self) -> str:
        return f"opinion {self.opinion_id} v{self.version}"


class ConsultEvent(models.Model):
    """What happened to a consult, in order (drawn as the consult's timeline)."""

    consult = models.ForeignKey(Consult, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=40)
    detail: models.JSONField[Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["consult", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.consult_id} {self.kind}"


class Recording(models.Model):
    """A consult's audio and video as the media service forwarded it (WebM, not re-encoded)."""

    consult = models.ForeignKey(Consult, on_delete=models.PROTECT, related_name="recordings")
    participant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    object_key = models.CharField(max_length=300, blank=True)
    content_type = models.CharField(max_length=100, default="video/webm")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    retain_until = models.DateField(_("keep until"))
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")
        ordering = ["consult", "started_at"]

    def __str__(self) -> str:
        return self.object_key or f"recording {self.pk}"
