"""The DIMSE storage SCP (``telemed dicom-scp``): C-ECHO and C-STORE from modalities.

A calling AE title is accepted only while an active :class:`~imaging.models.AETitle`
row names it (looked up afresh for every association request, so the admin's changes
apply at once); anything else is rejected with "calling AE title not recognised" and
audited. Each C-STORE is ingested for the AE title's institution.

pynetdicom runs every association in its own thread; the handlers below run in that
thread, which keeps one database connection for the association's life and closes it
when the association ends.

Incoming data sets are written to a temporary Part 10 file as their fragments arrive
(pynetdicom's ``STORE_RECV_CHUNKED_DATASET``), byte for byte as the peer encoded them
behind a File Meta header: memory stays flat whatever the instance size, and nothing is
re-encoded.
"""

from __future__ import annotations

import copy
import logging
import socket
import socketserver
import threading
import weakref
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import translation
from pydicom.dataset import Dataset
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    _config,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationServer

from audit.context import set_context
from audit.models import Outcome
from audit.services import audit_record
from imaging.dicom.failures import FailureReason, rejected_reason
from imaging.dicom.validate import Rejected
from imaging.ingest import Conflict, Origin, instance_ingest
from imaging.models import AETitle
from objectstore.errors import ObjectStoreError

logger = logging.getLogger(__name__)

DEFAULT_AE_TITLE = "TELEMED"
DEFAULT_PORT = 11112
# The largest PDU we accept: one PDU carries a whole CT or MR slice (fewer trips through
# pynetdicom's Python loops), and memory per association stays a few MiB.
MAX_PDU_BYTES = 1024 * 1024
# What validation accepts: pynetdicom's list, less the syntaxes pydicom does not know.
TRANSFER_SYNTAXES = [ts for ts in ALL_TRANSFER_SYNTAXES if ts in AllTransferSyntaxes]
SUCCESS = 0x0000

# A-ASSOCIATE-RJ: rejected-permanent, by the service user, calling AE title not recognised.
_REJECT_CALLING_AE = (0x01, 0x01, 0x03)
# A-ASSOCIATE-RJ: rejected-transient, by the service user, no reason given (try again later).
_REJECT_TRANSIENT = (0x02, 0x01, 0x01)


@dataclass(frozen=True)
class ScpOptions:
    ae_title: str
    bind: str
    port: int


def default_options() -> ScpOptions:
    return ScpOptions(
        ae_title=getattr(settings, "DICOM_AE_TITLE", DEFAULT_AE_TITLE),
        bind="0.0.0.0",  # noqa: S104  (modalities connect from the network)
        port=getattr(settings, "DICOM_PORT", DEFAULT_PORT),
    )


class _NoDelayServer(AssociationServer):
    """Sends each PDU at once: Nagle's algorithm would hold small responses ~40 ms."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address

    def shutdown(self) -> None:
        """Stop serving and close the socket.

        ``AssociationServer.shutdown()`` also removes the server from its AE's list, where
        only ``AE.start_server()`` puts it; this one comes from ``AE.make_server()``.
        """
        socketserver.BaseServer.shutdown(self)
        self.server_close()


class _Contexts(list[PresentationContext]):
    """The SCP's supported contexts, copied cheaply for each association.

    pynetdicom gives every association its own ``copy.deepcopy`` of them (negotiation
    writes into the copy). With every storage SOP class in every transfer syntax that
    walked some 4,500 UID objects: about 70 ms of CPU per association, which a modality
    sending one image per association pays per image. A context's only mutable member is
    its list of transfer syntaxes (UIDs are immutable strings), so a shallow copy of each
    context with its own list is the same copy, made in about 1 ms.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        copies = []
        for context in self:
            duplicate = copy.copy(context)
            duplicate._transfer_syntax = list(context._transfer_syntax)
            copies.append(duplicate)
        return copies


# The AE title row each live association was accepted for.
_senders: weakref.WeakKeyDictionary[Association, AETitle] = weakref.WeakKeyDictionary()
_senders_lock = threading.Lock()


