"""Validate a DICOM Part 10 file before anything is kept.

Hostile files are a normal day for an imaging centre: malformed or truncated headers,
declared lengths larger than the file, deflate bombs, endless sequence nesting, pixel
data shorter than Rows × Columns × Frames × Bits says, invalid or abusive UIDs. Each is
refused with :class:`Rejected`, whose ``code`` is stable (for machines and the audit
trail) and whose message is for a person.

No Django models here; translations are lazy so callers show them in the reader's
language.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pydicom
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext_lazy as _
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.valuerep import STR_VR

from imaging.dicom import element_memo
from imaging.dicom.metadata import element_json

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
CHUNK = 1024 * 1024

# pydicom 3.0 leaves ESC $ ) A in text decoded as ISO 2022 IR 58 (GB2312): it expects
# Python's codec to strip it, and Python's gb2312 does not. Outside that tuple pydicom
# strips the escape sequence itself (and writes it, as PS3.5 Annex K does).
pydicom.charset.handled_encodings = tuple(  # type: ignore[assignment]
    encoding for encoding in pydicom.charset.handled_encodings if encoding != "iso_ir_58"
)


@dataclass(frozen=True)
class Limits:
    """Caps applied to every incoming file."""

    max_file_bytes: int = 2 * 1024**3
    max_inflated_bytes: int = 256 * 1024**2
    max_sequence_depth: int = 12
    max_element_bytes: int = 1024**3
    max_frames: int = 10_000
    max_elements: int = 50_000


DEFAULT_LIMITS = Limits()


# Fill a lazily translated message's placeholders when it is shown, so the reader's
# language applies (``lazy_message % params`` would translate at once).
_interpolate = lazy(lambda template, params: str(template) % params, str)


class Rejected(ValueError):
    """The file is refused; ``code`` is stable, ``message`` is for a person.

    Parameters
    ----------
    code
        Machine-readable reason, e.g. ``"not_dicom"``, ``"truncated"``, ``"bad_uid"``.
    message
        A lazily translated sentence.
    """

    def __init__(self, code: str, message: str | Promise) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Identity:
    """An accepted file's size, UIDs, patient and image geometry, decoded, as plain values."""

    size: int
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_uid: str
    series_uid: str
    study_uid: str
    patient_id: str
    patient_name: str
    rows: int | None
    columns: int | None
    frames: int
    bits_allocated: int | None
    photometric: str


@dataclass(frozen=True)
class ValidInstance(Identity):
    """An accepted file: its identity and its header (character sets applied)."""

    dataset: Dataset  # without pixel data values loaded (deferred)
    # DICOM JSON of the top-level elements validation decoded or had met before
    # (imaging.dicom.element_memo); instance_metadata() writes the others.
    json: dict[int, element_memo.Fragment] = field(default_factory=dict)


