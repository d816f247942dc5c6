"""Resumable browser uploads: start, append chunks, finish (verify and ingest), status.

The protocol mirrors tus.io (docs/upload.md): the client announces a file with its size
and SHA-256, sends it in chunks at the offset the server reports, and asks the server to
finish. A dropped link costs at most the chunk in flight; a page reload finds the same
upload again by (user, SHA-256, size); a file already uploaded completely is not sent
again. The bytes wait in ``DATA_DIR/uploads/<id>.part`` (a folder the web processes and
the worker must share) until the background task verifies the checksum end to end and
ingests every DICOM file, one by one, through :func:`imaging.ingest.instance_ingest`.

Every function takes the acting user; an upload is only ever visible to its owner.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import DatabaseError, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django_tasks import task

from accounts.models import User
from association.models import Institution
from association.selectors import actor_scope
from audit.models import Outcome
from audit.services import audit_record
from imaging.ingest import Origin
from imaging.models import ImagingRequest, RequestStatus, Upload, UploadStatus
from imaging.selectors import requests_visible_to
from imaging.upload_ingest import (
    Interrupted,
    Progress,
    UploadFailed,
    ingest_file,
    remove_quietly,
)
from objectstore import ObjectStoreError
from records.selectors import AccessDenied, NotFound

Actor = AbstractBaseUser | AnonymousUser

MAX_UPLOAD_BYTES = 4 * 1024**3
MAX_CHUNK_BYTES = 8 * 1024**2
MAX_OPEN_UPLOADS = 200
MAX_OPEN_BYTES = 32 * 1024**3
# Free disk space kept aside on top of an upload's size (the unpacked member, the rest).
DISK_MARGIN_BYTES = 512 * 1024**2
# An upload nobody touched for this long is given up: its bytes are deleted.
ABANDONED_AFTER = dt.timedelta(days=7)
# A queued or running ingest that wrote no progress for this long died with its worker.
STALE_AFTER = dt.timedelta(minutes=30)
READ_BYTES = 256 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
ACTIVE_STATES = ("queued", "verifying", "ingesting")


class UploadRefused(Exception):
    """A request about an upload that cannot be honoured; ``http_status`` says how."""

    http_status = 400

    def __init__(self, code: str, message: str | Promise, *, http_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = str(message)
        if http_status:
            self.http_status = http_status


class OffsetMismatch(UploadRefused):
    """The chunk does not start where the server stands; resume from ``offset``."""

    http_status = 409

    def __init__(self, offset: int) -> None:
        super().__init__(
            "offset_mismatch",
            _("The server has %(offset)d bytes of this file; continue from there.")
            % {"offset": offset},
        )
        self.offset = offset


# --- Helpers ------------------------------------------------------------------------------


def uploads_dir() -> Path:
    folder = Path(settings.DATA_DIR) / "uploads"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def part_path(upload: Upload) -> Path:
    return uploads_dir() / f"{upload.pk}.part"


def ingest_state(upload: Upload) -> str:
    """``receiving`` while bytes come in, then the background task's state."""
    if isinstance(upload.outcome, dict) and upload.outcome.get("state"):
        return str(upload.outcome["state"])
    if upload.status == UploadStatus.COMPLETE:
        return "done"
    if upload.status == UploadStatus.FAILED:
        return "failed"
    return "receiving"


def _audit(
    actor: Actor | None,
    *,
    outcome: Outcome,
    reason: str | Promise,
    upload_id: object = "",
    detail: dict[str, Any] | None = None,
) -> None:
    audit_record(
        actor=actor,
        action="imaging.upload",
        outcome=outcome,
        resource_type="upload",
        resource_id=upload_id,
        reason=reason,
        detail=detail,
    )


def _refuse(actor: Actor, code: str, message: str | Promise, *, http_status: int = 400) -> NoReturn:
    _audit(actor, outcome=Outcome.FAILED, reason=code)
    raise UploadRefused(code, message, http_status=http_status)


