"""WADO-RS: instances, metadata, bulk data and frames in every transfer syntax."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pydicom
import pytest
from pydicom.encaps import get_frame

from audit.models import AuditEvent, Outcome
from imaging.dicomweb.multipart import split_multipart
from objectstore import get_store
from tests.imaging.dicomweb_support import (
    TRANSFER_SYNTAX_FILES,
    UNDECODABLE,
    body_of,
    instance_path,
    parts_of,
)

pytest_plugins = ["tests.imaging.dicomweb_fixtures"]

AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
EVRLE = "1.2.840.10008.1.2.1"


@pytest.fixture
def township(client, actors):
    client.force_login(actors.township)
    return client


def series_path(sample):
    return f"/dicomweb/studies/{sample.study}/series/{sample.series}"


def pixels_of(sample, index):
    """pydicom's decoding of frame ``index`` of the sample (RGB for colour)."""
    ds = pydicom.dcmread(sample.path)
    array = ds.pixel_array
    return array[index] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else array


# --- Instances -------------------------------------------------------------------------------


def test_an_instance_comes_as_a_one_part_multipart_with_the_stored_bytes(
    township, ct_series, samples
):
    ct = samples["CT_small.dcm"]
    response = township.get(instance_path(ct))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith('multipart/related; type="application/dicom"')
    (part,) = parts_of(response)
    assert part.content_type == f"application/dicom; transfer-syntax={EVRLE}"
    assert hashlib.sha256(part.body).hexdigest() == ct_series[0].sha256
    assert pydicom.dcmread(io.BytesIO(part.body)).SOPInstanceUID == ct.sop


def test_a_series_streams_every_instance_in_order(township, ct_series, samples):
    parts = parts_of(township.get(series_path(samples["CT_small.dcm"])))
    numbers = [pydicom.dcmread(io.BytesIO(p.body)).InstanceNumber for p in parts]
    assert numbers == [1, 2, 3]


def test_a_study_streams_every_instance(township, ct_series, samples):
    response = township.get(f"/dicomweb/studies/{samples['CT_small.dcm'].study}")
    assert response.streaming
    assert len(parts_of(response)) == 3


def test_a_bare_application_dicom_accept_gets_the_file(township, ct_series, samples):
    response = township.get(instance_path(samples["CT_small.dcm"]), HTTP_ACCEPT="application/dicom")
    assert response["Content-Type"] == "application/dicom"
    assert body_of(response)[128:132] == b"DICM"


def test_the_stored_transfer_syntax_may_be_asked_for_by_name(township, ingest, samples):
    ingest("SC_rgb_jpeg_dcmtk.dcm")
    sample = samples["SC_rgb_jpeg_dcmtk.dcm"]
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={sample.transfer_syntax}'
    )
    (part,) = parts_of(township.get(instance_path(sample), HTTP_ACCEPT=accept))
    assert f"transfer-syntax={sample.transfer_syntax}" in part.content_type


@pytest.mark.parametrize(
    "name", ["SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "image_dfl.dcm"]
)
def test_explicit_vr_little_endian_is_transcoded_when_asked(township, ingest, samples, name):
    ingest(name)
    sample = samples[name]
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={EVRLE}'
    (part,) = parts_of(township.get(instance_path(sample), HTTP_ACCEPT=accept))
    assert part.content_type == f"application/dicom; transfer-syntax={EVRLE}"
    ds = pydicom.dcmread(io.BytesIO(part.body))
    assert ds.file_meta.TransferSyntaxUID == EVRLE
    assert ds.SOPInstanceUID == sample.sop
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(sample.path).pixel_array)


