"""Titles of timeline entries, translated when shown (not when stored)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from records.models import ConsentScope, TimelineEvent

TITLES: dict[str, Promise] = {
    "registered": _("Registered"),
    "consent.given": _("Consent given: %(scope)s"),
    "consent.withdrawn": _("Consent withdrawn: %(scope)s"),
    "imaging.requested": _("Imaging requested"),
    "imaging.cancelled": _("Imaging request cancelled"),
    "imaging.report_signed": _("Imaging report signed"),
    "imaging.report_amended": _("Imaging report amended"),
    "consult.requested": _("Consultation requested"),
    "consult.cancelled": _("Consultation cancelled"),
    "consult.opinion": _("Consultation opinion signed"),
    "lab.ordered": _("Lab tests ordered"),
    "lab.cancelled": _("Lab order cancelled"),
    "lab.rejected": _("Lab specimen rejected"),
    "lab.report_signed": _("Lab report signed"),
    "lab.report_amended": _("Lab report amended"),
    "lab.critical": _("Critical lab value"),
}


def headline(event: TimelineEvent) -> str:
    """The entry's title in the active language."""
    template = TITLES.get(event.kind)
    if template is None:
        return event.title
    scope = event.data.get("scope", "")
    label = ConsentScope(scope).label if scope in ConsentScope.values else scope
    return str(template) % {"scope": label}