def is_valid_uid(value: object) -> bool:
    """Digits and dots, no leading zeros in a component, at most 64 characters."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(UID_PATTERN.match(value))


def _size(fileobj: BinaryIO) -> int:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


_DEFLATED = DeflatedExplicitVRLittleEndian.encode()
# (0002,0000) File Meta Information Group Length, explicit VR "UL", value length 4.
_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"
_META_PEEK = 4096


def _may_be_deflated(fileobj: BinaryIO) -> bool:
    """``False`` only when the File Meta group, read whole, does not name Deflate.

    Reading the meta with pydicom costs as much as a tenth of an instance's ingest; the
    usual file states its meta length first, so its raw bytes tell at once. Anything
    unusual (no group length, a longer meta) goes to the full check.
    """
    head = fileobj.read(132 + _META_PEEK)
    fileobj.seek(0)
    if head[132:140] != _GROUP_LENGTH or len(head) < 144:
        return True
    end = 144 + int.from_bytes(head[140:144], "little")
    return end > len(head) or _DEFLATED in head[144:end]


def _check_deflate(fileobj: BinaryIO, limits: Limits) -> int | None:
    """Inflate a deflated data set as a stream, refusing it past the inflated-size cap.

    Returns the size the data set has once inflated (positions are counted in it), or
    ``None`` when the file is not deflated.
    """
    if not _may_be_deflated(fileobj):
        return None
    pydicom.filereader.read_preamble(fileobj, False)
    # Reads the group-2 meta and leaves the file just after it (no public equivalent).
    meta = pydicom.filereader._read_file_meta_info(fileobj)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        fileobj.seek(0)
        return None
    start = fileobj.tell()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while chunk := fileobj.read(CHUNK):
        try:
            total += len(inflater.decompress(chunk, limits.max_inflated_bytes + 1 - total))
        except zlib.error:
            raise Rejected("malformed", _("The compressed data set is damaged.")) from None
        if total > limits.max_inflated_bytes or inflater.unconsumed_tail:
            raise Rejected(
                "too_large", _("The compressed data set inflates beyond the size limit.")
            )
    fileobj.seek(0)
    return start + total


def _raw_elements(ds: Dataset) -> list[Any]:
    """The elements as read, deferred values not loaded.

    ``Dataset.elements()`` converts (and so reads) deferred values; the raw store is
    ``_dict`` (pydicom is pinned to 3.0.x and tests cover this).
    """
    return [ds._dict[tag] for tag in sorted(ds._dict)]


def _walk(ds: Dataset, limits: Limits, size: int, depth: int, count: list[int]) -> None:
    """Check element lengths and sequence depth, without loading large values."""
    if depth > limits.max_sequence_depth:
        raise Rejected("too_deep", _("Sequences are nested deeper than allowed."))
    for elem in _raw_elements(ds):
        count[0] += 1
        if count[0] > limits.max_elements:
            raise Rejected("too_many_elements", _("The file has more elements than allowed."))
        length = getattr(elem, "length", 0) or 0
        if length != 0xFFFFFFFF and length > limits.max_element_bytes:
            raise Rejected("too_large", _("An element is larger than allowed."))
        tell = getattr(elem, "value_tell", None)
        if tell is not None and length != 0xFFFFFFFF and tell + length > size:
            raise Rejected("truncated", _("The file ends before its data does (truncated)."))
        if elem.VR == "SQ":
            for item in ds[elem.tag].value:
                _walk(item, limits, size, depth + 1, count)


def _tell(elem: Any) -> int:
    """Where an element's value starts in the file (raw and converted elements alike)."""
    return int(getattr(elem, "value_tell", None) or getattr(elem, "file_tell", None) or 0)


def _end(ds: Dataset) -> int | None:
    """Where the last top-level element ends, or ``None`` when that is not kept."""
    last = max(ds._dict.values(), key=_tell)
    if not isinstance(last, RawDataElement):
        return None  # a sequence, already parsed
    if last.length != 0xFFFFFFFF:
        return last.value_tell + last.length
    if last.value is None:
        return None  # deferred; its delimiter was found
    return last.value_tell + len(last.value) + 8  # and the sequence delimiter


def _check_complete(ds: Dataset, size: int) -> None:
    """Refuse a data set that stops before the file does.

    pydicom reads nothing of a data set whose undefined-length value lacks its delimiter
    (it warns and drops every element), and stops quietly at a partial element header.
    """
    end = _end(ds) if ds._dict else 0
    if end is not None and end != size:
        raise Rejected("truncated", _("The file ends before its data does (truncated)."))


def _decode(ds: Dataset, known: dict[int, element_memo.Fragment] | None = None) -> None:
    """Convert, and so decode, every element already read; deferred values stay unread.

    ``Dataset.decode()`` would read every deferred value too, the whole pixel data
    included. Text with a NUL inside is refused: DICOM forbids it and PostgreSQL cannot
    store it (pydicom already strips trailing NUL padding). With ``known`` (top level),
    an element met before in another file (:mod:`imaging.dicom.element_memo`) is not
    decoded again, and the DICOM JSON of each remembered element goes into ``known``.
    """
    charset = _charset_key(ds) if known is not None else b""
    for elem in _raw_elements(ds):
        if isinstance(elem, RawDataElement) and elem.value is None and elem.length:
            continue  # deferred
        key = element_memo.key_of(elem, charset) if known is not None else None
        if known is not None and key is not None and (fragment := element_memo.recall(key)):
            known[elem.tag] = fragment
            continue  # the same bytes were decoded and passed before
        converted = ds[elem.tag]
        if converted.VR == "SQ":
            for item in converted.value:
                _decode(item)
        elif converted.VR in STR_VR and "\0" in _joined(converted.value):
            raise Rejected("malformed", _("A text value contains a NUL character."))
        if key is not None and known is not None:
            fragment = element_json(converted)
            element_memo.remember(key, fragment)
            known[elem.tag] = fragment


