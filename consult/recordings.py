"""Consult recordings: registered by the media service, played back by participants, purged.

The media service writes a participant's forwarded audio and video (WebM, not re-encoded)
to object storage when the patient consented, then calls :func:`recording_register`. Only
the consult's participants (the requester and the accepted experts) list and play
recordings; every playback request is audited, refusals included. After the retention
period (``settings.CONSULT_RECORDING_RETENTION_DAYS``) :func:`recordings_purge_expired`
deletes the objects and keeps the rows, marked deleted, for the record.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record
from consult.access import consult_role
from consult.models import Consult, Recording
from consult.selectors import consult_deny, consults_visible_to
from consult.workflow_common import event_add
from objectstore import ObjectNotFound, ObjectStoreError, get_store
from objectstore.keys import normalize_sha256, validate_key
from objectstore.local import LocalStore
from objectstore.streams import CHUNK_SIZE
from records.selectors import AccessDenied, NotFound
from records.services import InvalidRecord

logger = logging.getLogger(__name__)

ACTION_STORE = "consult.recording.store"
ACTION_LIST = "consult.recording.list"
ACTION_PLAY = "consult.recording.play"
ACTION_PURGE = "consult.recording.purge"
PLAYER_ROLES = frozenset({"requester", "expert"})

_RANGE_RE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


class RangeNotSatisfiable(Exception):
    """The requested byte range starts past the end of the recording (HTTP 416)."""

    def __init__(self, total: int) -> None:
        super().__init__(f"range not satisfiable (size {total})")
        self.total = total


@dataclass(frozen=True)
class Playback:
    """Bytes ``start``..``end`` (inclusive) of a recording of ``total`` bytes."""

    recording: Recording
    chunks: Iterator[bytes]
    start: int
    end: int
    total: int
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1 if self.total else 0

    def close(self) -> None:
        """Release the file or connection without reading (a HEAD request)."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


# --- Registration (the media service) -----------------------------------------------------------


def _audit(
    *,
    actor: User | None,
    action: str,
    consult: Consult | None,
    resource_id: object,
    outcome: Outcome = Outcome.ALLOWED,
    reason: str | Promise = "",
    detail: dict[str, object] | None = None,
    username: str = "",
) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_type="consult_recording",
        resource_id=resource_id,
        patient_id=consult.patient_id if consult is not None else None,
        reason=reason,
        detail=detail,
        username=username,
    )


