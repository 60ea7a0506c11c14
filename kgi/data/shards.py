"""The shard format: what ``kgi convert`` writes and training, ``kgi infer`` and ``kgi convert --check`` read.

Layout under a shard root (local or ``s3://``)::

    {split}/part-00000.parquet ...   one row per (person, own garment) pair (:data:`SCHEMA`), paired setting
    {split}/_manifest.json           the shard list and row counts (:data:`MANIFEST`), written last

A row holds the dataset's files as stored (JPEG/PNG bytes, OpenPose JSON, landmark JSON) so no pixel is
re-encoded (:func:`pair_row`). Garment landmarks come from the dataset's ``cloth-landmark-json`` /
``image-landmark-json`` when present, else from ``kgi.landmarks``. A row is read back as a ``TryOnSample`` through
the VITON-HD reader's code and checks (:func:`decode_row`).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.dataset
import pyarrow.fs

from kgi.data import storage
from kgi.data.sample import TryOnSample
from kgi.data.storage import MemoryStorage, arrow_filesystem
from kgi.data.vitonhd import DatasetError, parse_landmarks, read_pair

SCHEMA = pa.schema([
    ("person_name", pa.string()),
    ("cloth_name", pa.string()),
    ("image", pa.binary()),
    ("cloth", pa.binary()),
    ("cloth_mask", pa.binary()),
    ("parse", pa.binary()),
    ("pose_json", pa.string()),
    ("cloth_landmarks_json", pa.string()),
    ("image_landmarks_json", pa.string()),
])
MANIFEST = "_manifest.json"


def read_pairs(root: storage.Storage, split: str) -> list[str]:
    """Person file names of ``split`` in the pairs file's order (the paired setting: each with its own garment)."""
    text = root.read_bytes(f"{split}_pairs.txt").decode("utf-8")
    names = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        columns = line.split()
        if len(columns) != 2:
            raise ValueError(f"{root.uri(f'{split}_pairs.txt')} line {line_no}: expected 2 names, got {len(columns)}")
        names.append(columns[0])
    return names


def count_rows(data: str, split: str = "train") -> int:
    """Rows in ``split`` of the shards at ``data`` (local or s3://), from the Parquet footers (no row is read).

    Raises:
        DatasetError: when ``data`` has no such split, or the split has no rows.
    """
    filesystem, path = arrow_filesystem(data)
    filesystem = filesystem or pyarrow.fs.LocalFileSystem()
    folder = f"{path}/{split}"
    if filesystem.get_file_info(folder).type != pyarrow.fs.FileType.Directory:
        raise DatasetError(f"{data} has no {split} split ({data.rstrip('/')}/{split}): convert one with "
                        f"'kgi convert ROOT --out {data} --splits {split}'")
    files = [info.path for info in filesystem.get_file_info(pyarrow.fs.FileSelector(folder))
             if info.path.endswith(".parquet")]
    rows = pyarrow.dataset.dataset(files, filesystem=filesystem, format="parquet").count_rows() if files else 0
    if rows == 0:
        raise DatasetError(f"the {split} split of {data} has no rows ({len(files)} shard files): rerun 'kgi convert'")
    return rows


def pair_row(root: storage.Storage, split: str, person_name: str) -> dict:
    """One shard row: the pair's files as stored, with the garment landmarks of both garments.

    Every file is read and decoded once here, with the checks of the VITON-HD reader (``read_pair``), so a pair
    that training could not use fails the conversion, named, instead of a training run hours later. Landmarks come
    from the dataset's landmark files when present, else from ``kgi.landmarks``. The worn garment of a pair is
    the paired flat garment, so what only the flat photo shows (the sleeve kind) is taken from the flat
    garment's landmarks when the worn garment's have none.

    Raises:
        DatasetError: naming the file of ``person_name`` that is missing, undecodable or inconsistent, or whose
            landmarks cannot be found.
    """
    stem = PurePosixPath(person_name).stem
    files = {
        "image": f"{split}/image/{person_name}",
        "cloth": f"{split}/cloth/{person_name}",
        "cloth_mask": f"{split}/cloth-mask/{person_name}",
        "parse": f"{split}/image-parse-v3/{stem}.png",
    }
    pose_rel = f"{split}/openpose_json/{stem}_keypoints.json"
    sample = read_pair(root, split, person_name, person_name, landmark_files=set())  # validates every file
    row = {"person_name": person_name, "cloth_name": person_name}
    row.update({column: root.read_bytes(rel) for column, rel in files.items()})
    row["pose_json"] = root.read_bytes(pose_rel).decode("utf-8")
    cloth_doc, worn_doc = garment_landmarks(root, split, person_name, sample)
    row["cloth_landmarks_json"] = json.dumps(cloth_doc)
    row["image_landmarks_json"] = json.dumps(worn_doc)
    return row


