"""Offline batch inference: the three try-on stages over a whole dataset with Ray Data.

``run_inference`` streams every pair of a split through the same ``TryOnPipeline`` stage methods the Serve
deployments use, as a Ray Data pipeline::

    read pairs          CPU tasks: a VITON-HD root (pairs file -> read_pair) or Parquet shards (decode_row)
    KeypointsParseWarp  CPU actor pool: stages 1 and 2, one TryOnPipeline per actor, loaded once
    Inpaint             actor pool: stage 3, one GPU per actor when the cluster has GPUs, otherwise on the CPU
    write_results       CPU tasks: the PNG and the record of each pair; paired-setting scores

Layout written under ``out`` (a local folder or ``s3://bucket/prefix``, through ``kgi.data.storage``)::

    settings.json                       what the folder holds: source, split, mode, height, version, sampler
    images/{person}__{cloth}.png        each pair's try-on (file stems of the pair's two names)
    records/{person}__{cloth}.json      its seed, seconds, UNet evaluations and paired scores; written after the PNG
    failed/{person}__{cloth}.txt        why the last attempt could not read the pair (bad or missing files)
    manifest.csv                        pair -> file, version, seed, seconds, scores or error, for the run's pairs
    metrics.md, metrics.json            paired setting: ``kgi.evaluation.tryon_table`` over the run's pairs

Every file is written atomically. A pair is done when its record exists, so a rerun (after a crash, with a
larger ``limit``, or after fixing the files of failed pairs) skips the done pairs and rebuilds the manifest and the
metrics over all pairs of the run; a rerun into a folder holding another setting (version, sampler, resolution, ...)
is refused instead of mixing results. A pair whose files cannot be read fails alone: the others go on.
Each pair's seed comes from its names (``pair_seed``): a pair gives the same image whatever its order, ``limit``
or source format (a root or its shards), up to a grey level of float rounding between batch sizes.

Example::

    >>> summary = run_inference("data/synth", "s3://results/synth-test", "models/default", steps=25)
    >>> summary.line()
    '400 pairs: 400 inferred, 0 already done, 31.2 s (12.8 pairs/s) -> s3://results/synth-test'
"""

from __future__ import annotations

import csv
import io
import json
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.parquet as pq
import ray
import ray.data
import torch

from kgi.data.images import encode_png
from kgi.data.sample import TryOnSample
from kgi.data.storage import Storage, open_root
from kgi.data.vitonhd import MODES, SPLITS, DatasetError, VitonHD
from kgi.evaluation import TRYON_METRICS, paired_scores, plain_fills, tryon_table
from kgi.landmarks import LandmarkError, fill_garment_keypoints
from kgi.metrics import mean_and_standard_error
from kgi.pipeline import SamplerSettings, StageTwoOutput, TryOnPipeline, to_uint8_images
from kgi.runtime import configure_inference_process
from kgi.sampling import count_unet_evaluations
from kgi.data.storage import arrow_filesystem
from kgi.data.shards import MANIFEST as SHARD_MANIFEST
from kgi.data.shards import decode_row

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.csv"
KGI_ROW = "KGI (ours)"  # the try-on's row in the metrics table, beside the plain fills of the same holes
# Columns that carry a TryOnSample through Ray Data (what stages 1-2 read of it).
SAMPLE_COLUMNS = ("person_name", "cloth_name", "person", "cloth", "cloth_mask", "parse", "pose", "cloth_keypoints")
# Logical CPUs per task or actor: the light stages leave room for the heavy ones even on a 2-CPU machine.
IO_CPUS = 0.25  # reading, decoding and writing tasks
PARSE_WARP_CPUS = 0.5
INPAINT_CPUS = 1  # when the inpainter runs on the CPU


class InferenceError(ValueError):
    """A source, output folder or setting batch inference cannot use; the message names it."""


@dataclass(frozen=True)
class InferenceSettings:
    """What an output folder holds (its ``settings.json``); a rerun must match it."""

    source: str
    split: str
    mode: str
    height: int
    version: str
    sampler: dict


