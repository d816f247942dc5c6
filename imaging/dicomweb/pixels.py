"""Pixel data of one stored instance: frames as stored, and frames decoded to numpy.

Two ways in. The common case (an uncompressed or encapsulated little-endian file, as
most CT, MR and CR are) needs no DICOM parser at all: the attributes come from the
indexed DICOM JSON (``Instance.metadata``) and the Pixel Data element is found by its
exact header (tag, VR and the length Rows × Columns × ... implies) at the end of the
file. Everything else (big endian, deflated, 1-bit, palette or LUT data held as bulk,
extended offset tables) is parsed with pydicom, whose pixel handlers (pylibjpeg,
openjpeg, libjpeg, RLE, GDCM) decode it.

Files up to ``IN_MEMORY_BYTES`` are read whole; larger ones are memory-mapped (local
store) or spooled to a temporary file (S3), so a frame of a huge multi-frame instance
does not load the instance into memory.
"""

from __future__ import annotations

import io
import logging
import mmap
import struct
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pydicom
from django.utils.translation import gettext as _
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder, pack_bits
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from imaging.models import Instance
from objectstore import get_store
from objectstore.local import LocalStore

logger = logging.getLogger(__name__)

IN_MEMORY_BYTES = 64 * 1024 * 1024
NATIVE_LE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
NATIVE = NATIVE_LE | {DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian}
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
_UNDEFINED = b"\xff\xff\xff\xff"


class PixelError(Exception):
    """Pixels cannot be given as asked; ``status`` is the HTTP answer, message for a person."""

    status = 406

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Undecodable(PixelError):
    status = 406


class NoFrame(PixelError):
    status = 404


# --- Attributes ----------------------------------------------------------------------------


def json_value(meta: dict[str, Any], tag: str, default: Any = None) -> Any:
    """The first value of ``tag`` in DICOM JSON, or ``default``."""
    element = meta.get(tag)
    if not isinstance(element, dict):
        return default
    values = element.get("Value")
    return values[0] if isinstance(values, list) and values else default


