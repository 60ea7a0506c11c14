"""Decoding untrusted image bytes with clear errors, encoding, and resizing.

Decoders take bytes and a ``source`` (a file name, a form field) and return numpy arrays in the package's
conventions: RGB (H, W, 3) uint8, grayscale (H, W) uint8, label maps (H, W) uint8. Anything that cannot be
used raises :class:`ImageError` whose message starts with the source: empty bytes, too many bytes, a format
that is not an image, a header declaring more than ``max_pixels`` pixels, a side shorter than ``min_side`` or
an aspect ratio beyond ``max_aspect_ratio`` (all three refused from the header, before any pixel is decoded:
a 1x40000 strip is few pixels but becomes a huge canvas once padded to 3:4), truncated or corrupt data.

Decoding normalises what cameras and editors produce: EXIF orientation is applied, grayscale, palette, CMYK
and 16-bit images become 8-bit, transparency is composited on white (flat garment photos are shot on white).
Only common raster formats are opened (``DECODE_FORMATS``); Pillow's other plugins (EPS runs Ghostscript)
are never reached from untrusted bytes.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DECODE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
LOSSY_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: multi-picture JPEG from cameras, opened by the JPEG plugin
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MIN_SIDE = 1
DEFAULT_MAX_ASPECT_RATIO = 4.0  # longer side / shorter side; photos of people and garments are far below it
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> samples per pixel
ADAM7_PASSES = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


class ImageError(ValueError):
    """Image bytes that cannot be used, or an array that cannot be encoded; the message names the source."""


def _decode(data: bytes, source: str, max_bytes: int | None, max_pixels: int, min_side: int,
            max_aspect_ratio: float, mode: str | None) -> np.ndarray:
    """Check sizes, decode, apply EXIF orientation and convert; every failure becomes an ``ImageError``.

    ``mode`` is "RGB" or "L" (through :func:`_to_8bit`), or ``None`` for label maps (indices kept).
    """
    if len(data) == 0:
        raise ImageError(f"{source}: empty (0 bytes)")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(f"{source}: {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    # Pillow raises many exception types on malformed input (OSError, SyntaxError, struct.error, ...):
    # everything from parsing untrusted bytes is reported as the same ImageError.
    try:
        image = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{source}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not an image in a supported format ({', '.join(DECODE_FORMATS)})") from None
    except Exception as exc:  # noqa: BLE001 - see above
        raise ImageError(f"{source}: not a readable image ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{source}: header declares an empty {width}x{height} image")
    if width * height > max_pixels:
        raise ImageError(
            f"{source}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} pixels")
    if min(width, height) < min_side:
        raise ImageError(f"{source}: {width}x{height} is too small (each side needs at least {min_side} pixels)")
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise ImageError(f"{source}: {width}x{height} is too elongated (the longer side may be at most "
                         f"{max_aspect_ratio:g} times the shorter)")
    if mode is None:
        if image.format in LOSSY_FORMATS:
            raise ImageError(f"{source}: label maps must be lossless (PNG), got {image.format}")
        if image.mode not in ("P", "L"):
            raise ImageError(f"{source}: label maps must be palette or grayscale images, got mode {image.mode}")
    if image.format == "PNG" and not _png_rows_complete(data):
        # Pillow fills the missing rows with black when the compressed data ends exactly between two rows.
        raise ImageError(f"{source}: truncated image data (fewer rows than its {width}x{height} header declares)")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        if mode is not None:
            image = _to_8bit(image).convert(mode)
        return np.array(image, dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{source}: refused as a decompression bomb ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - see above
        problem = "truncated" if "truncated" in str(exc) else "corrupt"
        raise ImageError(f"{source}: {problem} image data ({type(exc).__name__}: {exc})") from None


def _png_rows_complete(data: bytes) -> bool:
    """Whether a PNG's IDAT chunks inflate to at least the bytes its header's rows need (every pass's rows, each
    with its filter byte, when interlaced). Inflates at most that much, a megabyte at a time."""
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits_per_pixel = bit_depth * PNG_CHANNELS.get(colour_type, 4)
    passes = ADAM7_PASSES if interlace else ((0, 0, 1, 1),)
    needed = 0
    for x0, y0, dx, dy in passes:
        columns, rows = math.ceil(max(width - x0, 0) / dx), math.ceil(max(height - y0, 0) / dy)
        if columns and rows:
            needed += rows * (1 + math.ceil(columns * bits_per_pixel / 8))
    inflater, produced, offset = zlib.decompressobj(), 0, 8
    while offset + 8 <= len(data) and produced < needed:
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        compressed = data[offset + 8:offset + 8 + length] if kind == b"IDAT" else b""
        try:
            while compressed and produced < needed:
                produced += len(inflater.decompress(compressed, 1 << 20))
                compressed = inflater.unconsumed_tail
        except zlib.error:
            return False
        offset += 12 + length  # length, type, body, CRC
    return produced >= needed


def _to_8bit(image: Image.Image) -> Image.Image:
    """An "L" or "RGB" image: 16-bit scaled down, transparency composited on white, other modes converted."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)  # (H, W), 0..65535
        return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    if image.mode == "1":
        return image.convert("L")
    return image.convert("RGB")


