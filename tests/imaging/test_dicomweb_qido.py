"""QIDO-RS: matching, paging, included fields, bad parameters, scope and audit."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent, Outcome
from tests.imaging.dicomweb_support import basic

pytest_plugins = ["tests.imaging.dicomweb_fixtures"]


@pytest.fixture
def studies(ingest, ct_series):
    """CT (2024-01-15, three slices), MR (2023-12-01), an RLE colour image and a JPEG one."""
    ingest("MR_small.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm")


@pytest.fixture
def township(client, actors):
    client.force_login(actors.township)
    return client


def uids(response, tag="0020000D"):
    assert response.status_code == 200, response.content
    return [item[tag]["Value"][0] for item in response.json()]


def test_township_doctor_finds_the_studies_their_centre_sent(township, studies, samples):
    found = uids(township.get("/dicomweb/studies"))
    assert samples["CT_small.dcm"].study in found
    assert samples["MR_small.dcm"].study in found
    assert len(found) == 4


def test_a_study_answer_carries_the_attributes_ps3_18_requires(township, studies, samples):
    response = township.get("/dicomweb/studies", {"PatientID": "DW-CT-1"})
    assert response["Content-Type"] == "application/dicom+json"
    (study,) = response.json()
    for tag in (
        "00080005", "00080020", "00080030", "00080050", "00080061", "00080090", "00100010",
        "00100020", "00100030", "00100040", "0020000D", "00200010", "00201206", "00201208",
        "00081190", "00081030",
    ):  # fmt: skip
        assert tag in study, tag
    assert study["00201208"] == {"vr": "IS", "Value": [3]}
    assert study["00201206"] == {"vr": "IS", "Value": [1]}
    assert study["00080061"]["Value"] == ["CT"]
    assert study["00081190"]["Value"][0].endswith(
        f"/dicomweb/studies/{samples['CT_small.dcm'].study}"
    )
    assert "Alphabetic" in study["00100010"]["Value"][0]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"PatientID": "DW-CT-1"}, ["CT_small.dcm"]),
        ({"00100020": "DW-MR-1"}, ["MR_small.dcm"]),
        ({"PatientID": "DW-??-1"}, ["CT_small.dcm", "MR_small.dcm"]),
        ({"PatientID": "dw-ct-1"}, []),  # identifiers match case-sensitively
        ({"AccessionNumber": "DW100_1"}, ["CT_small.dcm"]),
        ({"AccessionNumber": "DW100?1"}, ["CT_small.dcm"]),
        ({"StudyDescription": "*brain*"}, ["MR_small.dcm"]),
        ({"StudyDescription": "chest ct 50%"}, ["CT_small.dcm"]),
        ({"StudyDescription": "*50%"}, ["CT_small.dcm"]),
        ({"StudyDescription": "*5_%"}, []),  # _ and % are not SQL wildcards here
        ({"StudyDate": "20240115"}, ["CT_small.dcm"]),
        ({"StudyDate": "20231101-20231231"}, ["MR_small.dcm"]),
        ({"StudyDate": "20240101-"}, ["CT_small.dcm"]),
        (
            {"StudyDate": "-20231231"},
            ["MR_small.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm"],
        ),
        ({"StudyTime": "0900-1000"}, ["CT_small.dcm"]),
        ({"ModalitiesInStudy": "MR"}, ["MR_small.dcm"]),
        ({"ModalitiesInStudy": "CT,MR"}, ["CT_small.dcm", "MR_small.dcm"]),
        ({"ModalitiesInStudy": "CT\\MR"}, ["CT_small.dcm", "MR_small.dcm"]),
        ({"PatientID": "DW-CT-1", "StudyDate": "20200101-20201231"}, []),
    ],
)
def test_study_matching(township, studies, samples, params, expected):
    found = uids(township.get("/dicomweb/studies", params))
    assert sorted(found) == sorted(samples[n].study for n in expected)


def test_a_list_of_study_uids_matches_each(township, studies, samples):
    wanted = [samples["CT_small.dcm"].study, samples["MR_small.dcm"].study]
    found = uids(township.get("/dicomweb/studies", {"StudyInstanceUID": ",".join(wanted)}))
    assert sorted(found) == sorted(wanted)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("wang*", 1), ("*XIAO*", 1), ("王*", 1), ("*小明", 1), ("Li^Hua", 1)],
)
def test_patient_names_match_case_insensitively_in_any_component_group(
    township, studies, pattern, expected
):
    assert len(uids(township.get("/dicomweb/studies", {"PatientName": pattern}))) == expected


def test_a_name_matching_nobody_finds_nothing(township, studies):
    assert township.get("/dicomweb/studies", {"PatientName": "nobody*"}).json() == []


def test_a_patient_name_comes_back_as_alphabetic_and_ideographic(township, studies):
    (study,) = township.get("/dicomweb/studies", {"PatientID": "DW-CT-1"}).json()
    assert study["00100010"]["Value"] == [{"Alphabetic": "Wang^Xiaoming", "Ideographic": "王^小明"}]


def test_percent_encoded_values_are_decoded(township, studies, samples):
    response = township.get("/dicomweb/studies?StudyDescription=%2Abrain%2A&PatientID=DW%2DMR%2D1")
    assert uids(response) == [samples["MR_small.dcm"].study]


def test_limit_and_offset_page_through_the_results_with_a_warning(township, studies):
    everything = uids(township.get("/dicomweb/studies"))
    first = township.get("/dicomweb/studies", {"limit": 2})
    assert uids(first) == everything[:2]
    assert "additional results" in first["Warning"]
    rest = township.get("/dicomweb/studies", {"limit": 2, "offset": 2})
    assert uids(rest) == everything[2:]
    assert "Warning" not in rest


def test_an_empty_result_is_200_with_an_empty_list(township, studies):
    response = township.get("/dicomweb/studies", {"PatientID": "NO-SUCH"})
    assert response.status_code == 200
    assert response.json() == []


def test_includefield_adds_stored_attributes(township, studies):
    response = township.get(
        "/dicomweb/studies", {"PatientID": "DW-CT-1", "includefield": "PatientAge,00080201"}
    )
    (study,) = response.json()
    assert study["00101010"]["Value"] == ["000Y"]
    assert "00080201" in study


def test_includefield_all_adds_the_patient_module(township, studies):
    (study,) = township.get(
        "/dicomweb/studies", {"PatientID": "DW-CT-1", "includefield": "all"}
    ).json()
    assert "00101010" in study
    assert "00280010" not in study  # rows are not a study attribute


def test_ohifs_study_list_query_is_answered(township, studies, samples):
    response = township.get(
        "/dicomweb/studies",
        {
            "limit": "101",
            "offset": "0",
            "fuzzymatching": "false",
            "includefield": "00081030,00080060",
            "StudyDate": "20000101-20991231",
        },
    )
    assert samples["CT_small.dcm"].study in uids(response)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"limit": "ten"},
        {"offset": "-5"},
        {"StudyDate": "2024-01-15"},
        {"StudyDate": "20240115-20230101"},
        {"StudyInstanceUID": "1.2.abc"},
        {"NoSuchKeyword": "x"},
        {"includefield": "NotAKeyword"},
        {"fuzzymatching": "maybe"},
        {"SeriesNumber": "x"},
    ],
)
def test_a_bad_parameter_is_a_400_with_a_readable_message(township, studies, params):
    path = "/dicomweb/series" if "SeriesNumber" in params else "/dicomweb/studies"
    response = township.get(path, params)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_an_attribute_not_matchable_is_ignored_with_a_warning(township, studies):
    response = township.get("/dicomweb/studies", {"PatientWeight": "70"})
    assert response.status_code == 200
    assert "PatientWeight" in response["Warning"]
    assert len(response.json()) == 4


def test_series_of_a_study(township, studies, samples):
    ct = samples["CT_small.dcm"]
    response = township.get(f"/dicomweb/studies/{ct.study}/series")
    (series,) = response.json()
    assert series["0020000E"]["Value"] == [ct.series]
    assert series["00201209"]["Value"] == [3]
    assert series["00080060"]["Value"] == ["CT"]
    assert series["00081190"]["Value"][0].endswith(f"/studies/{ct.study}/series/{ct.series}")
    assert "00100020" not in series  # scoped to a study: no study attributes


def test_all_series_match_on_modality_and_carry_study_attributes(township, studies, samples):
    response = township.get("/dicomweb/series", {"Modality": "MR"})
    (series,) = response.json()
    assert series["0020000E"]["Value"] == [samples["MR_small.dcm"].series]
    assert series["00100020"]["Value"] == ["DW-MR-1"]


def test_instances_of_a_series_in_instance_number_order(township, studies, samples):
    ct = samples["CT_small.dcm"]
    response = township.get(f"/dicomweb/studies/{ct.study}/series/{ct.series}/instances")
    found = response.json()
    assert [i["00200013"]["Value"][0] for i in found] == [1, 2, 3]
    assert found[0]["00280010"]["Value"] == [128]
    assert found[0]["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.2"]


def test_instances_match_on_sop_instance_uid_and_instance_number(township, studies, samples):
    ct = samples["CT_small.dcm#2"]
    by_uid = township.get(f"/dicomweb/studies/{ct.study}/instances", {"SOPInstanceUID": ct.sop})
    assert uids(by_uid, "00080018") == [ct.sop]
    by_number = township.get("/dicomweb/instances", {"InstanceNumber": "2", "Modality": "CT"})
    assert uids(by_number, "00080018") == [ct.sop]


def test_instance_includefield_reads_the_stored_attributes(township, studies, samples):
    ct = samples["CT_small.dcm"]
    response = township.get(
        f"/dicomweb/studies/{ct.study}/series/{ct.series}/instances",
        {"includefield": "RescaleIntercept,00281053,WindowCenter"},
    )
    found = response.json()
    assert all(i["00281052"]["Value"] == [-1024] and "00281053" in i for i in found)
    assert not any("00281050" in i for i in found)  # not in these files: left out


def test_an_outsider_finds_nothing(client, actors, studies):
    client.force_login(actors.outsider)
    assert uids(client.get("/dicomweb/studies")) == []
    assert uids(client.get("/dicomweb/series")) == []
    assert uids(client.get("/dicomweb/instances")) == []


def test_an_outsider_is_refused_the_series_of_a_study_and_it_is_audited(
    client, actors, studies, samples
):
    client.force_login(actors.outsider)
    study = samples["CT_small.dcm"].study
    assert client.get(f"/dicomweb/studies/{study}/series").status_code == 403
    assert AuditEvent.objects.filter(
        actor=actors.outsider, resource_id=study, outcome=Outcome.DENIED
    ).exists()


def test_an_unknown_study_is_a_404(township, studies):
    assert township.get("/dicomweb/studies/1.2.3.4/series").status_code == 404


def test_every_search_is_audited_once_with_its_parameters_and_count(township, actors, studies):
    before = AuditEvent.objects.filter(action="dicomweb.qido").count()
    township.get("/dicomweb/studies", {"ModalitiesInStudy": "CT"})
    events = AuditEvent.objects.filter(action="dicomweb.qido").order_by("-id")
    assert events.count() == before + 1
    event = events.first()
    assert event.actor == actors.township
    assert event.detail["match"] == {"ModalitiesInStudy": "CT"}
    assert event.detail["count"] == 1


def _queries(client, path, params=None):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path, params or {}).status_code == 200
    return len(ctx.captured_queries)


def test_study_search_runs_the_same_few_queries_for_one_or_many_results(township, studies):
    township.get("/dicomweb/studies")  # the first search also compiles the visibility query
    one = _queries(township, "/dicomweb/studies", {"PatientID": "DW-CT-1"})
    many = _queries(township, "/dicomweb/studies")
    with_fields = _queries(township, "/dicomweb/studies", {"includefield": "all"})
    assert one == many == with_fields
    assert many <= 6


def test_instance_search_does_not_query_per_instance(township, studies, samples, ingest):
    ct = samples["CT_small.dcm"]
    path = f"/dicomweb/studies/{ct.study}/instances"
    three = _queries(township, path)
    everything = _queries(township, "/dicomweb/instances", {"includefield": "all"})
    assert everything <= three + 1
    assert three <= 8


def test_basic_authentication_works_for_machine_clients(client, studies):
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=basic("township"))
    assert len(uids(response)) == 4


def test_a_search_answers_only_dicom_json(township, studies):
    response = township.get(
        "/dicomweb/studies", HTTP_ACCEPT='multipart/related; type="application/dicom+xml"'
    )
    assert response.status_code == 406
