"""Offline batch inference for real: a synthetic dataset through the Ray Data pipeline on a local Ray cluster.

One cluster for the module, the shipped model version (with 2 sampler steps) and a 4-pair test split at 128x96.
The written images and metrics are checked against the pipeline run directly on the same pairs and seeds; reruns
skip what is done; shards on the moto S3 server go in and results come out there; a broken pair fails alone and
is retried; bad input fails with a clear message.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from jobs.batch_inference import run_inference
from jobs.commands import infer as infer_command
from jobs.results import KGI_ROW, InferenceError, output_stem, pair_seed
from kgi.cli import CommandError
from kgi.data import storage
from kgi.data.images import decode_rgb
from kgi.data.synth import generate
from kgi.data.vitonhd import VitonHD
from kgi.evaluation import TRYON_METRICS, paired_scores, plain_fills
from kgi.pipeline import SamplerSettings, TryOnPipeline, VersionInfo
from training.shards import convert

HEIGHT, WIDTH = 128, 96
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "default"
N_TEST = 4
pytestmark = pytest.mark.slow  # Ray Data runs on a local cluster


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, n_train=1, n_test=N_TEST, height=HEIGHT, seed=11, progress=False)
    return root


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    """The shipped model version with 2 sampler steps. Trained weights, not random ones: a random parse network's
    logits are near ties, so batching pairs (other convolution kernels) flips a few of its labels on some CPUs."""
    directory = tmp_path_factory.mktemp("models") / "default"
    shutil.copytree(SHIPPED, directory)
    info = VersionInfo.read(directory)
    info.sampler = SamplerSettings(num_steps=2)
    info.write(directory)
    return directory


@pytest.fixture(scope="module")
def s3_shards(ray_with_s3, s3_server, dataset):
    """The test split as ``kgi convert`` shards (3 pairs each) on the moto S3 server."""
    shards = s3_server.bucket("kgi-infer-shards") + "/synth"
    convert(str(dataset), shards, shard_size=3, splits=("test",))
    return shards


@pytest.fixture(scope="module")
def paired_run(ray_with_s3, dataset, version_dir, tmp_path_factory):
    """The paired test split inferred into a local folder (batches of 3 and 1)."""
    out = tmp_path_factory.mktemp("infer") / "paired"
    summary = run_inference(str(dataset), str(out), version_dir, height=HEIGHT, batch_size=3)
    return out, summary


def _reference(dataset, version_dir):
    """Each pair tried on alone with the pipeline itself, with the seed batch inference gives it."""
    pipeline = TryOnPipeline.from_pretrained(version_dir)
    results = {}
    for sample in VitonHD(dataset, split="test", mode="paired", height=HEIGHT):
        result = pipeline([sample], seeds=[pair_seed(sample.person_name, sample.cloth_name)])[0]
        results[output_stem(sample.person_name, sample.cloth_name)] = (sample, result)
    return results


def _manifest(out) -> list[dict]:
    return list(csv.DictReader(io.StringIO(storage.open_root(out).read_bytes("manifest.csv").decode())))


def test_paired_run_writes_the_pipelines_images_a_manifest_and_its_metrics(paired_run, dataset, version_dir):
    out, summary = paired_run
    assert (summary.pairs, summary.inferred, summary.skipped) == (N_TEST, N_TEST, 0)
    reference = _reference(dataset, version_dir)
    inpaint_height = TryOnPipeline.from_pretrained(version_dir).info.inpaint_height
    rows = _manifest(out)
    assert [row["file"] for row in rows] == [f"images/{stem}.png" for stem in reference]
    scores = {}  # method -> metric -> per-pair values of the reference
    for row, (stem, (sample, result)) in zip(rows, reference.items()):
        image = decode_rgb((out / row["file"]).read_bytes(), source=row["file"])
        assert image.shape == (HEIGHT, WIDTH, 3)
        # Batched with other pairs in the actors, yet (up to float rounding of one grey level) the same image.
        assert np.abs(image.astype(int) - result.image).max() <= 1
        assert (row["person_name"], row["version"], int(row["unet_evaluations"])) == (sample.person_name, "default", 2)
        assert int(row["seed"]) == pair_seed(sample.person_name, sample.cloth_name) and float(row["seconds"]) > 0
        candidates = {KGI_ROW: result.image,
                      **plain_fills(result.recomposed, result.keep_mask, inpaint_height)}
        for method, candidate in candidates.items():
            for metric, value in paired_scores(candidate, sample.person, result.keep_mask).items():
                scores.setdefault(method, {}).setdefault(metric, []).append(value)
        assert float(row["ssim"]) == pytest.approx(scores[KGI_ROW]["ssim"][-1], abs=2e-3)

    figures = json.loads((out / "metrics.json").read_text())
    assert figures == summary.metrics and figures["pairs"] == N_TEST
    telea_small = f"OpenCV Telea at {inpaint_height * 3 // 4}x{inpaint_height}"
    assert set(figures["methods"]) == {KGI_ROW, "mean colour", "OpenCV Telea", telea_small}
    for method, metrics in figures["methods"].items():
        assert list(metrics) == TRYON_METRICS
        for metric, value in metrics.items():
            assert math.isfinite(value["mean"]) and math.isfinite(value["se"]) and value["n"] == N_TEST
            assert value["mean"] == pytest.approx(np.mean(scores[method][metric]), abs=2e-3)
    table = (out / "metrics.md").read_text()
    assert "2 UNet evaluations per image" in table
    assert f"| {KGI_ROW} | {figures['methods'][KGI_ROW]['ssim']['mean']:.3f} ± " in table


def test_a_rerun_skips_done_pairs(paired_run, dataset, version_dir):
    out, _ = paired_run
    written = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in (out / "images").iterdir()}
    manifest = _manifest(out)
    again = run_inference(str(dataset), str(out), version_dir, height=HEIGHT)
    assert (again.inferred, again.skipped, again.failed) == (0, N_TEST, {})
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "images").iterdir()} == written
    assert _manifest(out) == manifest and again.metrics == json.loads((out / "metrics.json").read_text())


def test_an_output_folder_of_another_setting_is_refused(paired_run, dataset, version_dir, tmp_path):
    out, _ = paired_run
    with pytest.raises(InferenceError, match=r"another setting \(sampler: .*num_steps.: 2.*num_steps.: 3"):
        run_inference(str(dataset), str(out), version_dir, height=HEIGHT, steps=3)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InferenceError, match="not empty and not a batch-inference output"):
        run_inference(str(dataset), str(tmp_path), version_dir, height=HEIGHT)


def test_shards_on_s3_in_and_results_on_s3_out(s3_shards, s3_server, version_dir, paired_run):
    out = s3_server.bucket("kgi-infer-results") + "/paired"
    summary = run_inference(s3_shards, out, version_dir, height=HEIGHT, limit=2)
    assert (summary.pairs, summary.inferred) == (2, 2)
    results = storage.open_root(out)
    rows = _manifest(out)
    assert len(rows) == 2 and json.loads(results.read_bytes("metrics.json"))["pairs"] == 2
    local, _ = paired_run
    for row in rows:
        # A pair's seed comes from its names: from the shards it gives the image it gave from the root.
        image = decode_rgb(results.read_bytes(row["file"]), source=row["file"])
        assert np.abs(image.astype(int) - decode_rgb((local / row["file"]).read_bytes(), source="")).max() <= 1
    assert sorted(results.list("records")) == [f"records/{output_stem(r['person_name'], r['cloth_name'])}.json"
                                                for r in rows]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kgi infer", description=infer_command.__doc__)
    infer_command.add_arguments(parser)
    return infer_command.run(parser.parse_args(argv))


def test_the_command_in_the_unpaired_setting_a_broken_pair_fails_alone_and_is_retried(
        ray_with_s3, dataset, version_dir, tmp_path, capsys):
    broken = tmp_path / "data"
    shutil.copytree(dataset, broken)
    pairs = VitonHD(dataset, split="test", mode="unpaired").pairs
    person = pairs[2][0]
    (broken / "test" / "image" / person).write_bytes(b"not a JPEG")
    out = tmp_path / "unpaired"
    argv = [str(broken), "--out", str(out), "--version", str(version_dir), "--mode", "unpaired",
            "--height", str(HEIGHT), "--steps", "1", "--batch-size", "1"]  # the broken pair alone: an empty block
    assert _cli(argv) == 1
    streams = capsys.readouterr()
    assert f"{N_TEST} pairs: {N_TEST - 1} inferred, 0 already done, 1 failed" in streams.out
    assert f"failed: {person} {pairs[2][1]}: {broken / 'test' / 'image' / person}: not an image" in streams.err
    rows = _manifest(out)
    assert [(row["person_name"], row["cloth_name"]) for row in rows] == list(pairs)
    assert all(p != c for p, c in pairs) and "ssim" not in rows[0]
    assert [row["error"] != "" for row in rows] == [False, False, True, False] and rows[2]["file"] == ""
    for row in rows[:2] + rows[3:]:
        assert int(row["unet_evaluations"]) == 1
        assert decode_rgb((out / row["file"]).read_bytes(), source=row["file"]).shape == (HEIGHT, WIDTH, 3)
    assert not (out / "metrics.md").exists() and not (out / "metrics.json").exists()

    shutil.copy(dataset / "test" / "image" / person, broken / "test" / "image" / person)  # the file fixed
    assert _cli(argv) == 0
    assert f"{N_TEST} pairs: 1 inferred, {N_TEST - 1} already done" in capsys.readouterr().out
    assert all(row["error"] == "" and row["file"] for row in _manifest(out))


def test_help_has_an_example():
    parser = argparse.ArgumentParser(prog="kgi infer", description=infer_command.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    infer_command.add_arguments(parser)
    text = parser.format_help()
    assert "Examples:" in text and "kgi infer data/synth --out" in text and "--limit N" in text


def test_bad_sources_fail_with_a_clear_message(dataset, version_dir, tmp_path, s3_shards):
    with pytest.raises(InferenceError, match="neither a VITON-HD root .*test_pairs.txt.* nor Parquet shards"):
        run_inference(str(tmp_path), str(tmp_path / "out"), version_dir)
    with pytest.raises(InferenceError, match="paired setting only"):
        run_inference(s3_shards, str(tmp_path / "out"), version_dir, mode="unpaired")
    with pytest.raises(CommandError, match="height: expected a multiple of 4"):
        _cli([str(dataset), "--out", str(tmp_path / "out"), "--version", str(version_dir), "--height", "130"])
    with pytest.raises(CommandError, match="not a model version"):
        _cli([str(dataset), "--out", str(tmp_path / "out"), "--version", str(tmp_path)])

