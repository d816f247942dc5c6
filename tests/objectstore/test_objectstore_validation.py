"""Keys are the store's own: bad prefixes, foreign keys and bad arguments are refused."""

from __future__ import annotations

import io

import pytest

from objectstore import ObjectStore

HEX = "0123456789abcdef" * 2

BAD_PREFIXES = [
    "",
    "/imaging",
    "imaging/",
    "Imaging",
    "imaging//dicom",
    "imaging/../secrets",
    "../imaging",
    "-imaging",
    "imaging dicom",
    "imaging\n",
    "a/b/c/d/e",
    "x" * 41,
    "影像",
]

FOREIGN_KEYS = [
    "",
    "../../etc/passwd",
    f"/imaging/2025/01/{HEX}",
    f"imaging/../../2025/01/{HEX}",
    f"imaging/2025/01/{HEX}/..",
    f"imaging/2025/01/{HEX}\n",
    f"imaging/2025/01/{HEX}.json",
    f"imaging/2025/13/{HEX}",
    f"imaging/25/01/{HEX}",
    f"imaging/2025/01/{HEX.upper()}",
    f"imaging/2025/01/{HEX[:-1]}",
    "imaging/2025/01/.incoming-abc",
    f"imaging\\2025\\01\\{HEX}",
]


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_put_refuses_a_bad_prefix(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        store.put(io.BytesIO(b"x"), prefix=prefix)


@pytest.mark.parametrize("key", FOREIGN_KEYS)
def test_every_method_refuses_a_key_the_store_did_not_generate(
    store: ObjectStore, key: str
) -> None:
    with pytest.raises(ValueError, match="key"):
        store.open(key)
    with pytest.raises(ValueError, match="key"):
        store.stat(key)
    with pytest.raises(ValueError, match="key"):
        store.delete(key)
    with pytest.raises(ValueError, match="key"):
        store.presigned_url(key)


@pytest.mark.parametrize(
    "content_type", ["", "text", "text/html\r\nSet-Cookie: a=b", "a/b/c", "image/png; x"]
)
def test_put_refuses_a_malformed_content_type(
    store: ObjectStore, prefix: str, content_type: str
) -> None:
    with pytest.raises(ValueError, match="content type"):
        store.put(io.BytesIO(b"x"), prefix=prefix, content_type=content_type)


@pytest.mark.parametrize("digest", ["", "abc", "g" * 64, "0" * 63])
def test_put_refuses_a_malformed_expected_sha256(
    store: ObjectStore, prefix: str, digest: str
) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        store.put(io.BytesIO(b"x"), prefix=prefix, expected_sha256=digest)


@pytest.mark.parametrize("seconds", [0, -1, 7 * 24 * 3600 + 1])
def test_presigned_url_refuses_a_lifetime_outside_one_second_to_seven_days(
    store: ObjectStore, seconds: int
) -> None:
    with pytest.raises(ValueError, match="seconds"):
        store.presigned_url(f"imaging/2025/01/{HEX}", seconds=seconds)
