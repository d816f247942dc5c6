"""The exceptions every object-store backend raises, whatever the server underneath."""

from __future__ import annotations


class ObjectStoreError(Exception):
    """Base class: the object store refused or failed an operation."""


class ObjectNotFound(ObjectStoreError):
    """No object is stored under the key (never stored, deleted, or the bucket is missing)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object stored under {key!r}")
        self.key = key


class IntegrityMismatch(ObjectStoreError):
    """The bytes are not the ones expected: SHA-256 digest or declared size differ.

    A ``put`` that raises this keeps nothing; an ``open`` raises it after the last chunk,
    so a consumer must discard what it received.
    """


class StoreUnavailable(ObjectStoreError):
    """The store cannot be reached or used: server down, wrong credentials, disk unwritable."""
