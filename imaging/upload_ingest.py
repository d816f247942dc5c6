"""Turn a fully received upload into indexed instances: verify, unpack, ingest, report.

Runs in a background task (``imaging.uploads.upload_ingest_task``). The upload's
``outcome`` is the progress report the page polls: a dict with ``state``, ``total``,
``processed``, per-status ``counts``, a per-study summary and one entry per file. An
interrupted run (the worker died, the object store went away) resumes after the files
already reported, so nothing is ingested twice by the platform's own retries.

Zip archives are hostile until proven otherwise: the member count, the total
uncompressed size and each member's compression ratio are capped before a byte is
inflated, and members are extracted one at a time, streaming, into a temporary file
next to the upload.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.db import DatabaseError
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from imaging.dicom.validate import DEFAULT_LIMITS, Rejected
from imaging.ingest import Conflict, Origin, instance_ingest
from imaging.models import Upload
from objectstore import ObjectStoreError

logger = logging.getLogger(__name__)

READ_BYTES = 1024 * 1024
ZIP_MAX_MEMBERS = 10_000
ZIP_MAX_TOTAL_BYTES = 8 * 1024**3
# DICOM compresses a few times at most (air around a CT, a mammogram's background);
# a deflate bomb compresses a thousand times.
ZIP_MAX_RATIO = 100
ZIP_RATIO_FLOOR_BYTES = 1024 * 1024
PROGRESS_EVERY_SECONDS = 1.0
PROGRESS_FILES_PER_SECOND = 500  # 5,000 files reported: progress written every 10 s
# The page shows these; the full list is in ``files``.
PROBLEM_STATUSES = frozenset({"rejected", "conflict", "error"})
IGNORED_NAMES = frozenset({"DICOMDIR", "THUMBS.DB", "DESKTOP.INI"})


class UploadFailed(Exception):
    """The upload as a whole is refused (checksum, zip bomb); nothing was ingested."""

    def __init__(self, code: str, message: str | Promise) -> None:
        super().__init__(message)
        self.code = code
        self.message = str(message)


class Interrupted(Exception):
    """Infrastructure failed mid-way (database, object store, disk): retry later."""


@dataclass(frozen=True)
class Member:
    name: str
    info: zipfile.ZipInfo | None  # None: the upload itself is one file


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(READ_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def looks_like_zip(path: Path) -> bool:
    """A zip archive, not a DICOM file that happens to hold ``PK`` bytes near its end."""
    with path.open("rb") as f:
        head = f.read(132)
    if head[128:132] == b"DICM":
        return False
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06") and zipfile.is_zipfile(path)


def _ignored(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts:
        return True
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return True
    return parts[-1].upper() in IGNORED_NAMES


def zip_members(archive: zipfile.ZipFile, *, archive_size: int) -> list[Member]:
    """The members worth ingesting, after the bomb guards; raises :class:`UploadFailed`."""
    infos = [i for i in archive.infolist() if not i.is_dir() and not _ignored(i.filename)]
    if len(infos) > ZIP_MAX_MEMBERS:
        raise UploadFailed(
            "too_many_files",
            _("The archive holds more than %(limit)d files; split it into smaller ones.")
            % {"limit": ZIP_MAX_MEMBERS},
        )
    total = sum(i.file_size for i in infos)
    if total > ZIP_MAX_TOTAL_BYTES or total > archive_size * ZIP_MAX_RATIO:
        raise UploadFailed(
            "zip_bomb", _("The archive unpacks to far more data than allowed; it was refused.")
        )
    for info in infos:
        if (
            info.file_size > ZIP_RATIO_FLOOR_BYTES
            and info.file_size > max(info.compress_size, 1) * ZIP_MAX_RATIO
        ):
            raise UploadFailed(
                "zip_bomb",
                _("A file in the archive is packed suspiciously tightly; the archive was refused."),
            )
    return [Member(name=i.filename[:255], info=i) for i in infos]


@contextmanager
def extracted(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, folder: Path
) -> Iterator[BinaryIO]:
    """One member, streamed into a temporary file; raises :class:`Rejected` if unreadable."""
    if info.flag_bits & 0x1:
        raise Rejected("encrypted", _("This file is encrypted in the archive."))
    if info.file_size > DEFAULT_LIMITS.max_file_bytes:
        raise Rejected("too_large", _("The file is larger than the size limit."))
    if shutil.disk_usage(folder).free < info.file_size + 256 * 1024**2:
        raise Interrupted("not enough disk space to unpack")
    with tempfile.TemporaryFile(dir=folder, prefix="member-") as tmp:
        try:
            with archive.open(info) as source:
                copied = 0
                while chunk := source.read(READ_BYTES):
                    copied += len(chunk)
                    if copied > info.file_size:  # zipfile stops at file_size; belt and braces
                        raise Rejected("too_large", _("The file is larger than it claims."))
                    tmp.write(chunk)
        except Rejected:
            raise
        except NotImplementedError:
            raise Rejected(
                "unsupported_zip",
                _("This file is packed with a method we cannot unpack; use a plain zip."),
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError):
            raise Rejected("corrupt", _("This file is damaged in the archive.")) from None
        tmp.seek(0)
        yield tmp


class Progress:
    """The outcome dict, written to the database at most about once a second."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        previous = upload.outcome if isinstance(upload.outcome, dict) else {}
        self.data: dict[str, Any] = {
            "state": "verifying",
            "total": previous.get("total"),
            "processed": int(previous.get("processed", 0)),
            "skipped": int(previous.get("skipped", 0)),
            "counts": dict.fromkeys(("stored", "duplicate", "rejected", "conflict", "error"), 0)
            | dict(previous.get("counts", {})),
            "studies": dict(previous.get("studies", {})),
            "files": list(previous.get("files", [])),
        }
        self._flushed = 0.0

    @property
    def done_files(self) -> int:
        return len(self.data["files"])

    def set(self, **values: Any) -> None:
        self.data.update(values)

    def record(self, entry: dict[str, Any], study: dict[str, str] | None = None) -> None:
        self.data["files"].append(entry)
        self.data["counts"][entry["status"]] += 1
        self.data["processed"] = len(self.data["files"])
        uid = entry.get("study_uid")
        if uid and study is not None:
            summary = self.data["studies"].setdefault(
                uid,
                {
                    "date": study.get("date", ""),
                    "description": study.get("description", ""),
                    "modalities": [],
                    "stored": 0,
                    "duplicate": 0,
                },
            )
            if entry["status"] in ("stored", "duplicate"):
                summary[entry["status"]] += 1
            modality = study.get("modality", "")
            if modality and modality not in summary["modalities"]:
                summary["modalities"].append(modality)
        self.flush()

    def flush(self, *, force: bool = False, status: str | None = None) -> None:
        now = time.monotonic()
        # The whole list is rewritten each time: write a long one less often.
        every = max(PROGRESS_EVERY_SECONDS, len(self.data["files"]) / PROGRESS_FILES_PER_SECOND)
        if not force and now - self._flushed < every:
            return
        self._flushed = now
        fields: dict[str, Any] = {"outcome": self.data, "updated_at": timezone.now()}
        if status is not None:
            fields["status"] = status
        Upload.objects.filter(pk=self.upload.pk).update(**fields)


