"""``multipart/related`` bodies (RFC 2387) and the ``Accept`` header, as DICOMweb uses them.

DICOMweb clients ask for parts by media type and transfer syntax, e.g. OHIF's
``multipart/related; type="application/octet-stream"; transfer-syntax=*``. The writer
yields bytes part by part so an answer can stream from the object store.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

_PARAM_RE = re.compile(r"""\s*([^\s=;,]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,]*)""")
_SPLIT_RE = re.compile(r"""((?:"(?:[^"\\]|\\.)*"|[^,"])+)""")


@dataclass(frozen=True)
class MediaRange:
    """One entry of an ``Accept`` header: ``type/subtype`` with lower-cased parameters.

    Attributes
    ----------
    media_type
        ``type/subtype`` in lower case, possibly with wildcards (``image/*``, ``*/*``).
    params
        Parameters other than ``q``, names lower-cased, quotes removed.
    q
        The quality value, 0 to 1.
    """

    media_type: str
    params: Mapping[str, str] = field(default_factory=dict)
    q: float = 1.0

    def param(self, name: str) -> str | None:
        return self.params.get(name)

    def matches(self, offered: str) -> bool:
        """Whether this range accepts the concrete media type ``offered``."""
        if self.media_type in ("*/*", "*"):
            return True
        main, _sep, sub = self.media_type.partition("/")
        offered_main, _sep, offered_sub = offered.lower().partition("/")
        return main == offered_main and sub in ("*", "", offered_sub)

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/related"

    @property
    def part_type(self) -> str | None:
        """For ``multipart/related``: the ``type`` parameter (lower case), if any."""
        value = self.params.get("type")
        return value.lower() if value else None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_media_range(text: str) -> MediaRange | None:
    """Parse one media range; ``None`` if it is not ``type/subtype[; params]``."""
    head, _sep, rest = text.strip().partition(";")
    media_type = head.strip().lower()
    if media_type == "*":
        media_type = "*/*"
    if "/" not in media_type or " " in media_type:
        return None
    params: dict[str, str] = {}
    q = 1.0
    for match in _PARAM_RE.finditer(rest):
        name, value = match.group(1).lower(), _unquote(match.group(2))
        if name == "q":
            try:
                q = max(0.0, min(1.0, float(value)))
            except ValueError:
                q = 1.0
        else:
            params[name] = value
    return MediaRange(media_type=media_type, params=params, q=q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """The acceptable ranges, best first (by ``q``, then order); absent means ``*/*``.

    Commas inside quoted parameter values (``type="a,b"``) do not split ranges; ranges
    with ``q=0`` are dropped.
    """
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = [
        r
        for piece in _SPLIT_RE.findall(header)
        if (r := parse_media_range(piece)) is not None and r.q > 0
    ]
    return sorted(ranges, key=lambda r: -r.q)


def new_boundary() -> str:
    return f"telemed-{uuid.uuid4().hex}"


def multipart_content_type(part_type: str, boundary: str, **params: str) -> str:
    """``multipart/related; type="<part_type>"; boundary=<boundary>`` (plus ``params``)."""
    extra = "".join(f"; {name.replace('_', '-')}={value}" for name, value in params.items())
    return f'multipart/related; type="{part_type}"{extra}; boundary={boundary}'


class MultipartWriter:
    """Write a ``multipart/related`` body part by part.

    Parameters
    ----------
    part_type
        The root media type, for the ``type`` parameter of the whole body.
    boundary
        A boundary string; a random one when not given.
    """

    def __init__(self, part_type: str, boundary: str | None = None) -> None:
        self.part_type = part_type
        self.boundary = boundary or new_boundary()
        self._delimiter = f"--{self.boundary}\r\n".encode()

    @property
    def content_type(self) -> str:
        return multipart_content_type(self.part_type, self.boundary)

    def head(self, content_type: str, *, location: str | None = None) -> bytes:
        """The delimiter and headers that open a part."""
        lines = [f"Content-Type: {content_type}"]
        if location:
            lines.append(f"Content-Location: {location}")
        return self._delimiter + ("\r\n".join(lines) + "\r\n\r\n").encode()

    def part(
        self, content_type: str, body: Iterable[bytes], *, location: str | None = None
    ) -> Iterator[bytes]:
        """One part: its head, its body chunks, and the line break before the next."""
        yield self.head(content_type, location=location)
        yield from body
        yield b"\r\n"

    def close(self) -> bytes:
        """The closing delimiter."""
        return f"--{self.boundary}--\r\n".encode()


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` parameter of a ``multipart/*`` content type."""
    parsed = parse_media_range(content_type)
    return parsed.param("boundary") if parsed is not None else None


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """Split a whole ``multipart/related`` body into parts (for small bodies and tests).

    Raises
    ------
    ValueError
        No opening delimiter, or a part without a blank line after its headers.
    """
    delimiter = b"--" + boundary.encode()
    start = body.find(delimiter)
    if start < 0:
        raise ValueError("no multipart delimiter found")
    parts: list[Part] = []
    for chunk in body[start + len(delimiter) :].split(b"\r\n" + delimiter):
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        if chunk.startswith(b"\r\n"):  # a part without headers
            head, content = b"", chunk[2:]
        else:
            head, sep, content = chunk.partition(b"\r\n\r\n")
            if not sep:
                raise ValueError("a part has no header/body separator")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _sep, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers=headers, body=content))
    return parts
