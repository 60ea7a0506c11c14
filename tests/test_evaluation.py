"""``kgi eval stages`` and ``kgi eval tryon`` on a few synthetic pairs with a random-weights version, and the plain
fills the inpainter is compared with."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kgi.cli import main
from kgi.data.images import decode_rgb
from kgi.data.synth import generate
from kgi.evaluation import plain_fills

HEIGHT = 256  # twice the random version's inpainter height (VersionInfo's default, 128)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(str(root), n_train=1, n_test=4, height=HEIGHT, seed=5, progress=False)
    return root


def test_plain_fills_change_only_the_holes():
    rng = np.random.default_rng(0)
    recomposed = rng.integers(0, 256, (HEIGHT, HEIGHT * 3 // 4, 3), dtype=np.uint8)
    keep = np.ones(recomposed.shape[:2], bool)
    keep[80:140, 60:120] = False
    fills = plain_fills(recomposed, keep, inpaint_height=HEIGHT // 2)
    small = f"OpenCV Telea at {HEIGHT * 3 // 8}x{HEIGHT // 2}"
    assert list(fills) == ["mean colour", "OpenCV Telea", small]
    for name, image in fills.items():
        assert image.shape == recomposed.shape and image.dtype == np.uint8, name
        np.testing.assert_array_equal(image[keep], recomposed[keep], err_msg=name)
        assert (image[~keep] != recomposed[~keep]).any(), name
    np.testing.assert_array_equal(fills["mean colour"][~keep], np.broadcast_to(
        recomposed[keep].mean(axis=0).round().astype(np.uint8), fills["mean colour"][~keep].shape))
    assert (fills["OpenCV Telea"][~keep] != fills[small][~keep]).any()


def _table_rows(markdown: str) -> dict[str, list[str]]:
    """First cell -> the other cells of every Markdown table row."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(line) <= set("|- "):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow  # whole try-ons of a split
def test_eval_tryon_compares_the_inpainter_with_each_plain_fill(dataset, model_root, tmp_path, capsys):
    out = tmp_path / "tryon"
    assert main(["eval", "tryon", str(dataset), "--version", str(model_root / "default"), "--height", str(HEIGHT),
                 "--batch-size", "2", "--out", str(out)]) == 0
    report = (out / "tryon.md").read_text()
    rows = _table_rows(report)
    methods = ["KGI (ours)", "mean colour", "OpenCV Telea", "OpenCV Telea at 96x128"]
    figures = {method: [float(re.match(r"-?[\d.]+", cell).group()) for cell in rows[method]] for method in methods}
    for method, values in figures.items():
        assert len(values) == 4 and all(np.isfinite(values)), method  # ssim, psnr, ssim and l1 in the holes
    assert figures["OpenCV Telea"] != figures["OpenCV Telea at 96x128"]
    assert ", 4 pairs," in report and "2 UNet evaluations per image" in report
    assert "LPIPS / FID / KID: not available" in report
    sheet = decode_rgb((out / "tryon.png").read_bytes(), source="tryon.png")
    assert sheet.shape[0] > HEIGHT and sheet.shape[1] > 4 * HEIGHT * 3 // 4
    assert "report:" in capsys.readouterr().out


@pytest.mark.slow  # every stage over a split
def test_eval_stages_reports_every_stage_beside_its_baseline(dataset, model_root, tmp_path):
    out = tmp_path / "stages"
    assert main(["eval", "stages", str(dataset), "--version", str(model_root / "default"), "--height", str(HEIGHT),
                 "--out", str(out)]) == 0
    report = (out / "stages.md").read_text().lower()
    for words in ("keypoint error", "graph network", "geometric baseline", "parse iou", "miou", "five-segment",
                  "single tps"):
        assert words in report, words
    assert (out / "stages.png").stat().st_size > 0


def test_eval_of_a_missing_root_is_a_clear_error(tmp_path, model_root, capsys):
    assert main(["eval", "tryon", str(tmp_path / "nowhere"), "--version", str(model_root / "default")]) == 2
    assert "kgi eval: error:" in capsys.readouterr().err


@pytest.mark.slow  # full try-ons, both settings
def test_eval_tryon_runs_on_the_genuine_sample_paired_and_unpaired(vitonhd_sample, model_root, tmp_path):
    """A VITON-HD root has no landmark files: the garment keypoints are found as ``kgi infer`` finds them."""
    for mode in ("paired", "unpaired"):
        out = tmp_path / mode
        assert main(["eval", "tryon", str(vitonhd_sample), "--mode", mode, "--version", str(model_root / "default"),
                     "--out", str(out)]) == 0
        assert (out / "tryon.png").stat().st_size > 0
    assert "| KGI (ours) |" in (tmp_path / "paired" / "tryon.md").read_text()


def test_eval_stages_on_a_root_without_landmarks_says_what_to_run(vitonhd_sample, model_root, tmp_path, capsys):
    assert main(["eval", "stages", str(vitonhd_sample), "--version", str(model_root / "default"),
                 "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "ground-truth garment landmarks" in error and "kgi eval tryon" in error and "Traceback" not in error
