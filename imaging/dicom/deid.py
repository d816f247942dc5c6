"""De-identification with the PS3.15 Annex E Basic Application Level Confidentiality Profile.

This module exports a study outside the association (a teaching file, a second opinion):
:func:`deidentify` returns a de-identified copy of a data set, :func:`deidentify_file`
does the same from one Part 10 file to another. One :class:`UidMap` is shared by all
the instances of one export, so references between them still resolve.

What it does, in order, at every nesting level:

* removes every private data element (odd group), private creators included;
* applies the basic profile action of PS3.15 Table E.1-1 to each listed attribute
  (``deid_table.TABLE_E1_1`` is the whole table, transcribed from a recent edition);
* removes curve data (``50xx``) and overlay planes (``60xx``; the profile removes their
  data and comments, and the plane is not valid without them);
* replaces attributes with a DA, DT or TM value that the table does not list with a dummy
  value (Annex E.2: the profile removes "dates and times" that could match instances);
* removes a few identifying attributes newer than the transcribed table
  (``deid_table.ADDITIONS_TABLE``, the Encrypted Attributes Sequence among them),
  standard attributes of unknown meaning (VR UN) and group lengths;
* records what was done: Patient Identity Removed, De-identification Method (and its
  code sequence) and Longitudinal Temporal Information Modified.

Choices the profile leaves to the implementation (it cannot know each IOD's Types here):

* a combined action (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``) on an attribute that is not a
  sequence takes its last alternative, which keeps every IOD conformant whatever the
  attribute's Type; the empty or dummy value carries no more than removal would;
* a combined action on a sequence never makes a dummy sequence (its items' meaning is
  unknown): ``X/D`` removes it, the others empty it; ``X/Z/U*`` keeps the sequence and
  cleans its items, which replaces the instance UIDs they reference;
* a sequence whose action is ``D`` (Content Sequence, Verifying Observer Sequence, ...)
  keeps its structure, and every text value inside it (names, codes, free text) becomes a
  dummy; coding scheme designators are kept.

The Clean options (pixel data, graphics, structured content, descriptors) are not
implemented: they need a person. :class:`DeidOptions` offers the Retain Longitudinal
Temporal Information with Full Dates option and an opt-in to keep descriptions verbatim.

No Django imports here: this is a library-grade helper.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

__all__ = ["DeidOptions", "UidMap", "deidentify", "deidentify_file"]

from imaging.dicom.deid_table import ADDITIONS_TABLE, TABLE_E1_1


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One row of the table: basic profile action, option letters (F, C) and name."""

    code: str
    options: str
    name: str


def _parse(table: str) -> dict[int, ProfileRow]:
    rows: dict[int, ProfileRow] = {}
    for line in table.strip().splitlines():
        left, name = line.split("|")
        tag, code, *options = left.split()
        rows[int(tag, 16)] = ProfileRow(code=code, options="".join(options), name=name.strip())
    return rows


PROFILE: Final[dict[int, ProfileRow]] = _parse(TABLE_E1_1)
ADDITIONS: Final[dict[int, ProfileRow]] = _parse(ADDITIONS_TABLE)
_RULES: Final[dict[int, ProfileRow]] = {**PROFILE, **ADDITIONS}

_DATE_VRS: Final = frozenset({"DA", "DT", "TM"})
_TEXT_VRS: Final = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_CODING_SCHEME_TAGS: Final = frozenset({0x00080102, 0x00080103})  # designator, version
_PATIENT_NAME: Final = 0x00100010
_PATIENT_ID: Final = 0x00100020


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:  # newer than this pydicom's dictionary
        return ""


# What ``keep_descriptions`` keeps: the Clean Descriptors Option's attributes that describe
# the study, its acquisition or its objects (names ending in Description or Label, and
# Protocol Name); diagnoses, comments, histories and notes about the patient stay removed.
DESCRIPTORS: Final[frozenset[int]] = frozenset(
    tag
    for tag, row in PROFILE.items()
    if "C" in row.options
    and _dictionary_vr(tag) != "SQ"
    and (row.name.endswith(("Description", "Label")) or row.name == "Protocol Name")
    and "Diagnos" not in row.name
    and "Service Episode" not in row.name
)

_BASIC_PROFILE_CODE: Final = ("113100", "Basic Application Confidentiality Profile")
_FULL_DATES_CODE: Final = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
_METHOD: Final = "PS3.15 Annex E Basic Profile; private attributes removed"
_FULL_DATES_METHOD: Final = "Retain Longitudinal Temporal Information Full Dates"
_DESCRIPTIONS_METHOD: Final = "Descriptions kept verbatim, not cleaned"
_PIXELS_METHOD: Final = "Pixel data not cleaned; burned-in text unchecked"