def test_a_transfer_syntax_we_cannot_produce_is_a_406(township, ct_series, samples):
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    response = township.get(instance_path(samples["CT_small.dcm"]), HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert "1.2.840.10008.1.2.1" in response.json()["detail"]


def test_an_undecodable_instance_is_a_406_when_transcoding_is_asked(township, ingest, samples):
    ingest(UNDECODABLE)
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={EVRLE}'
    response = township.get(instance_path(samples[UNDECODABLE]), HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response.json()["detail"]


# --- Metadata --------------------------------------------------------------------------------


def test_series_metadata_is_dicom_json_with_absolute_path_bulk_data_uris(
    township, ct_series, samples
):
    ct = samples["CT_small.dcm"]
    response = township.get(f"{series_path(ct)}/metadata")
    assert response["Content-Type"] == "application/dicom+json"
    assert response.streaming
    items = json.loads(body_of(response))
    assert [i["00200013"]["Value"][0] for i in items] == [1, 2, 3]
    first = items[0]
    assert first["00083002"]["Value"] == [EVRLE]
    assert first["00280010"]["Value"] == [128]
    uri = first["7FE00010"]["BulkDataURI"]
    assert uri == f"{instance_path(ct)}/bulk/7FE00010"
    private = first["00431029"]["BulkDataURI"]
    assert private.startswith("/dicomweb/studies/")


def test_study_and_instance_metadata(township, ct_series, samples):
    ct = samples["CT_small.dcm"]
    study = json.loads(body_of(township.get(f"/dicomweb/studies/{ct.study}/metadata")))
    assert len(study) == 3
    (one,) = json.loads(body_of(township.get(f"{instance_path(ct)}/metadata")))
    assert one["00080018"]["Value"] == [ct.sop]


def test_metadata_in_xml_is_not_offered(township, ct_series, samples):
    response = township.get(
        f"{instance_path(samples['CT_small.dcm'])}/metadata",
        HTTP_ACCEPT='multipart/related; type="application/dicom+xml"',
    )
    assert response.status_code == 406


def test_a_bulk_data_uri_returns_the_value(township, ct_series, samples):
    ct = samples["CT_small.dcm"]
    (item,) = json.loads(body_of(township.get(f"{instance_path(ct)}/metadata")))
    response = township.get(item["00431029"]["BulkDataURI"])
    assert response["Content-Type"].startswith('multipart/related; type="application/octet-stream"')
    (part,) = parts_of(response)
    assert part.body == pydicom.dcmread(ct.path)[0x00431029].value


def test_the_pixel_data_bulk_uri_returns_the_frames(township, ct_series, samples):
    ct = samples["CT_small.dcm"]
    (part,) = parts_of(township.get(f"{instance_path(ct)}/bulk/7FE00010"))
    assert part.body == pydicom.dcmread(ct.path).PixelData


def test_a_missing_bulk_tag_is_a_404_and_a_malformed_one_a_400(township, ct_series, samples):
    path = instance_path(samples["CT_small.dcm"])
    assert township.get(f"{path}/bulk/00091234").status_code == 404
    assert township.get(f"{path}/bulk/xyz").status_code == 400


# --- Frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRANSFER_SYNTAX_FILES))
def test_frames_as_stored_for_every_transfer_syntax(township, ingest, samples, name):
    ingest(name)
    sample = samples[name]
    response = township.get(f"{instance_path(sample)}/frames/1", HTTP_ACCEPT=AS_STORED)
    assert response.status_code == 200, body_of(response)
    (part,) = parts_of(response)
    ds = pydicom.dcmread(sample.path)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_encapsulated:
        assert part.content_type == f"application/octet-stream; transfer-syntax={syntax}"
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        assert part.body == get_frame(ds.PixelData, 0, number_of_frames=frames)
    else:
        assert part.content_type == f"application/octet-stream; transfer-syntax={EVRLE}"
        expected = pixels_of(sample, 0)
        assert part.body == expected.astype(expected.dtype.newbyteorder("<")).tobytes()


@pytest.mark.parametrize("name", sorted(TRANSFER_SYNTAX_FILES))
def test_frames_decoded_to_explicit_little_endian_for_every_transfer_syntax(
    township, ingest, samples, name
):
    ingest(name)
    sample = samples[name]
    response = township.get(
        f"{instance_path(sample)}/frames/1",
        HTTP_ACCEPT='multipart/related; type="application/octet-stream"',
    )
    assert response.status_code == 200, body_of(response)
    (part,) = parts_of(response)
    assert part.content_type == f"application/octet-stream; transfer-syntax={EVRLE}"
    expected = pixels_of(sample, 0)
    assert part.body == expected.astype(expected.dtype.newbyteorder("<")).tobytes()


def test_without_an_accept_header_frames_come_uncompressed(township, ingest, samples):
    ingest("MR_small_jp2klossless.dcm")
    sample = samples["MR_small_jp2klossless.dcm"]
    (part,) = parts_of(township.get(f"{instance_path(sample)}/frames/1"))
    assert part.body == pixels_of(sample, 0).astype("<i2").tobytes()


def test_several_frames_of_a_multi_frame_instance(township, ingest, samples):
    ingest("SC_rgb_rle_2frame.dcm")
    sample = samples["SC_rgb_rle_2frame.dcm"]
    parts = parts_of(township.get(f"{instance_path(sample)}/frames/2,1", HTTP_ACCEPT=AS_STORED))
    ds = pydicom.dcmread(sample.path)
    assert [p.body for p in parts] == [
        get_frame(ds.PixelData, 1, number_of_frames=2),
        get_frame(ds.PixelData, 0, number_of_frames=2),
    ]


def test_jpeg_frames_may_be_asked_for_as_image_jpeg(township, ingest, samples):
    ingest("examples_ybr_color.dcm")
    sample = samples["examples_ybr_color.dcm"]
    response = township.get(
        f"{instance_path(sample)}/frames/3", HTTP_ACCEPT='multipart/related; type="image/jpeg"'
    )
    (part,) = parts_of(response)
    assert part.content_type == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"
    assert part.body[:2] == b"\xff\xd8"


def test_uncompressed_frames_cannot_be_had_as_jpeg(township, ct_series, samples):
    response = township.get(
        f"{instance_path(samples['CT_small.dcm'])}/frames/1",
        HTTP_ACCEPT='multipart/related; type="image/jpeg"',
    )
    assert response.status_code == 406


@pytest.mark.parametrize(("frames", "status"), [("3", 404), ("0", 400), ("1,x", 400), ("-1", 400)])
def test_a_bad_frame_number_is_refused(township, ingest, samples, frames, status):
    ingest("SC_rgb_rle_2frame.dcm")
    path = f"{instance_path(samples['SC_rgb_rle_2frame.dcm'])}/frames/{frames}"
    response = township.get(path, HTTP_ACCEPT=AS_STORED)
    assert response.status_code == status
    assert response.json()["detail"]


def test_an_undecodable_frame_is_a_406_but_can_still_be_had_as_stored(township, ingest, samples):
    ingest(UNDECODABLE)
    path = f"{instance_path(samples[UNDECODABLE])}/frames/1"
    decoded = township.get(path, HTTP_ACCEPT='multipart/related; type="application/octet-stream"')
    assert decoded.status_code == 406
    assert "1.2.840.10008.1.2.4.51" in decoded.json()["detail"]
    assert township.get(path, HTTP_ACCEPT=AS_STORED).status_code == 200


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/metadata", "/frames/1", "/rendered", "/bulk/7FE00010"])
def test_an_outsider_is_refused_and_it_is_audited(client, actors, ct_series, samples, suffix):
    client.force_login(actors.outsider)
    ct = samples["CT_small.dcm"]
    response = client.get(instance_path(ct) + suffix)
    assert response.status_code == 403
    assert response.json()["detail"]
    assert AuditEvent.objects.filter(
        actor=actors.outsider,
        action="dicomweb.retrieve",
        resource_id=ct.study,
        outcome=Outcome.DENIED,
    ).exists()


def test_a_retrieve_is_audited_as_a_read_of_the_study(township, actors, ct_series, samples):
    ct = samples["CT_small.dcm"]
    township.get(instance_path(ct))
    assert AuditEvent.objects.filter(
        actor=actors.township, action="dicomweb.retrieve", resource_id=ct.study
    ).exists()


def test_an_unknown_instance_is_a_404(township, ct_series, samples):
    ct = samples["CT_small.dcm"]
    response = township.get(f"{series_path(ct)}/instances/1.2.3")
    assert response.status_code == 404


def test_a_malformed_uid_in_the_path_is_a_400(township, ct_series):
    assert township.get("/dicomweb/studies/not-a-uid/metadata").status_code == 400


def test_the_multipart_writer_output_splits_back_into_its_parts():
    from imaging.dicomweb.multipart import MultipartWriter

    writer = MultipartWriter("application/octet-stream", boundary="b0undary")
    body = b"".join(
        [*writer.part("a/b", [b"one\r\n--b0"]), *writer.part("c/d", [b"", b"two"]), writer.close()]
    )
    parts = split_multipart(body, "b0undary")
    assert [(p.content_type, p.body) for p in parts] == [("a/b", b"one\r\n--b0"), ("c/d", b"two")]


def test_stored_objects_are_not_copied_whole_into_memory(township, ct_series, samples, monkeypatch):
    """The study answer pulls the store's chunk generator lazily, part after part."""
    opened = []
    real_open = get_store().open

    def spy(key, **kwargs):
        opened.append(key)
        return real_open(key, **kwargs)

    monkeypatch.setattr(get_store(), "open", spy)
    response = township.get(f"/dicomweb/studies/{samples['CT_small.dcm'].study}")
    assert opened == []  # nothing read before the body is consumed
    stream = iter(response.streaming_content)
    next(stream)
    assert len(opened) == 1
    list(stream)
    assert len(opened) == 3
