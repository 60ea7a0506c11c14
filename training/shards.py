"""``kgi convert``: a VITON-HD root (local or s3://) into Parquet shards, written in parallel with Ray Data.

Layout written under ``OUT``::

    OUT/{split}/part-00000.parquet ...   one row per (person, own garment) pair, paired setting
    OUT/{split}/_manifest.json           the shard list and row counts, written last

A row holds the dataset's files as stored (JPEG/PNG bytes, OpenPose JSON, landmark JSON) so no pixel is
re-encoded; decoding, resizing and augmentation happen in the training jobs' Ray Data stages. Garment landmarks
come from the dataset's ``cloth-landmark-json`` / ``image-landmark-json`` when present, else from
``kgi.landmarks``. Each shard is built in memory, verified by reading its Parquet footer back, then published with
one atomic write (local: temp file + rename; S3: a single PUT), so a crash or an S3 outage never leaves a
half-written shard visible, and a rerun skips the shards that exist.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.dataset
import pyarrow.fs
import pyarrow.parquet as pq

from kgi.data import storage
from kgi.data.vitonhd import DatasetError, parse_landmarks, read_pair
from kgi.data.storage import arrow_filesystem

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


@dataclass(frozen=True)
class ShardSpec:
    """One shard to write: which pairs of which split, and where."""

    root: str
    out: str
    split: str
    index: int
    person_names: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.split}/part-{self.index:05d}.parquet"


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


def plan(root_uri: str, out_uri: str, split: str, shard_size: int) -> list[ShardSpec]:
    """All shards of ``split``: consecutive groups of ``shard_size`` pairs."""
    names = read_pairs(storage.open_root(root_uri), split)
    return [ShardSpec(root_uri, out_uri, split, i // shard_size, tuple(names[i:i + shard_size]))
            for i in range(0, len(names), shard_size)]


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


def write_shard(spec: ShardSpec) -> dict:
    """Build, verify and atomically publish one shard; skip it if it is already there. Returns a summary."""
    out = storage.open_root(spec.out)
    if out.exists(spec.name):
        return {"shard": spec.name, "rows": len(spec.person_names), "written": False}
    root = storage.open_root(spec.root)
    table = pa.Table.from_pylist([pair_row(root, spec.split, name) for name in spec.person_names], schema=SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    data = buffer.getvalue()
    if pq.read_metadata(pa.BufferReader(data)).num_rows != table.num_rows:  # verify before publishing
        raise RuntimeError(f"{out.uri(spec.name)}: shard failed verification")
    out.write_bytes(spec.name, data)
    return {"shard": spec.name, "rows": table.num_rows, "written": True}


def convert(root_uri: str, out_uri: str, *, shard_size: int = 256, splits: tuple[str, ...] = ("train", "test"),
            ) -> list[dict]:
    """Convert ``splits`` of a VITON-HD root into shards under ``out_uri`` with Ray Data (one task per shard).

    Args:
        root_uri: VITON-HD root, a local folder or ``s3://bucket/prefix``.
        out_uri: where the shards go, local or ``s3://``.
        shard_size: pairs per shard.
        splits: which splits to convert; a split without a pairs file is an error.

    Returns one summary per shard (``written`` False for shards that already existed). The manifest of each
    split is written after all its shards.
    """
    import ray

    specs = [spec for split in splits for spec in plan(root_uri, out_uri, split, shard_size)]
    if not specs:
        return []
    results = (ray.data.from_items([{"spec": asdict(s)} for s in specs], override_num_blocks=len(specs))
               .map(lambda item: write_shard(_spec(item["spec"])), num_cpus=0.5)
               .take_all())
    out = storage.open_root(out_uri)
    for split in splits:
        shards = sorted((r for r in results if r["shard"].startswith(f"{split}/")), key=lambda r: r["shard"])
        manifest = {"split": split, "rows": sum(r["rows"] for r in shards),
                    "shards": [{"file": r["shard"].split("/", 1)[1], "rows": r["rows"]} for r in shards]}
        out.write_bytes(f"{split}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
    return sorted(results, key=lambda r: r["shard"])


def _spec(fields: dict) -> ShardSpec:
    return ShardSpec(**{**fields, "person_names": tuple(fields["person_names"])})