def garment_landmarks(root: storage.Storage, split: str, person_name: str, sample) -> tuple[dict, dict]:
    """The landmark documents of a pair's flat garment and of the garment its person wears, as a shard stores
    them: the dataset's files when present, else extracted from ``sample`` (the pair at its stored size: anything
    with a ``TryOnSample``'s ``cloth``, ``cloth_mask``, ``parse`` and ``pose``);
    the worn garment's sleeve kind, when unknown, is the flat one's (the paired garment is the worn one).

    Raises:
        DatasetError: naming the file when a document is malformed or no landmarks can be found.
    """
    stem = PurePosixPath(person_name).stem
    cloth_doc, cloth_source = _landmarks(root, f"{split}/cloth-landmark-json/{stem}.json",
                                         f"{split}/cloth/{person_name}", _flat_landmarks, sample)
    worn_doc, worn_source = _landmarks(root, f"{split}/image-landmark-json/{stem}.json",
                                       f"{split}/image-parse-v3/{stem}.png", _worn_landmarks, sample)
    if worn_doc.get("sleeve") is None:
        worn_doc["sleeve"] = cloth_doc.get("sleeve")
    parse_landmarks(json.dumps(cloth_doc), cloth_source)  # what training reads: checked the same way
    parse_landmarks(json.dumps(worn_doc), worn_source)
    return cloth_doc, worn_doc


def _landmarks(root: storage.Storage, rel: str, image_rel: str, extract, sample) -> tuple[dict, str]:
    """The landmark document at ``rel`` if the dataset has it, else ``extract(sample)``'s, with where it came
    from (for messages)."""
    if not root.exists(rel):
        return _extracted(root.uri(image_rel), extract, sample), f"landmarks extracted from {root.uri(image_rel)}"
    try:
        doc = json.loads(root.read_bytes(rel).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{root.uri(rel)}: not a JSON landmark file ({exc})") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{root.uri(rel)}: expected a JSON object, got {type(doc).__name__}")
    return doc, root.uri(rel)


def _extracted(source: str, extract, sample) -> dict:
    """``extract(sample)``, a landmark document; a garment without findable landmarks as a ``DatasetError``."""
    from kgi.landmarks import LandmarkError

    try:
        return extract(sample)
    except LandmarkError as exc:
        raise DatasetError(f"{source}: no garment landmarks can be found ({exc})") from None


def _flat_landmarks(sample) -> dict:
    from kgi import landmarks

    found = landmarks.flat_garment_keypoints(sample.cloth, sample.cloth_mask)
    return _landmark_doc(found.keypoints, sample.cloth.shape, found.sleeve)


def _worn_landmarks(sample) -> dict:
    from kgi import landmarks

    found = landmarks.worn_garment_keypoints(sample.parse, sample.pose, sample.person)
    return _landmark_doc(found.keypoints, sample.parse.shape, found.sleeve)


def _landmark_doc(keypoints: np.ndarray, shape: tuple[int, ...], sleeve: str | None) -> dict:
    return {"width": int(shape[1]), "height": int(shape[0]), "sleeve": sleeve,
            "keypoints": np.asarray(keypoints, dtype=float).round(2).tolist()}


def decode_row(row: dict, height: int | None) -> TryOnSample:
    """A shard row as a ``TryOnSample``, through the VITON-HD reader's code (and its checks)."""
    return read_pair(row_storage(row), "train", row["person_name"], row["cloth_name"], mode="paired",
                     height=height)


def row_storage(row: dict) -> MemoryStorage:
    """A shard row's files laid out as a VITON-HD ``train`` split, so the dataset's readers and checks apply."""
    stem = row["person_name"].rsplit(".", 1)[0]
    files = {
        f"train/image/{row['person_name']}": row["image"],
        f"train/cloth/{row['cloth_name']}": row["cloth"],
        f"train/cloth-mask/{row['cloth_name']}": row["cloth_mask"],
        f"train/image-parse-v3/{stem}.png": row["parse"],
        f"train/openpose_json/{stem}_keypoints.json": row["pose_json"].encode(),
        f"train/cloth-landmark-json/{stem}.json": row["cloth_landmarks_json"].encode(),
        f"train/image-landmark-json/{stem}.json": row["image_landmarks_json"].encode(),
    }
    return MemoryStorage(files, name=row_source(row))


def row_source(row: dict) -> str:
    """How messages name a row: its shard file (when the batch says) and its pair."""
    shard = row.get("path")
    return f"{shard} [pair {row['person_name']}]" if shard else f"shard row {row['person_name']}"

