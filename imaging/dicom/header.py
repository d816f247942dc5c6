"""What ingest keeps of a validated file: plain values, no data set.

A :class:`Header` is everything the index needs (UIDs, the attributes of study, series and
instance, and the DICOM JSON metadata), read while the file is open: a part of a STOW-RS
request is indexed after its temporary file is closed. It holds no pydicom object.
Validation itself is :func:`imaging.dicom.validate.validate_instance`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pydicom.dataset import Dataset

from imaging.dicom.metadata import instance_metadata, study_attributes
from imaging.dicom.validate import Identity, ValidInstance


@dataclass(frozen=True)
class Header(Identity):
    """A validated instance's identity and the attributes the index keeps."""

    accession_number: str
    instance_number: int | None
    series: dict[str, Any]  # imaging.models.Series fields
    study: dict[str, str]  # imaging.models.Study fields (study_attributes)
    metadata: dict[str, Any]  # DICOM JSON, bulk data as placeholders


def header_of(valid: ValidInstance) -> Header:
    """The header of a validated file; call it while the file is open (deferred values)."""
    ds = valid.dataset
    identity = {f.name: getattr(valid, f.name) for f in fields(Identity)}
    return Header(
        **identity,
        accession_number=_text(ds, "AccessionNumber"),
        instance_number=_int(ds.get("InstanceNumber")),
        series={
            "modality": _text(ds, "Modality")[:16],
            "series_number": _int(ds.get("SeriesNumber")),
            "series_description": _text(ds, "SeriesDescription")[:64],
            "body_part": _text(ds, "BodyPartExamined")[:16],
        },
        study=study_attributes(ds),
        metadata=instance_metadata(ds, valid.json),
    )


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "")


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None