def _charset_key(ds: Dataset) -> bytes:
    """Specific Character Set as found, for the memo: text decodes by it."""
    elem = ds._dict.get(pydicom.tag.Tag(0x00080005))
    if elem is None:
        return b""
    if isinstance(elem, RawDataElement):
        return bytes(elem.value or b"")
    return _joined(elem.value).encode("utf-8", "replace") + b"\x00converted"


def _joined(value: Any) -> str:
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _check_pixels(
    ds: Dataset, *, transfer_syntax: str, size: int, limits: Limits
) -> tuple[int, int | None, int | None, int | None]:
    """Return frames, rows, columns, bits allocated; refuse inconsistent pixel data."""
    frames = _int(ds, "NumberOfFrames") or 1
    rows, columns, bits = _int(ds, "Rows"), _int(ds, "Columns"), _int(ds, "BitsAllocated")
    if "PixelData" not in ds:
        # An image cut short just before its pixel data still parses: refuse it.
        image = "Image Storage" in pydicom.uid.UID(_text(ds, "SOPClassUID")).name
        float_pixels = {0x7FE00008, 0x7FE00009} & set(ds.keys())
        if (image or (rows and columns and bits)) and not float_pixels:
            raise Rejected(
                "bad_pixels", _("The image has no pixel data (the file may be truncated).")
            )
        return frames, rows, columns, bits
    declared_but_not_a_number = (
        _int(ds, "NumberOfFrames") is None and _text(ds, "NumberOfFrames").strip() != ""
    )
    if declared_but_not_a_number or frames < 1 or frames > limits.max_frames:
        raise Rejected("bad_pixels", _("The number of frames is out of range."))
    if (
        not rows
        or not columns
        or not bits
        or rows > 65535
        or columns > 65535
        or bits not in {1, 8, 16, 32, 64}
    ):
        raise Rejected(
            "bad_pixels", _("Rows, Columns or Bits Allocated are missing or out of range.")
        )
    samples = _int(ds, "SamplesPerPixel") or 1
    if samples not in {1, 3, 4}:
        raise Rejected("bad_pixels", _("Samples per Pixel is out of range."))
    raw = ds._dict[pydicom.tag.Tag(0x7FE00010)]
    length = getattr(raw, "length", None)
    if length is None:  # already converted: the value is in memory
        undefined = getattr(raw, "is_undefined_length", False)
        length = 0xFFFFFFFF if undefined else len(raw.value or b"")
    encapsulated = pydicom.uid.UID(transfer_syntax).is_compressed
    if encapsulated:
        if length != 0xFFFFFFFF:
            raise Rejected("bad_pixels", _("Compressed pixel data must be encapsulated."))
        return frames, rows, columns, bits
    if length == 0xFFFFFFFF:
        raise Rejected("bad_pixels", _("Uncompressed pixel data cannot be encapsulated."))
    expected = (
        rows * columns * frames * samples * bits // 8
        if bits >= 8
        else (rows * columns * frames * samples + 7) // 8
    )
    if _text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
        expected = expected // 3 * 2  # two chroma samples per two pixels
    if length < expected:
        raise Rejected(
            "bad_pixels",
            _(
                "The pixel data is shorter than Rows × Columns × Frames × Bits says"
                " (truncated or forged)."
            ),
        )
    return frames, rows, columns, bits


