"""The whole training path on genuine VITON-HD files, as a team runs it from the command line.

The genuine sample (one person, her own garment) laid out as a train and a test split: ``kgi convert --check``,
``kgi convert``, ``kgi train`` of each model with its shipped config (batch sizes untouched: 32 keypoints pairs
per worker from a one-pair split), ``kgi export`` of the three runs, ``kgi tryon`` and ``kgi infer`` with the
exported version. Then the bad datasets: a missing split, an undecodable image, a parse label out of range, a
split smaller than one batch per worker; each ends in one line naming what is wrong. One local Ray cluster for
the module; the commands run in this process and find it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from PIL import Image

from kgi.cli import CommandError, main
from kgi.data.vitonhd import DatasetError
from training.errors import DataError, StopOnDataError, data_error, one_line_errors
from training.job import repeats_for_full_batches

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json")
PERSON = "00006_00.jpg"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _genuine_root(sample: Path, root: Path) -> Path:
    """The sample's pair as both splits (links to the shared files), paired: the person with her own garment."""
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for folder in FOLDERS:
            (root / split / folder).symlink_to(sample / "test" / folder, target_is_directory=True)
        (root / f"{split}_pairs.txt").write_text(f"{PERSON} {PERSON}\n")
    return root


def _kgi(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error_line(err: str) -> str:
    """The command's error: its one line (Ray's own log lines may come before it)."""
    lines = [line for line in err.splitlines() if line.startswith("kgi ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def genuine(vitonhd_sample, tmp_path_factory):
    return _genuine_root(vitonhd_sample, tmp_path_factory.mktemp("genuine"))


@pytest.mark.slow
def test_convert_check_train_export_tryon_infer(cluster, genuine, vitonhd_sample, tmp_path, capsys):
    code, out, _ = _kgi(capsys, "convert", "--check", genuine)
    assert code == 0, out
    assert "| train | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 |" in out and "| test | 1 |" in out

    shards = tmp_path / "shards"
    code, out, err = _kgi(capsys, "convert", genuine, "--out", shards, "--shard-size", 1)
    assert code == 0, err
    row = pq.read_table(shards / "train" / "part-00000.parquet").to_pylist()[0]
    cloth, worn = json.loads(row["cloth_landmarks_json"]), json.loads(row["image_landmarks_json"])
    assert cloth["sleeve"] == worn["sleeve"] == "long"  # the black long-sleeved top; worn takes the flat's kind
    assert np.isfinite(worn["keypoints"]).all() and len(worn["keypoints"]) == 32

    runs = tmp_path / "runs"
    for model in ("keypoints", "parse", "inpainter"):
        code, out, err = _kgi(capsys, "train", model, "--config", CONFIGS / f"{model}.yaml", "--data", shards,
                              "--storage", runs, "--steps", 1)
        assert code == 0, err
        assert "fewer than one batch per worker" in out and "done: step 1" in out, out

    models = tmp_path / "models"
    code, out, err = _kgi(capsys, "export", runs / "keypoints", runs / "parse", runs / "inpainter",
                          "--version", "genuine", "--models", models, "--base", "none")
    assert code == 0, err
    version = models / "genuine"
    files = json.loads((version / "manifest.json").read_text())["files"]
    assert {"keypoints.safetensors", "parse.safetensors", "inpainter/config.json"} <= set(files)
    provenance = yaml.safe_load((version / "version.yaml").read_text())["provenance"]
    assert {stage: p["step"] for stage, p in provenance.items()} == {"keypoints": 1, "parse": 1, "inpainter": 1}

    test = vitonhd_sample / "test"
    stem = PERSON.rsplit(".", 1)[0]
    code, out, err = _kgi(capsys, "tryon", test / "image" / PERSON, test / "cloth" / "06396_00.jpg",
                          "-o", tmp_path / "tryon.png", "--pose", test / "openpose_json" / f"{stem}_keypoints.json",
                          "--parse", test / "image-parse-v3" / f"{stem}.png",
                          "--cloth-mask", test / "cloth-mask" / "06396_00.jpg", "--version", version, "--steps", 2)
    assert code == 0, err
    assert Image.open(tmp_path / "tryon.png").size[0] > 0

    code, out, err = _kgi(capsys, "infer", shards, "--split", "test", "--out", tmp_path / "infer",
                          "--version", version, "--steps", 2, "--batch-size", 1)
    assert code == 0, err
    assert (tmp_path / "infer" / "images" / f"{stem}__{stem}.png").is_file()


def _bad_shards(good: Path, out: Path, **columns) -> Path:
    """A copy of ``good``'s train split whose one row has ``columns`` replaced."""
    table = pq.read_table(good / "train" / "part-00000.parquet")
    row = {**table.to_pylist()[0], **columns}
    (out / "train").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=table.schema), out / "train" / "part-00000.parquet")
    return out


def _parse_with_label(png: bytes, label: int) -> bytes:
    parse = np.array(Image.open(io.BytesIO(png)))
    parse[:4, :4] = label
    buffer = io.BytesIO()
    Image.fromarray(parse).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bad_root(vitonhd_sample, tmp_path_factory):
    """The sample's pair as a train split whose person image is cut short (copies, not links)."""
    root = tmp_path_factory.mktemp("bad-root")
    for folder in FOLDERS:
        (root / "train" / folder).mkdir(parents=True)
        for file in (vitonhd_sample / "test" / folder).iterdir():
            (root / "train" / folder / file.name).write_bytes(file.read_bytes())
    image = root / "train" / "image" / PERSON
    image.write_bytes(image.read_bytes()[:2000])
    (root / "train_pairs.txt").write_text(f"{PERSON} {PERSON}\n")
    return root


@pytest.mark.slow
def test_an_undecodable_image_fails_the_check_and_the_conversion_in_one_line(cluster, bad_root, tmp_path, capsys):
    code, out, _ = _kgi(capsys, "convert", "--check", bad_root, "--splits", "train", "test")
    assert code == 1
    assert "| train | 1 | 0 | 1 | 0 | 0 | 0 | 0 | 0 |" in out  # the images check failed, nothing after it ran
    assert f"train {PERSON} [images] {bad_root}/train/image/{PERSON}: truncated image data" in out
    assert "test: no test_pairs.txt" in out

    code, _, err = _kgi(capsys, "convert", bad_root, "--out", tmp_path / "shards", "--splits", "train")
    assert code == 2
    assert _error_line(err).startswith(f"kgi convert: error: data: {bad_root}/train/image/{PERSON}: truncated")
    assert "Traceback" not in err


def test_a_missing_split_is_named_before_ray_starts(genuine, tmp_path, capsys):
    (tmp_path / "shards" / "test").mkdir(parents=True)  # what 'kgi convert --splits test' leaves
    code, _, err = _kgi(capsys, "train", "keypoints", "--config", CONFIGS / "keypoints.yaml",
                        "--data", tmp_path / "shards", "--storage", tmp_path / "runs")
    assert code == 2
    assert _error_line(err) == (f"kgi train: error: data: {tmp_path}/shards has no train split "
                                f"({tmp_path}/shards/train): convert one with 'kgi convert ROOT --out "
                                f"{tmp_path}/shards --splits train'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_label_out_of_range_stops_training_at_once_in_one_line(cluster, genuine, tmp_path, capsys):
    good = tmp_path / "good"
    assert _kgi(capsys, "convert", genuine, "--out", good, "--splits", "train")[0] == 0
    row = pq.read_table(good / "train" / "part-00000.parquet").to_pylist()[0]
    bad = _bad_shards(good, tmp_path / "bad", parse=_parse_with_label(row["parse"], 25))

    code, out, _ = _kgi(capsys, "convert", "--check", bad, "--splits", "train")
    assert code == 1 and "label(s) 25 are not CIHP labels (0..19)" in out

    cloth = json.loads(row["cloth_landmarks_json"])
    mirrored = {**cloth, "keypoints": [[cloth["width"] - x, y] for x, y in cloth["keypoints"]]}
    code, out, _ = _kgi(capsys, "convert", "--check",
                        _bad_shards(good, tmp_path / "mirrored", cloth_landmarks_json=json.dumps(mirrored)),
                        "--splits", "train")
    assert code == 1 and "| train | 1 | 0 | 0 | 0 | 0 | 0 | 1 | 0 |" in out, out
    assert "[consistency]" in out and "garment landmarks:" in out

    code, _, err = _kgi(capsys, "train", "inpainter", "--config", CONFIGS / "inpainter.yaml", "--data", bad,
                        "--storage", tmp_path / "runs", "--steps", 2)
    assert code == 2
    assert _error_line(err) == (f"kgi train: error: data: {bad}/train/part-00000.parquet [pair {PERSON}]/train/"
                                f"image-parse-v3/00006_00.png: label 25 is not a CIHP label (0..19)")


def test_a_worker_data_error_ends_the_run_instead_of_a_retry():
    remote = RuntimeError("Traceback (most recent call last):\n  ...\n"
                          "kgi.data.vitonhd.DatasetError: s3://d/train/part-00003.parquet [pair 1.jpg]/train/"
                          "image/1.jpg: truncated image data\n\nThe above exception was the direct cause of ...\n")
    with pytest.raises(DataError, match=r"^s3://d/train/part-00003.parquet \[pair 1.jpg\]/train/image/1.jpg: trunc"):
        StopOnDataError().after_exception(None, {0: ConnectionError("peer gone"), 1: remote})
    StopOnDataError().after_exception(None, {0: ConnectionError("node lost")})  # a worker failure: retried
    assert str(data_error(DatasetError("a.png: label 25"))) == "a.png: label 25"
    assert data_error(ValueError("no data problem")) is None


def test_a_failed_job_is_one_line_unless_verbose():
    with pytest.raises(CommandError, match=r"^data: a.png: label 25 \(check it\)$"):
        with one_line_errors("conversion", verbose=False, data_hint=" (check it)"):
            raise DatasetError("a.png: label 25")
    with pytest.raises(CommandError, match=r"^training failed: node lost \(--verbose shows the trace\)$"):
        with one_line_errors("training", verbose=False):
            raise RuntimeError("Traceback (most recent call last):\n  ...\n node lost \n\n")
    with pytest.raises(RuntimeError, match="node lost"):  # --verbose: the failure itself, with its trace
        with one_line_errors("training", verbose=True):
            raise RuntimeError("node lost")


@pytest.mark.parametrize("rows, workers, batch, repeats", [(1, 2, 32, 64), (31, 1, 32, 2), (32, 1, 32, 1),
                                                            (63, 2, 32, 2), (11647, 8, 16, 1)])
def test_a_split_smaller_than_one_batch_per_worker_is_repeated_to_full_batches(rows, workers, batch, repeats):
    assert repeats_for_full_batches(rows, workers, batch) == repeats
    assert (rows * repeats) // workers >= batch  # every worker's equal share holds a full batch
