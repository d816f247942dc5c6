"""WADO-RS (PS3.18 §10.4): instances, metadata, frames and bulk data the caller may see.

Every view fetches through :mod:`imaging.dicomweb.access` (the selectors, audited there),
then streams: multipart bodies are written part by part from the object store, and study
or series metadata is written instance by instance from the index, so memory stays flat
however large the study. Transcoding, when asked for, happens one instance at a time.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.translation import gettext as _
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels import pack_bits
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from imaging.dicomweb.access import instance_for, series_for, study_for
from imaging.dicomweb.multipart import MultipartWriter
from imaging.dicomweb.negotiate import (
    DICOM,
    EVRLE,
    FRAME_MEDIA_TYPES,
    OCTET,
    FrameChoice,
    FrameForm,
    InstanceForm,
    negotiate_bulk,
    negotiate_frames,
    negotiate_instances,
    negotiate_metadata,
)
from imaging.dicomweb.pixels import InstancePixels, PixelError, Undecodable
from imaging.dicomweb.responses import (
    CACHE_PIXELS,
    CACHE_QUERY,
    DICOM_JSON,
    BadRequest,
    DicomwebError,
    check_uids,
    endpoint,
    post_stow,
    streaming_response,
)
from imaging.models import Instance
from objectstore import get_store

logger = logging.getLogger(__name__)

ACTION = "dicomweb.retrieve"
_BULK_RE = re.compile(r'"BulkDataURI": ?"bulk:([0-9A-Fa-f]{8})"')
_FRAME_LIST_RE = re.compile(r"^\d+(,\d+)*$")
# Bytes per value, for swapping big-endian binary values (raw US/SS/... too).
_WORD_SIZES = {
    "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8, "US": 2, "SS": 2, "UL": 4, "SL": 4,
    "FL": 4, "FD": 8,
}  # fmt: skip
METADATA_BATCH_BYTES = 256 * 1024


# --- Instances -----------------------------------------------------------------------------


def _instances_of(**filters: Any) -> QuerySet[Instance]:
    return Instance.objects.filter(**filters).order_by(
        "series__series_number", "series_id", "instance_number", "pk"
    )


def _to_little_endian(ds: Dataset) -> None:
    """Swap binary values of a big-endian data set so it can be written little endian."""
    for elem in ds.iterall():
        size = _WORD_SIZES.get(elem.VR)
        if size and isinstance(elem.value, bytes) and elem.tag != 0x7FE00010:
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def transcode_explicit_le(instance: Instance) -> bytes:
    """The instance as an Explicit VR Little Endian Part 10 file (decoded in memory).

    Raises
    ------
    Undecodable
        The pixel data cannot be decoded.
    """
    with InstancePixels(instance) as pixels:
        ds = pixels.dataset
        syntax = pixels.transfer_syntax
        try:
            if syntax.is_compressed:
                ds.decompress(generate_instance_uid=False, as_rgb=True)
            elif syntax == ExplicitVRBigEndian and "PixelData" in ds:
                array = ds.pixel_array
                if pixels.info.bits_allocated == 1:
                    ds.PixelData = pack_bits(array)
                else:
                    ds.PixelData = array.astype(array.dtype.newbyteorder("<")).tobytes()
                _to_little_endian(ds)
        except PixelError:
            raise
        except Exception as exc:
            logger.warning("cannot transcode %s: %s", instance.sop_uid, exc)
            raise Undecodable(_("The pixel data cannot be decoded for transcoding.")) from exc
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = io.BytesIO()
        dcmwrite(out, ds, implicit_vr=False, little_endian=True, force_encoding=True)
        return out.getvalue()


def _instance_parts(
    writer: MultipartWriter, instances: Iterable[Instance], form: InstanceForm
) -> Iterator[bytes]:
    store = get_store()
    for instance in instances:
        if form is InstanceForm.EXPLICIT_LE and instance.transfer_syntax_uid != EVRLE:
            try:
                body = transcode_explicit_le(instance)
            except PixelError:
                continue  # logged; the other instances still go
            yield from writer.part(f"{DICOM}; transfer-syntax={EVRLE}", [body])
            continue
        chunks = store.open(instance.object_key, expected_sha256=instance.sha256)
        yield from writer.part(f"{DICOM}; transfer-syntax={instance.transfer_syntax_uid}", chunks)
    yield writer.close()


def _retrieve(
    request: HttpRequest, instances: QuerySet[Instance] | Instance, *, single_allowed: bool
) -> HttpResponseBase:
    if isinstance(instances, Instance):
        rows = [instances]
        instances = _instances_of(pk=instances.pk)
    else:
        rows = list(
            instances.only("object_key", "sha256", "transfer_syntax_uid", "size", "sop_uid")
        )
    syntaxes = {i.transfer_syntax_uid for i in rows}
    form = negotiate_instances(request, syntaxes, single_allowed=single_allowed)
    if form is InstanceForm.SINGLE:
        instance = rows[0]
        chunks = get_store().open(instance.object_key, expected_sha256=instance.sha256)
        response = streaming_response(request, chunks, content_type=DICOM, cache=CACHE_PIXELS)
        response["Content-Length"] = str(instance.size)
        return response
    writer = MultipartWriter(DICOM)
    if form is InstanceForm.EXPLICIT_LE:
        # Full rows (with metadata) are needed to decode; still one instance at a time.
        rows = list(instances.filter(pk__in=[r.pk for r in rows]))
        if len(rows) == 1 and rows[0].transfer_syntax_uid != EVRLE:
            # One instance: transcode before answering, so a failure is a 406.
            body = transcode_explicit_le(rows[0])
            single = iter(
                [*writer.part(f"{DICOM}; transfer-syntax={EVRLE}", [body]), writer.close()]
            )
            return streaming_response(
                request, single, content_type=writer.content_type, cache=CACHE_PIXELS
            )
    return streaming_response(
        request,
        _instance_parts(writer, rows, form),
        content_type=writer.content_type,
        cache=CACHE_PIXELS,
    )


@endpoint(methods=("GET", "HEAD", "POST"))
def study_resource(request: HttpRequest, study: str) -> HttpResponseBase:
    """``GET`` retrieves the study; ``POST`` stores into it (STOW-RS)."""
    check_uids(study_uid=study)
    if request.method == "POST":
        return post_stow(request, study)
    found = study_for(actor=request.user, study_uid=study, action=ACTION)
    return _retrieve(request, _instances_of(series__study=found), single_allowed=False)


@endpoint()
def retrieve_series(request: HttpRequest, study: str, series: str) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series)
    found = series_for(actor=request.user, study_uid=study, series_uid=series, action=ACTION)
    return _retrieve(request, _instances_of(series=found), single_allowed=False)


@endpoint()
def retrieve_instance(
    request: HttpRequest, study: str, series: str, instance: str
) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series, sop_instance_uid=instance)
    found = instance_for(
        actor=request.user, study_uid=study, series_uid=series, sop_uid=instance, action=ACTION
    )
    return _retrieve(request, found, single_allowed=True)


# --- Metadata ------------------------------------------------------------------------------


def _metadata_json(raw: str, root: str, study: str, series: str, sop: str, syntax: str) -> str:
    """One instance's stored DICOM JSON with BulkDataURIs and its available transfer syntax."""
    base = f"{root}studies/{study}/series/{series}/instances/{sop}/bulk/"
    text = _BULK_RE.sub(lambda m: f'"BulkDataURI": "{base}{m.group(1).upper()}"', raw)
    available = f'"00083002": {{"vr": "UI", "Value": ["{syntax}"]}}'
    if '"00083002"' in text or not text.startswith("{"):
        return text
    return "{" + available + ("}" if text.strip() == "{}" else ", " + text[1:])


