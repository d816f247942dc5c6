"""Hostile DICOM files, generated on demand, each with the outcome validation must reach.

Every entry of :data:`CORPUS` builds the bytes of one file (with pydicom and, where
pydicom would refuse to write the lie, raw byte surgery) and names the
:class:`~imaging.dicom.validate.Rejected` code it must get, or ``None`` when the file is
hostile-looking but valid and must be accepted (and then stored with its preamble zeroed
and its text shown escaped).

Nothing here touches the database; ``tests/imaging/test_hostile_dicom.py`` runs the corpus
through ``validate_instance`` and ``instance_ingest``.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image
from pydicom.config import disable_value_validation
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from imaging.dicom.validate import DEFAULT_LIMITS, Limits

ROWS = COLUMNS = 8
PIXEL_BYTES = ROWS * COLUMNS * 2  # 16 bits allocated, one frame, one sample

SCRIPT = "<script>alert(1)</script>"
IMG_ONERROR = '"><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE imaging_study--"
CONTROL = "Evil\x07\x08\x0b\x0c\x7f^Name"
LONG = "A" * 60_000  # an LO/PN value far past its 64-character limit (2-byte length: < 64 KiB)

ZHANG_SAN = "张三"


# --- building blocks ------------------------------------------------------------------


def image(**attributes: object) -> Dataset:
    """A small valid CT slice (8 × 8, 16 bits, fresh UIDs); keywords override attributes."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = "20250101"
    ds.Modality = "CT"
    ds.StudyDescription = "Hostile corpus"
    ds.PatientName = "Hostile^Test"
    ds.PatientID = "HOSTILE-1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(256))[:PIXEL_BYTES]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def raw(ds: Dataset, keyword_or_tag: str | int, vr: str, value: bytes) -> Dataset:
    """Put ``value`` into ``ds`` as written bytes, past pydicom's value checks."""
    tag = Tag(keyword_or_tag)
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    return ds


