"""Synthetic VITON-HD: people wearing garments, with ground-truth garment keypoints, in the dataset's layout.

No VITON-HD copy and no pretrained weights exist where this project is trained, so every model is trained and
measured on pairs drawn here. One pair (:func:`make_pair`) is made in four steps:

1. **Garment.** :func:`kgi.data.garment.sample_garment` draws its shape and look; :func:`render_cloth` paints
   the product photo: a solid, striped, checked or dotted fabric, sometimes a chest print (text or a logo),
   on a near-white background, with its silhouette mask and 32 keypoints.
2. **Person.** :func:`sample_person` draws an OpenPose BODY_25 pose (arms down, out, hands on hips, hand up,
   one forearm or both crossed in front of the torso), a body outline, skin, hair, face, a lower garment
   (pants or a skirt) and shoes, framed like VITON-HD (head at the top, hips around three quarters down).
3. **Wearing.** :func:`kgi.data.garment.worn_keypoints` places the garment on the pose; the flat photo's
   texture is carried onto the person by a *piecewise-affine* map between two triangle meshes of the garment
   (keypoints plus interior points; not thin-plate splines, which the method under test uses), then a smooth
   random fold displacement and low-frequency fold shading are applied, so the worn garment is no paste.
4. **Painting** (:func:`render_person`), back to front, into the photo and the CIHP parse map together:
   background, long hair, legs and lower garment, neck and torso skin, upper arms, the garment's torso, head,
   then each forearm and its sleeve, the arm in front last, so crossed forearms cover the torso garment.

Pair ``i`` of seed ``s`` uses only ``np.random.default_rng([s, i])`` and nothing depends on the resolution,
so any pair can be regenerated alone, at any height divisible by 4. :func:`generate` writes a whole dataset.

The steps live in their own modules: :mod:`kgi.data.synth_person` (pose and looks), :mod:`kgi.data.synth_cloth`
(product photo and the garment warp) and :mod:`kgi.data.synth_paint` (painting); this one draws pairs and
writes datasets.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import cv2
import numpy as np

from kgi.data.garment import sample_garment, with_kind
from kgi.data.images import encode_jpeg, encode_palette_png
from kgi.data.labels import CIHP_PALETTE
from kgi.data.pose import openpose_json
from kgi.data.sample import TryOnSample
from kgi.data.storage import open_root
from kgi.data.synth_cloth import render_cloth
from kgi.data.synth_paint import render_person
from kgi.data.synth_person import detected_pose, sample_person

GENERATOR_VERSION = "1.5"  # bump whenever the same (seed, index) would draw a different pair
JPEG_QUALITY = 95
GARMENT_TAG = "garment:"  # tag prefix naming the garment's kind (kgi.data.garment.GARMENT_KINDS)


class SynthError(ValueError):
    """Arguments the generator cannot use (counts, height, output folder), named in the message."""



def pair_name(index: int) -> str:
    """File name of pair ``index``'s person image and garment: ``{index:05d}_00.jpg``."""
    return f"{index:05d}_00.jpg"