@dataclass
class InferenceSummary:
    """What ``run_inference`` did.

    Attributes:
        out: the output folder's URI.
        pairs: pairs of this run (after ``limit``).
        inferred: pairs inferred by this run.
        skipped: pairs already done by an earlier run into ``out``.
        failed: ``(person_name, cloth_name)`` -> why the pair could not be read (bad or missing files).
        seconds: wall time of this run.
        metrics: the paired-setting figures written to ``metrics.json`` (None in the unpaired setting).
    """

    out: str
    pairs: int
    inferred: int
    skipped: int
    failed: dict[tuple[str, str], str]
    seconds: float
    metrics: dict | None

    def line(self) -> str:
        """A one-line summary for the console."""
        rate = f" ({self.inferred / self.seconds:.2f} pairs/s)" if self.inferred else ""
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (f"{self.pairs} pairs: {self.inferred} inferred, {self.skipped} already done{failed}, "
                f"{self.seconds:.1f} s{rate} -> {self.out}")


def output_stem(person_name: str, cloth_name: str) -> str:
    """The file stem of a pair's outputs: ``00006_00.jpg`` with ``06396_00.jpg`` -> ``00006_00__06396_00``."""
    return f"{PurePosixPath(person_name).stem}__{PurePosixPath(cloth_name).stem}"


def pair_seed(person_name: str, cloth_name: str) -> int:
    """The sampler seed of a pair: a CRC-32 of its two names, the same on every run and machine."""
    return zlib.crc32(f"{person_name} {cloth_name}".encode())


# --- reading --------------------------------------------------------------------------------------------------


