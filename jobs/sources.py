"""The pairs an offline job reads, as Ray Data datasets: a VITON-HD root (its pairs file, each pair read with
``read_pair``) or the Parquet shards of ``kgi convert`` (rows decoded with ``decode_row``).

A pair whose files cannot be read is left out of its batch, the reason written to ``failed/{stem}.txt`` under the
output folder (``jobs.results``), so the job goes on with the others and reports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import numpy as np
import pyarrow.parquet as pq
import ray
import ray.data

from jobs.results import InferenceError, output_stem
from kgi.data.sample import TryOnSample
from kgi.data.shards import MANIFEST as SHARD_MANIFEST
from kgi.data.shards import decode_row
from kgi.data.storage import Storage, arrow_filesystem, open_root
from kgi.data.vitonhd import DatasetError, VitonHD
from kgi.landmarks import LandmarkError, fill_garment_keypoints

# Columns that carry a TryOnSample through Ray Data (what stages 1-2 read of it).
SAMPLE_COLUMNS = ("person_name", "cloth_name", "person", "cloth", "cloth_mask", "parse", "pose", "cloth_keypoints")
IO_CPUS = 0.25  # logical CPUs of a reading, decoding or writing task: room for the heavy stages on 2 CPUs


def read_samples(readers: list[tuple[tuple[str, str], Callable[[], TryOnSample]]], out_uri: str
                 ) -> dict[str, np.ndarray]:
    """Read a batch of pairs into Ray Data columns (``SAMPLE_COLUMNS``), garment keypoints extracted where absent.

    Args:
        readers: per pair, its ``(person_name, cloth_name)`` and a function reading its sample.
        out_uri: the output folder; a pair whose files are bad is left out, the reason written to
            ``failed/{stem}.txt`` (the run reports it, a rerun retries it).
    """
    out = open_root(out_uri)
    samples = []
    for (person_name, cloth_name), read in readers:
        try:
            sample = fill_garment_keypoints(read())
        except (DatasetError, LandmarkError) as exc:
            out.write_bytes(f"failed/{output_stem(person_name, cloth_name)}.txt", str(exc).encode())
            continue
        samples.append(sample)
    if not samples:
        return {}  # an empty block: the later stages never see it
    return {name: np.stack([getattr(s, name) for s in samples]) for name in SAMPLE_COLUMNS}


def to_samples(batch: dict[str, np.ndarray]) -> list[TryOnSample]:
    """Ray Data columns (``SAMPLE_COLUMNS``) back into samples."""
    return [TryOnSample(**{name: batch[name][i] for name in SAMPLE_COLUMNS}) for i in range(len(batch["person"]))]


class Source:
    """The pairs of one split of a source and how Ray Data reads a subset of them."""

    pairs: list[tuple[str, str]]  # (person_name, cloth_name), in the source's order

    def dataset(self, todo: set[tuple[str, str]], batch_size: int, out_uri: str) -> ray.data.Dataset:
        """The ``todo`` pairs as a dataset of ``SAMPLE_COLUMNS`` (see ``read_samples`` for ``out_uri``)."""
        raise NotImplementedError


class _RootSource(Source):
    """A VITON-HD root: the pairs file, each pair read with ``VitonHD[i]`` (``read_pair``) in a CPU task."""

    def __init__(self, uri: str, split: str, mode: str, height: int):
        self.vitonhd = VitonHD(uri, split=split, mode=mode, height=height)
        self.pairs = list(self.vitonhd.pairs)

    def dataset(self, todo: set[tuple[str, str]], batch_size: int, out_uri: str) -> ray.data.Dataset:
        indices = [{"index": i} for i, pair in enumerate(self.pairs) if pair in todo]
        vitonhd = self.vitonhd

        def read(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return read_samples([(vitonhd.pairs[i], partial(vitonhd.__getitem__, i))
                                  for i in map(int, batch["index"])], out_uri)

        return (ray.data.from_items(indices, override_num_blocks=max(1, -(-len(indices) // batch_size)))
                .map_batches(read, batch_size=batch_size, num_cpus=IO_CPUS))


class _ShardSource(Source):
    """Parquet shards written by ``kgi convert`` (paired setting): rows decoded with ``decode_row``."""

    def __init__(self, uri: str, split: str, height: int, storage: Storage):
        self.height = height
        self.filesystem, base = arrow_filesystem(uri)
        manifest = json.loads(storage.read_bytes(f"{split}/{SHARD_MANIFEST}"))
        self.pairs, self.shard_pairs = [], {}  # shard path -> its pairs
        for shard in manifest["shards"]:
            path = f"{base}/{split}/{shard['file']}"
            names = pq.read_table(path, columns=["person_name", "cloth_name"], filesystem=self.filesystem)
            self.shard_pairs[path] = list(zip(names["person_name"].to_pylist(), names["cloth_name"].to_pylist()))
            self.pairs += self.shard_pairs[path]

    def dataset(self, todo: set[tuple[str, str]], batch_size: int, out_uri: str) -> ray.data.Dataset:
        height = self.height
        paths = [path for path, pairs in self.shard_pairs.items() if todo.intersection(pairs)]

        def decode(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            rows = [{key: batch[key][i] for key in batch} for i in range(len(batch["person_name"]))]
            return read_samples([((row["person_name"], row["cloth_name"]), partial(decode_row, row, height))
                                  for row in rows], out_uri)

        return (ray.data.read_parquet(paths, filesystem=self.filesystem)
                .filter(lambda row: (row["person_name"], row["cloth_name"]) in todo)
                .map_batches(decode, batch_size=batch_size, num_cpus=IO_CPUS))


def open_source(uri: str, split: str, mode: str, height: int) -> Source:
    """A VITON-HD root (``{split}_pairs.txt``) or ``kgi convert`` shards (``{split}/_manifest.json``) at ``uri``.

    Raises ``InferenceError`` when ``uri`` is neither or when shards are asked for the unpaired setting, and the
    reader's ``DatasetError`` for a bad pairs file.
    """
    storage = open_root(uri)
    if storage.exists(f"{split}/{SHARD_MANIFEST}"):
        if mode != "paired":
            raise InferenceError(f"source {storage.uri()}: Parquet shards hold the paired setting only; use the "
                                 f"VITON-HD root for mode 'unpaired'")
        return _ShardSource(uri, split, height, storage)
    if storage.exists(f"{split}_pairs.txt"):
        return _RootSource(uri, split, mode, height)
    raise InferenceError(f"source {storage.uri()}: neither a VITON-HD root (no {split}_pairs.txt) nor Parquet "
                         f"shards of kgi convert (no {split}/{SHARD_MANIFEST})")