def make_pair(seed: int, index: int, height: int = 256) -> TryOnSample:
    """Pair ``index`` of ``seed``: a person wearing garment ``index``, with both garments' keypoints.

    Args:
        seed: dataset seed (a non-negative integer).
        index: pair number (non-negative); the pair uses ``np.random.default_rng([seed, index])`` only.
        height: image height, divisible by 4 (width = 3 * height / 4).

    Returns a paired :class:`~kgi.data.sample.TryOnSample` whose ``pose`` is what OpenPose would report
    (some joints missing), ``cloth_keypoints``/``worn_keypoints`` the ground truth, ``tags`` the pose tags.
    """
    _check_height(height)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed: expected a non-negative integer, got {seed!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise SynthError(f"index: expected a non-negative integer, got {index!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    params = with_kind(sample_garment(rng), np.random.default_rng([int(seed), int(index), 1]))
    person = sample_person(rng, height)
    pose = detected_pose(rng, person, height, height * 3 // 4)
    cloth = render_cloth(params, rng, height)
    image, parse, worn = render_person(person, params, cloth.texture, cloth.worn_alpha, cloth.keypoints, rng, height)
    name = pair_name(index)
    return TryOnSample(person_name=name, cloth_name=name, person=image, cloth=cloth.photo,
                       cloth_mask=cloth.alpha >= 0.5, parse=parse, pose=pose, cloth_keypoints=cloth.keypoints,
                       worn_keypoints=worn,
                       sleeve=params.sleeve, tags=(*person.tags, f"{GARMENT_TAG}{params.kind}"))


def _check_height(height: int) -> None:
    if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or height < 64 or height % 4:
        raise SynthError(f"height: expected a multiple of 4 of at least 64 (width = 3 * height / 4), "
                         f"got {height!r}")


def _landmark_json(keypoints: np.ndarray, sleeve: str, height: int, width: int, tags=None) -> str:
    doc = {"width": width, "height": height, "sleeve": sleeve,
           "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in keypoints]}
    if tags is not None:
        doc["tags"] = list(tags)
    return json.dumps(doc)


def _gray_jpeg(mask: np.ndarray) -> bytes:
    """A bool mask as a single-channel 0/255 JPEG, as VITON-HD stores cloth masks."""
    ok, data = cv2.imencode(".jpg", mask.astype(np.uint8) * 255, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a cloth mask as JPEG")
    return data.tobytes()


def _pair_files(sample: TryOnSample, split: str) -> dict[str, bytes]:
    """The seven files of a pair, keyed by their path below the dataset root."""
    height, width = sample.size
    stem = PurePosixPath(sample.person_name).stem
    return {
        f"{split}/image/{sample.person_name}": encode_jpeg(sample.person, JPEG_QUALITY),
        f"{split}/cloth/{sample.cloth_name}": encode_jpeg(sample.cloth, JPEG_QUALITY),
        f"{split}/cloth-mask/{sample.cloth_name}": _gray_jpeg(sample.cloth_mask),
        f"{split}/image-parse-v3/{stem}.png": encode_palette_png(sample.parse, CIHP_PALETTE),
        f"{split}/openpose_json/{stem}_keypoints.json": openpose_json(sample.pose).encode(),
        f"{split}/cloth-landmark-json/{stem}.json":
            _landmark_json(sample.cloth_keypoints, sample.sleeve, height, width).encode(),
        f"{split}/image-landmark-json/{stem}.json":
            _landmark_json(sample.worn_keypoints, sample.sleeve, height, width, sample.tags).encode(),
    }


def unpaired_partners(seed: int, indices: list[int]) -> list[int]:
    """For each pair index, another index of ``indices`` whose garment it tries on (a random derangement).

    The indices are shuffled into one cycle and each person takes the next one's garment, so nobody keeps
    their own and every garment is tried on once.
    """
    if len(indices) < 2:
        raise SynthError(f"unpaired pairs need at least 2 test pairs, got {len(indices)}")
    cycle = np.random.default_rng([seed, 2 ** 32]).permutation(indices)  # 2**32: no pair index collides
    partner = dict(zip(cycle.tolist(), np.roll(cycle, -1).tolist()))
    return [partner[i] for i in indices]


def generate(out: str, n_train: int, n_test: int, height: int = 256, seed: int = 0, progress: bool = True
             ) -> dict:
    """Write a synthetic dataset in the VITON-HD layout (plus landmark JSON) under ``out``.

    Train pairs are numbered ``0 .. n_train-1`` and test pairs continue from ``n_train``. Each pair's seven
    files are written first; ``train_pairs.txt`` (paired lines), ``test_pairs.txt`` (unpaired: each test
    person with another test garment) and ``synth.json`` last, so an interrupted run leaves no pairs file
    naming a missing file.

    Args:
        out: an empty or missing folder, or ``s3://bucket/prefix`` (see :mod:`kgi.data.storage`).
        n_train: train pairs, at least 1.
        n_test: test pairs, at least 2 (unpaired lines need another garment).
        height: image height, a multiple of 4 (width = 3 * height / 4).
        seed: dataset seed; pair ``i`` depends only on ``(seed, i)``.
        progress: show a tqdm progress bar.

    Returns the ``synth.json`` summary. Raises ``SynthError`` for bad arguments or a non-empty ``out``.
    """
    for name, value, least in (("n_train", n_train, 1), ("n_test", n_test, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise SynthError(f"{name}: expected an integer of at least {least}, got {value!r}")
    _check_height(height)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed: expected a non-negative integer, got {seed!r}")
    storage = open_root(out)
    existing = storage.list()
    if existing:
        raise SynthError(f"{storage.uri()}: not empty ({len(existing)} files, e.g. {existing[0]}); "
                         f"choose a new folder")
    from tqdm.auto import tqdm

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # images this small gain nothing from OpenCV's threads, and lose on a busy machine
    try:
        return _write(storage, n_train, n_test, height, seed, progress, tqdm)
    finally:
        cv2.setNumThreads(threads)


def _write(storage, n_train: int, n_test: int, height: int, seed: int, progress: bool, tqdm) -> dict:
    splits = {"train": list(range(n_train)), "test": list(range(n_train, n_train + n_test))}
    counts = {"train": 0, "test": 0}
    tags_seen: dict[str, int] = {}
    with tqdm(total=n_train + n_test, desc="kgi synth", unit="pair", disable=not progress) as bar:
        for split, indices in splits.items():
            for index in indices:
                sample = make_pair(seed, index, height)
                for rel, data in _pair_files(sample, split).items():
                    storage.write_bytes(rel, data)
                counts[split] += 1
                for tag in sample.tags:
                    tags_seen[tag] = tags_seen.get(tag, 0) + 1
                bar.update(1)
    train_lines = [f"{pair_name(i)} {pair_name(i)}\n" for i in splits["train"]]
    partners = unpaired_partners(seed, splits["test"])
    test_lines = [f"{pair_name(i)} {pair_name(j)}\n" for i, j in zip(splits["test"], partners)]
    summary = {"generator": "kgi.data.synth", "version": GENERATOR_VERSION, "seed": int(seed),
               "height": int(height), "width": int(height) * 3 // 4, "train_pairs": counts["train"],
               "test_pairs": counts["test"], "tags": dict(sorted(tags_seen.items()))}
    storage.write_bytes("train_pairs.txt", "".join(train_lines).encode())
    storage.write_bytes("test_pairs.txt", "".join(test_lines).encode())
    storage.write_bytes("synth.json", json.dumps(summary, indent=2).encode())
    return summary