def _read_samples(readers: list[tuple[tuple[str, str], Callable[[], TryOnSample]]], out_uri: str
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


def _samples(batch: dict[str, np.ndarray]) -> list[TryOnSample]:
    """Ray Data columns (``SAMPLE_COLUMNS``) back into samples."""
    return [TryOnSample(**{name: batch[name][i] for name in SAMPLE_COLUMNS}) for i in range(len(batch["person"]))]


class _Source:
    """The pairs of one split of a source and how Ray Data reads a subset of them."""

    pairs: list[tuple[str, str]]  # (person_name, cloth_name), in the source's order

    def dataset(self, todo: set[tuple[str, str]], batch_size: int, out_uri: str) -> ray.data.Dataset:
        """The ``todo`` pairs as a dataset of ``SAMPLE_COLUMNS`` (see ``_read_samples`` for ``out_uri``)."""
        raise NotImplementedError


class _RootSource(_Source):
    """A VITON-HD root: the pairs file, each pair read with ``VitonHD[i]`` (``read_pair``) in a CPU task."""

    def __init__(self, uri: str, split: str, mode: str, height: int):
        self.vitonhd = VitonHD(uri, split=split, mode=mode, height=height)
        self.pairs = list(self.vitonhd.pairs)

    def dataset(self, todo: set[tuple[str, str]], batch_size: int, out_uri: str) -> ray.data.Dataset:
        indices = [{"index": i} for i, pair in enumerate(self.pairs) if pair in todo]
        vitonhd = self.vitonhd

        def read(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return _read_samples([(vitonhd.pairs[i], partial(vitonhd.__getitem__, i))
                                  for i in map(int, batch["index"])], out_uri)

        return (ray.data.from_items(indices, override_num_blocks=max(1, -(-len(indices) // batch_size)))
                .map_batches(read, batch_size=batch_size, num_cpus=IO_CPUS))


class _ShardSource(_Source):
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
            return _read_samples([((row["person_name"], row["cloth_name"]), partial(decode_row, row, height))
                                  for row in rows], out_uri)

        return (ray.data.read_parquet(paths, filesystem=self.filesystem)
                .filter(lambda row: (row["person_name"], row["cloth_name"]) in todo)
                .map_batches(decode, batch_size=batch_size, num_cpus=IO_CPUS))


def open_source(uri: str, split: str, mode: str, height: int) -> _Source:
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


# --- the model stages -----------------------------------------------------------------------------------------


class KeypointsParseWarp:
    """Stages 1 and 2 (CPU actor): garment keypoints on the person, target parse, warp and recomposition.

    Args:
        version_dir: the model version folder, loaded once per actor.
    """

    def __init__(self, version_dir: str):
        configure_inference_process(None)
        self.pipeline = TryOnPipeline.from_pretrained(version_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``SAMPLE_COLUMNS`` -> names, person, the ``StageTwoOutput`` fields and ``parse_warp_s`` per row."""
        start = time.perf_counter()
        samples = _samples(batch)
        height, width = samples[0].size
        garment_kp = self.pipeline.predict_keypoints(np.stack([s.cloth_keypoints / [width, height] for s in samples]),
                                                     np.stack([s.pose_nodes for s in samples]))
        stage_two = self.pipeline.parse_and_warp(samples, garment_kp)
        seconds = (time.perf_counter() - start) / len(samples)
        return {"person_name": batch["person_name"], "cloth_name": batch["cloth_name"], "person": batch["person"],
                **{f.name: getattr(stage_two, f.name).cpu().numpy() for f in fields(StageTwoOutput)},
                "parse_warp_s": np.full(len(samples), seconds)}


class Inpaint:
    """Stage 3 (GPU or CPU actor): keep-mask inpainting of stage 2's outputs, one seed per pair (``pair_seed``).

    Args:
        version_dir: the model version folder, loaded once per actor.
        device: "cuda" (the actor holds a GPU) or "cpu".
        sampler: the sampler settings (the version's, with the run's overrides).
    """

    def __init__(self, version_dir: str, device: str, sampler: SamplerSettings):
        configure_inference_process(None)
        self.pipeline = TryOnPipeline.from_pretrained(version_dir, device=device)
        self.sampler = sampler

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stage 2's columns -> names, person, try-on ``image``, uint8 ``recomposed``, ``keep_mask``, seconds."""
        start = time.perf_counter()
        device = self.pipeline.device
        # torch.tensor copies: Ray Data hands over read-only views.
        stage_two = StageTwoOutput(*(torch.tensor(batch[f.name], device=device) for f in fields(StageTwoOutput)))
        seeds = [pair_seed(p, c) for p, c in zip(batch["person_name"], batch["cloth_name"])]
        images, evaluations = self.pipeline.inpaint(stage_two, seeds, self.sampler)
        seconds = (time.perf_counter() - start) / len(seeds)
        return {"person_name": batch["person_name"], "cloth_name": batch["cloth_name"], "person": batch["person"],
                "image": to_uint8_images(images), "recomposed": to_uint8_images(stage_two.recomposed),
                "keep_mask": stage_two.keep_mask[:, 0].bool().cpu().numpy(),
                "seconds": batch["parse_warp_s"] + seconds, "unet_evaluations": np.full(len(seeds), evaluations)}


def write_results(batch: dict[str, np.ndarray], out_uri: str, version: str, paired: bool, inpaint_height: int
                  ) -> dict[str, np.ndarray]:
    """Write each pair's PNG, then its record (the mark that the pair is done); returns the records as JSON.

    Args:
        batch: the ``Inpaint`` stage's columns.
        out_uri: the output folder.
        version: the model version's name, recorded with each pair.
        paired: score each try-on (and the plain fills of the same holes) against the person photo.
        inpaint_height: the version's inpainter resolution (for the plain fill made at it).
    """
    out = open_root(out_uri)
    records = []
    for i, (person_name, cloth_name) in enumerate(zip(batch["person_name"], batch["cloth_name"])):
        stem = output_stem(person_name, cloth_name)
        out.write_bytes(f"images/{stem}.png", encode_png(batch["image"][i]))
        record = {"person_name": str(person_name), "cloth_name": str(cloth_name), "file": f"images/{stem}.png",
                  "version": version, "seed": pair_seed(person_name, cloth_name),
                  "seconds": round(float(batch["seconds"][i]), 4),
                  "unet_evaluations": int(batch["unet_evaluations"][i])}
        if paired:
            candidates = {KGI_ROW: batch["image"][i],
                          **plain_fills(batch["recomposed"][i], batch["keep_mask"][i], inpaint_height)}
            record["scores"] = {name: paired_scores(image, batch["person"][i], batch["keep_mask"][i])
                                for name, image in candidates.items()}
        text = json.dumps(record)
        out.write_bytes(f"records/{stem}.json", text.encode())
        records.append(text)
    return {"record": np.array(records, dtype=object)}


# --- the run --------------------------------------------------------------------------------------------------


def run_inference(source: str, out: str, version_dir: str | Path, *, split: str = "test", mode: str = "paired",
                  height: int = 256, limit: int | None = None, steps: int | None = None, batch_size: int = 4,
                  parse_warp_actors: int = 1) -> InferenceSummary:
    """Try on every pair of a split of ``source`` and write the results under ``out`` (see the module docstring).

    Runs on the Ray cluster this process is connected to (``ray.init`` first).

    Args:
        source: a VITON-HD root or ``kgi convert`` shards, local or ``s3://``.
        out: the output folder, local or ``s3://``; a rerun into it skips the pairs already done.
        version_dir: the model version folder (``TryOnPipeline.from_pretrained``).
        split: ``"train"`` or ``"test"``.
        mode: ``"paired"`` (each person with their own garment; scored against the photo) or ``"unpaired"``
            (the pairs file's garments; not scored). Shards hold the paired setting only.
        height: working resolution ``height x 3*height/4`` (a multiple of 4, at least 64); the PNGs' size.
        limit: only the first ``limit`` pairs of the split.
        steps: sampler steps (default: the version's).
        batch_size: pairs per model call in each stage.
        parse_warp_actors: actors of the CPU stage (keypoints, parse, warp); the inpainting pool has one actor per
            GPU of the cluster, or one CPU actor when it has none.

    Returns an :class:`InferenceSummary`. Raises ``InferenceError`` (or the reader's ``DatasetError``, both
    ``ValueError``) for a bad source, argument or output folder, and ``FileNotFoundError`` for a folder that is
    not a model version.
    """
    started = time.perf_counter()
    if split not in SPLITS:
        raise InferenceError(f"split: expected one of {SPLITS}, got {split!r}")
    if mode not in MODES:
        raise InferenceError(f"mode: expected one of {MODES}, got {mode!r}")
    for name, value, least in (("height", height, 64), ("batch_size", batch_size, 1), ("limit", limit, 1),
                               ("steps", steps, 1), ("parse_warp_actors", parse_warp_actors, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise InferenceError(f"{name}: expected an integer of at least {least}, got {value!r}")
    if height % 4:
        raise InferenceError(f"height: expected a multiple of 4 (width = 3*height/4), got {height}")
    version_dir = str(Path(version_dir).expanduser().absolute())
    info = TryOnPipeline.from_pretrained(version_dir).info  # a bad folder fails here, not in every actor
    sampler = replace(info.sampler, num_steps=steps or info.sampler.num_steps)
    count_unet_evaluations(sampler.num_steps, sampler.jump_length, sampler.jump_n_sample)  # validates the jumps

    data = open_source(source, split, mode, height)
    pairs = list(dict.fromkeys(data.pairs))[:limit]  # first occurrences, in order
    storage = open_root(out)
    _claim(storage, InferenceSettings(source, split, mode, height, info.name, asdict(sampler)))
    done = set(storage.list("records"))
    todo = {pair for pair in pairs if f"records/{output_stem(*pair)}.json" not in done}

    records = {}
    if todo:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        inpaint_resources = {"num_gpus": 1} if gpus else {"num_cpus": INPAINT_CPUS}
        results = (data.dataset(todo, batch_size, storage.uri())
                   .map_batches(KeypointsParseWarp, fn_constructor_args=(version_dir,), batch_size=batch_size,
                                compute=ray.data.ActorPoolStrategy(size=parse_warp_actors), num_cpus=PARSE_WARP_CPUS)
                   .map_batches(Inpaint, fn_constructor_args=(version_dir, "cuda" if gpus else "cpu", sampler),
                                batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=max(1, gpus)),
                                **inpaint_resources)
                   .map_batches(write_results, batch_size=batch_size, num_cpus=IO_CPUS,
                                fn_args=(storage.uri(), info.name, mode == "paired", info.inpaint_height)))
        for row in results.iter_rows():
            record = json.loads(row["record"])
            records[(record["person_name"], record["cloth_name"])] = record
    failed = {}
    for pair in pairs:
        if pair not in todo:
            records[pair] = json.loads(storage.read_bytes(f"records/{output_stem(*pair)}.json"))
        elif pair not in records:  # left out by the reading stage, which wrote why
            failed[pair] = storage.read_bytes(f"failed/{output_stem(*pair)}.txt").decode()
    storage.write_bytes(MANIFEST_FILE, _manifest_csv(pairs, records, failed, paired=mode == "paired"))
    done_records = [records[pair] for pair in pairs if pair in records]
    metrics = _write_metrics(storage, done_records, source, split) if mode == "paired" and done_records else None
    return InferenceSummary(storage.uri(), len(pairs), len(todo) - len(failed), len(pairs) - len(todo), failed,
                            time.perf_counter() - started, metrics)


def _claim(storage: Storage, settings: InferenceSettings) -> None:
    """Write ``settings.json`` into a new output folder, or check that an existing one holds the same setting."""
    wanted = asdict(settings)
    if storage.exists(SETTINGS_FILE):
        held = json.loads(storage.read_bytes(SETTINGS_FILE))
        differing = sorted(key for key in wanted if held.get(key) != wanted[key])
        if differing:
            details = "; ".join(f"{key}: {held.get(key)!r} there, {wanted[key]!r} now" for key in differing)
            raise InferenceError(f"out {storage.uri()}: holds results of another setting ({details}); "
                                 f"choose another output folder")
    elif storage.list():
        raise InferenceError(f"out {storage.uri()}: not empty and not a batch-inference output (no "
                             f"{SETTINGS_FILE}); choose another output folder")
    else:
        storage.write_bytes(SETTINGS_FILE, json.dumps(wanted, indent=1).encode())


def _manifest_csv(pairs: list[tuple[str, str]], records: dict, failed: dict, paired: bool) -> bytes:
    """One CSV line per pair: names, file, version, seed, seconds, UNet evaluations, the try-on's scores (paired),
    or, for a pair that could not be read, only its names and the error."""
    columns = ["person_name", "cloth_name", "file", "version", "seed", "seconds", "unet_evaluations"]
    metrics = TRYON_METRICS if paired else []
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns + metrics + ["error"])
    for pair in pairs:
        if pair in failed:
            writer.writerow([*pair] + [""] * (len(columns) - 2 + len(metrics)) + [failed[pair]])
            continue
        record = records[pair]
        scores = record["scores"][KGI_ROW] if paired else {}
        writer.writerow([record[c] for c in columns] + [scores.get(m, "") for m in metrics] + [""])
    return text.getvalue().encode()


def _write_metrics(storage: Storage, records: list[dict], source: str, split: str) -> dict:
    """``metrics.md`` (the try-on table) and ``metrics.json`` (mean, s.e. and n per method and metric)."""
    scores = defaultdict(lambda: defaultdict(list))  # method -> metric -> per-pair values
    for record in records:
        for method, values in record["scores"].items():
            for metric, value in values.items():
                scores[method][metric].append(value)
    evaluations = records[0]["unet_evaluations"]
    figures = {"source": source, "split": split, "pairs": len(records), "version": records[0]["version"],
               "unet_evaluations": evaluations, "methods": {}}
    for method, values in scores.items():
        figures["methods"][method] = {}
        for metric in (m for m in TRYON_METRICS if values[m]):  # nothing inpainted anywhere: no region scores
            mean, standard_error = mean_and_standard_error(torch.tensor(values[metric]))
            figures["methods"][method][metric] = {"mean": mean, "se": standard_error, "n": len(values[metric])}
    title = f"# kgi infer: {source} ({split}, paired, {len(records)} pairs, version {records[0]['version']})\n\n"
    storage.write_bytes("metrics.md", (title + tryon_table(scores, evaluations).markdown()).encode())
    storage.write_bytes("metrics.json", json.dumps(figures, indent=1).encode())
    return figures
