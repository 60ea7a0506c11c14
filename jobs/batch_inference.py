"""Offline batch inference: the three try-on stages over a whole dataset with Ray Data.

``run_inference`` streams every pair of a split through the same ``TryOnPipeline`` stage methods the Serve
deployments use, as a Ray Data pipeline::

    read pairs          CPU tasks: a VITON-HD root (pairs file -> read_pair) or Parquet shards (decode_row)
    KeypointsParseWarp  CPU actor pool: stages 1 and 2, one TryOnPipeline per actor, loaded once
    Inpaint             actor pool: stage 3, one GPU per actor when the cluster has GPUs, otherwise on the CPU
    write_results       CPU tasks: the PNG and the record of each pair; paired-setting scores

What it writes under ``out`` is ``jobs.results``'s layout: a PNG and a record per pair, a manifest, metrics. A pair
is done when its record exists, so a rerun (after a crash, with a larger ``limit``, or after fixing the files of
failed pairs) skips the done pairs and rebuilds the manifest and the metrics over all pairs of the run; a rerun into
a folder holding another setting (version, sampler, resolution, ...) is refused instead of mixing results. A pair
whose files cannot be read fails alone: the others go on. Each pair's seed comes from its names (``pair_seed``): a
pair gives the same image whatever its order, ``limit`` or source format (a root or its shards), up to a grey level
of float rounding between batch sizes.

Example::

    >>> summary = run_inference("data/synth", "s3://results/synth-test", "models/default", steps=25)
    >>> summary.line()
    '400 pairs: 400 inferred, 0 already done, 31.2 s (12.8 pairs/s) -> s3://results/synth-test'
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import ray
import ray.data
import torch

from jobs.results import (MANIFEST_FILE, InferenceError, InferenceSettings, claim, manifest_csv, output_stem,
                          pair_seed, write_metrics, write_results)
from jobs.sources import IO_CPUS, open_source, to_samples
from kgi.data.storage import open_root
from kgi.data.vitonhd import MODES, SPLITS
from kgi.pipeline import SamplerSettings, StageTwoOutput, TryOnPipeline, keypoint_inputs, to_uint8_images
from kgi.runtime import configure_inference_process
from kgi.sampling import count_unet_evaluations

PARSE_WARP_CPUS = 0.5  # logical CPUs per actor of the keypoints-parse-warp pool
INPAINT_CPUS = 1  # when the inpainter runs on the CPU


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


# --- the model stages -----------------------------------------------------------------------------------------


class KeypointsParseWarp:
    """Stages 1 and 2 (CPU actor): garment keypoints on the person, target parse, warp and recomposition.

    Args:
        version_dir: the model version folder, loaded once per actor.
    """

    def __init__(self, version_dir: str):
        configure_inference_process(None)
        self.pipeline = TryOnPipeline.from_pretrained(version_dir, stages=("keypoints", "parse"))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``SAMPLE_COLUMNS`` -> names, person, the ``StageTwoOutput`` fields and ``parse_warp_s`` per row."""
        start = time.perf_counter()
        samples = to_samples(batch)
        garment_kp = self.pipeline.predict_keypoints(*keypoint_inputs(samples))
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
        self.pipeline = TryOnPipeline.from_pretrained(version_dir, device=device, stages=("inpaint",))
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
    claim(storage, InferenceSettings(source, split, mode, height, info.name, asdict(sampler)))
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
    storage.write_bytes(MANIFEST_FILE, manifest_csv(pairs, records, failed, paired=mode == "paired"))
    done_records = [records[pair] for pair in pairs if pair in records]
    metrics = write_metrics(storage, done_records, source, split) if mode == "paired" and done_records else None
    return InferenceSummary(storage.uri(), len(pairs), len(todo) - len(failed), len(pairs) - len(todo), failed,
                            time.perf_counter() - started, metrics)
