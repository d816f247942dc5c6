"""Hostile DICOM is a normal day: every file is refused for a reason, or kept whole and safe.

The generated corpus (``tests/imaging/hostile.py``) runs through ``validate_instance``
and ``instance_ingest``; pydicom's own small test files stand for real modalities.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import random
import re
import struct
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.conf import settings
from django.http import JsonResponse
from django.template import Context, Template
from django.utils import translation
from django.utils.html import escape

from association.models import Institution
from audit.models import AuditEvent, Outcome
from imaging.dicom.validate import DEFAULT_LIMITS, Limits, Rejected, validate_instance
from imaging.ingest import Conflict, IngestStatus, Origin, instance_ingest
from imaging.models import Instance, Study
from objectstore import get_store
from objectstore.keys import KEY_RE
from tests.imaging import hostile
from tests.imaging.hostile import BY_NAME, CORPUS, Hostile

# pydicom's bundled files only: a name missing here would be downloaded.
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
CHARSET_FILES = Path(pydicom.__file__).parent / "data" / "charset_files"


REFUSED = [case for case in CORPUS if case.code is not None]
ACCEPTED = [case for case in CORPUS if case.code is None]
CHARSETS = [case for case in ACCEPTED if case.name.startswith("charset_")]

MODALITY_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "SC_rgb_rle_2frame.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPGExtended.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "MR_small_implicit.dcm",
]

BROKEN_FILES = [
    (PYDICOM_FILES / "MR_truncated.dcm", "truncated"),
    (PYDICOM_FILES / "rtplan_truncated.dcm", "truncated"),
    (PYDICOM_FILES / "no_meta.dcm", "not_dicom"),
    (PYDICOM_FILES / "ExplVR_LitEndNoMeta.dcm", "not_dicom"),
    (PYDICOM_FILES / "meta_missing_tsyntax.dcm", "bad_uid"),
    (PYDICOM_FILES / "JPEGLSNearLossless_08.dcm", "bad_uid"),  # a component with a leading 0
    (CHARSET_FILES / "chrJapMulti.dcm", "bad_pixels"),  # an image whose pixel data was cut off
    (CHARSET_FILES / "chrSQEncoding.dcm", "bad_uid"),  # no SOP Class UID
]


def _ids(cases: list[Hostile]) -> list[str]:
    return [case.name for case in cases]


@functools.cache
def _bytes(name: str) -> bytes:
    """A corpus entry's file, built once per test session (some take a moment)."""
    return BY_NAME[name].build()


def _pydicom_file(name: str) -> bytes:
    """A file bundled with pydicom, read from disk (``get_testdata_file`` may download)."""
    return (PYDICOM_FILES / name).read_bytes()


def _stored_objects() -> set[str] | None:
    """Every object in the test store's folder; ``None`` on S3 (CI), which is not listed."""
    if settings.OBJECT_STORE["BACKEND"] != "local":
        return None
    root = Path(settings.OBJECT_STORE["ROOT"])
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def _stored_bytes(instance: Instance) -> bytes:
    return b"".join(get_store().open(instance.object_key, expected_sha256=instance.sha256))


@pytest.fixture
def origin(actors: Any) -> Origin:
    return Origin(
        institution=Institution.objects.get(code="xiba"), channel="upload", user=actors.township
    )


def _ingest(data: bytes, origin: Origin, limits: Limits = DEFAULT_LIMITS) -> Instance:
    result = instance_ingest(io.BytesIO(data), origin=origin, limits=limits)
    assert result.status == IngestStatus.STORED
    return result.instance


# --- validation: every corpus entry reaches its outcome -------------------------------


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_a_hostile_file_is_refused_with_a_reason_a_person_understands(case: Hostile) -> None:
    with pytest.raises(Rejected) as refused:
        validate_instance(io.BytesIO(_bytes(case.name)), limits=case.limits)
    assert refused.value.code == case.code
    with translation.override("en"):
        message = str(refused.value.message)
    assert re.fullmatch(r"[A-Z][^%{}<>]* [^%{}<>]*\.", message), message
    assert not re.search(r"[\u4e00-\u9fff]", message)


@pytest.mark.parametrize("case", ACCEPTED, ids=_ids(ACCEPTED))
def test_a_hostile_looking_but_valid_file_is_accepted(case: Hostile) -> None:
    valid = validate_instance(io.BytesIO(_bytes(case.name)), limits=case.limits)
    assert valid.sop_uid not in {valid.series_uid, valid.study_uid}