def _register_problem(
    *,
    consult: Consult,
    user_id: int | None,
    object_key: str,
    size: int,
    sha256: str,
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
) -> str | Promise | None:
    try:
        validate_key(object_key)
        normalize_sha256(sha256)
    except ValueError:
        return gettext_lazy("The recording's object key or digest is malformed.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return gettext_lazy("The recording's size is not a whole number of bytes.")
    if not isinstance(started_at, dt.datetime) or (
        ended_at is not None and (not isinstance(ended_at, dt.datetime) or ended_at < started_at)
    ):
        return gettext_lazy("The recording's start and end times are not in order.")
    if user_id is not None and consult_role(user_id=user_id, consult=consult) not in PLAYER_ROLES:
        return gettext_lazy("The recorded person does not take part in this consult.")
    try:
        info = get_store().stat(object_key)
    except ObjectNotFound:
        return gettext_lazy("The recording is not in object storage.")
    if info.size != size:
        return gettext_lazy("The recording's size differs from the stored object's.")
    return None


def recording_register(
    *,
    consult_id: int,
    user_id: int | None,
    object_key: str,
    size: int,
    sha256: str,
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
) -> Recording:
    """Link a stored recording to its consult (called by the media service; no actor).

    Registering the same object again returns the existing row. A recording of a consult
    whose patient did not consent is refused and its object deleted.

    Raises
    ------
    NotFound
        No such consult.
    InvalidRecord
        No consent, or the key, digest, size, times or participant are wrong.
    """
    consult = Consult.objects.filter(pk=consult_id).first()
    if consult is None:
        _audit(
            actor=None,
            action=ACTION_STORE,
            username="media-service",
            consult=None,
            resource_id=object_key,
            outcome=Outcome.FAILED,
            reason="no such consult",
        )
        raise NotFound(_("No such consultation."))
    existing = Recording.objects.filter(consult=consult, object_key=object_key).first()
    if existing is not None:
        return existing
    problem: str | Promise | None
    if not consult.recording_consent:
        problem = gettext_lazy("The patient did not consent to recording; it was not kept.")
        try:
            validate_key(object_key)
            get_store().delete(object_key)
        except (ValueError, ObjectStoreError):
            logger.exception("could not delete the unconsented recording %r", object_key)
    else:
        problem = _register_problem(
            consult=consult,
            user_id=user_id,
            object_key=object_key,
            size=size,
            sha256=sha256,
            started_at=started_at,
            ended_at=ended_at,
        )
    if problem is not None:
        _audit(
            actor=None,
            action=ACTION_STORE,
            username="media-service",
            consult=consult,
            resource_id=object_key[:100],
            outcome=Outcome.FAILED,
            reason=problem,
        )
        raise InvalidRecord(problem)
    retention = dt.timedelta(days=settings.CONSULT_RECORDING_RETENTION_DAYS)
    with transaction.atomic():
        recording = Recording.objects.create(
            consult=consult,
            participant_id=user_id,
            object_key=object_key,
            content_type="video/webm",
            size=size,
            sha256=sha256.lower(),
            started_at=started_at,
            ended_at=ended_at,
            retain_until=timezone.localdate() + retention,
        )
        event_add(
            consult=consult,
            kind="recording.stored",
            actor=None,
            detail={"recording": recording.pk, "user_id": user_id, "size": size},
        )
        _audit(
            actor=None,
            action=ACTION_STORE,
            username="media-service",
            consult=consult,
            resource_id=recording.pk,
            detail={"consult": consult.pk, "size": size},
        )
    return recording


# --- Listing and playback (participants) ----------------------------------------------------------


def _consult_for_player(
    *, actor: User, consult_id: int, action: str, resource_id: object
) -> Consult:
    """The consult if the actor may see it and took part in it; denials audited."""
    consult = consults_visible_to(actor).select_related("patient").filter(pk=consult_id).first()
    if consult is None:
        raise consult_deny(actor=actor, consult_id=consult_id, action=action)
    if consult_role(user_id=actor.pk, consult=consult) not in PLAYER_ROLES:
        _audit(
            actor=actor,
            action=action,
            consult=consult,
            resource_id=resource_id,
            outcome=Outcome.DENIED,
            reason="not a participant",
        )
        raise AccessDenied(
            _("Only the requesting doctor and the experts of this consult can play its recordings.")
        )
    return consult


def recordings_page_for_user(*, actor: User, consult_id: int) -> tuple[Consult, list[Recording]]:
    """The consult and its recordings still kept, for a participant; audited.

    Raises
    ------
    AccessDenied, NotFound
    """
    consult = _consult_for_player(
        actor=actor, consult_id=consult_id, action=ACTION_LIST, resource_id=consult_id
    )
    recordings = list(
        consult.recordings.filter(deleted_at__isnull=True).select_related("participant")
    )
    _audit(
        actor=actor,
        action=ACTION_LIST,
        consult=consult,
        resource_id=consult.pk,
        detail={"count": len(recordings)},
    )
    return consult, recordings


def recordings_for_user(*, actor: User, consult_id: int) -> list[Recording]:
    """The consult's recordings still kept, for a participant; audited.

    Raises
    ------
    AccessDenied, NotFound
    """
    return recordings_page_for_user(actor=actor, consult_id=consult_id)[1]


def parse_range(header: str, total: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks for, or None for the whole object.

    A header we do not serve (another unit, several ranges, a malformed one) is ignored, as
    RFC 9110 allows; a range starting past the end raises :class:`RangeNotSatisfiable`.
    """
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or total == 0:
            raise RangeNotSatisfiable(total)
        return max(total - suffix, 0), total - 1
    start = int(first)
    end = int(last) if last else total - 1
    if last and end < start:
        return None
    if start >= total:
        raise RangeNotSatisfiable(total)
    return start, min(end, total - 1)


def _local_slice(stream: BinaryIO, start: int, length: int) -> Generator[bytes, None, None]:
    try:
        stream.seek(start)
        remaining = length
        while remaining > 0:
            data = stream.read(min(CHUNK_SIZE, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
    finally:
        stream.close()


def _skip_slice(chunks: Iterator[bytes], start: int, length: int) -> Generator[bytes, None, None]:
    """Bytes ``start`` to ``start + length`` of a chunk stream (a store without range reads)."""
    offset = 0
    remaining = length
    try:
        for chunk in chunks:
            if remaining <= 0:
                return
            end = offset + len(chunk)
            if end > start:
                piece = chunk[max(start - offset, 0) :][:remaining]
                remaining -= len(piece)
                yield piece
            offset = end
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _open_slice(key: str, start: int, length: int) -> Iterator[bytes]:
    """Open the object now (raising ObjectNotFound) and stream the slice lazily."""
    store = get_store()
    if isinstance(store, LocalStore):
        handle, _info = store.open_file(key)
        return _local_slice(handle, start, length)
    return _skip_slice(store.open(key), start, length)


def recording_open_for_user(*, actor: User, recording_id: int, byte_range: str = "") -> Playback:
    """Open a recording for playback (all of it, or the ``Range`` header's bytes); audited.

    Raises
    ------
    AccessDenied, NotFound
    RangeNotSatisfiable
        The range starts past the end (audited as failed).
    """
    recording = Recording.objects.filter(pk=recording_id).first()
    if recording is None:
        _audit(
            actor=actor,
            action=ACTION_PLAY,
            consult=None,
            resource_id=recording_id,
            outcome=Outcome.FAILED,
            reason="no such recording",
        )
        raise NotFound(_("No such recording."))
    consult = _consult_for_player(
        actor=actor, consult_id=recording.consult_id, action=ACTION_PLAY, resource_id=recording.pk
    )

    def failed(reason: str) -> None:
        _audit(
            actor=actor,
            action=ACTION_PLAY,
            consult=consult,
            resource_id=recording.pk,
            outcome=Outcome.FAILED,
            reason=reason,
        )

    if recording.deleted_at is not None or not recording.object_key:
        failed("deleted after its retention period")
        raise NotFound(_("This recording was deleted at the end of its retention period."))
    try:
        total = get_store().stat(recording.object_key).size
        bounds = parse_range(byte_range, total)
        start, end = bounds if bounds is not None else (0, total - 1)
        chunks = _open_slice(recording.object_key, start, max(end - start + 1, 0))
    except ObjectNotFound:
        failed("object missing")
        raise NotFound(
            _("The recording's file is missing. Please tell the administrator.")
        ) from None
    except RangeNotSatisfiable:
        failed(f"range not satisfiable: {byte_range[:60]}")
        raise
    _audit(
        actor=actor,
        action=ACTION_PLAY,
        consult=consult,
        resource_id=recording.pk,
        detail={"start": start, "end": end, "total": total},
    )
    return Playback(
        recording=recording,
        chunks=chunks,
        start=start,
        end=end,
        total=total,
        partial=bounds is not None,
    )


# --- Retention ----------------------------------------------------------------------------------


def recordings_purge_expired(*, now: dt.datetime | None = None) -> int:
    """Delete recordings kept past ``retain_until``; the rows stay, marked deleted. Audited.

    A recording whose object cannot be deleted now (store unavailable) is tried again on the
    next run. Returns how many were purged.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    due = Recording.objects.filter(deleted_at__isnull=True, retain_until__lt=today).select_related(
        "consult"
    )
    purged = 0
    store = get_store()
    for recording in due.iterator():
        try:
            if recording.object_key:
                store.delete(recording.object_key)
        except (ValueError, ObjectStoreError):
            logger.exception("could not purge recording %s", recording.pk)
            continue
        with transaction.atomic():
            done = Recording.objects.filter(pk=recording.pk, deleted_at__isnull=True).update(
                deleted_at=now
            )
            if done:
                _audit(
                    actor=None,
                    action=ACTION_PURGE,
                    consult=recording.consult,
                    resource_id=recording.pk,
                    detail={"retain_until": recording.retain_until.isoformat()},
                )
        purged += done
    return purged
