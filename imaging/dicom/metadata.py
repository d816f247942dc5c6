"""DICOM JSON (PS3.18 F.2) for the index, and the study attributes QIDO-RS matches on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

# Binary values larger than this are left out of stored metadata; WADO-RS answers them
# with a BulkDataURI.
BULK_THRESHOLD = 1024
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
PIXEL_DATA = 0x7FE00010
BULK_MARKER = "bulk:"


def _bulk(elem: DataElement) -> str:
    """A placeholder the WADO-RS answer turns into a real URI (``bulk:<tag>``)."""
    return f"{BULK_MARKER}{elem.tag:08X}"


def element_json(elem: DataElement) -> dict[str, Any]:
    """One element as DICOM JSON, bulk data replaced by a ``bulk:<tag>`` placeholder."""
    return elem.to_json_dict(bulk_data_element_handler=_bulk, bulk_data_threshold=BULK_THRESHOLD)


def instance_metadata(
    ds: Dataset, known: Mapping[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The data set as DICOM JSON, bulk data replaced by ``bulk:<tag>`` placeholders.

    ``known``: the JSON of some top-level elements already written (by validation), used
    as it is.
    """
    known = known or {}
    result: dict[str, Any] = {}
    # Iterate the raw store so Pixel Data (deferred) is never read into memory.
    for tag in sorted(ds._dict):
        if tag == PIXEL_DATA:
            continue
        fragment = known.get(tag)
        result[f"{tag:08X}"] = fragment if fragment is not None else element_json(ds[tag])
    if PIXEL_DATA in ds:
        vr = ds._dict[BaseTag(PIXEL_DATA)].VR or "OW"
        result["7FE00010"] = {
            "vr": vr if vr in {"OB", "OW"} else "OW",
            "BulkDataURI": f"{BULK_MARKER}7FE00010",
        }
    return result


def _text(ds: Dataset, keyword: str, limit: int) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value)[:limit]


def study_attributes(ds: Dataset) -> dict[str, str]:
    """Study-level attributes for :class:`imaging.models.Study` (decoded text)."""
    return {
        "dicom_patient_id": _text(ds, "PatientID", 64),
        "dicom_patient_name": _text(ds, "PatientName", 324),
        "patient_birth_date": _text(ds, "PatientBirthDate", 8),
        "patient_sex": _text(ds, "PatientSex", 16),
        "study_date": _text(ds, "StudyDate", 8),
        "study_time": _text(ds, "StudyTime", 16),
        "accession_number": _text(ds, "AccessionNumber", 16),
        "study_id": _text(ds, "StudyID", 16),
        "study_description": _text(ds, "StudyDescription", 64),
        "referring_physician": _text(ds, "ReferringPhysicianName", 324),
        "specific_character_set": _text(ds, "SpecificCharacterSet", 128),
    }
