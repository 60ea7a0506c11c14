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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kgi.data import storage
from kgi.data.images import decode_gray, decode_labels, decode_rgb
from kgi.data.pose import parse_openpose

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


def plan(root_uri: str, out_uri: str, split: str, shard_size: int) -> list[ShardSpec]:
    """All shards of ``split``: consecutive groups of ``shard_size`` pairs."""
    names = read_pairs(storage.open_root(root_uri), split)
    return [ShardSpec(root_uri, out_uri, split, i // shard_size, tuple(names[i:i + shard_size]))
            for i in range(0, len(names), shard_size)]


def _landmarks_json(root: storage.Storage, split: str, stem: str, folder: str, extract) -> str:
    """The dataset's landmark JSON for ``stem`` if present, else the extractor's result in the same format."""
    rel = f"{split}/{folder}/{stem}.json"
    if root.exists(rel):
        return root.read_bytes(rel).decode("utf-8")
    return json.dumps(extract())


def pair_row(root: storage.Storage, split: str, person_name: str) -> dict:
    """One shard row: the pair's files as stored, landmarks extracted when the dataset has none."""
    from kgi import landmarks  # the extractor is only needed for datasets without landmark files

    stem = person_name.rsplit(".", 1)[0]
    files = {
        "image": f"{split}/image/{person_name}",
        "cloth": f"{split}/cloth/{person_name}",
        "cloth_mask": f"{split}/cloth-mask/{person_name}",
        "parse": f"{split}/image-parse-v3/{stem}.png",
    }
    row = {"person_name": person_name, "cloth_name": person_name}
    row.update({column: root.read_bytes(rel) for column, rel in files.items()})
    row["pose_json"] = root.read_bytes(f"{split}/openpose_json/{stem}_keypoints.json").decode("utf-8")

    def flat():
        cloth = decode_rgb(row["cloth"], source=root.uri(files["cloth"]))
        mask = decode_gray(row["cloth_mask"], source=root.uri(files["cloth_mask"])) >= 128
        found = landmarks.flat_garment_keypoints(cloth, mask)
        return _landmark_doc(found.keypoints, cloth.shape, found.sleeve)

    def worn():
        parse = decode_labels(row["parse"], source=root.uri(files["parse"]))
        pose = parse_openpose(row["pose_json"], source=root.uri(f"{split}/openpose_json/{stem}_keypoints.json"))
        person = decode_rgb(row["image"], source=root.uri(files["image"]))
        found = landmarks.worn_garment_keypoints(parse, pose, person)
        return _landmark_doc(found.keypoints, parse.shape, found.sleeve)

    row["cloth_landmarks_json"] = _landmarks_json(root, split, stem, "cloth-landmark-json", flat)
    row["image_landmarks_json"] = _landmarks_json(root, split, stem, "image-landmark-json", worn)
    return row


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
