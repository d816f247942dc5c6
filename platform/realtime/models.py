"""Per-user notifications: stored first, pushed over the socket after commit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Severity(models.TextChoices):
    INFO = "info", _("Information")
    URGENT = "urgent", _("Urgent")
    CRITICAL = "critical", _("Critical")


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recipient"),
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    kind = models.CharField(_("kind"), max_length=60)
    severity = models.CharField(
        _("severity"), max_length=10, choices=Severity.choices, default=Severity.INFO
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("message"), blank=True)
    link = models.CharField(_("link"), max_length=300, blank=True)
    patient = models.ForeignKey(
        "records.Patient",
        verbose_name=_("patient"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    payload: models.JSONField[Any] = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at", "-id"], name="notification_inbox")]

    def __str__(self) -> str:
        return self.title

    def as_message(self) -> dict[str, Any]:
        """The socket/API representation (see docs/protocols.md)."""
        return {
            "id": self.pk,
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "body": self.body,
            "link": self.link,
            "patient_id": self.patient_id,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
            "read": self.read_at is not None,
        }
