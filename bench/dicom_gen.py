"""Benchmark data: a generated CT series and pydicom's bundled test files.

The CT series is what a township CT scanner sends: one study, one series, ``slices``
axial 512×512 slices of signed 16-bit pixels (stored value = HU + 1024, rescale
intercept −1024), Explicit VR Little Endian, with the tags a real scanner writes
(patient, study, series, equipment, geometry, acquisition, VOI window). 300 slices come
to about 157.7 MB, the size of the study the field notes measured Orthanc with.

UIDs are derived from ``key``: the same key always gives the same UIDs, another key a
fresh study (one per ingest path, so the servers never see a path's data twice).

Run alone to write a series: ``python bench/dicom_gen.py OUT_DIR [--slices N] [--key K]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

ROWS = COLUMNS = 512
PIXEL_SPACING_MM = 0.7
SLICE_THICKNESS_MM = 1.0
INTERCEPT = -1024
STUDY_DATETIME = dt.datetime(2025, 3, 14, 9, 26, 53)  # noqa: DTZ001  (DICOM dates are local)


@dataclass(frozen=True)
class SeriesIds:
    """The identifiers of one generated study and series."""

    key: str
    patient_id: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    accession: str

    def sop_uid(self, index: int) -> str:
        return generate_uid(entropy_srcs=[self.key, "sop", str(index)])


def series_ids(key: str = "bench", patient_id: str = "BENCH-CT-0001") -> SeriesIds:
    """Deterministic UIDs for ``key``."""
    return SeriesIds(
        key=key,
        patient_id=patient_id,
        study_uid=generate_uid(entropy_srcs=[key, "study"]),
        series_uid=generate_uid(entropy_srcs=[key, "series"]),
        frame_of_reference_uid=generate_uid(entropy_srcs=[key, "frame"]),
        accession=("B" + generate_uid(entropy_srcs=[key, "acc"])[-15:]),
    )


def _phantom(index: int, slices: int) -> np.ndarray:
    """A chest-like slice in HU: body, lungs that grow and shrink with z, spine, heart."""
    y, x = np.ogrid[-1.0 : 1.0 : ROWS * 1j, -1.0 : 1.0 : COLUMNS * 1j]
    z = (index + 0.5) / slices  # 0 .. 1, feet to head
    hu = np.full((ROWS, COLUMNS), -1000.0)
    body = (x / 0.82) ** 2 + ((y - 0.02) / 0.62) ** 2 <= 1.0
    hu[body] = 40.0
    fat = body & ((x / 0.78) ** 2 + ((y - 0.02) / 0.58) ** 2 > 1.0)
    hu[fat] = -100.0
    lung_scale = max(0.0, np.sin(np.pi * z)) ** 0.5
    if lung_scale > 0.05:
        for cx in (-0.38, 0.38):
            lung = ((x - cx) / (0.28 * lung_scale)) ** 2 + ((y + 0.02) / (0.42 * lung_scale)) ** 2
            hu[lung <= 1.0] = -850.0
    if 0.25 < z < 0.7:
        heart = ((x - 0.08) / 0.22) ** 2 + ((y + 0.05) / 0.18) ** 2 <= 1.0
        hu[heart] = 45.0
    spine = (x / 0.09) ** 2 + ((y - 0.42) / 0.09) ** 2 <= 1.0
    hu[spine] = 700.0
    canal = (x / 0.035) ** 2 + ((y - 0.42) / 0.035) ** 2 <= 1.0
    hu[canal] = 20.0
    table = (np.abs(y - 0.75) < 0.015) & (np.abs(x) < 0.9)
    hu[table] = 300.0
    rng = np.random.default_rng(index)
    hu += rng.normal(0.0, 12.0, size=hu.shape)
    return hu


def ct_slice(index: int, slices: int, ids: SeriesIds) -> Dataset:
    """Slice ``index`` (0-based) of a ``slices``-slice series as a Part 10 dataset."""
    sop_uid = ids.sop_uid(index)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "TELEMED_BENCH"

    when = STUDY_DATETIME
    acquired = when + dt.timedelta(seconds=12, milliseconds=25 * index)
    date = when.strftime("%Y%m%d")
    z = 0.0 - index * SLICE_THICKNESS_MM

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = when.strftime("%H%M%S")
    ds.SeriesTime = (when + dt.timedelta(seconds=10)).strftime("%H%M%S")
    ds.AcquisitionTime = ds.ContentTime = acquired.strftime("%H%M%S.%f")
    ds.AccessionNumber = ids.accession
    ds.Modality = "CT"
    ds.Manufacturer = "BENCH MEDICAL"
    ds.InstitutionName = "Xiba Township Health Centre"
    ds.ReferringPhysicianName = "Li^Wei"
    ds.StationName = "CT01"
    ds.StudyDescription = "CT CHEST WITHOUT CONTRAST"
    ds.SeriesDescription = "Axial 1.0 mm"
    ds.ManufacturerModelName = "Bench 16"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = ids.patient_id
    ds.PatientBirthDate = "19580612"
    ds.PatientSex = "M"
    ds.PatientAge = "066Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{SLICE_THICKNESS_MM:g}"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.SoftwareVersions = "bench-1.0"
    ds.ReconstructionDiameter = f"{ROWS * PIXEL_SPACING_MM:g}"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "160"
    ds.RotationDirection = "CW"
    ds.ExposureTime = 500
    ds.XRayTubeCurrent = 200
    ds.Exposure = 100
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = ids.study_uid
    ds.SeriesInstanceUID = ids.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    corner = f"{-ROWS * PIXEL_SPACING_MM / 2:g}"
    ds.ImagePositionPatient = [corner, corner, f"{z:g}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = ids.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = str(INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    stored = np.clip(_phantom(index, slices) - INTERCEPT, -32768, 32767).astype("<i2")
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def ct_series(slices: int = 300, ids: SeriesIds | None = None) -> Iterator[Dataset]:
    """The slices one by one (never the whole series in memory)."""
    ids = ids or series_ids()
    for index in range(slices):
        yield ct_slice(index, slices, ids)


def write_ct_series(out_dir: Path, slices: int = 300, ids: SeriesIds | None = None) -> list[Path]:
    """Write the series as ``out_dir/CT000001.dcm`` ...; returns the paths in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(ct_series(slices, ids)):
        path = out_dir / f"CT{index + 1:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def pydicom_test_files() -> list[Path]:
    """pydicom's bundled ``*.dcm`` test files that are present (hostile ones included)."""
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return sorted(p for p in folder.glob("*.dcm") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--key", default="bench")
    ns = parser.parse_args()
    paths = write_ct_series(ns.out_dir, ns.slices, series_ids(ns.key))
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} slices, {total / 1e6:.1f} MB in {ns.out_dir}")


if __name__ == "__main__":
    main()
