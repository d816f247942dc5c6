"""File sharing in the consult room: upload over HTTP, announce on the socket, download."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import User
from audit.models import AuditEvent
from consult.models import Attachment, ChatMessage, Consult, ConsultEvent
from consult.room import files
from consult.room.services import ADMITTED_EVENT
from tests.consult.room.room_sockets import drain, join, make_consult, receive_until

ECG = b"%PDF-1.4 ECG 12-lead, ST elevation V2-V4\n" * 50


def client_for(username: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(User.objects.get(username=username))
    return client


def admit(consult: Consult) -> None:
    ConsultEvent.objects.create(
        consult=consult, kind=ADMITTED_EVENT, detail={"user_id": consult.requested_by_id}
    )


def upload(client: Client, consult: Consult, content: bytes = ECG, name: str = "心电图.pdf") -> Any:
    return client.post(
        reverse("consult:room-file", args=[consult.pk]),
        {"file": SimpleUploadedFile(name, content, content_type="application/pdf")},
    )


def download(client: Client, consult: Consult, attachment_id: int) -> Any:
    return client.get(reverse("consult:room-file-download", args=[consult.pk, attachment_id]))


def actions(action: str) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(action=action)
        .order_by("id")
        .values_list("outcome", "actor_username")
    )


@pytest.mark.django_db
def test_expert_shares_a_file_stored_as_attachment_and_chat_message() -> None:
    consult = make_consult()
    answer = upload(client_for("specialist"), consult)
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["type"], body["kind"], body["seq"], body["text"]) == (
        "chat",
        "file",
        1,
        "心电图.pdf",
    )
    attachment = Attachment.objects.get(consult=consult)
    assert (attachment.kind, attachment.title, attachment.size) == ("file", "心电图.pdf", len(ECG))
    assert attachment.object_key.startswith("consult/room/")
    assert body["attachment"] == {
        "id": attachment.pk,
        "title": "心电图.pdf",
        "size": len(ECG),
        "content_type": "application/pdf",
        "url": reverse("consult:room-file-download", args=[consult.pk, attachment.pk]),
    }
    message = ChatMessage.objects.get(consult=consult)
    assert (message.kind, message.attachment_id) == ("file", attachment.pk)
    assert actions("consult.room.file.upload") == [("allowed", "specialist")]


@pytest.mark.django_db
def test_requester_downloads_the_shared_file_streamed_as_an_attachment() -> None:
    consult = make_consult()
    upload(client_for("specialist"), consult)
    attachment = Attachment.objects.get(consult=consult)
    answer = download(client_for("township"), consult, attachment.pk)
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == ECG
    assert answer["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''" in answer["Content-Disposition"]
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["Cache-Control"] == "private, no-store"
    [event] = AuditEvent.objects.filter(action="consult.room.file.download")
    assert (event.outcome, event.patient_id, event.detail["via"]) == (
        "allowed",
        consult.patient_id,
        "room",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["outsider", "village2"])
def test_people_outside_the_consult_can_neither_share_nor_download(username: str) -> None:
    consult = make_consult()
    upload(client_for("specialist"), consult)
    attachment = Attachment.objects.get(consult=consult)
    client = client_for(username)
    refused = upload(client, consult)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert download(client, consult, attachment.pk).status_code == 403
    assert ("denied", username) in actions("consult.room.file.download")
    assert Attachment.objects.filter(consult=consult).count() == 1


@pytest.mark.django_db
def test_waiting_requester_cannot_share_until_admitted() -> None:
    consult = make_consult()
    client = client_for("township")
    answer = upload(client, consult)
    assert answer.status_code == 403
    assert answer.json()["message"] == "Please wait until the expert lets you in."
    admit(consult)
    assert upload(client, consult).status_code == 201


@pytest.mark.django_db
def test_file_over_the_limit_is_refused_with_413_and_nothing_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(files, "MAX_ROOM_FILE_BYTES", 1000)
    consult = make_consult()
    answer = upload(client_for("specialist"), consult, content=b"x" * 1001)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    assert not Attachment.objects.exists()
    assert ("failed", "specialist") in actions("consult.room.file.upload")


@pytest.mark.django_db
def test_body_declared_far_over_the_limit_is_refused_before_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(files, "MAX_ROOM_FILE_BYTES", 10)
    consult = make_consult()
    answer = upload(client_for("specialist"), consult, content=b"y" * 200_000)
    assert answer.status_code == 413
    assert not Attachment.objects.exists()


@pytest.mark.django_db
def test_empty_or_missing_file_is_a_400() -> None:
    consult = make_consult()
    client = client_for("specialist")
    assert upload(client, consult, content=b"").status_code == 400
    missing = client.post(reverse("consult:room-file", args=[consult.pk]), {})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid"
    assert not Attachment.objects.exists()


@pytest.mark.django_db
def test_file_name_is_only_a_title() -> None:
    consult = make_consult()
    answer = upload(client_for("specialist"), consult, name="../../etc/pass\x07wd")
    assert answer.status_code == 201
    attachment = Attachment.objects.get(consult=consult)
    assert attachment.title == "passwd"
    assert "etc" not in attachment.object_key


@pytest.mark.django_db
def test_unknown_attachment_is_a_404_and_audited() -> None:
    consult = make_consult()
    other = make_consult()
    upload(client_for("specialist"), other)
    elsewhere = Attachment.objects.get(consult=other)
    assert download(client_for("specialist"), consult, elsewhere.pk).status_code == 404
    assert ("failed", "specialist") in actions("consult.room.file.download")


@pytest.mark.django_db(transaction=True)
async def test_shared_file_is_announced_in_the_room() -> None:
    consult = await database_sync_to_async(make_consult)()
    expert, _ = await join(consult.pk, "specialist")
    requester, _ = await join(consult.pk, "township")
    await expert.send_json_to({"type": "admit", "user_id": consult.requested_by_id})
    await receive_until(requester, "admitted")
    await drain(requester)

    answer = await database_sync_to_async(lambda: upload(client_for("specialist"), consult))()
    assert answer.status_code == 201
    announced = await receive_until(requester, "chat")
    assert (announced["kind"], announced["text"]) == ("file", "心电图.pdf")
    assert announced["attachment"]["url"].endswith(f"/room/files/{announced['attachment']['id']}/")
    await expert.disconnect()
    await requester.disconnect()
