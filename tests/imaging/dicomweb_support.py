"""Test data for the DICOMweb tests: pydicom's bundled files, given their own UIDs.

pydicom's test files reuse UIDs (MR_small in five transfer syntaxes is one SOP instance),
so each is rewritten once per session with UIDs derived from its name, and with patient
and study attributes the QIDO tests match on. Only files in pydicom's package folder are
used (``get_testdata_file`` would download others).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from association.models import Institution
from imaging.dicomweb.multipart import Part, boundary_of, split_multipart
from imaging.ingest import Origin, instance_ingest
from imaging.models import Instance
from tests.conftest import PASSWORD

# name -> transfer syntax it exercises
TRANSFER_SYNTAX_FILES = {
    "CT_small.dcm": "1.2.840.10008.1.2.1",
    "MR_small.dcm": "1.2.840.10008.1.2.1",
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",
    "JPEG2000.dcm": "1.2.840.10008.1.2.4.91",
    "MR_small_jp2klossless.dcm": "1.2.840.10008.1.2.4.90",
    "SC_rgb_jpeg_dcmtk.dcm": "1.2.840.10008.1.2.4.50",
    "examples_ybr_color.dcm": "1.2.840.10008.1.2.4.50",
    "SC_rgb_jpeg_gdcm.dcm": "1.2.840.10008.1.2.4.70",
    "JPGExtended.dcm": "1.2.840.10008.1.2.4.51",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "JPEGLSNearLossless_16.dcm": "1.2.840.10008.1.2.4.81",
    "MR_small_RLE.dcm": "1.2.840.10008.1.2.5",
    "SC_rgb_rle_2frame.dcm": "1.2.840.10008.1.2.5",
    "examples_palette.dcm": "1.2.840.10008.1.2.1",
}
UNDECODABLE = "JPEG-lossy.dcm"  # 12-bit JPEG Extended no installed decoder accepts


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path
    study: str
    series: str
    sop: str
    transfer_syntax: str


# Study attributes per file (others keep pydicom's, with their own UIDs).
_PATIENTS: dict[str, dict[str, str]] = {
    "CT_small.dcm": {
        "PatientName": "Wang^Xiaoming=王^小明",
        "PatientID": "DW-CT-1",
        "StudyDate": "20240115",
        "StudyTime": "093000",
        "AccessionNumber": "DW100_1",
        "StudyDescription": "Chest CT 50%",
        "ReferringPhysicianName": "Sun^Zhuren",
    },
    "MR_small.dcm": {
        "PatientName": "Li^Hua",
        "PatientID": "DW-MR-1",
        "StudyDate": "20231201",
        "StudyTime": "140000",
        "AccessionNumber": "DW200",
        "StudyDescription": "MR Brain",
    },
}


def _uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=["telemed-dicomweb-tests", *parts]))


def prepare(name: str, folder: Path, *, copy: int = 1, series_of: str | None = None) -> Sample:
    """Rewrite ``name`` into ``folder`` with its own UIDs (instance ``copy`` of its series)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    key = series_of or name
    ds.StudyInstanceUID = _uid(key, "study")
    ds.SeriesInstanceUID = _uid(key, "series")
    ds.SOPInstanceUID = _uid(name, "sop", str(copy))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "SOPClassUID" not in ds:
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.InstanceNumber = copy
    for keyword, value in _PATIENTS.get(key, {}).items():
        setattr(ds, keyword, value)
    if not ds.get("PatientID"):
        ds.PatientID = f"DW-{name.split('.')[0][:20]}"
    if not ds.get("Modality"):
        ds.Modality = "OT"
    if any(ord(c) > 127 for c in str(ds.get("PatientName", ""))):
        ds.SpecificCharacterSet = "ISO_IR 192"
    path = folder / f"{name}.{copy}.dcm"
    ds.save_as(path)
    return Sample(
        name=name,
        path=path,
        study=ds.StudyInstanceUID,
        series=ds.SeriesInstanceUID,
        sop=ds.SOPInstanceUID,
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
    )


def ingest_file(path: Path, *, user: Any) -> Instance:
    """The full ingest of one file, as an upload from Xiba."""
    origin = Origin(institution=Institution.objects.get(code="xiba"), channel="upload", user=user)
    with open(path, "rb") as f:
        return instance_ingest(f, origin=origin).instance


def basic(username: str, password: str = PASSWORD) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def parts_of(response: Any) -> list[Part]:
    """The parts of a (streaming) multipart response from the test client."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    boundary = boundary_of(response["Content-Type"])
    assert boundary, response["Content-Type"]
    return split_multipart(body, boundary)


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def instance_path(sample: Sample) -> str:
    return f"/dicomweb/studies/{sample.study}/series/{sample.series}/instances/{sample.sop}"
