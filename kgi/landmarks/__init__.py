"""Garment landmark extraction: the 32 garment-graph keypoints of a flat garment photo and of a worn garment.

KGI's public code never said how its garment landmarks were made; this package is our answer. Node numbering
is ``kgi.graphs``'s.

* ``flat``: a flat, front-view product photo (cloth + mask) -> :func:`flat_garment_keypoints`; its sleeves in
  ``sleeves``, the front neckline seen through the back's in ``neckline``.
* ``worn``: the upper garment a person wears (parse + pose, the photo if given) -> :func:`worn_garment_keypoints`.
* ``checks``: ``landmark_problems(keypoints, mask=None) -> list[str]`` (order, symmetry, on the mask),
  ``garment_problems(mask, keypoints=None)`` (trousers, a dress to the knee, a folded garment) and
  ``framing_problems(mask)`` (a collar or hem cut off by the photo's edge); the flat extractor refuses with
  their reasons.
* ``geometry``: the clockwise outline and the distances both extractors measure on it.

Drawings of the keypoints for a person to check are ``kgi.pictures.draw_garment_keypoints``.
"""

from __future__ import annotations

from kgi.landmarks.flat import check_framing, flat_garment_keypoints
from kgi.landmarks.geometry import GarmentLandmarks, LandmarkError
from kgi.landmarks.worn import UPPER_GARMENT_LABELS, sleeves_labelled_as_arms, worn_garment_keypoints

__all__ = ["UPPER_GARMENT_LABELS", "GarmentLandmarks", "LandmarkError", "check_framing", "fill_garment_keypoints",
           "flat_garment_keypoints", "sleeves_labelled_as_arms", "worn_garment_keypoints"]


def fill_garment_keypoints(sample):
    """Give a ``TryOnSample`` without garment keypoints (a VITON-HD root has no landmark files; the synthetic
    generator writes them) the ones :func:`flat_garment_keypoints` finds in its garment photo; returns it.

    Raises:
        LandmarkError: naming the garment, when its landmarks cannot be found.
    """
    if sample.cloth_keypoints is None:
        try:
            sample.cloth_keypoints = flat_garment_keypoints(sample.cloth, sample.cloth_mask).keypoints
        except LandmarkError as exc:
            raise LandmarkError(f"{sample.cloth_name}: its landmarks cannot be found ({exc})") from None
    return sample
