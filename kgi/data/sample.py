"""The typed record every reader and the synthetic generator produce."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgi.data.labels import to_parse13
from kgi.data.pose import pose_graph_nodes


@dataclass(frozen=True)
class PhotoFrame:
    """Where a sample was cut from: the person photo's (height, width) and the 3:4 box (top, left, height,
    width) in it that the sample shows, at the sample's own resolution or scaled (``kgi.preprocess``)."""

    photo_size: tuple[int, int]
    box: tuple[int, int, int, int]


@dataclass
class TryOnSample:
    """One (person, garment) pair at one resolution, as numpy arrays.

    Coordinates are pixels (x, y) at this sample's resolution. Normalised coordinates elsewhere in the
    package divide x by the width and y by the height.

    Attributes:
        person_name: file name of the person image (``00006_00.jpg``).
        cloth_name: file name of the garment image; equal to ``person_name`` in the paired setting.
        person: (H, W, 3) uint8 RGB person photo.
        cloth: (H, W, 3) uint8 RGB flat garment photo.
        cloth_mask: (H, W) bool garment silhouette in ``cloth``.
        parse: (H, W) uint8 CIHP labels 0..19 of the person photo.
        pose: (25, 3) float32 OpenPose BODY_25 joints (x px, y px, confidence); undetected = 0.
        cloth_keypoints: (32, 2) float32 garment keypoints on the flat garment, or None if unknown.
        worn_keypoints: (32, 2) float32 keypoints of the garment the person wears (the person's own
            garment, so the paired target), or None if unknown.
        sleeve: sleeve type of the garment ("long", "short", "none") when known.
        tags: free-form labels of the pair (the synthetic generator marks "crossed_arms").
        frame: where the person image was cut from its photo (``kgi.preprocess.paste_back``), or None.
    """

    person_name: str
    cloth_name: str
    person: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray
    parse: np.ndarray
    pose: np.ndarray
    cloth_keypoints: np.ndarray | None = None
    worn_keypoints: np.ndarray | None = None
    sleeve: str | None = None
    tags: tuple[str, ...] = ()
    frame: PhotoFrame | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        return self.person.shape[0], self.person.shape[1]

    @property
    def paired(self) -> bool:
        return self.person_name == self.cloth_name

    @property
    def parse13(self) -> np.ndarray:
        """(H, W) uint8 parse grouped into the 13 model classes."""
        return to_parse13(self.parse)

    def normalised(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel points (x, y) at this sample's resolution as normalised coordinates (x / W, y / H): how
        ``cloth_keypoints`` and ``worn_keypoints`` enter the models, warps and drawings."""
        height, width = self.size
        return points / [width, height]

    @property
    def pose_nodes(self) -> np.ndarray:
        """(10, 2) float32 pose-graph nodes normalised to [0, 1], missing joints filled."""
        height, width = self.size
        return pose_graph_nodes(self.pose, width, height)
