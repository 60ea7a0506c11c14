"""The output folder of ``kgi infer`` (local or ``s3://``, through ``kgi.data.storage``)::

    settings.json                       what the folder holds: source, split, mode, height, version, sampler
    images/{person}__{cloth}.png        each pair's try-on (file stems of the pair's two names)
    records/{person}__{cloth}.json      its seed, seconds, UNet evaluations and paired scores; written after the PNG
    failed/{person}__{cloth}.txt        why the last attempt could not read the pair (bad or missing files)
    manifest.csv                        pair -> file, version, seed, seconds, scores or error, for the run's pairs
    metrics.md, metrics.json            paired setting: ``kgi.evaluation.tryon_table`` over the run's pairs

Every file is written atomically. A pair is done when its record exists; a folder holding another setting
(version, sampler, resolution, ...) is refused instead of mixing results (:func:`claim`).
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import numpy as np
import torch

from kgi.data.images import encode_png
from kgi.data.storage import Storage, open_root
from kgi.evaluation import TRYON_METRICS, paired_scores, plain_fills, tryon_table
from kgi.metrics import mean_and_standard_error

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.csv"
KGI_ROW = "KGI (ours)"  # the try-on's row in the metrics table, beside the plain fills of the same holes


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


def output_stem(person_name: str, cloth_name: str) -> str:
    """The file stem of a pair's outputs: ``00006_00.jpg`` with ``06396_00.jpg`` -> ``00006_00__06396_00``."""
    return f"{PurePosixPath(person_name).stem}__{PurePosixPath(cloth_name).stem}"


def pair_seed(person_name: str, cloth_name: str) -> int:
    """The sampler seed of a pair: a CRC-32 of its two names, the same on every run and machine."""
    return zlib.crc32(f"{person_name} {cloth_name}".encode())


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


def claim(storage: Storage, settings: InferenceSettings) -> None:
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


def manifest_csv(pairs: list[tuple[str, str]], records: dict, failed: dict, paired: bool) -> bytes:
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


def write_metrics(storage: Storage, records: list[dict], source: str, split: str) -> dict:
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