def _metadata_chunks(instances: QuerySet[Instance], root: str) -> Iterator[bytes]:
    rows = (
        instances.annotate(raw=Cast("metadata", output_field=TextField()))
        .values_list(
            "raw",
            "series__study__study_uid",
            "series__series_uid",
            "sop_uid",
            "transfer_syntax_uid",
        )
        .iterator(chunk_size=100)
    )
    batch: list[str] = ["["]
    size = 1
    first = True
    for raw, study, series, sop, syntax in rows:
        piece = _metadata_json(raw or "{}", root, study, series, sop, syntax)
        batch.append(piece if first else "," + piece)
        first = False
        size += len(piece) + 1
        if size >= METADATA_BATCH_BYTES:
            yield "".join(batch).encode()
            batch, size = [], 0
    batch.append("]")
    yield "".join(batch).encode()


def _metadata(request: HttpRequest, instances: QuerySet[Instance]) -> HttpResponseBase:
    negotiate_metadata(request)
    root = reverse("dicomweb:root")
    return streaming_response(
        request, _metadata_chunks(instances, root), content_type=DICOM_JSON, cache=CACHE_QUERY
    )


@endpoint()
def study_metadata(request: HttpRequest, study: str) -> HttpResponseBase:
    check_uids(study_uid=study)
    found = study_for(actor=request.user, study_uid=study, action=ACTION)
    return _metadata(request, _instances_of(series__study=found))


@endpoint()
def series_metadata(request: HttpRequest, study: str, series: str) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series)
    found = series_for(actor=request.user, study_uid=study, series_uid=series, action=ACTION)
    return _metadata(request, _instances_of(series=found))


@endpoint()
def instance_metadata(
    request: HttpRequest, study: str, series: str, instance: str
) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series, sop_instance_uid=instance)
    found = instance_for(
        actor=request.user, study_uid=study, series_uid=series, sop_uid=instance, action=ACTION
    )
    return _metadata(request, _instances_of(pk=found.pk))


# --- Frames --------------------------------------------------------------------------------


