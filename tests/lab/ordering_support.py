"""Helpers shared by part 1's tests (ordering, labels, order pages): ids by code, an order."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.test import Client

from association.models import DiagnosticCentre
from lab.models import LabOrder, LabTest, Panel, Priority
from lab.ordering import order_create

LAB_CENTRE = "qingshan-lab"


def lab_centre() -> DiagnosticCentre:
    return DiagnosticCentre.objects.get(code=LAB_CENTRE)


def ids_of_tests(*codes: str) -> list[int]:
    centre = lab_centre()
    return [LabTest.objects.get(centre=centre, code=code).pk for code in codes]


def ids_of_panels(*codes: str) -> list[int]:
    centre = lab_centre()
    return [Panel.objects.get(centre=centre, code=code).pk for code in codes]


def make_order(
    actor: Any,
    patient: Any,
    *,
    tests: tuple[str, ...] = (),
    panels: tuple[str, ...] = ("LYTES", "CBC"),
    priority: str = Priority.ROUTINE,
    record_consent: bool = True,
    note: str = "",
) -> LabOrder:
    return order_create(
        actor=actor,
        patient_id=patient.pk,
        centre=lab_centre(),
        test_ids=ids_of_tests(*tests),
        panel_ids=ids_of_panels(*panels),
        priority=priority,
        clinical_note=note,
        record_consent=record_consent,
    )


def login(client: Client, user: Any, language: str = "en") -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    client.force_login(user)
    return client
