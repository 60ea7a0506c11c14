"""The photo parser's figures on genuine people when their photos are taken a little differently.

The parser (``kgi.parsing.PhotoParser``, mediapipe's models and colour analysis in the pose environment) is
scored on the genuine people of ``../shared`` against their ``image-parse-v3`` (13 classes: mIoU, upper garment
IoU, arms IoU, pooled over the people as ``kgi prep eval`` pools them), on each photo as it is and on six
versions of it:

    dim       every pixel at 0.92 of its brightness
    bright    at 1.08 (clipped)
    jpeg      re-encoded as JPEG at quality 60
    warm      red at 1.05, blue at 0.93 (a warmer white balance)
    mirror    flipped left to right, its parse flipped back and its left and right labels swapped
    small     shrunk to 0.6 at the bottom middle of a canvas of the photo's size, filled with the backdrop's colour
              (a full-length shot): parsed as a try-on parses it (``kgi.preprocess.Preprocessor.framed_person``:
              the box framing the person, analysed again at its resolution), its parse mapped back

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

import cv2
import numpy as np

from bench.common import REPO
from kgi.commands.prep import ParseScore
from kgi.data.images import decode_labels, decode_rgb, encode_jpeg, encode_png, resize_labels
from kgi.data.labels import LEFT_ARM, MIRRORED_CIHP, RIGHT_ARM, UPPER
from kgi.parsing import ParserUnavailable, PhotoParser
from kgi.preprocess import Preprocessor, Uploads

SHARED = REPO.parent / "shared"
PEOPLE_FOLDERS = ("vitonhd-sample/test/image", "vitonhd-extra/test/image")


SMALL = 0.6  # the "small" version's scale


def variants(rgb: np.ndarray) -> dict[str, tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """The photo as it is and the module docstring's versions of it but "small", each (H, W, 3) uint8 with the map
    of its (H, W) CIHP parse back onto the photo as sent."""
    def scaled(factors) -> np.ndarray:
        return np.clip(rgb * np.asarray(factors, np.float32), 0, 255).round().astype(np.uint8)

    def same(parse: np.ndarray) -> np.ndarray:
        return parse

    def unmirrored(parse: np.ndarray) -> np.ndarray:
        return MIRRORED_CIHP[parse[:, ::-1]]

    return {"as sent": (rgb, same), "dim": (scaled(0.92), same), "bright": (scaled(1.08), same),
            "jpeg": (decode_rgb(encode_jpeg(rgb, quality=60), source="the photo at JPEG quality 60"), same),
            "warm": (scaled([1.05, 1.0, 0.93]), same), "mirror": (np.ascontiguousarray(rgb[:, ::-1]), unmirrored)}


def small_version(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo shrunk to ``SMALL`` at the bottom middle of a canvas of its size filled with its backdrop's colour
    (the median of its top row and side columns), and where it lies there: (top, left, height, width)."""
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, None, fx=SMALL, fy=SMALL, interpolation=cv2.INTER_AREA)
    canvas = np.empty_like(rgb)
    canvas[:] = np.median(np.concatenate([rgb[0], rgb[:, 0], rgb[:, -1]]), axis=0)
    top, left = height - small.shape[0], (width - small.shape[1]) // 2
    canvas[top:, left:left + small.shape[1]] = small
    return canvas, (top, left, small.shape[0], small.shape[1])


def parse_of_small(preprocessor: Preprocessor, rgb: np.ndarray) -> np.ndarray:
    """The (H, W) CIHP parse of the photo ``rgb`` from its "small" version, parsed as a try-on parses it and mapped
    back onto the photo (background outside the person's box)."""
    canvas, (top, left, small_height, small_width) = small_version(rgb)
    _, parse, _, frame, _ = preprocessor.framed_person(Uploads(person=encode_png(canvas), garment=b""))
    box_top, box_left, box_height, box_width = frame.box
    on_canvas = np.zeros(canvas.shape[:2], np.uint8)
    on_canvas[box_top:box_top + box_height, box_left:box_left + box_width] = resize_labels(parse, box_height, box_width)
    return resize_labels(on_canvas[top:top + small_height, left:left + small_width], *rgb.shape[:2])


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
            rgb = decode_rgb(path.read_bytes(), source=str(path))
            for name, (image, back) in variants(rgb).items():
                scores.setdefault(name, ParseScore()).add(back(photo_parser.parse(image)), reference)
            scores.setdefault("small", ParseScore()).add(parse_of_small(Preprocessor(parser=photo_parser), rgb),
                                                         reference)
    finally:
        photo_parser.close()
    print(f"| photos of {len(photos)} genuine people | 13-class mIoU | upper garment IoU | arms IoU |")
    print("|---|---|---|---|")
    for name, score in scores.items():
        print(f"| {name} | {score.miou:.4f} | {score.iou((UPPER,)):.4f} | {score.iou((LEFT_ARM, RIGHT_ARM)):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