def encode(
    ds: Dataset,
    *,
    preamble: bytes = b"\0" * 128,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> bytes:
    """The Part 10 bytes of ``ds`` (meta group built here, values not checked)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = generate_uid()
    ds.file_meta = meta
    ds.preamble = preamble
    buffer = io.BytesIO()
    with disable_value_validation():
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def valid() -> bytes:
    return encode(image())


def _element(group: int, element: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element with a defined length."""
    if vr in {"OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR"}:
        return struct.pack("<HH2s2xI", group, element, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def _header_end(data: bytes) -> int:
    """Where the data set starts: after the preamble, DICM and the meta group."""
    (group_length,) = struct.unpack_from("<I", data, 132 + 8)
    return 132 + 12 + group_length


def _without_pixels(ds: Dataset) -> bytes:
    """``ds`` encoded without its pixel data, which the caller appends by hand."""
    del ds.PixelData
    return encode(ds)


def _pixel_header(length: int) -> bytes:
    return struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", length)


# --- not DICOM ------------------------------------------------------------------------


def random_bytes() -> bytes:
    return random.Random(0).randbytes(4096)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


def empty() -> bytes:
    return b""


def dicm_at_offset_zero() -> bytes:
    """The DICM marker at the start: a file written without its 128-byte preamble."""
    return valid()[128:]


def dicm_after_short_preamble() -> bytes:
    return b"\0" * 100 + valid()[128:]


def preamble_and_marker_only() -> bytes:
    return b"\0" * 128 + b"DICM"


# --- truncated, lying lengths ---------------------------------------------------------


def truncated_header() -> bytes:
    """Cut inside the data set header, in the middle of the Study Description value."""
    data = valid()
    return data[: data.index(b"Hostile corpus") + 5]


def truncated_meta() -> bytes:
    """Cut inside the file meta group."""
    return valid()[:150]


def pixel_length_past_eof() -> bytes:
    """Pixel Data declares Rows × Columns × Bits, but the file ends 100 bytes later."""
    return _without_pixels(image()) + _pixel_header(PIXEL_BYTES) + bytes(100)


def pixel_data_too_short() -> bytes:
    """An honest Pixel Data element, shorter than Rows × Columns × Bits says."""
    return _without_pixels(image()) + _pixel_header(100) + bytes(100)


def huge_element_length() -> bytes:
    """An element declaring 0xFFFFFFF0 bytes in the middle of the header."""
    data = _without_pixels(image())
    start = _header_end(data)
    bogus = struct.pack("<HH2s2xI", 0x0009, 0x1010, b"OB", 0xFFFFFFF0)
    return data[:start] + bogus + data[start:]


def huge_rows_columns() -> bytes:
    """65535 × 65535 declared, 128 bytes of pixel data."""
    return encode(image(Rows=65535, Columns=65535))


def frames(value: bytes) -> Callable[[], bytes]:
    def build() -> bytes:
        return encode(raw(image(), "NumberOfFrames", "IS", value))

    return build


def file_too_large() -> bytes:
    """A valid file (under 1 KiB), refused with a 512-byte file-size cap."""
    return valid()


def element_too_large() -> bytes:
    """A valid file whose 4 KiB private element is past a 1 KiB element cap."""
    return encode(raw(image(), 0x00091010, "OB", bytes(4096)))


# --- bombs ----------------------------------------------------------------------------

BOMB_INFLATED = 16 * 1024 * 1024
BOMB_LIMIT = 1024 * 1024


def _deflated(body_chunks: Callable[[Callable[[bytes], None]], None]) -> bytes:
    """A Deflated Explicit VR Little Endian file: a valid header, then ``body_chunks``."""
    plain = encode(image())
    meta_end = _header_end(plain)
    meta = encode(image(), transfer_syntax=DeflatedExplicitVRLittleEndian)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [meta[: _header_end(meta)], compressor.compress(plain[meta_end:])]
    body_chunks(lambda chunk: parts.append(compressor.compress(chunk)))
    parts.append(compressor.flush())
    return b"".join(parts)


def deflate_small() -> bytes:
    """A small, honest deflated file: accepted."""
    return _deflated(lambda write: None)


def deflate_bomb() -> bytes:
    """16 MiB of Data Set Trailing Padding in a ~16 KiB deflated file; capped at 1 MiB."""

    def padding(write: Callable[[bytes], None]) -> None:
        write(struct.pack("<HH2s2xI", 0xFFFC, 0xFFFC, b"OB", BOMB_INFLATED))
        zeros = bytes(1024 * 1024)
        for _ in range(BOMB_INFLATED // len(zeros)):
            write(zeros)

    return _deflated(padding)


def deflate_garbage() -> bytes:
    """Deflated transfer syntax, but the data set is not a deflate stream."""
    meta = encode(image(), transfer_syntax=DeflatedExplicitVRLittleEndian)
    return meta[: _header_end(meta)] + b"\xff" * 64 + random.Random(1).randbytes(512)


def _nested(depth: int) -> bytes:
    """Sequences of undefined length nested ``depth`` deep (built without recursion)."""
    sequence = struct.pack("<HH2s2xI", 0x0040, 0xA730, b"SQ", 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    sequence_end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    innermost = _element(0x0040, 0xA040, "CS", b"TEXT")
    return (sequence + item) * depth + innermost + (item_end + sequence_end) * depth


def _with_tail(tail: bytes) -> bytes:
    """A valid image with ``tail`` (raw elements) spliced in just before its pixel data."""
    ds = image()
    pixels = ds.PixelData
    return _without_pixels(ds) + tail + _pixel_header(len(pixels)) + pixels


def nested_50() -> bytes:
    return _with_tail(_nested(50))


def nested_5000() -> bytes:
    return _with_tail(_nested(5000))


def nested_within_limit() -> bytes:
    """Three levels of nesting: an ordinary structured report does as much."""
    return _with_tail(_nested(3))


def many_elements() -> bytes:
    """100 000 private elements (two private groups of 50 000), refused at a 10 000 cap."""
    parts = []
    for group in (0x0009, 0x000B):
        for element in range(0x1000, 0x1000 + 50_000):
            parts.append(struct.pack("<HH2sH", group, element, b"US", 2) + b"\1\0")
    return _with_tail(b"".join(parts))


# --- UIDs -----------------------------------------------------------------------------


def uid(keyword: str, value: bytes) -> Callable[[], bytes]:
    def build() -> bytes:
        return encode(raw(image(), keyword, "UI", value))

    return build


def same_uid_everywhere() -> bytes:
    one = generate_uid()
    return encode(image(StudyInstanceUID=one, SeriesInstanceUID=one, SOPInstanceUID=one))


def unknown_transfer_syntax(transfer_syntax: bytes) -> Callable[[], bytes]:
    """A valid file whose meta names ``transfer_syntax`` (pydicom refuses to write it)."""
    written = ExplicitVRLittleEndian.encode() + b"\0"
    assert len(transfer_syntax) == len(written)

    def build() -> bytes:
        data = valid()
        at = data.index(written)
        assert at < _header_end(data)
        return data[:at] + transfer_syntax + data[at + len(written) :]

    return build


# --- hostile but valid: accepted, stored with the preamble zeroed, shown escaped ------

MZ_PREAMBLE = (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(114))[:128]


def preamble_mz() -> bytes:
    """A DOS/PE "MZ" header in the preamble."""
    return encode(image(), preamble=MZ_PREAMBLE)


def polyglot_pe() -> bytes:
    """A PE-DICOM polyglot: e_lfanew points at a "PE" header hidden in a private element."""
    data = encode(raw(image(), 0x00091010, "OB", b"PE\0\0" + bytes(252)))
    pe_offset = data.index(b"PE\0\0")
    preamble = bytearray(MZ_PREAMBLE)
    struct.pack_into("<I", preamble, 0x3C, pe_offset)
    return bytes(preamble) + data[128:]


def text(**attributes: bytes) -> Callable[[], bytes]:
    """A valid image whose text attributes carry the given bytes as written."""

    def build() -> bytes:
        ds = image()
        for keyword, value in attributes.items():
            vr = "PN" if keyword.endswith("Name") else "LO"
            raw(ds, keyword, vr, value)
        return encode(ds)

    return build


def charset(specific_character_set: bytes, name: bytes) -> Callable[[], bytes]:
    """A valid image whose Patient's Name is ``name`` in ``specific_character_set``."""

    def build() -> bytes:
        ds = raw(image(), "SpecificCharacterSet", "CS", specific_character_set)
        return encode(raw(ds, "PatientName", "PN", name))

    return build


GB18030_NAME = ZHANG_SAN.encode("gb18030")
ISO_2022_IR_58_NAME = b"\x1b$)A" + ZHANG_SAN.encode("gb2312")
UTF8_NAME = ZHANG_SAN.encode("utf-8")


# --- the corpus -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One generated file and what validation must say: a Rejected code, or accepted."""

    name: str
    build: Callable[[], bytes]
    code: str | None
    limits: Limits = field(default=DEFAULT_LIMITS)


ACCEPT = None  # the code of a file that must be accepted

CORPUS: tuple[Hostile, ...] = (
    # Not a DICOM file at all.
    Hostile("random_bytes", random_bytes, "not_dicom"),
    Hostile("png", png, "not_dicom"),
    Hostile("empty", empty, "not_dicom"),
    Hostile("dicm_at_offset_zero", dicm_at_offset_zero, "not_dicom"),
    Hostile("dicm_after_short_preamble", dicm_after_short_preamble, "not_dicom"),
    Hostile("preamble_and_marker_only", preamble_and_marker_only, "truncated"),
    # Truncated, or lengths that lie.
    Hostile("truncated_meta", truncated_meta, "truncated"),
    Hostile("truncated_header", truncated_header, "truncated"),
    Hostile("pixel_length_past_eof", pixel_length_past_eof, "truncated"),
    Hostile("pixel_data_too_short", pixel_data_too_short, "bad_pixels"),
    Hostile("huge_element_length", huge_element_length, "too_large"),
    Hostile("huge_rows_columns", huge_rows_columns, "bad_pixels"),
    Hostile("frames_negative", frames(b"-1"), "bad_pixels"),
    Hostile("frames_not_a_number", frames(b"abc"), "bad_pixels"),
    Hostile("frames_a_billion", frames(b"1000000000"), "bad_pixels"),
    Hostile("frames_more_than_the_data", frames(b"2"), "bad_pixels"),
    Hostile("file_too_large", file_too_large, "too_large", Limits(max_file_bytes=512)),
    Hostile("element_too_large", element_too_large, "too_large", Limits(max_element_bytes=1024)),
    # Bombs.
    Hostile("deflate_bomb", deflate_bomb, "too_large", Limits(max_inflated_bytes=BOMB_LIMIT)),
    Hostile("deflate_garbage", deflate_garbage, "malformed"),
    Hostile("nested_50", nested_50, "too_deep"),
    Hostile("nested_5000", nested_5000, "too_deep"),
    Hostile("many_elements", many_elements, "too_many_elements", Limits(max_elements=10_000)),
    # UID abuse.
    Hostile("uid_letters", uid("SOPInstanceUID", b"1.2.abc.4"), "bad_uid"),
    Hostile("uid_leading_zero", uid("SeriesInstanceUID", b"1.02.3"), "bad_uid"),
    Hostile("uid_65_characters", uid("StudyInstanceUID", b"1." + b"2" * 63), "bad_uid"),
    Hostile("uid_empty", uid("SOPInstanceUID", b""), "bad_uid"),
    Hostile("uid_path_traversal", uid("SOPInstanceUID", b"../../etc/passwd"), "bad_uid"),
    Hostile("uid_nul_inside", uid("SOPInstanceUID", b"1.2.3\x00.4"), "bad_uid"),
    Hostile("nul_inside_text", text(PatientName=b"Evil\0Name"), "malformed"),
    Hostile("nul_inside_other_uid", uid("ReferencedSOPInstanceUID", b"1.2\x003"), "malformed"),
    Hostile("uid_sop_class_path", uid("SOPClassUID", b"/etc/passwd"), "bad_uid"),
    Hostile("uid_same_for_study_series_instance", same_uid_everywhere, "bad_uid"),
    Hostile(
        "transfer_syntax_unknown_dicom_root",
        unknown_transfer_syntax(b"1.2.840.10008.1.2.99"),
        "bad_transfer_syntax",
    ),
    Hostile(
        "transfer_syntax_unknown_private",
        unknown_transfer_syntax(b"1.3.6.1.4.1.99999.12"),
        "bad_transfer_syntax",
    ),
    # Hostile-looking but valid: accepted.
    Hostile("valid_baseline", valid, ACCEPT),
    Hostile("deflate_small", deflate_small, ACCEPT),
    Hostile("nested_within_limit", nested_within_limit, ACCEPT),
    Hostile("uid_nul_padding", uid("SOPInstanceUID", b"1.2.3.4.5\x00"), ACCEPT),
    Hostile("implicit_vr", lambda: encode(image(), transfer_syntax=ImplicitVRLittleEndian), ACCEPT),
    Hostile("preamble_mz", preamble_mz, ACCEPT),
    Hostile("polyglot_pe", polyglot_pe, ACCEPT),
    Hostile("injection_script", text(PatientName=SCRIPT.encode()), ACCEPT),
    Hostile("injection_img", text(StudyDescription=IMG_ONERROR.encode()), ACCEPT),
    Hostile("injection_sql", text(PatientID=SQL.encode(), StudyDescription=SQL.encode()), ACCEPT),
    Hostile(
        "very_long_strings",
        text(PatientName=LONG.encode(), StudyDescription=LONG.encode()),
        ACCEPT,
    ),
    Hostile("control_characters", text(PatientName=CONTROL.encode()), ACCEPT),
    Hostile("charset_gb18030", charset(b"GB18030", GB18030_NAME), ACCEPT),
    Hostile("charset_iso_2022_ir_58", charset(b"\\ISO 2022 IR 58", ISO_2022_IR_58_NAME), ACCEPT),
    Hostile("charset_utf8", charset(b"ISO_IR 192", UTF8_NAME), ACCEPT),
)

BY_NAME = {case.name: case for case in CORPUS}
