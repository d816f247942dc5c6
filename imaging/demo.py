"""Demo images for `telemed demo`: a synthetic head CT waiting on the county worklist.

The pixels are a generated phantom (ellipses with CT numbers of scalp, bone, brain,
ventricles and a small bleed), not a real patient's scan. Only ``telemed demo`` seeds
them; the test suite makes its own images where it needs them.
"""

from __future__ import annotations

import datetime as dt
import io
import logging

import numpy as np
from django.utils import timezone
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from accounts.models import User
from association.models import DiagnosticCentre, Institution
from imaging.ingest import Origin, instance_ingest
from imaging.models import ImagingRequest, Priority
from imaging.services import imaging_request_create
from records.models import Patient

logger = logging.getLogger(__name__)


def _phantom(size: int, z: float) -> np.ndarray:
    """A head-like slice in Hounsfield units at height ``z`` in [-1, 1]."""
    axis = np.linspace(-1.0, 1.0, size)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    shrink = max(0.05, 1 - z * z)
    image = np.full((size, size), -1000.0)

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((x - cx) / (rx * shrink)) ** 2 + ((y - cy) / (ry * shrink)) ** 2 <= 1

    image[ellipse(0, 0, 0.78, 0.92)] = 40  # scalp
    image[ellipse(0, 0, 0.74, 0.88)] = 1200  # skull
    image[ellipse(0, 0, 0.68, 0.82)] = 35  # brain
    image[ellipse(-0.12, -0.05, 0.06, 0.22) | ellipse(0.12, -0.05, 0.06, 0.22)] = 8  # ventricles
    if abs(z - 0.2) < 0.25:
        image[ellipse(0.35, 0.25, 0.1, 0.08)] = 70  # a small acute bleed
    noise = np.random.default_rng(int((z + 1) * 1000)).normal(0, 4, image.shape)
    return image + noise


def _slices(
    *,
    patient: Patient,
    accession: str,
    description: str,
    study_date: dt.date,
    count: int = 24,
    size: int = 256,
) -> list[bytes]:
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    files = []
    for n in range(count):
        z = -0.9 + 1.8 * n / max(1, count - 1)
        hu = _phantom(size, z)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName = patient.name
        ds.PatientID = patient.resident_id
        ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
        ds.PatientSex = patient.sex
        ds.StudyDate = ds.SeriesDate = study_date.strftime("%Y%m%d")
        ds.StudyTime = "093000"
        ds.AccessionNumber = accession
        ds.StudyID = "1"
        ds.StudyDescription = description
        ds.SeriesDescription = "Head 5mm"
        ds.Modality = "CT"
        ds.BodyPartExamined = "HEAD"
        ds.SeriesNumber = 1
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [-125.0, -125.0, float(n * 5)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceThickness = 5.0
        ds.PixelSpacing = [250.0 / size, 250.0 / size]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 80
        ds.PixelData = (hu + 1024).clip(-32768, 32767).astype("<i2").tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def demo_seed_imaging() -> bool:
    """Seed an urgent head CT for the county worklist and a prior; ``False`` if already there."""
    if ImagingRequest.objects.exists():
        return False
    township = User.objects.get(username="township")
    xiba = Institution.objects.get(code="xiba")
    centre = DiagnosticCentre.objects.get(code="qingshan-imaging")
    patient = Patient.objects.get(name="刘桂兰", home_institution=xiba)
    request = imaging_request_create(
        actor=township,
        patient_id=patient.pk,
        centre=centre,
        modality="CT",
        exam="头颅CT平扫",
        clinical_question="头痛3天，伴恶心呕吐，既往高血压。排除颅内出血。",
        priority=Priority.URGENT,
        record_consent=True,
    )
    today = timezone.localdate()
    for content in _slices(
        patient=patient,
        accession=request.accession_number,
        description="头颅CT平扫",
        study_date=today,
    ):
        instance_ingest(
            io.BytesIO(content),
            origin=Origin(institution=xiba, channel="upload", user=township, request=request),
        )
    # A prior study from last year, sent without a request: matched by resident ID.
    for content in _slices(
        patient=patient,
        accession="",
        description="头颅CT平扫（既往）",
        study_date=today - dt.timedelta(days=365),
        count=12,
    ):
        instance_ingest(
            io.BytesIO(content), origin=Origin(institution=xiba, channel="upload", user=township)
        )
    return True
