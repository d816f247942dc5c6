"""Choosing what to send from the ``Accept`` header (PS3.18 §8.7).

Each function returns a decision or raises
:class:`~imaging.dicomweb.responses.NotAcceptable` (406) naming what is offered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.translation import gettext as _
from pydicom.uid import UID, ExplicitVRLittleEndian

from imaging.dicomweb.multipart import MediaRange, parse_accept
from imaging.dicomweb.pixels import decodable
from imaging.dicomweb.render import JPEG, PNG
from imaging.dicomweb.responses import NotAcceptable

DICOM = "application/dicom"
OCTET = "application/octet-stream"
DICOM_JSON = "application/dicom+json"
EVRLE = str(ExplicitVRLittleEndian)

# PS3.18 Table 8.7.3-5: the media type of a compressed frame, by transfer syntax.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


def accept_ranges(request: HttpRequest) -> tuple[list[MediaRange], bool]:
    """The acceptable ranges, and whether the client sent an ``Accept`` header at all."""
    header = request.headers.get("Accept", "")
    return parse_accept(header), bool(header.strip())


# --- Instances (application/dicom) ---------------------------------------------------------


class InstanceForm(enum.Enum):
    STORED = "stored"  # each file as stored
    EXPLICIT_LE = "explicit"  # transcoded to Explicit VR Little Endian where it is not
    SINGLE = "single"  # one bare application/dicom body (instance level only)


def negotiate_instances(
    request: HttpRequest, stored_syntaxes: set[str], *, single_allowed: bool
) -> InstanceForm:
    """How to send instances whose files use ``stored_syntaxes``.

    Without a ``transfer-syntax`` parameter (or with ``*``) files go as stored: nothing
    is recompressed or decompressed behind the client's back. Explicit VR Little Endian
    is offered when every stored syntax can be decoded here.
    """
    ranges, _sent = accept_ranges(request)
    for r in ranges:
        if r.media_type in ("*/*", "multipart/*") or (
            r.is_multipart and r.part_type in (None, DICOM, "*/*", "application/*")
        ):
            syntax = r.param("transfer-syntax")
            if syntax in (None, "*") or stored_syntaxes <= {syntax}:
                return InstanceForm.STORED
            if syntax == EVRLE and all(decodable(s) for s in stored_syntaxes):
                return InstanceForm.EXPLICIT_LE
        elif r.media_type == DICOM and single_allowed:
            syntax = r.param("transfer-syntax")
            if syntax in (None, "*") or stored_syntaxes <= {syntax}:
                return InstanceForm.SINGLE
    raise NotAcceptable(
        _(
            'Offered: multipart/related; type="application/dicom" with the stored transfer'
            " syntax (%(stored)s) or transfer-syntax=%(evrle)s."
        )
        % {"stored": ", ".join(sorted(stored_syntaxes)) or "-", "evrle": EVRLE}
    )


# --- Frames and bulk data ------------------------------------------------------------------


class FrameForm(enum.Enum):
    STORED = "stored"  # as stored, each part application/octet-stream; transfer-syntax=...
    STORED_IMAGE = "stored_image"  # as stored, compressed parts typed image/jpeg etc.
    DECODED = "decoded"  # uncompressed Explicit VR Little Endian


@dataclass(frozen=True)
class FrameChoice:
    form: FrameForm
    part_type: str  # the multipart body's ``type`` parameter


def negotiate_frames(request: HttpRequest, stored: str) -> FrameChoice:
    """How to send frames of an instance stored in transfer syntax ``stored``.

    OHIF asks ``type="application/octet-stream"; transfer-syntax=*`` (as stored). Without
    ``transfer-syntax`` (or without any ``Accept``) PS3.18's default applies: uncompressed
    Explicit VR Little Endian, decoding if need be.
    """
    ranges, sent = accept_ranges(request)
    uid = UID(stored)
    compressed = uid.is_compressed
    own_type = FRAME_MEDIA_TYPES.get(stored, OCTET)
    if not sent:
        ranges = [MediaRange("multipart/related", {"type": OCTET})]
    for r in ranges:
        if not (r.is_multipart or r.media_type in ("*/*", "multipart/*")):
            continue
        part = r.part_type or ("*/*" if not r.is_multipart else OCTET)
        syntax = r.param("transfer-syntax")
        if part == OCTET:
            if syntax == "*" or syntax == stored:
                return FrameChoice(FrameForm.STORED, OCTET)
            if syntax in (None, EVRLE) and (not compressed or decodable(stored)):
                return FrameChoice(FrameForm.DECODED, OCTET)
            continue
        if part in ("*/*", "*"):
            if syntax in (None, "*", stored):
                return FrameChoice(FrameForm.STORED_IMAGE, "*/*")
            continue
        if compressed and MediaRange(part).matches(own_type) and syntax in (None, "*", stored):
            return FrameChoice(FrameForm.STORED_IMAGE, own_type)
    raise NotAcceptable(
        _(
            'Offered for these frames: multipart/related; type="application/octet-stream"'
            " with transfer-syntax=* (as stored, %(stored)s) or without it (uncompressed),"
            ' or type="%(own)s".'
        )
        % {"stored": stored, "own": own_type}
    )


def negotiate_bulk(request: HttpRequest) -> None:
    """Bulk data goes as ``multipart/related; type="application/octet-stream"``."""
    ranges, _sent = accept_ranges(request)
    for r in ranges:
        if r.media_type in ("*/*", "multipart/*") or (
            r.is_multipart and r.part_type in (None, OCTET, "*/*")
        ):
            return
    raise NotAcceptable(_('Offered: multipart/related; type="application/octet-stream".'))


def negotiate_metadata(request: HttpRequest) -> None:
    ranges, _sent = accept_ranges(request)
    for r in ranges:
        if r.matches(DICOM_JSON) or r.media_type == "application/json":
            return
    raise NotAcceptable(_("Offered: application/dicom+json."))


def negotiate_rendered(request: HttpRequest) -> str:
    """``image/jpeg`` or ``image/png``: the ``accept`` query parameter wins over the header."""
    override = request.GET.get("accept")
    ranges = parse_accept(override) if override else accept_ranges(request)[0]
    for r in ranges:
        if r.media_type in (JPEG, PNG):
            return r.media_type
        if r.matches(JPEG):
            return JPEG
    raise NotAcceptable(_("Offered: image/jpeg or image/png."))