def _clean_filename(name: str) -> str:
    """The last path component, without control characters; for display only."""
    base = re.split(r"[\\/]", name.strip())[-1]
    base = "".join(ch for ch in base if ch.isprintable())
    return base[:255]


def _sending_institution(actor: User, request: ImagingRequest | None) -> Institution:
    """The request's clinic, else the first institution the actor treats at."""
    if request is not None:
        return request.requesting_institution
    scope = actor_scope(actor)
    for membership in scope.memberships:
        if membership.institution_id in scope.care_institution_ids and membership.centre_id is None:
            return membership.institution
    _audit(actor, outcome=Outcome.DENIED, reason="no clinic to upload for")
    raise AccessDenied(_("Only doctors of a clinic or hospital can upload images."))


def upload_get_for_user(*, actor: Actor, upload_id: uuid.UUID | str) -> Upload:
    """The actor's own upload; anyone else's is audited and looks like a missing one.

    Raises
    ------
    NotFound
    """
    upload = Upload.objects.filter(pk=upload_id).select_related("request").first()
    if upload is not None and upload.user_id == actor.pk:
        return upload
    _audit(
        actor,
        outcome=Outcome.DENIED if upload is not None else Outcome.FAILED,
        reason="not the owner" if upload is not None else "no such upload",
        upload_id=upload_id,
    )
    raise NotFound(_("No such upload."))


def _abandon_stale(actor: User) -> None:
    """Give up the actor's uploads idle for a week: free their disk space."""
    cutoff = timezone.now() - ABANDONED_AFTER
    for upload in Upload.objects.filter(
        user_id=actor.pk, status=UploadStatus.RECEIVING, updated_at__lt=cutoff
    ):
        remove_quietly(part_path(upload))
        upload.status = UploadStatus.FAILED
        upload.outcome = {
            "state": "failed",
            "code": "abandoned",
            "reason": _("This upload was not finished within a week and was given up."),
        }
        upload.save(update_fields=["status", "outcome", "updated_at"])


# --- Services ------------------------------------------------------------------------------


