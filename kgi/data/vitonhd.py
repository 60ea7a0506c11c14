"""The VITON-HD reader: a sequence of :class:`~kgi.data.sample.TryOnSample` from a local or S3 root.

A root is laid out as the dataset is::

    {split}_pairs.txt                       "person.jpg cloth.jpg" per line
    {split}/image/{person}.jpg              person photo
    {split}/cloth/{cloth}.jpg               flat garment photo
    {split}/cloth-mask/{cloth}.jpg          garment silhouette (grayscale, thresholded at 128)
    {split}/image-parse-v3/{person}.png     CIHP labels 0..19 (palette or grayscale PNG)
    {split}/openpose_json/{person}_keypoints.json   OpenPose BODY_25
    {split}/cloth-landmark-json/{cloth}.json        optional: 32 garment keypoints of the flat garment
    {split}/image-landmark-json/{person}.json       optional: 32 keypoints of the worn garment, plus "tags"

(names in braces are file stems where an extension follows). A landmark file is
``{"width": W, "height": H, "sleeve": "long"|"short"|"none", "keypoints": [[x, y] x 32]}`` in pixels of a
W x H image; the image-landmark file may add ``"tags": [...]``.

Any stored resolution works if it is 4:3 (height:width); ``height=...`` resizes every sample to
``height x 3*height/4`` (images by area, masks and labels by nearest neighbour, pose and keypoints scaled).
Items are read lazily; the constructor reads the pairs file and lists four folders once, so a pairs line that
names a missing image fails at construction, naming the line. Every problem with the data raises
:class:`DatasetError` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from kgi.data.images import (
    ImageError,
    decode_gray,
    decode_labels,
    decode_rgb,
    resize_labels,
    resize_mask,
    resize_rgb,
    width_for,
)
from kgi.data.labels import NUM_CIHP
from kgi.data.pose import PoseError, parse_openpose
from kgi.data.sample import TryOnSample
from kgi.data.storage import Storage, StoragePathError, open_root, validate_rel
from kgi.graphs import NUM_GARMENT_NODES, SLEEVE_TYPES

SPLITS: tuple[str, ...] = ("train", "test")
MODES: tuple[str, ...] = ("paired", "unpaired")
MASK_THRESHOLD = 128  # cloth-mask JPEGs blur between 0 and 255: a pixel >= 128 is garment


class DatasetError(ValueError):
    """A dataset file that is missing, unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Landmarks:
    """One landmark file: (32, 2) float32 keypoints normalised by the file's width and height, sleeve, tags."""

    keypoints: np.ndarray
    sleeve: str
    tags: tuple[str, ...]


