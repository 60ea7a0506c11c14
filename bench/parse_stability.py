"""The photo parser's figures on genuine people when their photos are taken a little differently.

The parser (``kgi.parsing.PhotoParser``, mediapipe's models and colour analysis in the pose environment) is
scored on the genuine people of ``../shared`` against their ``image-parse-v3`` (13 classes: mIoU, upper garment
IoU, arms IoU, pooled over the people as ``kgi prep eval`` pools them), on each photo as it is and on five
versions of it:

    dim       every pixel at 0.92 of its brightness
    bright    at 1.08 (clipped)
    jpeg      re-encoded as JPEG at quality 60
    warm      red at 1.05, blue at 0.93 (a warmer white balance)
    mirror    flipped left to right, its parse flipped back and its left and right labels swapped

A further set of genuine people is scored the same way, photographed as their shop chose. Nothing is tuned
here: it measures the parser as it is. Needs ``KGI_POSE_PYTHON`` (the pose environment ``scripts/setup.sh``
builds).

Example:
  KGI_POSE_PYTHON=.pose-venv/bin/python python -m bench.parse_stability
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np

from bench.common import REPO
from kgi.commands.prep import ParseScore
from kgi.data.images import decode_labels, decode_rgb, encode_jpeg
from kgi.data.labels import LEFT_ARM, MIRRORED_CIHP, RIGHT_ARM, UPPER
from kgi.parsing import ParserUnavailable, PhotoParser

SHARED = REPO.parent / "shared"
PEOPLE_FOLDERS = ("vitonhd-sample/test/image", "vitonhd-extra/test/image")


def variants(rgb: np.ndarray) -> dict[str, tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """The photo as it is and the module docstring's five versions of it, each (H, W, 3) uint8 with the map of
    its (H, W) CIHP parse back onto the photo as sent."""
    def scaled(factors) -> np.ndarray:
        return np.clip(rgb * np.asarray(factors, np.float32), 0, 255).round().astype(np.uint8)

    def same(parse: np.ndarray) -> np.ndarray:
        return parse

    def unmirrored(parse: np.ndarray) -> np.ndarray:
        return MIRRORED_CIHP[parse[:, ::-1]]

    return {"as sent": (rgb, same), "dim": (scaled(0.92), same), "bright": (scaled(1.08), same),
            "jpeg": (decode_rgb(encode_jpeg(rgb, quality=60), source="the photo at JPEG quality 60"), same),
            "warm": (scaled([1.05, 1.0, 0.93]), same), "mirror": (np.ascontiguousarray(rgb[:, ::-1]), unmirrored)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parse_stability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    photos = [path for folder in PEOPLE_FOLDERS for path in sorted((SHARED / folder).glob("*.jpg"))]
    if not photos:
        parser.error(f"no genuine people found under {SHARED}")
    try:
        photo_parser = PhotoParser()
    except ParserUnavailable as error:
        parser.error(str(error))
    scores: dict[str, ParseScore] = {}  # per version, pooled over the people as ``kgi prep eval`` pools them
    try:
        for path in photos:
            reference_path = path.parent.parent / "image-parse-v3" / f"{path.stem}.png"
            reference = decode_labels(reference_path.read_bytes(), source=str(reference_path))
            for name, (image, back) in variants(decode_rgb(path.read_bytes(), source=str(path))).items():
                scores.setdefault(name, ParseScore()).add(back(photo_parser.parse(image)), reference)
    finally:
        photo_parser.close()
    print(f"| photos of {len(photos)} genuine people | 13-class mIoU | upper garment IoU | arms IoU |")
    print("|---|---|---|---|")
    for name, score in scores.items():
        print(f"| {name} | {score.miou:.4f} | {score.iou((UPPER,)):.4f} | {score.iou((LEFT_ARM, RIGHT_ARM)):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