def _entry(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "code": extra.get("code", ""),
        "reason": str(extra.get("reason", "")),
        "study_uid": extra.get("study_uid", ""),
        "sop_uid": extra.get("sop_uid", ""),
    }


def ingest_one(fileobj: BinaryIO, *, name: str, origin: Origin, progress: Progress) -> None:
    """Ingest one file and record what happened to it."""
    try:
        result = instance_ingest(fileobj, origin=origin)
    except Rejected as exc:
        progress.record(_entry(name, "rejected", code=exc.code, reason=exc.message))
        return
    except Conflict as exc:
        progress.record(_entry(name, "conflict", code=exc.code, reason=exc.message))
        return
    except (ObjectStoreError, DatabaseError, OSError) as exc:
        raise Interrupted(str(exc)) from exc
    except Exception:
        # A bug on our side for this one file; the others still deserve a chance.
        logger.exception("upload %s: ingest of %r failed", progress.upload.pk, name)
        progress.record(
            _entry(
                name,
                "error",
                code="internal_error",
                reason=_("This file could not be processed because of an error on our side."),
            )
        )
        return
    instance = result.instance
    study = instance.series.study
    progress.record(
        _entry(name, str(result.status), study_uid=study.study_uid, sop_uid=instance.sop_uid),
        study={
            "date": study.study_date,
            "description": study.study_description,
            "modality": instance.series.modality,
        },
    )


def ingest_file(path: Path, *, upload: Upload, origin: Origin, progress: Progress) -> None:
    """Verify ``path`` against the upload's checksum, then ingest it or its members."""
    if not path.exists():
        raise UploadFailed(
            "missing", _("The uploaded bytes are no longer on the server; upload the file again.")
        )
    if path.stat().st_size != upload.size or sha256_of(path) != upload.sha256:
        raise UploadFailed(
            "checksum_mismatch",
            _(
                "The file that arrived differs from the one sent (checksum mismatch);"
                " nothing was kept. Upload it again."
            ),
        )
    if not looks_like_zip(path):
        progress.set(state="ingesting", total=1)
        progress.flush(force=True)
        if progress.done_files == 0:
            with path.open("rb") as f:
                ingest_one(f, name=upload.filename, origin=origin, progress=progress)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UploadFailed("corrupt", _("The archive is damaged and cannot be opened.")) from None
    with archive:
        members = zip_members(archive, archive_size=upload.size)
        skipped = sum(1 for i in archive.infolist() if not i.is_dir()) - len(members)
        progress.set(state="ingesting", total=len(members), skipped=skipped)
        progress.flush(force=True)
        folder = path.parent
        # Resume after the files an interrupted run already reported.
        for member in members[progress.done_files :]:
            assert member.info is not None
            try:
                with extracted(archive, member.info, folder=folder) as f:
                    ingest_one(f, name=member.name, origin=origin, progress=progress)
            except Rejected as exc:
                progress.record(_entry(member.name, "rejected", code=exc.code, reason=exc.message))


def remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
