"""Object storage: immutable blobs under server-generated keys, on S3 or a local folder.

Typical use::

    from objectstore import get_store

    stored = get_store().put(upload, prefix="imaging/dicom", content_type="application/dicom")
    # record stored.key, stored.size and stored.sha256 in the database, then later:
    for chunk in get_store().open(stored.key, expected_sha256=stored.sha256):
        ...
    url = get_store().presigned_url(stored.key, filename="CT-head.dcm")

Callers choose a short prefix; keys are generated and validated here, so no
user-supplied text ever becomes an object key.
"""

from objectstore.base import ObjectInfo, ObjectStore, StoredObject
from objectstore.errors import IntegrityMismatch, ObjectNotFound, ObjectStoreError, StoreUnavailable
from objectstore.registry import build_store, get_store

__all__ = [
    "IntegrityMismatch",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "StoreUnavailable",
    "StoredObject",
    "build_store",
    "get_store",
]
