"""Rendered frames (PS3.18 §8.3.5 /rendered, /thumbnail): pixels to an 8-bit JPEG or PNG.

The pipeline follows PS3.3's display chain for one frame: Modality LUT (Rescale Slope
and Intercept, or a Modality LUT Sequence), VOI (the ``window`` parameter, else the
file's Window Center/Width, else a VOI LUT Sequence, else the frame's range), then
MONOCHROME1 inversion. Colour frames are shown as RGB: palette colour through its
lookup tables, YBR through pydicom's colour conversion. ``viewport`` crops and scales.

numpy does the arithmetic in one fused pass over float32; for a 512×512 CT slice the
whole pipeline, JPEG included, takes a few milliseconds.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.utils.translation import gettext as _
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, convert_color_space

from imaging.dicomweb.pixels import InstancePixels, PixelInfo, Undecodable, json_values
from imaging.dicomweb.query import QueryError

logger = logging.getLogger(__name__)

JPEG = "image/jpeg"
PNG = "image/png"
DEFAULT_QUALITY = 90
THUMBNAIL_SIZE = 128
MAX_VIEWPORT = 4096
# Rendering works in float32: beyond this a frame would take gigabytes (tiled whole-slide
# images are rendered tile by tile by their viewers, not here).
MAX_RENDER_PIXELS = 64 * 1024 * 1024
WINDOW_FUNCTIONS = ("linear", "linear_exact", "sigmoid")


@dataclass(frozen=True)
class Window:
    """A VOI window: PS3.3 C.11.2.1.2 (``linear``, ``linear_exact``, ``sigmoid``)."""

    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class Viewport:
    """Fit into ``width`` × ``height``; optionally crop the source region first.

    A negative source width or height flips the image along that axis (PS3.18).
    """

    width: int
    height: int
    sx: int = 0
    sy: int = 0
    sw: int | None = None
    sh: int | None = None


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = JPEG
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY
    upscale: bool = True


def _numbers(name: str, raw: str, count: tuple[int, ...]) -> list[str]:
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) not in count or any(p == "" for p in parts):
        raise QueryError(
            _("%(name)s: expected %(count)s comma-separated values.")
            % {"name": name, "count": " or ".join(str(c) for c in count)}
        )
    return parts


def parse_window(raw: str) -> Window:
    """``center,width[,function]``.

    Raises
    ------
    QueryError
        Not numbers, a width below 1, or an unknown function.
    """
    parts = _numbers("window", raw, (2, 3))
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise QueryError(_("window: center and width must be numbers.")) from None
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if function not in WINDOW_FUNCTIONS:
        raise QueryError(
            _("window: the function must be one of %(names)s.")
            % {"names": ", ".join(WINDOW_FUNCTIONS)}
        )
    if not np.isfinite(center) or not np.isfinite(width) or width < 1:
        raise QueryError(_("window: the width must be at least 1."))
    return Window(center=center, width=width, function=function)


def parse_viewport(raw: str) -> Viewport:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (source values may be empty for defaults)."""
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) not in (2, 6) or not parts[0] or not parts[1]:
        raise QueryError(_("viewport: expected vw,vh or vw,vh,sx,sy,sw,sh."))
    try:
        values = [int(p) if p else None for p in parts]
    except ValueError:
        raise QueryError(_("viewport: the values must be whole numbers.")) from None
    width, height = values[0] or 0, values[1] or 0
    if not (1 <= width <= MAX_VIEWPORT and 1 <= height <= MAX_VIEWPORT):
        raise QueryError(
            _("viewport: width and height must be between 1 and %(max)d.") % {"max": MAX_VIEWPORT}
        )
    if len(values) == 2:
        return Viewport(width=width, height=height)
    sx, sy, sw, sh = values[2:]
    if (sx or 0) < 0 or (sy or 0) < 0:
        raise QueryError(_("viewport: the source origin must not be negative."))
    return Viewport(width=width, height=height, sx=sx or 0, sy=sy or 0, sw=sw, sh=sh)


def parse_quality(raw: str) -> int:
    try:
        quality = int(raw)
    except ValueError:
        quality = 0
    if not 1 <= quality <= 100:
        raise QueryError(_("quality must be a whole number from 1 to 100."))
    return quality


# --- Grey levels ---------------------------------------------------------------------------


def _first_number(meta: dict[str, Any], tag: str) -> float | None:
    for value in json_values(meta, tag):
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(number):
            return number
    return None


def _window_from_file(meta: dict[str, Any]) -> Window | None:
    center = _first_number(meta, "00281050")
    width = _first_number(meta, "00281051")
    if center is None or width is None or width < 1:
        return None
    function = str((json_values(meta, "00281056") or ["LINEAR"])[0]).lower()
    return Window(center, width, function if function in WINDOW_FUNCTIONS else "linear")


