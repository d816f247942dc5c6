"""/rendered and /thumbnail: JPEG and PNG, window, viewport, colour, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.imaging.dicomweb_support import TRANSFER_SYNTAX_FILES, UNDECODABLE, instance_path

pytest_plugins = ["tests.imaging.dicomweb_fixtures"]


@pytest.fixture
def township(client, actors):
    client.force_login(actors.township)
    return client


def image_of(response):
    assert response.status_code == 200, response.content[:300]
    return Image.open(io.BytesIO(response.content))


def test_an_instance_renders_as_jpeg_by_default(township, ct_series, samples):
    response = township.get(f"{instance_path(samples['CT_small.dcm'])}/rendered")
    assert response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    image = image_of(response)
    assert image.format == "JPEG"
    assert image.size == (128, 128)
    assert image.mode == "L"


def test_png_when_asked_by_header_or_by_parameter(township, ct_series, samples):
    path = f"{instance_path(samples['CT_small.dcm'])}/rendered"
    assert image_of(township.get(path, HTTP_ACCEPT="image/png")).format == "PNG"
    assert image_of(township.get(path, {"accept": "image/png"})).format == "PNG"


def test_an_image_type_not_offered_is_a_406(township, ct_series, samples):
    response = township.get(
        f"{instance_path(samples['CT_small.dcm'])}/rendered", HTTP_ACCEPT="image/gif"
    )
    assert response.status_code == 406
    assert "image/jpeg" in response.json()["detail"]


def test_the_window_parameter_changes_the_pixels(township, ct_series, samples):
    path = f"{instance_path(samples['CT_small.dcm'])}/rendered"
    lung = np.asarray(image_of(township.get(path, {"window": "-600,1500", "accept": "image/png"})))
    bone = np.asarray(image_of(township.get(path, {"window": "300,1500", "accept": "image/png"})))
    narrow = np.asarray(image_of(township.get(path, {"window": "40,1", "accept": "image/png"})))
    assert lung.mean() > bone.mean()
    assert set(np.unique(narrow)) <= {0, 255}


def test_values_below_the_window_are_black_and_above_it_white(township, ct_series, samples):
    path = f"{instance_path(samples['CT_small.dcm'])}/rendered"
    low = np.asarray(image_of(township.get(path, {"window": "100000,2", "accept": "image/png"})))
    high = np.asarray(image_of(township.get(path, {"window": "-100000,2", "accept": "image/png"})))
    assert low.max() == 0
    assert high.min() == 255


def test_the_viewport_scales_and_crops(township, ct_series, samples):
    path = f"{instance_path(samples['CT_small.dcm'])}/rendered"
    assert image_of(township.get(path, {"viewport": "64,32"})).size == (32, 32)
    assert image_of(township.get(path, {"viewport": "256,256"})).size == (256, 256)
    cropped = image_of(township.get(path, {"viewport": "40,20,0,0,80,40"}))
    assert cropped.size == (40, 20)


def test_quality_changes_the_jpeg_size(township, ct_series, samples):
    path = f"{instance_path(samples['CT_small.dcm'])}/rendered"
    small = township.get(path, {"quality": "5"}).content
    large = township.get(path, {"quality": "100"}).content
    assert len(small) < len(large)


@pytest.mark.parametrize(
    "params",
    [
        {"window": "40"},
        {"window": "a,b"},
        {"window": "40,0"},
        {"window": "40,400,cubic"},
        {"viewport": "0,10"},
        {"viewport": "10"},
        {"viewport": "10,10,500,500,10,10"},
        {"quality": "101"},
    ],
)
def test_bad_rendering_parameters_are_a_400(township, ct_series, samples, params):
    response = township.get(f"{instance_path(samples['CT_small.dcm'])}/rendered", params)
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize("name", sorted(TRANSFER_SYNTAX_FILES))
def test_every_transfer_syntax_renders(township, ingest, samples, name):
    (instance,) = ingest(name)
    image = image_of(township.get(f"{instance_path(samples[name])}/rendered"))
    assert image.size == (instance.columns, instance.rows)


def test_palette_colour_renders_in_colour(township, ingest, samples):
    ingest("examples_palette.dcm")
    image = image_of(township.get(f"{instance_path(samples['examples_palette.dcm'])}/rendered"))
    assert image.mode == "RGB"
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 2]).max() > 30  # not grey


def test_ybr_jpeg_renders_as_rgb_and_frames_differ(township, ingest, samples):
    ingest("examples_ybr_color.dcm")
    path = instance_path(samples["examples_ybr_color.dcm"])
    first = image_of(township.get(f"{path}/frames/1/rendered", {"accept": "image/png"}))
    last = image_of(township.get(f"{path}/frames/30/rendered", {"accept": "image/png"}))
    assert first.mode == "RGB"
    assert not np.array_equal(np.asarray(first), np.asarray(last))


def test_monochrome1_is_inverted(township, ingest, samples):
    (instance,) = ingest("MR_small.dcm")
    path = f"{instance_path(samples['MR_small.dcm'])}/rendered"
    normal = np.asarray(image_of(township.get(path, {"accept": "image/png"}))).astype(int)
    instance.metadata["00280004"] = {"vr": "CS", "Value": ["MONOCHROME1"]}
    instance.save(update_fields=["metadata"])
    inverted = np.asarray(image_of(township.get(path, {"accept": "image/png"}))).astype(int)
    assert np.abs(normal + inverted - 255).max() <= 1


def test_a_frame_beyond_the_last_is_a_404(township, ingest, samples):
    ingest("SC_rgb_rle_2frame.dcm")
    path = instance_path(samples["SC_rgb_rle_2frame.dcm"])
    assert image_of(township.get(f"{path}/frames/2/rendered")).size == (100, 100)
    assert township.get(f"{path}/frames/3/rendered").status_code == 404
    assert township.get(f"{path}/frames/1,2/rendered").status_code == 400


def test_an_undecodable_image_is_a_406_with_a_message(township, ingest, samples):
    ingest(UNDECODABLE)
    response = township.get(f"{instance_path(samples[UNDECODABLE])}/rendered")
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_thumbnails_are_small_and_keep_the_aspect_ratio(township, ingest, samples):
    ingest("JPEG2000.dcm")  # 256 wide, 1024 high
    sample = samples["JPEG2000.dcm"]
    image = image_of(township.get(f"{instance_path(sample)}/thumbnail"))
    assert image.size == (32, 128)


def test_a_series_thumbnail_shows_the_middle_instance(township, ct_series, samples):
    ct = samples["CT_small.dcm"]
    series = image_of(township.get(f"/dicomweb/studies/{ct.study}/series/{ct.series}/thumbnail"))
    middle = image_of(township.get(f"{instance_path(samples['CT_small.dcm#2'])}/thumbnail"))
    assert np.array_equal(np.asarray(series), np.asarray(middle))
    assert image_of(township.get(f"/dicomweb/studies/{ct.study}/thumbnail")).size == (128, 128)
    rendered = township.get(f"/dicomweb/studies/{ct.study}/series/{ct.series}/rendered")
    assert image_of(rendered).size == (128, 128)


def test_an_outsider_gets_no_thumbnail(client, actors, ct_series, samples):
    client.force_login(actors.outsider)
    ct = samples["CT_small.dcm"]
    response = client.get(f"/dicomweb/studies/{ct.study}/series/{ct.series}/thumbnail")
    assert response.status_code == 403