_DUMMY_TEXT: Final = "ANONYMIZED"
_DUMMY_NAME: Final = "ANONYMOUS"
_DUMMIES: Final[dict[str, Any]] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "DS": "0",
    "IS": "0",
    "PN": _DUMMY_NAME,
    "UR": "urn:x-deidentified",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "OW": b"\x00\x00",
}


class UidMap:
    """Replacement UIDs for one export, consistent across all of its instances.

    The same original UID always maps to the same new UID within one map, so a study
    exported instance by instance keeps its Study, Series and Frame of Reference UIDs and
    its references between instances. New UIDs are ``2.25.<128-bit integer>`` UIDs made
    from an HMAC-SHA256 of the original under a per-export secret, shaped as a version 4
    UUID (ISO/IEC 9834-8): without the secret they cannot be linked back to the original.

    Parameters
    ----------
    secret : bytes, optional
        The per-export key, at least 16 bytes. Leave it out to get a fresh random key,
        which is what almost every caller wants. Pass one only to continue one export in
        another process; keep it as confidential as the originals and discard it when the
        export is done, since whoever holds it can confirm a guessed original.

    Raises
    ------
    ValueError
        If `secret` is shorter than 16 bytes.
    """

    __slots__ = ("_mapped", "_secret")

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        if len(secret) < 16:
            raise ValueError("A UidMap secret must be at least 16 bytes long.")
        self._secret = secret
        self._mapped: dict[str, str] = {}

    def __getitem__(self, original: str) -> str:
        """Return the replacement for `original`, making it on first use.

        Parameters
        ----------
        original : str
            The UID to replace; surrounding spaces and NUL padding are ignored.

        Returns
        -------
        str
            A UID of at most 44 characters under the ``2.25`` root.
        """
        key = original.strip(" \x00")
        new = self._mapped.get(key)
        if new is None:
            digest = hmac.new(self._secret, key.encode("ascii", "replace"), hashlib.sha256)
            new = f"2.25.{uuid.UUID(bytes=digest.digest()[:16], version=4).int}"
            self._mapped[key] = new
        return new

    def __len__(self) -> int:
        """The number of distinct UIDs replaced so far."""
        return len(self._mapped)

    def __repr__(self) -> str:
        return f"<UidMap: {len(self._mapped)} UIDs>"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeidOptions:
    """What to put in place of the patient's identity, and what to retain.

    Parameters
    ----------
    patient_name : str
        Written to Patient's Name wherever it occurs (action Z allows a dummy value).
        Printable ASCII, at most 64 characters, no backslash.
    patient_id : str
        Written to Patient ID wherever it occurs. Same limits as `patient_name`.
    retain_longitudinal_dates : bool
        Apply the Retain Longitudinal Temporal Information with Full Dates Option: study,
        series, acquisition and other dates and times are kept unchanged (a second
        opinion may need the interval between examinations). Birth date is still emptied.
    keep_descriptions : bool
        Keep the descriptions and labels of the study, series, protocol and objects
        (``DESCRIPTORS``) verbatim. They are not cleaned: free text may hold a name, so a
        person must review them. The export does not claim the Clean Descriptors Option.

    Raises
    ------
    ValueError
        If `patient_name` or `patient_id` is not printable ASCII, is longer than 64
        characters or contains a backslash.
    """

    patient_name: str = "ANONYMOUS"
    patient_id: str = "ANON-0001"
    retain_longitudinal_dates: bool = False
    keep_descriptions: bool = False

    def __post_init__(self) -> None:
        for field, value in (("patient_name", self.patient_name), ("patient_id", self.patient_id)):
            if not (value.isascii() and value.isprintable()) or "\\" in value or len(value) > 64:
                raise ValueError(
                    f"{field} must be printable ASCII of at most 64 characters without a "
                    f"backslash, got {value!r}."
                )