def upload_start(
    *, actor: User, filename: str, size: int, sha256: str, request_id: int | None = None
) -> tuple[Upload, bool]:
    """Announce a file; returns ``(upload, created)``.

    An unfinished upload of the same bytes by the same user is returned to be resumed;
    one already complete is returned so the client skips the bytes.

    Raises
    ------
    UploadRefused, AccessDenied, NotFound
    """
    sha256 = sha256.strip().lower()
    if not SHA256_HEX.match(sha256):
        _refuse(actor, "bad_checksum", _("The SHA-256 must be 64 hexadecimal characters."))
    if not 0 < size <= MAX_UPLOAD_BYTES:
        _refuse(
            actor,
            "too_large",
            _("A file must be between 1 byte and %(limit)d MiB; split larger archives.")
            % {"limit": MAX_UPLOAD_BYTES // 1024**2},
            http_status=413,
        )
    name = _clean_filename(filename)
    if not name:
        _refuse(actor, "bad_filename", _("The file needs a name."))
    request = None
    if request_id is not None:
        request = (
            requests_visible_to(actor_scope(actor))
            .select_related("requesting_institution")
            .filter(pk=request_id)
            .first()
        )
        if request is None:
            _audit(actor, outcome=Outcome.DENIED, reason="request not visible", upload_id="")
            raise NotFound(_("No such imaging request."))
        if request.status == RequestStatus.CANCELLED:
            _refuse(actor, "request_cancelled", _("This imaging request was cancelled."))
    institution = _sending_institution(actor, request)

    mine = Upload.objects.filter(user=actor, sha256=sha256, size=size)
    existing = (
        mine.filter(status=UploadStatus.RECEIVING).first()
        or mine.filter(status=UploadStatus.COMPLETE).order_by("-created_at").first()
    )
    if existing is not None:
        return existing, False

    _abandon_stale(actor)
    open_uploads = Upload.objects.filter(user=actor, status=UploadStatus.RECEIVING)
    totals = open_uploads.aggregate(bytes=Sum("size"))
    if open_uploads.count() >= MAX_OPEN_UPLOADS or (totals["bytes"] or 0) + size > MAX_OPEN_BYTES:
        _refuse(
            actor,
            "too_many_open",
            _("You have too many unfinished uploads; finish them first."),
            http_status=429,
        )
    if shutil.disk_usage(uploads_dir()).free < size + DISK_MARGIN_BYTES:
        _refuse(
            actor,
            "no_space",
            _("The server is short of disk space; please try again later."),
            http_status=507,
        )
    upload = Upload.objects.create(
        id=uuid.uuid4(),
        user=actor,
        institution=institution,
        request=request,
        filename=name,
        size=size,
        sha256=sha256,
    )
    return upload, True


def upload_append(
    *, actor: Actor, upload_id: uuid.UUID | str, offset: int, chunk_stream: BinaryIO, length: int
) -> Upload:
    """Write one chunk at ``offset``, which must be where the server stands.

    The part file is locked while the chunk is written, so two tabs sending the same file
    cannot interleave; bytes past the recorded offset (a crash between write and update)
    are cut off first. If the body ends early, the bytes that did arrive are kept.

    Raises
    ------
    OffsetMismatch, UploadRefused, NotFound
    """
    upload = upload_get_for_user(actor=actor, upload_id=upload_id)
    if upload.status != UploadStatus.RECEIVING or ingest_state(upload) != "receiving":
        raise UploadRefused(
            "not_receiving", _("This upload is no longer receiving data."), http_status=409
        )
    if length > MAX_CHUNK_BYTES:
        _refuse(
            actor,
            "chunk_too_large",
            _("A chunk may be at most %(limit)d MiB.") % {"limit": MAX_CHUNK_BYTES // 1024**2},
            http_status=413,
        )
    if offset != upload.received:
        raise OffsetMismatch(upload.received)
    if offset + length > upload.size:
        _refuse(actor, "past_end", _("The chunk goes past the end of the file."))

    fd = os.open(part_path(upload), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        received = Upload.objects.filter(pk=upload.pk).values_list("received", flat=True).get()
        on_disk = os.fstat(fd).st_size
        if on_disk < received:
            # The bytes were lost (a disk restored, another server's folder): start over there.
            Upload.objects.filter(pk=upload.pk).update(received=on_disk, updated_at=timezone.now())
            raise OffsetMismatch(on_disk)
        if received != offset:
            raise OffsetMismatch(received)
        os.ftruncate(fd, received)
        os.lseek(fd, received, os.SEEK_SET)
        try:
            written = _copy(chunk_stream, fd, length)
        except OSError as exc:
            os.ftruncate(fd, received)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _refuse(
                actor,
                "no_space",
                _("The server is short of disk space; please try again later."),
                http_status=507,
            )
        updated = Upload.objects.filter(
            pk=upload.pk, received=offset, status=UploadStatus.RECEIVING
        ).update(received=offset + written, updated_at=timezone.now())
        if not updated:
            os.ftruncate(fd, offset)
            raise OffsetMismatch(Upload.objects.get(pk=upload.pk).received)
    finally:
        os.close(fd)  # releases the lock
    upload.refresh_from_db()
    return upload


def _copy(source: BinaryIO, fd: int, length: int) -> int:
    """Copy up to ``length`` bytes to ``fd`` and make them durable; returns the count."""
    written = 0
    while written < length:
        data = source.read(min(READ_BYTES, length - written))
        if not data:
            break
        os.write(fd, data)
        written += len(data)
    os.fsync(fd)
    return written


def upload_finish(
    *, actor: Actor, upload_id: uuid.UUID | str, language: str | None = None
) -> Upload:
    """All bytes are in: queue the verification and ingest (idempotent).

    ``language`` is the one the per-file reasons are written in (the uploader's).

    Raises
    ------
    OffsetMismatch (bytes still missing), NotFound
    """
    upload = upload_get_for_user(actor=actor, upload_id=upload_id)
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.status != UploadStatus.RECEIVING:
            return upload
        if upload.received < upload.size:
            raise OffsetMismatch(upload.received)
        state = ingest_state(upload)
        fresh = upload.updated_at > timezone.now() - STALE_AFTER
        if state in ACTIVE_STATES and fresh:
            return upload
        previous = upload.outcome if isinstance(upload.outcome, dict) else {}
        upload.outcome = {**previous, "state": "queued"}
        upload.save(update_fields=["outcome", "updated_at"])
    upload_ingest_task.enqueue(str(upload.pk), language)
    upload.refresh_from_db()
    return upload


def upload_status(*, actor: Actor, upload_id: uuid.UUID | str) -> Upload:
    """The upload, for its owner: offset, state and outcome."""
    return upload_get_for_user(actor=actor, upload_id=upload_id)


def uploads_unfinished_for(*, actor: User) -> QuerySet[Upload]:
    """The actor's uploads still waiting for bytes, newest first (to offer a resume)."""
    cutoff = timezone.now() - ABANDONED_AFTER
    return Upload.objects.filter(
        user_id=actor.pk, status=UploadStatus.RECEIVING, updated_at__gte=cutoff
    ).order_by("-updated_at")


# --- The background task ------------------------------------------------------------------


def _claim(upload_id: str) -> Upload | None:
    with transaction.atomic():
        upload = (
            # Lock only the upload row: PostgreSQL cannot lock the nullable side of the
            # outer join that the optional request needs.
            Upload.objects.select_for_update(of=("self",))
            .select_related("user", "institution", "request")
            .filter(pk=upload_id)
            .first()
        )
        if upload is None or upload.status != UploadStatus.RECEIVING:
            return None
        if ingest_state(upload) != "queued":
            return None
        previous = upload.outcome if isinstance(upload.outcome, dict) else {}
        upload.outcome = {**previous, "state": "verifying"}
        upload.save(update_fields=["outcome", "updated_at"])
        return upload


def upload_ingest(upload_id: str) -> None:
    """Verify and ingest a queued upload; safe to call twice (the second does nothing)."""
    upload = _claim(upload_id)
    if upload is None:
        return
    path = part_path(upload)
    progress = Progress(upload)
    origin = Origin(
        institution=upload.institution, channel="upload", user=upload.user, request=upload.request
    )
    try:
        ingest_file(path, upload=upload, origin=origin, progress=progress)
    except UploadFailed as exc:
        remove_quietly(path)
        progress.set(state="failed", code=exc.code, reason=exc.message)
        progress.flush(force=True, status=UploadStatus.FAILED)
        _audit(upload.user, outcome=Outcome.FAILED, reason=exc.code, upload_id=upload.pk)
        return
    except (Interrupted, ObjectStoreError, DatabaseError, OSError) as exc:
        # Keep the bytes and the files done so far; finishing again resumes from there.
        progress.set(
            state="interrupted",
            code="interrupted",
            reason=_("Processing stopped because of a problem on the server; try again."),
        )
        progress.flush(force=True)
        _audit(upload.user, outcome=Outcome.FAILED, reason="interrupted", upload_id=upload.pk)
        raise Interrupted(str(exc)) from exc
    remove_quietly(path)
    progress.set(state="done")
    progress.flush(force=True, status=UploadStatus.COMPLETE)
    _audit(
        upload.user,
        outcome=Outcome.ALLOWED,
        reason="ingested",
        upload_id=upload.pk,
        detail={"counts": progress.data["counts"], "files": progress.data["processed"]},
    )


@task()
def upload_ingest_task(upload_id: str, language: str) -> None:
    """Background entry point: :func:`upload_ingest` in the uploader's language."""
    with translation.override(language):
        upload_ingest(upload_id)
