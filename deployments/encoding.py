"""Turning stage outputs into what the API returns: uint8 images, PNG bytes, base64 strings, a coloured parse."""

from __future__ import annotations

import base64

import numpy as np

from kgi.data.images import encode_palette_png
from kgi.data.labels import CIHP_LABELS, CIHP_PALETTE, PARSE13_LABELS

# Each of the 13 model classes drawn in the CIHP colour of a label it groups, so that a target parse looks
# like the VITON-HD ``image-parse-v3`` maps people already know.
_PARSE13_AS_CIHP = {"background": "background", "hair": "hair", "face-neck": "face", "upper": "upper-clothes",
                    "bottom": "pants", "left-arm": "left-arm", "right-arm": "right-arm", "left-leg": "left-leg",
                    "right-leg": "right-leg", "left-shoe": "left-shoe", "right-shoe": "right-shoe",
                    "socks": "socks", "noise": "glove"}
PARSE13_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    CIHP_PALETTE[CIHP_LABELS.index(_PARSE13_AS_CIHP[name])] for name in PARSE13_LABELS)



def png_base64(png: bytes) -> str:
    """PNG bytes as a base64 string (what JSON responses carry)."""
    return base64.b64encode(png).decode("ascii")


def parse13_png(parse13: np.ndarray) -> bytes:
    """An (H, W) uint8 13-class parse as a palette PNG in CIHP colours (:data:`PARSE13_PALETTE`)."""
    return encode_palette_png(parse13, PARSE13_PALETTE)