def deidentify(ds: Dataset, *, uid_map: UidMap, options: DeidOptions | None = None) -> Dataset:
    """Return a de-identified copy of `ds`: PS3.15 basic profile, private attributes removed.

    The input is not modified. Every attribute of PS3.15 Table E.1-1 is removed, emptied,
    given a dummy value or given a new UID as the basic profile says, at every level of
    nesting; see the module documentation for how combined actions are resolved. Patient
    Identity Removed is set to ``YES`` and the method is recorded in De-identification
    Method and De-identification Method Code Sequence (113100, DCM, "Basic Application
    Confidentiality Profile"). If `ds` has file meta information, it is rebuilt with the
    new Media Storage SOP Instance UID; nothing else from it (source AE title,
    implementation) is carried over.

    Pixel Data is copied byte for byte. **Burned-in annotations are not removed**: text in
    the pixels (names and dates on ultrasound, secondary captures, scanned documents,
    screenshots) survives, and a person must check the images before they leave the
    association. Burned In Annotation (0028,0301) is left as it was: the profile sets it
    to ``NO`` only under the Clean Pixel Data Option, which this function does not apply.
    The icon image, overlays and curves are removed.

    Parameters
    ----------
    ds : pydicom.Dataset
        The data set to de-identify, usually one instance of a study.
    uid_map : UidMap
        The UID replacements of this export; share one map between all the instances of
        the export so their UIDs and references stay consistent.
    options : DeidOptions, optional
        The replacement patient name and ID and the options to retain; defaults to
        ``DeidOptions()``.

    Returns
    -------
    pydicom.Dataset
        A new data set; its file meta (when present) describes a Part 10 file with the
        original transfer syntax, and its preamble is zeroed.

    Raises
    ------
    ValueError
        If a UID value cannot be read as text.
    """
    options = options or DeidOptions()
    out = Dataset()
    for elem in ds:
        out.add(_copy(elem))
    implicit, little = ds.original_encoding
    if implicit is not None and little is not None:
        out.set_original_encoding(implicit, little, ds.original_character_set)

    _clean(out, uid_map=uid_map, options=options, dummy_text=False)
    _record_method(out, options)

    if getattr(ds, "file_meta", None) is not None:
        out.file_meta = _file_meta(ds.file_meta, out, uid_map=uid_map)
        out.preamble = b"\x00" * 128
    return out


def deidentify_file(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    uid_map: UidMap,
    options: DeidOptions | None = None,
) -> None:
    """Read a Part 10 file from `src`, de-identify it and write a Part 10 file to `dst`.

    The output has a zeroed preamble, rebuilt file meta information (new Media Storage
    SOP Instance UID, original transfer syntax, this implementation's class UID) and the
    de-identified data set of :func:`deidentify`. Pixel data is not re-encoded.

    Parameters
    ----------
    src : BinaryIO
        A readable binary stream holding a DICOM Part 10 file.
    dst : BinaryIO
        A writable binary stream; the file is written from its current position.
    uid_map : UidMap
        The UID replacements of this export, shared by all of its instances.
    options : DeidOptions, optional
        As for :func:`deidentify`.

    Raises
    ------
    pydicom.errors.InvalidDicomError
        If `src` is not a DICOM Part 10 file.
    ValueError
        If the source lacks what a Part 10 file needs: a Transfer Syntax UID, and a SOP
        Class UID and SOP Instance UID (in its file meta or its data set).
    """
    ds = pydicom.dcmread(src)
    out = deidentify(ds, uid_map=uid_map, options=options)
    missing = [
        keyword
        for keyword in (
            "MediaStorageSOPClassUID",
            "MediaStorageSOPInstanceUID",
            "TransferSyntaxUID",
        )
        if not out.file_meta.get(keyword)
    ]
    if missing:
        raise ValueError(
            f"Cannot write a Part 10 file: the source has no {', '.join(missing)} "
            "(nor a SOP Class or SOP Instance UID to take it from)."
        )
    out.save_as(dst, enforce_file_format=True)


def _copy(elem: DataElement) -> DataElement:
    """A deep copy of one element, except that bytes (pixel data) are immutable and shared."""
    if elem.VR == "SQ":
        copied = copy.copy(elem)
        copied.value = Sequence([_copy_item(item) for item in elem.value])
        return copied
    if isinstance(elem.value, bytes):
        return copy.copy(elem)
    return copy.deepcopy(elem)


def _copy_item(item: Dataset) -> Dataset:
    copied = Dataset()
    for elem in item:
        copied.add(_copy(elem))
    return copied


def _action(tag: BaseTag, vr: str, options: DeidOptions) -> str:
    """The action for one element, combined actions resolved (see the module docs)."""
    row = _RULES.get(int(tag))
    if row is None:
        if vr in _DATE_VRS and not options.retain_longitudinal_dates:
            return "D"
        return "X" if vr == "UN" else "K"
    if options.retain_longitudinal_dates and "F" in row.options:
        return "K"
    if options.keep_descriptions and tag in DESCRIPTORS:
        return "K"
    code = row.code
    if code == "X/Z/U*":
        return "K"  # keep the references; their UIDs are replaced by their own rows
    if vr == "SQ":
        return {"X/D": "X", "X/Z": "Z", "X/Z/D": "Z", "Z/D": "Z"}.get(code, code)
    return code.rsplit("/", 1)[-1]


