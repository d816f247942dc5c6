"""Attachments of a consult: files in object storage and imaging studies of the resident.

The requesting side (the requester and colleagues who may read the resident) and the
accepted experts add to an open consult. Files are checked (kind, size, name) before a
byte is stored; a file that does not arrive whole is not kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import BinaryIO

from django.db import transaction
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from association.selectors import ActorScope, actor_scope
from consult.models import OPEN_STATUSES, Attachment, AttachmentKind, Consult
from consult.selectors import actor_role
from consult.workflow_common import (
    ATTACHMENT_TYPES,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENT_NAME,
    MAX_STUDIES,
    audit_consult,
    deny,
    event_add,
    load_consult,
    refuse,
)
from imaging.models import Study
from imaging.selectors import studies_visible_to
from objectstore import get_store
from objectstore.errors import IntegrityMismatch
from records.models import Patient
from records.services import InvalidRecord

UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


def studies_for_consult(
    scope: ActorScope, patient: Patient, study_ids: Sequence[int]
) -> list[Study]:
    """The studies (by id) of ``patient`` that ``scope`` may see; refused otherwise."""
    if len(study_ids) > MAX_STUDIES:
        raise InvalidRecord(gettext_lazy("Attach at most 20 studies."))
    studies: list[Study] = []
    for study_id in dict.fromkeys(study_ids):
        study = None
        if isinstance(study_id, int) or str(study_id).isdigit():
            study = studies_visible_to(scope).filter(pk=int(study_id)).first()
        if study is None:
            raise InvalidRecord(gettext_lazy("No such study, or you cannot see it."))
        if study.patient_id != patient.pk:
            raise InvalidRecord(gettext_lazy("This study belongs to another resident."))
        studies.append(study)
    return studies


def _as_contributor(*, actor: User, consult_id: int, action: str) -> Consult:
    """The consult if the actor may add to it: the requesting side or an accepted expert."""
    consult, scope = load_consult(actor=actor, consult_id=consult_id, action=action)
    if actor_role(scope, consult) not in ("requester", "colleague", "expert"):
        raise deny(
            actor=actor,
            action=action,
            consult=consult,
            reason="not the requesting side or an accepted expert",
            message=_("Only the requesting doctors and the accepted experts add to this."),
        )
    if consult.status not in OPEN_STATUSES:
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("Attachments can only be added to an open consultation."),
        )
    return consult


def _file_name(name: str) -> str:
    base = re.split(r"[\\/]", name.strip())[-1].strip()
    return UNSAFE_NAME.sub("", base)


def consult_attach_file(
    *,
    actor: User,
    consult_id: int,
    name: str,
    fileobj: BinaryIO,
    content_type: str,
    size: int,
) -> Attachment:
    """Store a file in object storage and attach it to the consult.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
        Also for a file too large, empty, of a kind not accepted, or not arriving whole.
    """
    action = "consult.attach"
    consult = _as_contributor(actor=actor, consult_id=consult_id, action=action)
    title = _file_name(name)
    kind = content_type.split(";")[0].strip().lower()
    message: str | Promise | None = None
    if not title or len(title) > MAX_ATTACHMENT_NAME:
        message = gettext_lazy("Name the file (at most 200 characters).")
    elif kind not in ATTACHMENT_TYPES:
        message = gettext_lazy(
            "This kind of file cannot be attached (PDF, images, text, DICOM or Word)."
        )
    elif not isinstance(size, int) or size <= 0:
        message = gettext_lazy("The file is empty.")
    elif size > MAX_ATTACHMENT_BYTES:
        message = gettext_lazy("A file may be at most %(limit)d MiB.") % {
            "limit": MAX_ATTACHMENT_BYTES // 1024**2
        }
    if message is not None:
        raise refuse(actor=actor, action=action, consult=consult, message=message)
    store = get_store()
    try:
        stored = store.put(fileobj, prefix="consult/files", content_type=kind, size=size)
    except (ValueError, IntegrityMismatch):
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("The file did not arrive whole; send it again."),
        ) from None
    try:
        with transaction.atomic():
            attachment = Attachment.objects.create(
                consult=consult,
                kind=AttachmentKind.FILE,
                title=title,
                object_key=stored.key,
                content_type=stored.content_type,
                size=stored.size,
                sha256=stored.sha256,
                uploaded_by=actor,
            )
            event_add(
                consult=consult,
                kind="attached",
                actor=actor,
                detail={"attachment": attachment.pk, "title": title},
            )
    except BaseException:
        store.delete(stored.key)
        raise
    audit_consult(
        actor=actor,
        action=action,
        consult=consult,
        detail={"attachment": attachment.pk, "size": stored.size, "content_type": kind},
    )
    return attachment


def consult_attach_study(*, actor: User, consult_id: int, study_id: int) -> Attachment:
    """Attach an imaging study of the consult's resident that the actor may see.

    Raises
    ------
    AccessDenied, NotFound, InvalidRecord
    """
    action = "consult.attach_study"
    consult = _as_contributor(actor=actor, consult_id=consult_id, action=action)
    try:
        study = studies_for_consult(actor_scope(actor), consult.patient, [study_id])[0]
    except InvalidRecord as exc:
        raise refuse(actor=actor, action=action, consult=consult, message=exc.args[0]) from None
    if consult.attachments.filter(study=study).exists():
        raise refuse(
            actor=actor,
            action=action,
            consult=consult,
            message=gettext_lazy("This study is already attached."),
        )
    with transaction.atomic():
        attachment = Attachment.objects.create(
            consult=consult,
            kind=AttachmentKind.STUDY,
            title=(str(study) or study.study_uid)[:200],
            study=study,
            uploaded_by=actor,
        )
        event_add(
            consult=consult,
            kind="attached",
            actor=actor,
            detail={"attachment": attachment.pk, "study": study.study_uid},
        )
    audit_consult(actor=actor, action=action, consult=consult, detail={"study": study.study_uid})
    return attachment