def _on_requested(event: Event) -> None:
    """Accept the association only from an active, registered calling AE title."""
    assoc = event.assoc
    request = assoc.requestor.primitive
    calling = str(getattr(request, "calling_ae_title", "") or "").strip()
    called = str(getattr(request, "called_ae_title", "") or "").strip()
    set_context(ip=assoc.requestor.address, user_agent=f"DICOM AE {calling}"[:300], channel="dimse")
    close_old_connections()
    try:
        sender = (
            AETitle.objects.select_related("institution")
            .filter(ae_title=calling, active=True, institution__active=True)
            .first()
        )
    except DatabaseError:
        logger.exception("Cannot look up calling AE %r; rejecting for now", calling)
        _reject(assoc, _REJECT_TRANSIENT)
        return
    if sender is None:
        logger.info(
            "Rejecting association from unknown AE %r at %s", calling, assoc.requestor.address
        )
        audit_record(
            actor=None,
            action="dimse.associate",
            outcome=Outcome.DENIED,
            resource_type="ae_title",
            resource_id=calling,
            reason="calling AE title not recognised",
            username=calling,
            detail={"called_ae": called},
        )
        _reject(assoc, _REJECT_CALLING_AE)
        return
    with _senders_lock:
        _senders[assoc] = sender


def _reject(assoc: Association, result_source_diagnostic: tuple[int, int, int]) -> None:
    connections.close_all()
    assoc.acse.send_reject(*result_source_diagnostic)
    assoc.kill()


def _on_ended(event: Event) -> None:
    with _senders_lock:
        _senders.pop(event.assoc, None)
    connections.close_all()


def _on_echo(event: Event) -> int:
    return SUCCESS


def _failure(status: int, comment: str) -> Dataset:
    """A C-STORE response status with an Error Comment (LO: 64 characters, ASCII)."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment.encode("ascii", "replace").decode()[:64]
    return ds


def _on_store(event: Event) -> int | Dataset:
    """Ingest one instance for the sender's institution; answer its status."""
    with _senders_lock:
        sender = _senders.get(event.assoc)
    if sender is None:  # cannot happen: the association was accepted for a sender
        return _failure(FailureReason.PROCESSING_FAILURE, "Association not accepted")
    origin = Origin(institution=sender.institution, channel="dimse", calling_ae=sender.ae_title)
    try:
        with open(event.dataset_path, "rb") as fileobj:
            instance_ingest(fileobj, origin=origin)
    except (Rejected, Conflict) as exc:  # audited by ingest
        status = rejected_reason(exc) if isinstance(exc, Rejected) else FailureReason.UID_CONFLICT
        with translation.override("en"):
            return _failure(status, str(exc.message))
    except ObjectStoreError:
        logger.exception("C-STORE from %s: the object store failed", sender.ae_title)
        return _failure(FailureReason.OUT_OF_RESOURCES, "Image store unavailable; retry later")
    except Exception:
        logger.exception("C-STORE from %s failed", sender.ae_title)
        connections.close_all()  # the next C-STORE reconnects if the database went away
        return _failure(FailureReason.PROCESSING_FAILURE, "Processing failure")
    return SUCCESS


HANDLERS: list[Any] = [
    (evt.EVT_REQUESTED, _on_requested),
    (evt.EVT_RELEASED, _on_ended),
    (evt.EVT_ABORTED, _on_ended),
    (evt.EVT_C_ECHO, _on_echo),
    (evt.EVT_C_STORE, _on_store),
]


def build_ae(ae_title: str) -> AE:
    """An AE with Verification and every storage SOP class, in every known syntax."""
    ae = AE(ae_title=ae_title)
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(cast(str, context.abstract_syntax), TRANSFER_SYNTAXES)
    ae.maximum_pdu_size = MAX_PDU_BYTES
    return ae


def make_server(options: ScpOptions) -> AssociationServer:
    """A bound, not yet serving SCP; call ``serve_forever()`` (and ``shutdown()``)."""
    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = build_ae(options.ae_title)
    server = ae.make_server(
        (options.bind, options.port), evt_handlers=HANDLERS, server_class=_NoDelayServer
    )
    server.contexts = _Contexts(server.contexts)
    return server
