"""De-identification for export outside the association (PS3.15 basic profile)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_description
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from imaging.dicom.deid import (
    ADDITIONS,
    PROFILE,
    DeidOptions,
    UidMap,
    deidentify,
    deidentify_file,
)

STUDY_UID = "1.2.156.112605.7.1"
SERIES_UID = "1.2.156.112605.7.1.2"
FRAME_OF_REFERENCE_UID = "1.2.156.112605.7.1.3"
FIRST_SOP_UID = "1.2.156.112605.7.1.2.1"
SECOND_SOP_UID = "1.2.156.112605.7.1.2.2"
ORIGINAL_UIDS = (STUDY_UID, SERIES_UID, FRAME_OF_REFERENCE_UID, FIRST_SOP_UID, SECOND_SOP_UID)
PIXELS = b"\x01\x00\x02\x00\x03\x00\x04\x00"
IDENTIFYING_TEXT = (
    "张三",
    "李四",
    "王五",
    "赵六",
    "青山县人民医院",
    "QS-000123",
    "110101197001011234",
)

TEST_FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm")
U_TAGS = frozenset(tag for tag, row in PROFILE.items() if row.code == "U")


def a_chinese_ct_instance(sop_instance_uid: str = FIRST_SOP_UID) -> Dataset:
    """A CT instance of Zhang San (张三) at the county hospital, GB18030-encoded."""
    ds = Dataset()
    ds.SpecificCharacterSet = "GB18030"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    ds.InstanceCreationDate = "20240301"
    ds.StudyDate = "20240301"
    ds.SeriesDate = "20240301"
    ds.AcquisitionDate = "20240301"
    ds.ContentDate = "20240301"
    ds.StudyTime = "093000"
    ds.AccessionNumber = "A20240301001"
    ds.StudyID = "S1"
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = "青山县人民医院"
    ds.InstitutionAddress = "青山县人民路1号"
    ds.StationName = "CT01"
    ds.DeviceSerialNumber = "SN-42"
    ds.ReferringPhysicianName = "李四"
    ds.PerformingPhysicianName = "王五"
    ds.OperatorsName = "赵六"
    ds.StudyDescription = "胸部平扫"
    ds.SeriesDescription = "肺窗"
    ds.ProtocolName = "CHEST"
    ds.ContrastBolusAgent = ""
    ds.PatientName = "张三"
    ds.PatientID = "QS-000123"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.PatientAge = "054Y"
    ds.PatientAddress = "青山县东山村"
    ds.PatientTelephoneNumbers = "13800000000"
    ds.PatientComments = "张三 青霉素过敏"
    ds.OtherPatientIDsSequence = [_item(PatientID="110101197001011234", IssuerOfPatientID="公安")]
    ds.RequestAttributesSequence = [
        _item(RequestedProcedureID="RP-7", ScheduledProcedureStepID="SPS-7")
    ]
    referenced = _item(
        ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=SECOND_SOP_UID
    )
    referenced.private_block(0x0019, "GEMS_ACQU_01", create=True).add_new(0x02, "SH", "QS-000123")
    ds.ReferencedImageSequence = [referenced]
    source = _item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=SECOND_SOP_UID)
    purpose = _item(CodeValue="121320", CodingSchemeDesignator="DCM", CodeMeaning="Uncompressed")
    purpose.private_block(0x0009, "GEMS_IDEN_01", create=True).add_new(0x01, "LO", "张三")
    source.PurposeOfReferenceCodeSequence = [purpose]
    ds.SourceImageSequence = [source]
    ds.ContributingEquipmentSequence = [
        _item(
            Manufacturer="Qingshan PACS",
            InstitutionName="青山县人民医院",
            OperatorsName="赵六",
            ContributionDateTime="20240301100000",
        )
    ]
    ds.private_block(0x0009, "GEMS_IDEN_01", create=True).add_new(0x01, "LO", "张三")
    private_sequence = Sequence([_item(PatientName="张三")])
    ds.private_block(0x0019, "GEMS_ACQU_01", create=True).add_new(0x10, "SQ", private_sequence)
    ds.Rows = 2
    ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = PIXELS

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "QINGSHAN_CT"
    return ds


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _part10(ds: Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


def _export(ds: Dataset, options: DeidOptions | None = None) -> Dataset:
    return deidentify(ds, uid_map=UidMap(), options=options)


def _written(ds: Dataset) -> bytes:
    out = io.BytesIO()
    deidentify_file(_part10(ds), out, uid_map=UidMap())
    return out.getvalue()


def _test_file(name: str) -> Dataset:
    return pydicom.dcmread(get_testdata_file(name))


# Patient identity


def test_patient_name_and_id_are_replaced_by_the_export_pseudonym() -> None:
    out = _export(a_chinese_ct_instance(), DeidOptions(patient_name="CASE^7", patient_id="T-7"))

    assert out.PatientName == "CASE^7"
    assert out.PatientID == "T-7"


def test_the_default_pseudonym_is_anonymous() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.PatientName == "ANONYMOUS"
    assert out.PatientID == "ANON-0001"


def test_a_chinese_patient_leaves_no_trace_in_the_written_file() -> None:
    written = _written(a_chinese_ct_instance())

    for text in IDENTIFYING_TEXT:
        assert text.encode("gb18030") not in written, text


def test_the_character_set_is_kept_so_kept_text_still_decodes() -> None:
    out = _export(a_chinese_ct_instance(), DeidOptions(keep_descriptions=True))

    assert out.SpecificCharacterSet == "GB18030"
    assert out.StudyDescription == "胸部平扫"


# Actions of Table E.1-1


def test_attributes_the_profile_removes_are_gone() -> None:
    out = _export(a_chinese_ct_instance())

    for keyword in (
        "InstitutionAddress",
        "PerformingPhysicianName",
        "PatientAge",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientComments",
        "OtherPatientIDsSequence",
        "RequestAttributesSequence",
        "StudyDescription",
        "SeriesDescription",
    ):
        assert keyword not in out, keyword


def test_attributes_the_profile_empties_are_present_but_empty() -> None:
    out = _export(a_chinese_ct_instance())

    for keyword in (
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
    ):
        assert keyword in out, keyword
        assert out[keyword].is_empty, keyword


def test_attributes_that_may_be_required_get_a_dummy_value() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.ContentDate == "19000101"  # Z/D
    assert out.SeriesDate == "19000101"  # X/D
    assert out.AcquisitionDate == ""  # X/Z
    assert out.InstitutionName == "ANONYMIZED"  # X/Z/D
    assert out.StationName == "ANONYMIZED"  # X/Z/D
    assert out.DeviceSerialNumber == "ANONYMIZED"  # X/Z/D
    assert out.OperatorsName == "ANONYMOUS"  # X/Z/D
    assert out.ProtocolName == "ANONYMIZED"  # X/D


def test_an_empty_value_stays_empty_rather_than_inventing_one() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.ContrastBolusAgent == ""


def test_attributes_outside_the_profile_are_kept() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.Modality == "CT"
    assert out.Manufacturer == "GE MEDICAL SYSTEMS"
    assert out.SOPClassUID == CTImageStorage
    assert (out.Rows, out.Columns) == (2, 2)


def test_dates_outside_the_table_are_replaced_too() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.InstanceCreationDate == "19000101"
    assert out.ContributingEquipmentSequence[0].ContributionDateTime == "19000101000000"


def test_the_profile_applies_inside_sequences() -> None:
    equipment = _export(a_chinese_ct_instance()).ContributingEquipmentSequence[0]

    assert equipment.InstitutionName == "ANONYMIZED"
    assert equipment.OperatorsName == "ANONYMOUS"
    assert equipment.Manufacturer == "Qingshan PACS"


def test_standard_attributes_of_unknown_meaning_are_removed() -> None:
    ds = a_chinese_ct_instance()
    ds.add_new(0x0008FFF0, "UN", "张三".encode("gb18030"))

    assert 0x0008FFF0 not in _export(ds)


def test_overlays_icons_and_curves_are_removed() -> None:
    ds = a_chinese_ct_instance()
    ds.add_new(0x60000010, "US", 2)
    ds.add_new(0x60000011, "US", 2)
    ds.add_new(0x60003000, "OW", b"\x0f\x00")
    ds.add_new(0x60004000, "LT", "张三")
    ds.add_new(0x50000005, "US", 1)
    ds.IconImageSequence = [_item(Rows=1, Columns=1, PixelData=b"\x00\x00")]

    out = _export(ds)

    assert not [elem.tag for elem in out if 0x5000 <= elem.tag.group <= 0x60FF]
    assert "IconImageSequence" not in out


# Private tags


def test_private_tags_are_removed_at_every_level() -> None:
    out = _export(a_chinese_ct_instance())

    assert not [elem.tag for elem in out.iterall() if elem.tag.is_private]


@pytest.mark.parametrize("name", ["CT_small.dcm", "priv_SQ.dcm", "nested_priv_SQ.dcm"])
def test_private_tags_of_real_files_are_removed(name: str) -> None:
    ds = _test_file(name)
    assert any(elem.tag.is_private for elem in ds.iterall())

    out = _export(ds)

    assert not [elem.tag for elem in out.iterall() if elem.tag.is_private]


# UIDs


def test_every_instance_uid_is_replaced() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.StudyInstanceUID != STUDY_UID
    assert out.SeriesInstanceUID != SERIES_UID
    assert out.FrameOfReferenceUID != FRAME_OF_REFERENCE_UID
    assert out.SOPInstanceUID != FIRST_SOP_UID
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID != SECOND_SOP_UID
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID != SECOND_SOP_UID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_instances_of_one_study_keep_shared_uids_and_references_within_one_export() -> None:
    uid_map = UidMap()
    first = deidentify(a_chinese_ct_instance(FIRST_SOP_UID), uid_map=uid_map)
    second = deidentify(a_chinese_ct_instance(SECOND_SOP_UID), uid_map=uid_map)

    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID == second.SOPInstanceUID


def test_two_exports_of_the_same_study_get_different_uids() -> None:
    first_export = _export(a_chinese_ct_instance())
    second_export = _export(a_chinese_ct_instance())

    assert first_export.StudyInstanceUID != second_export.StudyInstanceUID
    assert first_export.SOPInstanceUID != second_export.SOPInstanceUID


def test_an_export_continued_with_its_secret_reproduces_its_uids() -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    first = deidentify(a_chinese_ct_instance(), uid_map=UidMap(secret))
    again = deidentify(a_chinese_ct_instance(), uid_map=UidMap(secret))

    assert first.StudyInstanceUID == again.StudyInstanceUID


@pytest.mark.parametrize("name", TEST_FILES)
def test_uids_are_valid_and_replaced_ones_are_under_the_2_25_root(name: str) -> None:
    out = _export(_test_file(name))

    uids = [elem for elem in out.iterall() if elem.VR == "UI" and not elem.is_empty]
    assert uids
    for elem in uids:
        values = elem.value if elem.VM > 1 else [elem.value]
        for value in values:
            assert re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*", value), value
            assert len(value) <= 64
            if elem.tag in U_TAGS:
                assert value.startswith("2.25."), (elem.keyword, value)


def test_no_original_instance_uid_survives_in_the_written_file() -> None:
    written = _written(a_chinese_ct_instance())

    for uid in ORIGINAL_UIDS:
        assert uid.encode() not in written, uid


# Pixel data


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pixel_data_is_copied_byte_for_byte(name: str) -> None:
    ds = _test_file(name)

    assert _export(ds).PixelData == ds.PixelData


def test_pixel_data_survives_the_written_file_byte_for_byte() -> None:
    out = pydicom.dcmread(io.BytesIO(_written(a_chinese_ct_instance())))

    assert out.PixelData == PIXELS


@pytest.mark.parametrize("value", ["YES", "NO"])
def test_burned_in_annotation_is_left_as_it_was(value: str) -> None:
    ds = a_chinese_ct_instance()
    ds.BurnedInAnnotation = value

    assert _export(ds).BurnedInAnnotation == value


def test_burned_in_annotation_is_not_claimed_absent() -> None:
    assert "BurnedInAnnotation" not in _export(a_chinese_ct_instance())


# What the export records


def test_the_export_records_that_identity_was_removed_and_how() -> None:
    out = _export(a_chinese_ct_instance())

    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethod
    [code] = out.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert code.CodeMeaning == "Basic Application Confidentiality Profile"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_the_input_dataset_is_not_modified() -> None:
    ds = a_chinese_ct_instance()

    _export(ds)

    assert ds.PatientName == "张三"
    assert ds.SOPInstanceUID == FIRST_SOP_UID
    assert ds.OtherPatientIDsSequence[0].PatientID == "110101197001011234"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == SECOND_SOP_UID
    assert "PatientIdentityRemoved" not in ds
    assert ds.file_meta.SourceApplicationEntityTitle == "QINGSHAN_CT"


# Options


def test_retaining_longitudinal_dates_keeps_study_dates_but_not_the_birth_date() -> None:
    out = _export(a_chinese_ct_instance(), DeidOptions(retain_longitudinal_dates=True))

    assert (out.StudyDate, out.SeriesDate, out.AcquisitionDate) == ("20240301",) * 3
    assert out.InstanceCreationDate == "20240301"
    assert out.PatientBirthDate == ""
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert "113106" in [code.CodeValue for code in out.DeidentificationMethodCodeSequence]


def test_keeping_descriptions_keeps_study_series_and_protocol_but_not_patient_comments() -> None:
    out = _export(a_chinese_ct_instance(), DeidOptions(keep_descriptions=True))

    assert out.StudyDescription == "胸部平扫"
    assert out.SeriesDescription == "肺窗"
    assert out.ProtocolName == "CHEST"
    assert "PatientComments" not in out
    assert "Descriptions kept verbatim, not cleaned" in out.DeidentificationMethod


@pytest.mark.parametrize(
    "options",
    [
        {"patient_name": "匿名"},
        {"patient_name": "A\\B"},
        {"patient_id": "X" * 65},
        {"patient_id": "T-1\n"},
    ],
)
def test_pseudonyms_must_be_printable_ascii_without_a_backslash(options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        DeidOptions(**options)


def test_a_uid_map_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        UidMap(b"short")


# Real files


@pytest.mark.parametrize("name", TEST_FILES)
def test_no_person_name_survives_in_pydicom_test_files(name: str) -> None:
    ds = _test_file(name)
    assert any(elem.VR == "PN" and not elem.is_empty for elem in ds.iterall())

    out = _export(ds)

    names = {str(elem.value) for elem in out.iterall() if elem.VR == "PN"}
    assert names <= {"", "ANONYMOUS"}


@pytest.mark.parametrize("name", TEST_FILES)
def test_no_date_survives_in_pydicom_test_files(name: str) -> None:
    out = _export(_test_file(name))

    dates = {str(elem.value) for elem in out.iterall() if elem.VR in {"DA", "DT"}}
    assert dates <= {"", "19000101", "19000101000000"}


def test_a_structured_report_keeps_its_tree_but_loses_its_text() -> None:
    ds = _test_file("test-SR.dcm")
    texts = [elem.value for elem in ds.iterall() if elem.keyword == "TextValue"]
    assert texts

    out = _export(ds)

    kept = [elem.value for elem in out.iterall() if elem.keyword == "TextValue"]
    assert kept == ["ANONYMIZED"] * len(texts)
    verifier = out.VerifyingObserverSequence[0]
    assert verifier.VerifyingObserverName == "ANONYMOUS"
    assert verifier.VerifyingObserverIdentificationCodeSequence == []


# Part 10 files


def test_deidentify_file_writes_a_part_10_file_pydicom_reads_back() -> None:
    written = _written(a_chinese_ct_instance())

    assert written[:128] == b"\x00" * 128
    assert written[128:132] == b"DICM"
    out = pydicom.dcmread(io.BytesIO(written))
    assert out.PatientName == "ANONYMOUS"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


@pytest.mark.parametrize("name", TEST_FILES)
def test_deidentify_file_handles_pydicom_test_files(name: str) -> None:
    out = io.BytesIO()
    with open(get_testdata_file(name), "rb") as src:
        deidentify_file(src, out, uid_map=UidMap())

    ds = pydicom.dcmread(io.BytesIO(out.getvalue()))
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_deidentify_file_drops_the_source_ae_title_from_the_file_meta() -> None:
    out = pydicom.dcmread(io.BytesIO(_written(a_chinese_ct_instance())))

    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_deidentify_file_refuses_a_file_without_a_sop_class() -> None:
    source = io.BytesIO(Path(get_testdata_file("nested_priv_SQ.dcm")).read_bytes())

    with pytest.raises(ValueError, match="MediaStorageSOPClassUID"):
        deidentify_file(source, io.BytesIO(), uid_map=UidMap())


def test_deidentify_file_refuses_what_is_not_dicom() -> None:
    with pytest.raises(InvalidDicomError):
        deidentify_file(io.BytesIO(b"not dicom" * 40), io.BytesIO(), uid_map=UidMap())


# The transcribed table


def test_every_profile_row_names_its_tag_as_the_dictionary_does() -> None:
    def normalised(name: str) -> str:
        return re.sub(r"[^a-z0-9]", "", name.lower())

    for tag, row in {**PROFILE, **ADDITIONS}.items():
        assert normalised(dictionary_description(tag)) == normalised(row.name), f"{tag:08X}"


def test_every_profile_row_has_an_action_of_the_basic_profile_column() -> None:
    actions = {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}

    assert {row.code for row in PROFILE.values()} <= actions
