"""Round trips with dicomweb-client (requests over real HTTP) against a live server."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from PIL import Image

from tests.conftest import PASSWORD

pytest_plugins = ["tests.imaging.dicomweb_fixtures"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dicomweb(live_server, ingest):
    ingest("CT_small.dcm", "CT_small.dcm#2", "SC_rgb_jpeg_dcmtk.dcm")
    session = create_session_from_user_pass("township", PASSWORD)
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session)


def test_dicomweb_client_round_trips(dicomweb, samples):
    ct = samples["CT_small.dcm"]

    found = dicomweb.search_for_studies(search_filters={"PatientID": "DW-CT-1"})
    assert [s["0020000D"]["Value"][0] for s in found] == [ct.study]
    everything = dicomweb.search_for_studies(limit=1, get_remaining=True)
    assert len(everything) == 2
    series = dicomweb.search_for_series(ct.study)
    assert series[0]["0020000E"]["Value"] == [ct.series]
    instances = dicomweb.search_for_instances(ct.study, ct.series, fields=["Rows"])
    assert len(instances) == 2

    metadata = dicomweb.retrieve_study_metadata(ct.study)
    assert {m["00080018"]["Value"][0] for m in metadata} == {ct.sop, samples["CT_small.dcm#2"].sop}

    instance = dicomweb.retrieve_instance(ct.study, ct.series, ct.sop)
    assert instance.SOPInstanceUID == ct.sop
    assert np.array_equal(instance.pixel_array, pydicom.dcmread(ct.path).pixel_array)

    (frame,) = dicomweb.retrieve_instance_frames(ct.study, ct.series, ct.sop, frame_numbers=[1])
    assert frame == pydicom.dcmread(ct.path).PixelData

    jpeg = dicomweb.retrieve_instance_rendered(ct.study, ct.series, ct.sop)
    assert Image.open(io.BytesIO(jpeg)).size == (128, 128)

    study = list(dicomweb.retrieve_study(ct.study))
    assert len(study) == 2


def test_dicomweb_client_gets_compressed_frames_as_stored(dicomweb, samples):
    sample = samples["SC_rgb_jpeg_dcmtk.dcm"]
    (frame,) = dicomweb.retrieve_instance_frames(
        sample.study,
        sample.series,
        sample.sop,
        frame_numbers=[1],
        media_types=(("application/octet-stream", "*"),),
    )
    assert frame[:2] == b"\xff\xd8"  # the JPEG as stored
    (decoded,) = dicomweb.retrieve_instance_frames(
        sample.study,
        sample.series,
        sample.sop,
        frame_numbers=[1],
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    assert len(decoded) == 100 * 100 * 3


def test_a_wrong_password_is_refused(live_server, ingest):
    session = create_session_from_user_pass("township", "wrong")
    client = DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session)
    with pytest.raises(Exception, match="401"):
        client.search_for_studies()