def json_values(meta: dict[str, Any], tag: str) -> list[Any]:
    element = meta.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class PixelInfo:
    """The Image Pixel attributes that shape a frame."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int
    frames: int

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> PixelInfo:
        bits_allocated = int(_number(json_value(meta, "00280100"), 0))
        return cls(
            rows=int(_number(json_value(meta, "00280010"), 0)),
            columns=int(_number(json_value(meta, "00280011"), 0)),
            samples=int(_number(json_value(meta, "00280002"), 1)),
            bits_allocated=bits_allocated,
            bits_stored=int(_number(json_value(meta, "00280101"), bits_allocated)),
            signed=int(_number(json_value(meta, "00280103"), 0)) == 1,
            photometric=str(json_value(meta, "00280004", "MONOCHROME2")).strip().upper(),
            planar=int(_number(json_value(meta, "00280006"), 0)),
            frames=max(1, int(_number(json_value(meta, "00280008"), 1))),
        )

    @property
    def frame_length(self) -> int:
        """Bytes per uncompressed frame (bit-packed for 1-bit data)."""
        pixels = self.rows * self.columns * self.samples
        if self.bits_allocated == 1:
            return (pixels + 7) // 8
        return pixels * (self.bits_allocated // 8)

    @property
    def dtype(self) -> np.dtype[Any]:
        kind = "i" if self.signed and self.samples == 1 else "u"
        return np.dtype(f"<{kind}{self.bits_allocated // 8}")


# --- Reading -------------------------------------------------------------------------------


def _read(instance: Instance) -> tuple[bytes | mmap.mmap, BinaryIO | None]:
    """The stored file as bytes (small) or a memory map over a file (large)."""
    store = get_store()
    handle: BinaryIO
    if isinstance(store, LocalStore):
        # The file the store wrote and verified (SHA-256) when the instance arrived: read
        # straight from disk, without hashing it again for every frame a viewer asks for.
        handle, _info = store.open_file(instance.object_key)
        if instance.size <= IN_MEMORY_BYTES:
            with handle:
                return handle.read(), None
    elif instance.size <= IN_MEMORY_BYTES:
        return b"".join(store.open(instance.object_key, expected_sha256=instance.sha256)), None
    else:
        handle = tempfile.TemporaryFile()  # noqa: SIM115 - closed by InstancePixels.close
        for chunk in store.open(instance.object_key, expected_sha256=instance.sha256):
            handle.write(chunk)
        handle.flush()
    return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), handle


class InstancePixels:
    """Frames of one stored instance; use as a context manager.

    Parameters
    ----------
    instance
        An instance already fetched through the access selectors.
    """

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.meta: dict[str, Any] = instance.metadata or {}
        self.transfer_syntax = UID(instance.transfer_syntax_uid)
        self.info = PixelInfo.from_json(self.meta)
        self._data: bytes | mmap.mmap | None = None
        self._handle: BinaryIO | None = None
        self._dataset: Dataset | None = None
        self._pixel_offset: int | None = None  # start of the Pixel Data value (fast path)

    def __enter__(self) -> InstancePixels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        if self._handle is not None:
            self._handle.close()
        self._data = self._handle = None

    @property
    def has_pixels(self) -> bool:
        return "7FE00010" in self.meta and self.info.rows > 0 and self.info.columns > 0

    @property
    def data(self) -> bytes | mmap.mmap:
        if self._data is None:
            self._data, self._handle = _read(self.instance)
        return self._data

    @property
    def dataset(self) -> Dataset:
        """The whole data set, parsed by pydicom (the slow path)."""
        if self._dataset is None:
            source: Any = self.data
            if isinstance(source, bytes):
                source = io.BytesIO(source)
            else:
                source.seek(0)
            defer = None if isinstance(self.data, bytes) else 1024 * 1024
            try:
                self._dataset = pydicom.dcmread(source, defer_size=defer)
            except Exception as exc:
                logger.warning("cannot parse %s: %s", self.instance.sop_uid, exc)
                raise Undecodable(_("The stored file cannot be read.")) from exc
        return self._dataset

    def check_frame(self, number: int) -> int:
        """The 0-based index of 1-based frame ``number``, or :class:`NoFrame`."""
        if not self.has_pixels:
            raise Undecodable(_("This instance has no pixel data."))
        if not 1 <= number <= self.info.frames:
            raise NoFrame(
                _("Frame %(number)d does not exist; the instance has %(count)d.")
                % {"number": number, "count": self.info.frames}
            )
        return number - 1

    # --- The fast path: find Pixel Data by its header -------------------------------------

    def _fast_offset(self) -> int | None:
        """Where the Pixel Data value starts, if found without parsing; else ``None``."""
        if self._pixel_offset is not None:
            return self._pixel_offset
        if "7FE00001" in self.meta or "7FE00002" in self.meta:
            return None  # extended offset table: let pydicom read it
        ts = self.transfer_syntax
        info = self.info
        data = self.data
        if ts.is_encapsulated and ts.is_little_endian and not ts.is_implicit_VR:
            signature = _PIXEL_TAG + b"OB\x00\x00" + _UNDEFINED
            position, header = data.rfind(signature), len(signature)
        elif ts in NATIVE_LE and info.bits_allocated in (8, 16, 32) and info.rows:
            length = info.frame_length * info.frames
            padded = struct.pack("<I", length + (length & 1))
            # The header must end before the value does: a match inside the pixels is
            # impossible unless more than a header's length of data follows them.
            end = max(0, len(data) - length)
            if ts == ImplicitVRLittleEndian:
                position, header = data.rfind(_PIXEL_TAG + padded, 0, end), 8
            else:
                position = max(
                    data.rfind(_PIXEL_TAG + vr + b"\x00\x00" + padded, 0, end)
                    for vr in (b"OW", b"OB")
                )
                header = 12
        else:
            return None
        if position < 0:
            return None
        self._pixel_offset = position + header
        return self._pixel_offset

    # --- Frames as stored -----------------------------------------------------------------

    def stored_frame(self, index: int) -> tuple[bytes, UID]:
        """Frame ``index`` (0-based) as stored: encapsulated bytes, or native little endian.

        Returns
        -------
        tuple[bytes, UID]
            The frame and its transfer syntax (Explicit VR Little Endian for native data,
            whatever the file's native syntax was).
        """
        ts = self.transfer_syntax
        info = self.info
        offset = self._fast_offset()
        try:
            if ts.is_encapsulated:
                if offset is not None:
                    buffer: Any = (
                        io.BytesIO(self.data) if isinstance(self.data, bytes) else self.data
                    )
                    buffer.seek(offset)
                    return get_frame(buffer, index, number_of_frames=info.frames), ts
                return self._dataset_frame(index), ts
            if offset is not None:
                start = offset + index * info.frame_length
                return bytes(self.data[start : start + info.frame_length]), ExplicitVRLittleEndian
        except (ValueError, EOFError) as exc:
            logger.warning("cannot extract frame of %s: %s", self.instance.sop_uid, exc)
            raise Undecodable(_("The frame cannot be extracted from the stored file.")) from exc
        array, _photometric = self._decode(index, as_rgb=False)
        if info.bits_allocated == 1:
            return pack_bits(array), ExplicitVRLittleEndian
        return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), (
            ExplicitVRLittleEndian
        )

    def _dataset_frame(self, index: int) -> bytes:
        ds = self.dataset
        extended = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        return get_frame(
            ds.PixelData, index, number_of_frames=self.info.frames, extended_offsets=extended
        )

    # --- Frames decoded -------------------------------------------------------------------

    def decoded_frame(self, index: int, *, as_rgb: bool = True) -> tuple[np.ndarray, str]:
        """Frame ``index`` as a numpy array (rows, columns[, samples]) and its photometric.

        Raises
        ------
        Undecodable
            No installed decoder can decode it (or the data is damaged).
        """
        info = self.info
        offset = self._fast_offset() if self.transfer_syntax in NATIVE_LE else None
        simple = info.photometric in ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR")
        if offset is not None and simple and info.samples in (1, 3):
            start = offset + index * info.frame_length
            count = info.rows * info.columns * info.samples
            array = np.frombuffer(self.data, dtype=info.dtype, count=count, offset=start)
            if info.samples == 3 and info.planar == 1:
                array = array.reshape(3, info.rows, info.columns).transpose(1, 2, 0)
            elif info.samples == 3:
                array = array.reshape(info.rows, info.columns, 3)
            else:
                array = array.reshape(info.rows, info.columns)
            return _stored_bits(array, info), info.photometric
        return self._decode(index, as_rgb=as_rgb)

    def _decode(self, index: int, *, as_rgb: bool) -> tuple[np.ndarray, str]:
        ts = self.transfer_syntax
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise Undecodable(
                _("Pixel data in transfer syntax %(uid)s cannot be decoded here.") % {"uid": ts}
            ) from None
        if not decoder.is_available:
            raise Undecodable(
                _("No decoder for transfer syntax %(uid)s is installed.") % {"uid": ts}
            )
        try:
            array, meta = decoder.as_array(
                self.dataset,
                index=index,
                as_rgb=as_rgb,  # type: ignore[arg-type]  # pydicom types **kwargs wrongly
            )
        except PixelError:
            raise
        except Exception as exc:  # the plugins raise many kinds on damaged or odd data
            logger.warning("cannot decode %s frame %d: %s", self.instance.sop_uid, index, exc)
            raise Undecodable(
                _("The pixel data (transfer syntax %(uid)s) cannot be decoded.") % {"uid": ts}
            ) from exc
        photometric = str(meta.get("photometric_interpretation", self.info.photometric))
        return array, photometric.upper()


def _stored_bits(array: np.ndarray, info: PixelInfo) -> np.ndarray:
    """Drop bits above Bits Stored (overlays, garbage) and sign-extend signed data."""
    shift = info.bits_allocated - info.bits_stored
    if shift <= 0 or info.samples != 1:
        return array
    if info.signed:
        return (array << shift) >> shift
    return array & np.array((1 << info.bits_stored) - 1, dtype=array.dtype)


def decodable(transfer_syntax: str) -> bool:
    """Whether pixel data in ``transfer_syntax`` can be decoded with what is installed."""
    uid = UID(transfer_syntax)
    if not uid.is_compressed:
        return True
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False
