"""``kgi convert``: a VITON-HD root (local or s3://) into Parquet shards, written in parallel with Ray Data.

The format (layout, schema, rows) is ``kgi.data.shards``'s; decoding, resizing and augmentation happen in the
training jobs' Ray Data stages. Each shard is built in memory, verified by reading its Parquet footer back, then
published with one atomic write (``kgi.data.storage``), so a crash or an S3 outage never leaves a half-written shard
visible, and a rerun skips the shards that exist.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from kgi.data import storage
from kgi.data.shards import MANIFEST, SCHEMA, pair_row, read_pairs


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


def plan(root_uri: str, out_uri: str, split: str, shard_size: int) -> list[ShardSpec]:
    """All shards of ``split``: consecutive groups of ``shard_size`` pairs."""
    names = read_pairs(storage.open_root(root_uri), split)
    return [ShardSpec(root_uri, out_uri, split, i // shard_size, tuple(names[i:i + shard_size]))
            for i in range(0, len(names), shard_size)]


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
