"""Export a study de-identified (PS3.15 basic profile) as a zip, streamed one instance at a time.

For teaching files and second opinions outside the association: nothing identifying
leaves, UIDs are replaced consistently across the study, and the export is audited.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any, cast

from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record
from imaging.dicom.deid import DeidOptions, UidMap, deidentify_file
from imaging.models import Instance, Study
from imaging.selectors import study_get_for_user
from objectstore import get_store


class _Sink:
    """A write-only stream that hands out what was written so far (zip to HTTP)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


def study_export_for_user(*, actor: User, study_uid: str) -> tuple[Study, Iterator[bytes]]:
    """Check access, audit, and return the study with a generator of zip bytes."""
    study = study_get_for_user(actor=actor, study_uid=study_uid, action="study.export")
    audit_record(
        actor=actor,
        action="study.export",
        outcome=Outcome.ALLOWED,
        resource_type="study",
        resource_id=study.study_uid,
        patient_id=study.patient_id,
        detail={"profile": "PS3.15 basic", "instances": study.num_instances},
    )
    return study, _zip_stream(study)


def _zip_stream(study: Study) -> Iterator[bytes]:
    store = get_store()
    uid_map = UidMap()
    options = DeidOptions()
    sink = _Sink()
    instances = (
        Instance.objects.filter(series__study=study)
        .select_related("series")
        .order_by("series__series_number", "series_id", "instance_number", "id")
    )
    # ZipFile writes data descriptors to a stream it cannot seek: nothing is held back.
    with zipfile.ZipFile(cast(IO[bytes], sink), "w", compression=zipfile.ZIP_STORED) as archive:
        for n, instance in enumerate(instances.iterator(), start=1):
            with tempfile.TemporaryFile() as original, tempfile.TemporaryFile() as clean:
                for chunk in store.open(instance.object_key, expected_sha256=instance.sha256):
                    original.write(chunk)
                original.seek(0)
                deidentify_file(original, clean, uid_map=uid_map, options=options)
                clean.seek(0)
                series = instance.series.series_number or 0
                with archive.open(f"series-{series:03d}/image-{n:05d}.dcm", "w") as entry:
                    while block := clean.read(1024 * 1024):
                        entry.write(block)
            yield sink.take()
    yield sink.take()