def test_5000_nested_sequences_are_refused_without_a_recursion_error() -> None:
    limit = sys.getrecursionlimit()
    with pytest.raises(Rejected) as refused:  # a RecursionError would escape pytest.raises
        validate_instance(io.BytesIO(_bytes("nested_5000")))
    assert refused.value.code == "too_deep"
    assert sys.getrecursionlimit() == limit


def test_the_deflate_bomb_is_small_on_the_wire_and_is_never_inflated_whole() -> None:
    data = _bytes("deflate_bomb")
    assert len(data) < hostile.BOMB_INFLATED // 100
    tracemalloc.start()
    try:
        with translation.override("en"), pytest.raises(Rejected, match="inflates"):
            validate_instance(
                io.BytesIO(data), limits=Limits(max_inflated_bytes=hostile.BOMB_LIMIT)
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * hostile.BOMB_LIMIT


def test_every_truncation_of_a_valid_image_is_refused() -> None:
    data = hostile.valid()
    for cut in range(len(data)):
        with pytest.raises(Rejected):
            validate_instance(io.BytesIO(data[:cut]))


def test_every_truncation_of_a_compressed_image_is_refused() -> None:
    data = _pydicom_file("MR_small_RLE.dcm")
    for cut in range(0, len(data), 23):
        with pytest.raises(Rejected):
            validate_instance(io.BytesIO(data[:cut]))


def test_random_damage_is_refused_or_accepted_never_a_crash() -> None:
    """Flip bytes anywhere in a valid file: validation answers Rejected or accepts, only."""
    original = hostile.valid()
    rng = random.Random(20250101)
    for _ in range(200):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(132, len(damaged))] = rng.randrange(256)
        with contextlib.suppress(Rejected):
            validate_instance(io.BytesIO(bytes(damaged)))


def test_an_unknown_value_representation_is_refused_as_malformed() -> None:
    """Found by the random damage above: a VR of 'UY' made pydicom raise NotImplementedError."""
    data = bytearray(hostile.valid())
    series = data.index(b"\x20\x00\x0e\x00UI")
    data[series + 4 : series + 6] = b"UY"
    with pytest.raises(Rejected) as refused:
        validate_instance(io.BytesIO(bytes(data)))
    assert refused.value.code == "malformed"


# --- ingest: refusals keep nothing, and are audited -----------------------------------


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_a_refused_file_leaves_nothing_behind_but_an_audit_event(
    case: Hostile, origin: Origin
) -> None:
    data = _bytes(case.name)
    objects_before = _stored_objects()
    with pytest.raises(Rejected) as refused:
        instance_ingest(io.BytesIO(data), origin=origin, limits=case.limits)
    assert refused.value.code == case.code
    assert not Instance.objects.exists()
    assert not Study.objects.exists()
    assert _stored_objects() == objects_before
    event = AuditEvent.objects.filter(action="imaging.ingest").latest("pk")
    assert event.outcome == Outcome.FAILED
    assert event.reason == case.code


@pytest.mark.parametrize("case", ACCEPTED, ids=_ids(ACCEPTED))
def test_an_accepted_file_is_stored_whole_with_its_preamble_zeroed(
    case: Hostile, origin: Origin
) -> None:
    data = _bytes(case.name)
    instance = _ingest(data, origin, case.limits)
    stored = _stored_bytes(instance)
    assert stored == b"\0" * 128 + data[128:]
    assert instance.size == len(data)


def test_the_executable_preamble_of_a_polyglot_is_not_kept(origin: Origin) -> None:
    data = hostile.polyglot_pe()
    assert data.startswith(b"MZ")
    stored = _stored_bytes(_ingest(data, origin))
    assert b"MZ" not in stored[:128]
    assert stored[128:] == data[128:]


@pytest.mark.parametrize("case", ACCEPTED, ids=_ids(ACCEPTED))
def test_object_keys_are_generated_never_made_of_uids(case: Hostile, origin: Origin) -> None:
    instance = _ingest(_bytes(case.name), origin, case.limits)
    study = instance.series.study
    assert KEY_RE.fullmatch(instance.object_key)
    for uid in (instance.sop_uid, instance.series.series_uid, study.study_uid):
        assert uid not in instance.object_key
        assert uid.split(".")[-1] not in instance.object_key.split("/")


