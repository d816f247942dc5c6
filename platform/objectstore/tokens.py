"""Signed download tokens: the local backend's equivalent of S3 presigned URLs.

A token carries the key, the optional download file name and its own lifetime, signed
with the project's ``SECRET_KEY`` and a timestamp. The lifetime is read only after the
signature has been checked, then enforced with the signer's own ``max_age``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

from objectstore.keys import validate_key

_SALT = "objectstore"


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    """What a valid token allows: download ``key``, optionally as ``filename``."""

    key: str
    filename: str | None


def sign_download(key: str, *, seconds: int, filename: str | None) -> str:
    """Return a URL-safe token that grants downloading ``key`` for ``seconds``."""
    payload = {"k": key, "f": filename, "s": seconds}
    return signing.TimestampSigner(salt=_SALT).sign_object(payload)


def unsign_download(token: str) -> DownloadGrant:
    """Verify a token and return what it grants.

    Raises
    ------
    django.core.signing.SignatureExpired
        The token is genuine but older than the lifetime it was issued with.
    django.core.signing.BadSignature
        The token was not issued by this platform, was altered, or is malformed.
    """
    signer = signing.TimestampSigner(salt=_SALT)
    payload = signer.unsign_object(token)
    if not isinstance(payload, dict):
        raise signing.BadSignature("malformed download token")
    key, filename, seconds = payload.get("k"), payload.get("f"), payload.get("s")
    if not isinstance(seconds, int) or not isinstance(key, str):
        raise signing.BadSignature("malformed download token")
    if filename is not None and not isinstance(filename, str):
        raise signing.BadSignature("malformed download token")
    try:
        validate_key(key)
    except ValueError as exc:
        raise signing.BadSignature("malformed download token") from exc
    signer.unsign_object(token, max_age=seconds)
    return DownloadGrant(key=key, filename=filename)
