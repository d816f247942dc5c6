"""Elements seen before are not decoded again, and the index gets the same DICOM JSON."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from imaging.dicom import element_memo
from imaging.dicom.header import header_of
from imaging.dicom.validate import Rejected, validate_instance


@pytest.fixture(autouse=True)
def _empty_memo():
    element_memo.forget()
    yield
    element_memo.forget()


def ct_slice(number: int, **values: object) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(number)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = number
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def metadata(data: bytes) -> dict:
    return header_of(validate_instance(io.BytesIO(data))).metadata


def test_a_second_slice_reuses_what_the_first_decoded_and_gets_the_same_json() -> None:
    first, second = ct_slice(1), ct_slice(2)
    metadata(first)
    valid = validate_instance(io.BytesIO(second))
    remembered = set(valid.json)
    assert 0x00100010 in remembered  # Patient's Name: the same bytes in both slices
    assert 0x00200013 in remembered  # Instance Number: new bytes, decoded and remembered
    recalled = header_of(valid).metadata
    element_memo.forget()
    assert recalled == metadata(second)  # as if never seen


def test_the_same_bytes_under_another_character_set_are_decoded_again() -> None:
    raw = "张三".encode("gb18030")
    chinese = ct_slice(1, SpecificCharacterSet="GB18030", PatientName="张三")
    latin = ct_slice(2, SpecificCharacterSet="ISO_IR 100", PatientName=raw.decode("latin-1"))
    assert raw in chinese
    assert raw in latin  # the same bytes in both files' Patient's Name
    assert metadata(chinese)["00100010"]["Value"][0]["Alphabetic"] == "张三"
    assert metadata(latin)["00100010"]["Value"][0]["Alphabetic"] == raw.decode("latin-1")


def test_a_refused_value_is_never_remembered() -> None:
    bad = ct_slice(1, StudyDescription="CHEST\0ABDOMEN")
    for _ in range(2):
        with pytest.raises(Rejected) as refused:
            validate_instance(io.BytesIO(bad))
        assert refused.value.code == "malformed"


def test_the_table_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(element_memo, "MAX_ENTRIES", 50)
    for number in range(1, 6):
        metadata(ct_slice(number))
    assert len(element_memo._known) == 50