def test_the_same_sop_uid_for_another_patient_is_refused_and_nothing_is_overwritten(
    origin: Origin,
) -> None:
    first_ds = hostile.image()
    first = _ingest(hostile.encode(first_ds), origin)
    first_bytes = _stored_bytes(first)
    objects_before = _stored_objects()
    forged = hostile.image(
        SOPInstanceUID=first_ds.SOPInstanceUID,
        SeriesInstanceUID=first_ds.SeriesInstanceUID,
        StudyInstanceUID=first_ds.StudyInstanceUID,
        PatientID="SOMEONE-ELSE",
        PatientName="Someone^Else",
    )
    with pytest.raises(Conflict) as conflict:
        instance_ingest(io.BytesIO(hostile.encode(forged)), origin=origin)
    assert conflict.value.code == "other_patient"
    first.refresh_from_db()
    assert first.series.study.dicom_patient_id == "HOSTILE-1"
    assert _stored_bytes(first) == first_bytes
    assert _stored_objects() == objects_before
    assert Instance.objects.count() == 1
    event = AuditEvent.objects.filter(action="imaging.ingest").latest("pk")
    assert (event.outcome, event.reason) == (Outcome.FAILED, "other_patient")


# --- text from tag values: stored as sent, shown escaped ------------------------------

INJECTIONS = [
    pytest.param("injection_script", "dicom_patient_name", hostile.SCRIPT),
    ("injection_img", "study_description", hostile.IMG_ONERROR),
    ("injection_sql", "dicom_patient_id", hostile.SQL),
    ("injection_sql", "study_description", hostile.SQL),
    pytest.param("control_characters", "dicom_patient_name", hostile.CONTROL),
]
SHOWN = [
    ("injection_script", "dicom_patient_name", hostile.SCRIPT),
    ("injection_img", "study_description", hostile.IMG_ONERROR),
    ("injection_sql", "dicom_patient_id", hostile.SQL),
    ("control_characters", "dicom_patient_name", hostile.CONTROL),
]


@pytest.mark.parametrize(("case", "field", "value"), INJECTIONS)
def test_tag_values_are_stored_as_sent(case: str, field: str, value: str, origin: Origin) -> None:
    study = _ingest(_bytes(case), origin).series.study
    assert getattr(study, field) == value


@pytest.mark.parametrize(("case", "field", "value"), SHOWN)
def test_tag_values_are_escaped_in_pages(case: str, field: str, value: str, origin: Origin) -> None:
    study = _ingest(_bytes(case), origin).series.study
    shown = Template("<td>{{ value }}</td>").render(Context({"value": getattr(study, field)}))
    inside = shown.removeprefix("<td>").removesuffix("</td>")
    assert not {"<", ">", '"', "'"} & set(inside), shown
    assert inside == escape(getattr(study, field))


@pytest.mark.parametrize(("case", "field", "value"), INJECTIONS)
def test_tag_values_are_plain_strings_in_json(
    case: str, field: str, value: str, origin: Origin
) -> None:
    study = _ingest(_bytes(case), origin).series.study
    response = JsonResponse({"value": getattr(study, field)})
    assert json.loads(response.content) == {"value": value}


def test_a_script_in_the_patient_name_is_a_plain_string_in_the_dicom_json(
    origin: Origin,
) -> None:
    instance = _ingest(_bytes("injection_script"), origin)
    stored = json.loads(json.dumps(instance.metadata))
    assert stored["00100010"]["Value"] == [{"Alphabetic": hostile.SCRIPT}]


def test_very_long_strings_are_kept_within_the_index_columns(origin: Origin) -> None:
    study = _ingest(_bytes("very_long_strings"), origin).series.study
    assert study.dicom_patient_name == hostile.LONG[:324]
    assert study.study_description == hostile.LONG[:64]


# --- character sets -------------------------------------------------------------------


@pytest.mark.parametrize("case", CHARSETS, ids=_ids(CHARSETS))
def test_a_chinese_patient_name_is_decoded(case: Hostile) -> None:
    valid = validate_instance(io.BytesIO(_bytes(case.name)))
    assert valid.patient_name == hostile.ZHANG_SAN
    assert str(valid.dataset.PatientName) == hostile.ZHANG_SAN


@pytest.mark.parametrize("case", CHARSETS, ids=_ids(CHARSETS))
def test_a_chinese_patient_name_round_trips_into_the_index(case: Hostile, origin: Origin) -> None:
    study = _ingest(_bytes(case.name), origin).series.study
    assert study.dicom_patient_name == hostile.ZHANG_SAN


IR_58_EXAMPLE = (  # PS3.5 Annex K: each GB2312 component starts with ESC $ ) A
    b"Zhang^XiaoDong=\x1b$)A" + "张".encode("gb2312") + b"^\x1b$)A" + "小东".encode("gb2312") + b"="
)