def parse_frame_list(raw: str) -> list[int]:
    """``1,3,5`` as 1-based frame numbers (400 for anything else)."""
    if not _FRAME_LIST_RE.match(raw) or len(raw) > 4000:
        raise BadRequest(_("Frames are 1-based numbers separated by commas, such as 1,2,3."))
    numbers = [int(n) for n in raw.split(",")]
    if 0 in numbers:
        raise BadRequest(_("Frame numbers start at 1."))
    return numbers


def _frame_part(pixels: InstancePixels, index: int, choice: FrameChoice) -> tuple[str, bytes]:
    """The content type and bytes of one frame in the chosen form."""
    if choice.form is FrameForm.DECODED and pixels.transfer_syntax.is_compressed:
        array, _photometric = pixels.decoded_frame(index, as_rgb=True)
        if pixels.info.bits_allocated == 1:
            body = pack_bits(array)
        else:
            body = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        return f"{OCTET}; transfer-syntax={EVRLE}", body
    body, syntax = pixels.stored_frame(index)
    if choice.form is FrameForm.STORED_IMAGE and syntax.is_compressed:
        media_type = FRAME_MEDIA_TYPES.get(str(syntax), OCTET)
        return f"{media_type}; transfer-syntax={syntax}", body
    return f"{OCTET}; transfer-syntax={syntax}", body


def frames_response(request: HttpRequest, found: Instance, frames: list[int]) -> HttpResponseBase:
    """The frames of ``found`` as multipart/related; each frame decoded only when sent."""
    pixels = InstancePixels(found)
    try:
        indices = [pixels.check_frame(n) for n in frames]
        choice = negotiate_frames(request, found.transfer_syntax_uid)
        # The first frame is prepared now, so an undecodable one is a 406, not a cut body.
        first = _frame_part(pixels, indices[0], choice)
    except BaseException:
        pixels.close()
        raise
    writer = MultipartWriter(choice.part_type)

    def chunks() -> Iterator[bytes]:
        try:
            content_type, body = first
            yield from writer.part(content_type, [body])
            for index in indices[1:]:
                try:
                    content_type, body = _frame_part(pixels, index, choice)
                except PixelError:
                    break  # logged where it failed
                yield from writer.part(content_type, [body])
            yield writer.close()
        finally:
            pixels.close()

    return streaming_response(
        request, chunks(), content_type=writer.content_type, cache=CACHE_PIXELS
    )


@endpoint()
def retrieve_frames(
    request: HttpRequest, study: str, series: str, instance: str, frames: str
) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series, sop_instance_uid=instance)
    numbers = parse_frame_list(frames)
    found = instance_for(
        actor=request.user, study_uid=study, series_uid=series, sop_uid=instance, action=ACTION
    )
    return frames_response(request, found, numbers)


# --- Bulk data -----------------------------------------------------------------------------


def _find_element(ds: Dataset, tag: int) -> DataElement | RawDataElement | None:
    """The element with ``tag``: top level first, then inside sequences (first found)."""
    if tag in ds:
        return ds.get_item(tag)
    for elem in ds.iterall():
        if elem.tag == tag:
            return elem
    return None


def _bulk_bytes(elem: DataElement | RawDataElement, *, big_endian: bool) -> bytes:
    value = elem.value
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
        size = _WORD_SIZES.get(str(elem.VR))
        if big_endian and size:
            data = np.frombuffer(data, dtype=f">u{size}").astype(f"<u{size}").tobytes()
        return data
    raise Undecodable(_("This attribute is not bulk data."))


@endpoint()
def retrieve_bulk(
    request: HttpRequest, study: str, series: str, instance: str, tag: str
) -> HttpResponseBase:
    check_uids(study_uid=study, series_uid=series, sop_instance_uid=instance)
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", tag):
        raise BadRequest(_("A bulk data tag is 8 hexadecimal digits, such as 7FE00010."))
    negotiate_bulk(request)
    found = instance_for(
        actor=request.user, study_uid=study, series_uid=series, sop_uid=instance, action=ACTION
    )
    number = int(tag, 16)
    if number == 0x7FE00010:
        # Pixel data: every frame, as stored (what OHIF asks of bulk pixel data).
        with InstancePixels(found) as pixels:
            count = pixels.info.frames if pixels.has_pixels else 0
        if not count:
            raise _missing_bulk()
        return frames_response(request, found, list(range(1, count + 1)))
    with InstancePixels(found) as pixels:
        elem = _find_element(pixels.dataset, number)
        if elem is None:
            raise _missing_bulk()
        body = _bulk_bytes(elem, big_endian=pixels.transfer_syntax == ExplicitVRBigEndian)
    writer = MultipartWriter(OCTET)
    return streaming_response(
        request,
        iter([*writer.part(OCTET, [body]), writer.close()]),
        content_type=writer.content_type,
        cache=CACHE_PIXELS,
    )


def _missing_bulk() -> DicomwebError:
    return DicomwebError(_("This instance has no such bulk data."), status=404)
