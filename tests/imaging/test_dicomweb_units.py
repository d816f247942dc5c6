"""The pieces under DICOMweb: Accept parsing, QIDO parameters, windowing, pixel access."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from django.http import QueryDict

from imaging.dicomweb.multipart import parse_accept, split_multipart
from imaging.dicomweb.pixels import InstancePixels
from imaging.dicomweb.qido import _like
from imaging.dicomweb.query import Kind, Level, QueryError, parse_qido
from imaging.dicomweb.render import Window, _apply_window, parse_viewport, parse_window

pytest_plugins = ["tests.imaging.dicomweb_fixtures"]


def test_accept_ranges_are_parsed_with_quoted_parameters_and_sorted_by_q():
    ranges = parse_accept(
        'image/png;q=0.5, multipart/related; type="application/octet-stream";'
        " transfer-syntax=*, text/html;q=0"
    )
    assert [r.media_type for r in ranges] == ["multipart/related", "image/png"]
    assert ranges[0].part_type == "application/octet-stream"
    assert ranges[0].param("transfer-syntax") == "*"


def test_a_comma_inside_quotes_does_not_split_the_accept_header():
    (only,) = parse_accept('multipart/related; type="a/b,c"')
    assert only.part_type == "a/b,c"


def test_no_accept_header_means_anything():
    assert [r.media_type for r in parse_accept(None)] == ["*/*"]


def test_a_multipart_body_without_part_headers_still_splits():
    assert split_multipart(b"--b\r\n\r\nbody\r\n--b--", "b")[0].body == b"body"


def test_qido_parameters_become_typed_conditions():
    params = QueryDict(
        "PatientName=Wang*&StudyDate=20240101-&00080061=CT%5CMR&limit=5&offset=10"
        "&includefield=00081030&includefield=PatientAge&fuzzymatching=true"
    )
    query = parse_qido(params, level=Level.STUDY)
    by_keyword = {c.attribute.keyword: c for c in query.conditions}
    assert by_keyword["PatientName"].pattern == "Wang*"
    assert (by_keyword["StudyDate"].low, by_keyword["StudyDate"].high) == ("20240101", None)
    assert by_keyword["ModalitiesInStudy"].values == ("CT", "MR")
    assert by_keyword["ModalitiesInStudy"].attribute.kind is Kind.MODALITIES
    assert (query.limit, query.offset, query.fuzzy) == (5, 10, True)
    assert query.include_tags == {0x00081030, 0x00101010}


def test_the_limit_is_capped_and_defaults_per_level():
    assert parse_qido(QueryDict("limit=5000"), level=Level.STUDY).limit == 1000
    assert parse_qido(QueryDict(""), level=Level.STUDY).limit == 101
    assert parse_qido(QueryDict(""), level=Level.INSTANCE).limit == 1000


def test_instance_attributes_are_not_matched_in_a_study_search():
    query = parse_qido(QueryDict("SOPInstanceUID=1.2.3"), level=Level.STUDY)
    assert query.conditions == ()
    assert query.ignored == ("SOPInstanceUID",)


@pytest.mark.parametrize("raw", ["StudyTime=25", "StudyDate=2024", "InstanceNumber=1.5"])
def test_malformed_values_raise_a_query_error(raw):
    with pytest.raises(QueryError):
        parse_qido(QueryDict(raw), level=Level.INSTANCE)


def test_wildcards_become_escaped_like_patterns():
    assert _like("a*b?c%d_e\\f") == "a%b_c\\%d\\_e\\\\f"


def test_the_linear_window_follows_ps3_3_c_11_2_1_2():
    values = np.array([-161, -160, 40, 239, 240], dtype=np.int16)
    out = _apply_window(values, Window(center=40, width=400), slope=1.0, intercept=0.0)
    assert out[0] == 0
    assert out[1] == 0
    assert out[2] == pytest.approx(((40 - 39.5) / 399 + 0.5) * 255, abs=1e-3)
    assert out[-1] == 255


def test_the_window_applies_the_rescale_first():
    stored = np.array([1064], dtype=np.int16)  # 40 HU with intercept -1024
    out = _apply_window(stored, Window(center=40, width=400), slope=1.0, intercept=-1024.0)
    assert out[0] == pytest.approx(127.82, abs=0.01)


def test_window_and_viewport_parameters_parse():
    assert parse_window("40,400,SIGMOID") == Window(40.0, 400.0, "sigmoid")
    viewport = parse_viewport("512,512,10,20,-100,")
    assert (viewport.sx, viewport.sy, viewport.sw, viewport.sh) == (10, 20, -100, None)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "examples_palette.dcm"])
def test_the_fast_path_finds_the_same_pixels_as_pydicom(ingest, samples, name):
    (instance,) = ingest(name)
    with InstancePixels(instance) as pixels:
        assert pixels._fast_offset() is not None
        frame, _photometric = pixels.decoded_frame(0)
    assert np.array_equal(frame, pydicom.dcmread(samples[name].path).pixel_array)


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_a_study_streams_without_being_collected_first(
    async_client, ingest, samples
):
    """Django collects a *synchronous* iterator into a list under ASGI; ours is async."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    try:
        await sync_to_async(ingest)("CT_small.dcm", "CT_small.dcm#2")
        await sync_to_async(async_client.force_login)(await _township())
        ct = samples["CT_small.dcm"]
        response = await async_client.get(f"/dicomweb/studies/{ct.study}")
        assert response.status_code == 200
        assert response.is_async
        body = b"".join([chunk async for chunk in response.streaming_content])
        assert body.count(b"Content-Type: application/dicom") == 2
    finally:
        await sync_to_async(connections.close_all)()  # the worker thread's connection


async def _township():
    from django.contrib.auth import get_user_model

    return await get_user_model().objects.aget(username="township")