def _removed_outright(tag: BaseTag) -> bool:
    """Private elements, group lengths, curves (50xx) and overlay planes (60xx)."""
    return (
        tag.is_private
        or tag.element == 0x0000
        or 0x5000 <= tag.group <= 0x50FF
        or 0x6000 <= tag.group <= 0x60FF
    )


def _clean(ds: Dataset, *, uid_map: UidMap, options: DeidOptions, dummy_text: bool) -> None:
    """Apply the profile to one data set or sequence item, and recurse into its sequences.

    `dummy_text` is set inside a sequence whose action is D: its text values become dummies.
    """
    for tag in list(ds.keys()):
        if _removed_outright(tag):
            del ds[tag]
            continue
        elem = ds[tag]
        action = _action(tag, elem.VR, options)
        if dummy_text and action == "K" and elem.VR in _TEXT_VRS and tag not in _CODING_SCHEME_TAGS:
            action = "D"
        if action == "X":
            del ds[tag]
        elif elem.VR == "SQ":
            if action == "Z":
                elem.value = Sequence()
                continue
            for item in elem.value:
                _clean(
                    item, uid_map=uid_map, options=options, dummy_text=dummy_text or action == "D"
                )
        elif action == "Z":
            elem.value = _zero(tag, elem, options)
        elif elem.is_empty:
            # An empty value hides nothing, and a dummy or a UID would invent information
            # (an empty Type 2 Contrast/Bolus Agent means no contrast).
            continue
        elif action == "D":
            elem.value = _dummy(elem.VR, uid_map)
        elif action == "U":
            elem.value = _new_uids(elem.value, uid_map)


def _zero(tag: BaseTag, elem: DataElement, options: DeidOptions) -> Any:
    if tag == _PATIENT_NAME:
        return options.patient_name
    if tag == _PATIENT_ID:
        return options.patient_id
    return elem.empty_value


def _dummy(vr: str, uid_map: UidMap) -> Any:
    if vr == "UI":
        return uid_map[secrets.token_hex(16)]  # a UID that stands for nothing
    return _DUMMIES.get(vr, _DUMMY_TEXT)


def _new_uids(value: Any, uid_map: UidMap) -> Any:
    if isinstance(value, str):
        return uid_map[value]
    if isinstance(value, Iterable):
        return [uid_map[str(uid)] for uid in value]
    raise ValueError(f"Cannot read a UID from {value!r}.")


def _record_method(ds: Dataset, options: DeidOptions) -> None:
    """Patient Identity Removed, De-identification Method (and code) and the dates flag."""
    ds.PatientIdentityRemoved = "YES"

    methods = _as_list(ds.get("DeidentificationMethod"))
    methods.append(_METHOD)
    if options.retain_longitudinal_dates:
        methods.append(_FULL_DATES_METHOD)
    if options.keep_descriptions:
        methods.append(_DESCRIPTIONS_METHOD)
    methods.append(_PIXELS_METHOD)
    ds.DeidentificationMethod = methods

    codes = [_BASIC_PROFILE_CODE]
    if options.retain_longitudinal_dates:
        codes.append(_FULL_DATES_CODE)
    sequence = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        sequence.append(item)
    ds.DeidentificationMethodCodeSequence = sequence

    if not options.retain_longitudinal_dates:
        ds.LongitudinalTemporalInformationModified = "REMOVED"
    elif ds.get("LongitudinalTemporalInformationModified") not in {"MODIFIED", "REMOVED"}:
        # an earlier de-identification may have shifted or removed them already
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _file_meta(original: FileMetaDataset, ds: Dataset, *, uid_map: UidMap) -> FileMetaDataset:
    """New file meta for the de-identified `ds`: version, SOP class and instance, syntax.

    The SOP class and instance come from the data set when it has them, so the meta always
    matches it; nothing else of the original (source AE title, implementation) is kept.
    """
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = ds.get("SOPClassUID") or original.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = UID(sop_class)
    sop_instance = ds.get("SOPInstanceUID")
    if sop_instance:
        meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    elif original.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = UID(uid_map[original.MediaStorageSOPInstanceUID])
    if "TransferSyntaxUID" in original:
        meta.TransferSyntaxUID = original.TransferSyntaxUID
    return meta