class VitonHD(Sequence[TryOnSample]):
    """The (person, garment) pairs of one split of a VITON-HD root.

    Args:
        root_uri: the root folder, a local path or ``s3://bucket/prefix``.
        split: ``"train"`` or ``"test"``.
        mode: ``"paired"`` (each person with their own garment, the reconstruction setting) or ``"unpaired"``
            (each person with the garment in the pairs file's second column).
        height: resize samples to ``height x 3*height/4`` (a multiple of 4); ``None`` keeps the stored size.

    Attributes:
        pairs: ``(person_name, cloth_name)`` per item, in pairs-file order.

    Raises ``ValueError`` for a bad argument and ``DatasetError`` for a missing or malformed pairs file or a
    pairs line naming a missing image or garment.
    """

    def __init__(self, root_uri: str | os.PathLike[str], split: str = "test", mode: str = "paired",
                 height: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height <= 0
                                   or height % 4):
            raise ValueError(f"height: expected a positive multiple of 4 (width = 3*height/4), got {height!r}")
        self.storage = open_root(root_uri)
        self.split = split
        self.mode = mode
        self.height = height
        self.pairs = self._read_pairs()
        self._cloth_landmarks = set(self.storage.list(f"{split}/cloth-landmark-json"))
        self._image_landmarks = set(self.storage.list(f"{split}/image-landmark-json"))

    def _read_pairs(self) -> tuple[tuple[str, str], ...]:
        pairs_rel = f"{self.split}_pairs.txt"
        pairs_uri = self.storage.uri(pairs_rel)
        text = _read_text(self.storage, pairs_rel)
        images = set(self.storage.list(f"{self.split}/image"))
        cloths = set(self.storage.list(f"{self.split}/cloth"))
        pairs = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            columns = line.split()
            if not columns:
                continue
            if len(columns) != 2:
                raise DatasetError(f"{pairs_uri} line {line_number}: expected 2 columns 'person cloth', "
                                   f"got {len(columns)}")
            person_name, cloth_name = columns
            if self.mode == "paired":
                cloth_name = person_name
            for folder, name, present in (("image", person_name, images), ("cloth", cloth_name, cloths)):
                rel = f"{self.split}/{folder}/{name}"
                try:
                    validate_rel(rel)
                except StoragePathError as exc:
                    raise DatasetError(f"{pairs_uri} line {line_number}: bad file name ({exc})") from None
                if rel not in present:
                    raise DatasetError(f"{pairs_uri} line {line_number}: {self.storage.uri(rel)} does not exist")
            pairs.append((person_name, cloth_name))
        if not pairs:
            raise DatasetError(f"{pairs_uri}: no pairs")
        return tuple(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> TryOnSample:
        """Read pair ``index`` (negative counts from the end). Raises ``DatasetError`` naming any bad file."""
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"VitonHD indices must be integers, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        person_name, cloth_name = self.pairs[index]
        return read_pair(self.storage, self.split, person_name, cloth_name, mode=self.mode, height=self.height,
                         landmark_files=self._cloth_landmarks | self._image_landmarks)

    def __repr__(self) -> str:
        return (f"VitonHD({self.storage.uri()!r}, split={self.split!r}, mode={self.mode!r}, "
                f"height={self.height!r}, pairs={len(self)})")


def read_pair(storage: Storage, split: str, person_name: str, cloth_name: str, *, mode: str = "paired",
              height: int | None = None, landmark_files: set[str] | None = None) -> TryOnSample:
    """Read one (person, garment) pair from a VITON-HD root; the code behind ``VitonHD[i]``.

    Args:
        storage: the root (local, S3, or a ``MemoryStorage`` holding one shard row's files).
        split: the split folder the files are in.
        person_name, cloth_name: file names as in the pairs file.
        mode: ``"paired"`` fills ``worn_keypoints`` from the person's landmark file; ``"unpaired"`` does not.
        height: resize to ``height x 3*height/4``; None keeps the stored size.
        landmark_files: relative paths of the landmark files that exist (a listing taken once); None asks the
            storage for each file.

    Raises ``DatasetError`` naming any missing or bad file.
    """
    person_stem, cloth_stem = PurePosixPath(person_name).stem, PurePosixPath(cloth_name).stem

    person_rel = f"{split}/image/{person_name}"
    person = _read_image(storage, person_rel, decode_rgb)
    stored_height, stored_width = person.shape[:2]
    if stored_height * 3 != stored_width * 4:
        raise DatasetError(f"{storage.uri(person_rel)}: {stored_width}x{stored_height} is not 3:4 (width:height); "
                           f"VITON-HD images are 768x1024 or a 3:4 resize of it")
    cloth_rel = f"{split}/cloth/{cloth_name}"
    cloth = _read_image(storage, cloth_rel, decode_rgb)
    mask_rel = f"{split}/cloth-mask/{cloth_name}"
    cloth_mask = _read_image(storage, mask_rel, decode_gray) >= MASK_THRESHOLD
    parse_rel = f"{split}/image-parse-v3/{person_stem}.png"
    parse = _read_image(storage, parse_rel, decode_labels)
    for rel, array in ((cloth_rel, cloth), (mask_rel, cloth_mask), (parse_rel, parse)):
        if array.shape[:2] != (stored_height, stored_width):
            raise DatasetError(f"{storage.uri(rel)}: size {array.shape[1]}x{array.shape[0]} differs "
                               f"from the person image's {stored_width}x{stored_height}")
    if int(parse.max()) >= NUM_CIHP:
        raise DatasetError(f"{storage.uri(parse_rel)}: label {int(parse.max())} is not a CIHP label "
                           f"(0..{NUM_CIHP - 1})")
    pose_rel = f"{split}/openpose_json/{person_stem}_keypoints.json"
    try:
        pose = parse_openpose(_read_bytes(storage, pose_rel), source=storage.uri(pose_rel))
    except PoseError as exc:
        raise DatasetError(str(exc)) from exc

    cloth_landmarks = _read_landmarks(storage, f"{split}/cloth-landmark-json/{cloth_stem}.json", landmark_files)
    person_landmarks = _read_landmarks(storage, f"{split}/image-landmark-json/{person_stem}.json", landmark_files)
    worn_landmarks = person_landmarks if mode == "paired" else None  # else another garment is worn
    sleeve_source = cloth_landmarks or worn_landmarks

    out_height, out_width = (stored_height, stored_width) if height is None else (height, width_for(height))
    if (out_height, out_width) != (stored_height, stored_width):
        person = resize_rgb(person, out_height, out_width)
        cloth = resize_rgb(cloth, out_height, out_width)
        cloth_mask = resize_mask(cloth_mask, out_height, out_width)
        parse = resize_labels(parse, out_height, out_width)
        pose[:, :2] *= np.array([out_width / stored_width, out_height / stored_height], dtype=np.float32)
    pixels = np.array([out_width, out_height], dtype=np.float32)  # normalised (x, y) -> pixels (x, y)
    return TryOnSample(
        person_name=person_name, cloth_name=cloth_name, person=person, cloth=cloth, cloth_mask=cloth_mask,
        parse=parse, pose=pose,
        cloth_keypoints=None if cloth_landmarks is None else cloth_landmarks.keypoints * pixels,
        worn_keypoints=None if worn_landmarks is None else worn_landmarks.keypoints * pixels,
        sleeve=None if sleeve_source is None else sleeve_source.sleeve,
        tags=() if person_landmarks is None else person_landmarks.tags)



def _read_bytes(storage: Storage, rel: str) -> bytes:
    try:
        return storage.read_bytes(rel)
    except FileNotFoundError:
        raise DatasetError(f"{storage.uri(rel)}: missing file") from None

def _read_text(storage: Storage, rel: str) -> str:
    try:
        return _read_bytes(storage, rel).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{storage.uri(rel)}: not UTF-8 text ({exc})") from None

def _read_image(storage: Storage, rel: str, decoder) -> np.ndarray:
    try:
        return decoder(_read_bytes(storage, rel), source=storage.uri(rel))
    except ImageError as exc:
        raise DatasetError(str(exc)) from exc

def _read_landmarks(storage: Storage, rel: str, listed: set[str] | None) -> Landmarks | None:
    """The landmark file ``rel``, or ``None`` if it is absent (not in ``listed`` when a listing is given)."""
    if (rel not in listed) if listed is not None else not storage.exists(rel):
        return None
    return parse_landmarks(_read_text(storage, rel), storage.uri(rel))


def parse_landmarks(text: str, source: str) -> Landmarks:
    """A landmark file's text (the format in the module docstring) as :class:`Landmarks`.

    Args:
        text: the JSON document.
        source: the file's location, for messages.

    Raises ``DatasetError`` naming ``source`` and the field that is wrong.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    size = []
    for key in ("width", "height"):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise DatasetError(f"{source}: '{key}' must be a positive number, got {value!r}")
        size.append(float(value))
    try:
        keypoints = np.asarray(doc.get("keypoints"), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{source}: 'keypoints' must be {NUM_GARMENT_NODES} [x, y] number pairs") from None
    if keypoints.shape != (NUM_GARMENT_NODES, 2) or not np.isfinite(keypoints).all():
        raise DatasetError(f"{source}: 'keypoints' must be {NUM_GARMENT_NODES} finite [x, y] pairs, "
                           f"got shape {keypoints.shape}")
    sleeve = doc.get("sleeve")
    if sleeve not in SLEEVE_TYPES:
        raise DatasetError(f"{source}: 'sleeve' must be one of {SLEEVE_TYPES}, got {sleeve!r}")
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise DatasetError(f"{source}: 'tags' must be a list of strings, got {tags!r}")
    return Landmarks((keypoints / np.array(size)).astype(np.float32), sleeve, tuple(tags))