def decode_rgb(data: bytes, *, source: str, max_bytes: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE,
               max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> np.ndarray:
    """Decode an image to RGB.

    Args:
        data: encoded image bytes (JPEG, PNG, WebP, BMP, TIFF, GIF; the first frame of an animation).
        source: what to call the input in error messages.
        max_bytes: refuse inputs longer than this (``None``: no limit).
        max_pixels: refuse images whose header declares more pixels than this, before decoding.
        min_side: refuse images with a side shorter than this (pixels), before decoding.
        max_aspect_ratio: refuse images whose longer side exceeds this multiple of the shorter, before decoding.

    Returns (H, W, 3) uint8 RGB after EXIF orientation. Raises ``ImageError`` naming ``source``.
    """
    return _decode(data, source, max_bytes, max_pixels, min_side, max_aspect_ratio, "RGB")


def decode_gray(data: bytes, *, source: str, max_bytes: int | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE,
                max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> np.ndarray:
    """Decode an image to 8-bit grayscale (colour images by ITU-R 601 luma), e.g. a garment mask.

    Arguments as :func:`decode_rgb`. Returns (H, W) uint8. Raises ``ImageError`` naming ``source``.
    """
    return _decode(data, source, max_bytes, max_pixels, min_side, max_aspect_ratio, "L")


def decode_labels(data: bytes, *, source: str, max_bytes: int | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE,
                  max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> np.ndarray:
    """Decode a label map: the stored indices of a palette ("P") or grayscale ("L") lossless image, untouched.

    Arguments as :func:`decode_rgb`. Returns (H, W) uint8. Raises ``ImageError`` naming ``source`` for any
    other mode (an RGB rendering of the labels) or a lossy format (JPEG would blur label boundaries).
    """
    return _decode(data, source, max_bytes, max_pixels, min_side, max_aspect_ratio, None)


def _check_array(array: np.ndarray, name: str, shapes: str, ndims: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim not in ndims or (array.ndim == 3 and array.shape[2] != 3):
        raise ImageError(f"{name}: expected shape {shapes}, got {array.shape}")
    if array.dtype != np.uint8:
        raise ImageError(f"{name}: expected dtype uint8, got {array.dtype}")
    if 0 in array.shape:
        raise ImageError(f"{name}: empty array of shape {array.shape}")
    return array


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """Encode (H, W, 3) uint8 RGB as baseline JPEG with 4:2:0 chroma subsampling.

    Args:
        rgb: the image.
        quality: JPEG quality 1..100 (Pillow's scale; above 95 mostly grows the file).
    """
    rgb = _check_array(rgb, "rgb", "(H, W, 3)", (3,))
    if not 1 <= quality <= 100:
        raise ImageError(f"quality: expected 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_png(array: np.ndarray) -> bytes:
    """Encode an (H, W) grayscale, (H, W) bool (as 0/255) or (H, W, 3) RGB uint8 array as PNG.

    zlib level 2: a 256x192 try-on encodes in ~4 ms instead of ~13 ms at Pillow's default 6, for ~15% more bytes
    (the service encodes every answer on the request's path)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    array = _check_array(array, "array", "(H, W) or (H, W, 3)", (2, 3))
    buffer = io.BytesIO()
    Image.fromarray(array, mode="RGB" if array.ndim == 3 else "L").save(buffer, format="PNG", compress_level=2)
    return buffer.getvalue()


def encode_palette_png(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """Encode an (H, W) uint8 label map as a palette PNG whose pixel values are the labels.

    Args:
        labels: label indices; every value must have a palette entry.
        palette: one (r, g, b) colour per label, at most 256 (e.g. ``kgi.data.labels.CIHP_PALETTE``).
    """
    labels = _check_array(labels, "labels", "(H, W)", (2,))
    colours = np.asarray(palette, dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or not 1 <= len(colours) <= 256:
        raise ImageError(f"palette: expected 1..256 (r, g, b) entries, got shape {colours.shape}")
    if ((colours < 0) | (colours > 255)).any():
        raise ImageError("palette: colour components must be 0..255")
    if int(labels.max()) >= len(colours):
        raise ImageError(f"labels: value {int(labels.max())} has no palette entry ({len(colours)} colours)")
    image = Image.fromarray(labels, mode="L").convert("P")  # "L" -> "P" keeps the indices
    flat = colours.astype(np.uint8).reshape(-1).tolist()
    image.putpalette(flat + [0] * (768 - len(flat)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def width_for(height: int) -> int:
    """The width of a 3:4 (width:height) image ``height`` rows tall, the shape of every VITON-HD image and of
    everything the models see: ``height * 3 // 4``."""
    return height * 3 // 4


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"resize: target size must be positive, got {height}x{width}")


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W, 3) uint8: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    rgb = _check_array(rgb, "rgb", "(H, W, 3)", (3,))
    _check_size(height, width)
    shrinking = height <= rgb.shape[0] and width <= rgb.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W) uint8 label map by nearest neighbour (pixel centres), so no new labels appear."""
    labels = _check_array(labels, "labels", "(H, W)", (2,))
    _check_size(height, width)
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W) bool mask by nearest neighbour (pixel centres)."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise ImageError(f"mask: expected an (H, W) bool array, got {mask.dtype} {mask.shape}")
    return resize_labels(mask.astype(np.uint8), height, width).astype(bool)
