"""Read a ``multipart/related`` body (RFC 2046 §5.1, RFC 2387) part by part, as a stream.

A STOW-RS request can carry a whole CT study (hundreds of megabytes); the reader keeps at
most one chunk plus a boundary's length in memory and writes each part's body straight
into a file the caller gives it.
"""

from __future__ import annotations

import re
from typing import Protocol

CHUNK = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
# RFC 2046 §5.1.1: 1-70 characters from bcharsnospace plus inner spaces.
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: memoryview, /) -> object: ...


class MalformedMultipart(ValueError):
    """The body is not the ``multipart/related`` it claims to be."""


def is_valid_boundary(boundary: str) -> bool:
    return bool(_BOUNDARY.match(boundary))


class MultipartReader:
    """Parts of a multipart body, in order.

    Call :meth:`next_part` for a part's headers, then :meth:`copy_body` for its body;
    a body not copied is skipped by the next :meth:`next_part`.

    Parameters
    ----------
    stream
        The body; only ``read(n)`` is used.
    boundary
        The ``boundary`` parameter of the Content-Type (see :func:`is_valid_boundary`).
    """

    def __init__(self, stream: Readable, boundary: str, *, chunk_size: int = CHUNK) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        # A CRLF in front lets the first boundary line match the delimiter like the others;
        # anything before it is the preamble, skipped as if it were a part's body.
        self._buffer = bytearray(b"\r\n")
        self._in_body = True
        self._done = False

    def _fill(self) -> bool:
        data = self._stream.read(self._chunk_size)
        if not data:
            return False
        self._buffer += data
        return True

    def next_part(self) -> dict[str, str] | None:
        """The next part's headers (names in lower case), or ``None`` after the last part.

        Raises
        ------
        MalformedMultipart
            The body ends early, or a boundary line or header block is malformed.
        """
        if self._done:
            return None
        if self._in_body:
            self.copy_body(None)
        delimiter = len(self._delimiter)
        while len(self._buffer) < delimiter + 2:
            if not self._fill():
                raise MalformedMultipart("the body ends inside a boundary line")
        if self._buffer[delimiter : delimiter + 2] == b"--":
            self._done = True  # the close delimiter; the epilogue is ignored
            return None
        line_end = self._find(b"\r\n", delimiter, limit=delimiter + 1024)
        if self._buffer[delimiter:line_end].strip(b" \t"):
            raise MalformedMultipart("a boundary line has extra characters")
        # Searching from the boundary line's own CRLF finds an empty header block too.
        headers_end = self._find(b"\r\n\r\n", line_end, limit=line_end + MAX_HEADER_BYTES)
        headers = _parse_headers(bytes(self._buffer[line_end + 2 : headers_end]))
        del self._buffer[: headers_end + 4]
        self._in_body = True
        return headers

    def _find(self, needle: bytes, start: int, *, limit: int) -> int:
        while True:
            index = self._buffer.find(needle, start)
            if index >= 0:
                return index
            if len(self._buffer) > limit:
                raise MalformedMultipart("a boundary line or header block is too long")
            start = max(start, len(self._buffer) - len(needle) + 1)
            if not self._fill():
                raise MalformedMultipart("the body ends inside a part's headers")

    def copy_body(self, out: Writable | None, *, limit: int | None = None) -> int:
        """Write the current part's body to ``out`` (``None``: discard); return its size.

        At most ``limit`` bytes are written; the rest is read and dropped, so a size over
        ``limit`` tells the caller the body was cut.

        Raises
        ------
        MalformedMultipart
            The body ends before the next boundary.
        """
        if not self._in_body:
            raise RuntimeError("next_part() first")
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        size = 0
        while True:
            index = self._buffer.find(delimiter)
            end = index if index >= 0 else max(len(self._buffer) - keep, 0)
            if end:
                self._emit(out, end, size, limit)
                size += end
                del self._buffer[:end]
            if index >= 0:
                self._in_body = False
                return size
            if not self._fill():
                raise MalformedMultipart("the body ends inside a part")

    def _emit(self, out: Writable | None, end: int, written: int, limit: int | None) -> None:
        if out is None:
            return
        if limit is not None:
            end = min(end, max(limit - written, 0))
        if end:
            with memoryview(self._buffer) as view:
                out.write(view[:end])


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    for line in block.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise MalformedMultipart("a part header is not 'Name: value'")
        headers[name.lower()] = value.strip()
    return headers
