"""The benchmark's data generator makes valid DICOM (no servers; the benchmark itself is
``python bench/imaging.py``, never part of the suite)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _dicom_gen():
    name = "bench_dicom_gen"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "dicom_gen.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_two_generated_slices_are_one_valid_ct_series(tmp_path):
    gen = _dicom_gen()
    ids = gen.series_ids("smoke", "SMOKE-1")
    paths = gen.write_ct_series(tmp_path, slices=2, ids=ids)
    assert [p.name for p in paths] == ["CT000001.dcm", "CT000002.dcm"]
    slices = [pydicom.dcmread(p) for p in paths]
    for number, ds in enumerate(slices, start=1):
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (ids.study_uid, ids.series_uid)
        assert ds.PatientID == "SMOKE-1"
        assert ds.InstanceNumber == number
        assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.PixelRepresentation) == (512, 512, 16, 1)
        pixels = ds.pixel_array
        assert pixels.dtype == np.int16
        assert pixels.shape == (512, 512)
        assert pixels.min() < 100 < 1000 < pixels.max()  # air and bone, stored as HU + 1024
        assert 525_000 < paths[number - 1].stat().st_size < 530_000
    assert slices[0].SOPInstanceUID != slices[1].SOPInstanceUID
    assert gen.series_ids("smoke", "SMOKE-1") == ids  # the same key, the same UIDs
    assert gen.series_ids("other").study_uid != ids.study_uid


def test_pydicom_test_files_are_listed_when_present():
    files = _dicom_gen().pydicom_test_files()
    assert all(p.suffix == ".dcm" and p.is_file() for p in files)