def validate_instance(fileobj: BinaryIO, *, limits: Limits = DEFAULT_LIMITS) -> ValidInstance:
    """Parse and check a Part 10 file; the file must be seekable.

    Parameters
    ----------
    fileobj
        The whole file, seekable (a temporary file).
    limits
        Size, depth and count caps.

    Returns
    -------
    ValidInstance
        The header (pixel values deferred) and the attributes the index needs.

    Raises
    ------
    Rejected
        With a stable code and a sentence for a person.
    """
    size = _size(fileobj)
    if size > limits.max_file_bytes:
        raise Rejected("too_large", _("The file is larger than the size limit."))
    head = fileobj.read(132)
    fileobj.seek(0)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise Rejected(
            "not_dicom", _("This is not a DICOM file (no DICM marker after the preamble).")
        )
    try:
        inflated = _check_deflate(fileobj, limits)
        ds = pydicom.dcmread(fileobj, defer_size=64 * 1024)
        meta = ds.file_meta
        transfer_syntax = str(meta.get("TransferSyntaxUID", ""))
        count = [0]
        _walk(ds, limits, inflated or size, 0, count)
        _walk(meta, limits, size, 0, count)
        if inflated is None:  # a deflated stream cut short fails to inflate
            _check_complete(ds, size)
    except Rejected:
        raise
    except RecursionError:
        raise Rejected("too_deep", _("Sequences are nested deeper than allowed.")) from None
    except MemoryError:
        raise Rejected("too_large", _("The file declares more data than can be read.")) from None
    except Exception:  # pydicom raises many kinds on malformed input
        raise Rejected(
            "malformed", _("The DICOM header cannot be read (malformed or truncated).")
        ) from None

    try:  # reading a value converts it: a damaged VR (say 'UY') raises here, not above
        uids = {
            "TransferSyntaxUID": transfer_syntax,
            "SOPClassUID": _text(ds, "SOPClassUID"),
            "SOPInstanceUID": _text(ds, "SOPInstanceUID"),
            "SeriesInstanceUID": _text(ds, "SeriesInstanceUID"),
            "StudyInstanceUID": _text(ds, "StudyInstanceUID"),
        }
    except Exception:
        raise Rejected("malformed", _("The DICOM data set cannot be decoded.")) from None
    for keyword, value in uids.items():
        if not is_valid_uid(value):
            raise Rejected(
                "bad_uid",
                _interpolate(
                    _("%(attribute)s is missing or not a valid UID (digits and dots, at most 64)."),
                    {"attribute": keyword},
                ),
            )
    if len({uids["SOPInstanceUID"], uids["SeriesInstanceUID"], uids["StudyInstanceUID"]}) < 3:
        raise Rejected("bad_uid", _("Study, series and instance must have different UIDs."))
    try:
        if (
            transfer_syntax not in pydicom.uid.AllTransferSyntaxes
            and transfer_syntax not in pydicom.uid.PrivateTransferSyntaxes
        ):
            raise Rejected(
                "bad_transfer_syntax", _("The transfer syntax is not a known DICOM one.")
            )
        frames, rows, columns, bits = _check_pixels(
            ds, transfer_syntax=transfer_syntax, size=size, limits=limits
        )
        known: dict[int, element_memo.Fragment] = {}
        _decode(ds, known)  # apply Specific Character Set (GB18030, ISO 2022 IR 58, UTF-8...)
        patient_name = _text(ds, "PatientName")
        patient_id = _text(ds, "PatientID")
    except Rejected:
        raise
    except Exception:
        raise Rejected("malformed", _("The DICOM data set cannot be decoded.")) from None
    return ValidInstance(
        dataset=ds,
        size=size,
        transfer_syntax_uid=transfer_syntax,
        sop_class_uid=uids["SOPClassUID"],
        sop_uid=uids["SOPInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        patient_id=patient_id[:64],
        patient_name=patient_name[:324],
        rows=rows,
        columns=columns,
        frames=frames,
        bits_allocated=bits,
        photometric=_text(ds, "PhotometricInterpretation")[:16],
        json=known,
    )