def test_iso_2022_ir_58_component_groups_decode_as_in_the_standard() -> None:
    data = hostile.charset(b"\\ISO 2022 IR 58", IR_58_EXAMPLE)()
    name = validate_instance(io.BytesIO(data)).dataset.PatientName
    assert name.components == ("Zhang^XiaoDong", "张^小东")
    # str() joins the groups with "=" and drops the trailing empty (phonetic) group.
    assert str(name) == "Zhang^XiaoDong=张^小东"


def test_iso_2022_ir_58_component_groups_round_trip_into_the_index(origin: Origin) -> None:
    data = hostile.charset(b"\\ISO 2022 IR 58", IR_58_EXAMPLE)()
    assert _ingest(data, origin).series.study.dicom_patient_name == "Zhang^XiaoDong=张^小东"


@pytest.mark.parametrize(
    ("name", "patient_name"),
    [
        ("chrX1.dcm", "Wang^XiaoDong=王^小東"),  # ISO_IR 192 (UTF-8)
        ("chrX2.dcm", "Wang^XiaoDong=王^小东"),  # GB18030
    ],
)
def test_pydicoms_chinese_files_decode(name: str, patient_name: str) -> None:
    data = (CHARSET_FILES / name).read_bytes()
    assert validate_instance(io.BytesIO(data)).patient_name == patient_name


def test_pydicoms_gb18030_file_round_trips_into_the_index(origin: Origin) -> None:
    data = (CHARSET_FILES / "chrX2.dcm").read_bytes()
    study = _ingest(data, origin).series.study
    assert study.dicom_patient_name == "Wang^XiaoDong=王^小东"


# --- real files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", MODALITY_FILES)
def test_a_real_modality_file_is_accepted_and_stored(name: str, origin: Origin) -> None:
    data = _pydicom_file(name)
    instance = _ingest(data, origin)
    assert _stored_bytes(instance)[128:] == data[128:]


@pytest.mark.parametrize(
    ("path", "code"), BROKEN_FILES, ids=[path.name for path, _code in BROKEN_FILES]
)
def test_a_real_broken_file_is_refused(path: Path, code: str, origin: Origin) -> None:
    objects_before = _stored_objects()
    with pytest.raises(Rejected) as refused:
        instance_ingest(io.BytesIO(path.read_bytes()), origin=origin)
    assert refused.value.code == code
    assert not Instance.objects.exists()
    assert _stored_objects() == objects_before


# --- memory ---------------------------------------------------------------------------

BIG_FRAMES = 200
BIG_SIDE = 724  # 724 × 724 × 2 bytes × 200 frames: about 200 MiB


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ~200 MiB multi-frame 16-bit CT, written once (sparse: the frames are holes)."""
    ds = hostile.image(Rows=BIG_SIDE, Columns=BIG_SIDE, NumberOfFrames=BIG_FRAMES)
    del ds.PixelData
    header = hostile.encode(ds)
    length = BIG_SIDE * BIG_SIDE * 2 * BIG_FRAMES
    path = tmp_path_factory.mktemp("big") / "multiframe.dcm"
    with path.open("wb") as out:
        out.write(header + struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", length))
        out.truncate(len(header) + 12 + length)
    yield path
    path.unlink()


def test_validating_a_200_mb_file_does_not_load_its_pixels(big_file: Path) -> None:
    assert big_file.stat().st_size > 200_000_000
    tracemalloc.start()
    try:
        with big_file.open("rb") as f:
            valid = validate_instance(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert valid.frames == BIG_FRAMES
    assert peak < 50 * 1024 * 1024


def test_the_quick_deflate_peek_sends_every_doubtful_meta_to_the_full_check() -> None:
    from imaging.dicom.validate import _may_be_deflated

    bomb = _bytes("deflate_bomb")
    assert _may_be_deflated(io.BytesIO(bomb))
    assert not _may_be_deflated(io.BytesIO(hostile.valid()))
    # A meta whose group length says it is longer than the peek: the full check decides.
    longer = bytearray(bomb)
    longer[140:144] = (64 * 1024).to_bytes(4, "little")
    assert _may_be_deflated(io.BytesIO(bytes(longer)))
    # No group length first: the full check decides.
    assert _may_be_deflated(io.BytesIO(bomb[:132] + b"\x02\x00\x01\x00" + bomb[136:]))
    with translation.override("en"), pytest.raises(Rejected, match="inflates"):
        validate_instance(io.BytesIO(bomb), limits=Limits(max_inflated_bytes=hostile.BOMB_LIMIT))