def _apply_window(values: np.ndarray, window: Window, slope: float, intercept: float) -> np.ndarray:
    """Rescale and window in one pass: stored values to 0..255 (float32)."""
    c, w = window.center, window.width
    out = values.astype(np.float32)
    if window.function == "sigmoid":
        out *= slope
        out += intercept - c
        out *= -4.0 / w
        np.exp(out, out=out)
        out += 1.0
        np.divide(255.0, out, out=out)
        return out
    if window.function == "linear_exact":
        denominator, shift = w, c
    else:
        denominator, shift = max(w - 1.0, 1.0), c - 0.5
    # y = ((x * slope + intercept - shift) / denominator + 0.5) * 255, in place
    out *= slope * 255.0 / denominator
    out += ((intercept - shift) / denominator + 0.5) * 255.0
    np.clip(out, 0.0, 255.0, out=out)
    return out


def _grey(
    pixels: InstancePixels, frame: np.ndarray, photometric: str, window: Window | None
) -> np.ndarray:
    meta = pixels.meta
    slope = _first_number(meta, "00281053")
    intercept = _first_number(meta, "00281052")
    slope = 1.0 if slope is None or slope == 0 else slope
    intercept = 0.0 if intercept is None else intercept
    if "00283000" in meta:  # Modality LUT Sequence: let pydicom apply it
        frame = apply_modality_lut(frame, pixels.dataset)
        slope, intercept = 1.0, 0.0
    chosen = window or _window_from_file(meta)
    if chosen is None and "00283010" in meta:  # VOI LUT Sequence
        lut = np.asarray(apply_voi(frame, pixels.dataset), dtype=np.float32)
        low, high = float(lut.min()), float(lut.max())
        out = (lut - low) * (255.0 / (high - low)) if high > low else np.zeros_like(lut)
    else:
        if chosen is None:
            low = float(frame.min()) * slope + intercept
            high = float(frame.max()) * slope + intercept
            chosen = Window(center=(low + high) / 2 + 0.5, width=max(high - low + 1, 1))
        out = _apply_window(frame, chosen, slope, intercept)
    if photometric == "MONOCHROME1":
        out = 255.0 - out
    return out.astype(np.uint8)


def _colour(
    pixels: InstancePixels, frame: np.ndarray, photometric: str, info: PixelInfo
) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, pixels.dataset)
    elif photometric.startswith("YBR") and photometric not in ("YBR_ICT", "YBR_RCT"):
        frame = convert_color_space(frame, "YBR_FULL", "RGB")
    if frame.dtype != np.uint8:
        top = frame.max()
        bits = 16 if photometric == "PALETTE COLOR" and top > 255 else info.bits_stored
        frame = (frame.astype(np.float32) * (255.0 / ((1 << max(bits, 8)) - 1))).astype(np.uint8)
    return frame


def frame_to_8bit(
    pixels: InstancePixels, frame: np.ndarray, photometric: str, window: Window | None
) -> np.ndarray:
    """Display values (uint8, grey or RGB) of one decoded frame."""
    info = pixels.info
    if frame.ndim == 2 and photometric != "PALETTE COLOR":
        return _grey(pixels, frame, photometric, window)
    return _colour(pixels, frame, photometric, info)


# --- Images --------------------------------------------------------------------------------


def _viewport(image: Image.Image, viewport: Viewport | None, *, upscale: bool) -> Image.Image:
    if viewport is None:
        return image
    if viewport.sw is not None or viewport.sh is not None or viewport.sx or viewport.sy:
        sw = viewport.sw if viewport.sw is not None else image.width - viewport.sx
        sh = viewport.sh if viewport.sh is not None else image.height - viewport.sy
        left, right = sorted((viewport.sx, viewport.sx + sw))
        top, bottom = sorted((viewport.sy, viewport.sy + sh))
        box = (max(left, 0), max(top, 0), min(right, image.width), min(bottom, image.height))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise QueryError(_("viewport: the source region lies outside the image."))
        image = image.crop(box)
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    if scale >= 1 and not upscale:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    resample = Image.Resampling.BILINEAR if scale > 0.5 else Image.Resampling.BOX
    return image.resize(size, resample)


def encode(array: np.ndarray, options: RenderOptions) -> bytes:
    """Encode display values as JPEG or PNG after applying the viewport."""
    image = Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB")
    image = _viewport(image, options.viewport, upscale=options.upscale)
    out = io.BytesIO()
    if options.media_type == PNG:
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()


def render_frame(pixels: InstancePixels, index: int, options: RenderOptions) -> bytes:
    """Frame ``index`` (0-based) of ``pixels`` as an encoded image.

    Raises
    ------
    Undecodable
        The pixel data cannot be decoded or shown.
    QueryError
        The viewport lies outside the image.
    """
    if pixels.info.rows * pixels.info.columns > MAX_RENDER_PIXELS:
        raise Undecodable(_("This image is too large to render; retrieve its frames instead."))
    frame, photometric = pixels.decoded_frame(index)
    try:
        display = frame_to_8bit(pixels, frame, photometric, options.window)
        return encode(display, options)
    except (QueryError, Undecodable):
        raise
    except Exception as exc:  # odd LUTs, shapes or values: a 406, never a 500
        logger.warning("cannot render %s: %s", pixels.instance.sop_uid, exc)
        raise Undecodable(_("This image cannot be rendered.")) from exc
