"""The benchmark scripts on their tiny settings: each runs for real and writes a well-formed, finite result.

These are not timed tests: they check that every script of ``bench/`` runs end to end (a real local Ray cluster,
Serve, HTTP, the moto S3 server, Ray Train) and that its figures are consistent with what it did (requests
answered, batches formed, evaluations counted). One Ray cluster for the module, started after the S3 server so
that its workers see the server's address.
"""

from __future__ import annotations

import argparse
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from bench import cli, genuine_tryon, landmark_stability, landmark_ties
from bench.cluster import ray_cluster
from bench.common import CACHE_ENV, DEFAULT_VERSION, REPO, example_form
from kgi.cli import CommandError
from kgi.data.labels import LEFT_ARM
from kgi.sampling import count_unet_evaluations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory):
    """The S3 server's address in the environment, the benchmarks' data cache in a temporary folder, then Ray."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("bench-cache")))
        with ray_cluster():
            yield


def all_finite(value) -> bool:
    """Whether every number in a JSON document is finite."""
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def run_tiny(name: str, out, *extra: str) -> dict:
    """``kgi bench NAME --tiny --out OUT EXTRA...``; returns the result document after checking its form."""
    assert cli.run_benchmark(name, ["--tiny", "--out", str(out), *extra]) == 0
    document = json.loads((out / f"{name}.json").read_text())
    assert document["benchmark"] == name
    assert document["command"] == " ".join(["kgi bench", name, "--tiny", "--out", str(out), *extra])
    assert {"date", "cpu_cores", "kgi", "torch", "ray"} <= set(document["machine"])
    assert document["load_average"]["samples"] >= 1
    assert all_finite(document["results"])
    return document


def assert_png(path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100


def test_serving_overhead(cluster, tmp_path):
    document = run_tiny("serving_overhead", tmp_path)
    (row,) = document["results"]["requests"].values()
    assert row["inpaint_batching"] == {"max_batch_size": 8, "batch_wait_timeout_s": 0.0}  # local.yaml's
    assert row["dag"]["n"] == row["in_process"]["n"] == 3
    assert row["in_process"]["p50_ms"] > 0
    # The split of the DAG's latency: its stages' compute is inside its total, the rest is >= 0.
    assert 0 < row["dag_stage_compute_p50_ms"] < row["dag"]["p50_ms"]
    assert row["outside_ingress_p50_ms"] >= 0 and row["ingress_and_handoffs_p50_ms"] >= 0
    assert row["overhead_p50_ms"] == pytest.approx(row["dag"]["p50_ms"] - row["in_process"]["p50_ms"])
    hand_offs = document["results"]["hand_off_p50_ms"]
    assert list(hand_offs) == ["Ray actor call (baseline)", "Serve handle, object store (default)",
                               "Serve handle, gRPC"]
    assert all(list(costs) == ["300 B", "1.8 MB"] and min(costs.values()) > 0 for costs in hand_offs.values())
    assert_png(tmp_path / "serving_overhead.png")


def test_throughput(cluster, tmp_path):
    document = run_tiny("throughput", tmp_path)
    for system in ("dag", "monolith"):
        rows = document["results"][system]
        assert [row["concurrency"] for row in rows] == [1, 2]
        for row in rows:  # every request of the level answered: max(rounds * concurrency, min_requests)
            assert row["ok"] == max(2 * row["concurrency"], 2) and row["errors"] == {}
            assert row["requests_per_s"] == pytest.approx(row["ok"] / row["elapsed_s"])
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert all(row["inpaint_replicas"] in (1, 2) for row in document["results"]["dag"])  # local.yaml's bounds
    assert_png(tmp_path / "throughput.png")


def test_batching(cluster, tmp_path):
    document = run_tiny("batching", tmp_path)
    rows = document["results"]["rows"]
    assert [row["max_batch_size"] for row in rows] == [1, 2]
    for row in rows:  # the batches formed hold exactly the images sent, none larger than allowed
        formed = {int(size): count for size, count in row["batches_formed"].items()}
        assert sum(size * count for size, count in formed.items()) == row["images"] == 4
        assert max(formed) <= row["max_batch_size"]
    assert rows[0]["batches_formed"] == {"1": 4} and rows[0]["speedup"] == 1.0
    assert_png(tmp_path / "batching.png")


def test_sampler(tmp_path, monkeypatch, tmp_path_factory):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("sampler-cache")))
    document = run_tiny("sampler", tmp_path)
    rows = document["results"]["rows"]
    assert [row["name"] for row in rows] == ["repaint-ddpm-6-j2x2", "repaint-ddpm-3"]
    for row in rows:
        assert row["unet_evaluations"] == count_unet_evaluations(row["num_steps"], row["jump_length"],
                                                                 row["jump_n_sample"])
        assert -1 <= row["ssim_mean"] <= 1 and row["l1_mean"] >= 0 and row["seconds_per_image"] > 0
    assert rows[0]["evaluations_vs_reference"] == 1.0
    assert document["settings"]["images"] == 2 and 0 < document["settings"]["hole_fraction_mean"] < 1
    assert_png(tmp_path / "sampler.png")


def test_training(cluster, tmp_path):
    document = run_tiny("training", tmp_path)
    rows = document["results"]["rows"]
    assert [(row["source"], row["workers"]) for row in rows] == [("s3", 1)]  # tiny: the S3 path only
    for row in rows:
        assert row["steps"] == 3 and row["samples_per_s"] > 0
        assert 0 <= row["data_wait_fraction"] <= 1 and 0 <= row["data_wait_fraction_all_steps"] <= 1
        # tiny: 8 pairs in batches of 8, so each of the 3 steps is a pass of its own, 2 of them restarts
        assert row["steps_per_epoch"] == 1 and row["pass_restarts"] == 2 and row["pass_restart_s"] > 0
    assert_png(tmp_path / "training.png")


def test_resolution(tmp_path):
    document = run_tiny("resolution", tmp_path)
    medians = document["results"]["medians"]
    assert set(medians) == {"256", "1024"}
    for stages in medians.values():  # every stage timed, the whole their sum (one round)
        assert all(seconds > 0 for seconds in stages.values())
        assert stages["total"] == pytest.approx(sum(v for k, v in stages.items() if k != "total"), rel=1e-3)
    assert document["results"]["ratio_total"] == pytest.approx(medians["1024"]["total"] / medians["256"]["total"])
    assert document["results"]["ratio_total_paired"] == pytest.approx(document["results"]["ratio_total"])  # 1 round


def test_landmark_stability_reads_a_genuine_garment_six_ways_and_eight_framings(capsys):
    """The red tee 09236 read from its photo scaled, shifted, turned, compressed, dimmed and mirrored: one row of
    six readings, each within 5% of the height of the original's (scaled to 0.7, its armpits once read 8% high);
    and from eight framings of it, the same."""
    photo = REPO.parent / "shared" / "photos" / "garments" / "09236_00.jpg"
    if not photo.is_file():
        pytest.skip(f"the genuine garment photo {photo} is not here")
    assert landmark_stability.main([str(photo)]) == 0
    out = capsys.readouterr().out
    assert "| 09236_00 | short |" in out
    assert "6 of 6 readings with nodes 2, 14, 22 and 18 within 5% of the height" in out
    assert landmark_stability.main(["--all-nodes", str(photo)]) == 0  # every node: 1-2% of the height on this tee
    assert "6 of 6 readings with every node within 5% of the height" in capsys.readouterr().out
    assert landmark_stability.main(["--framings", str(photo)]) == 0  # scaled 0.8, 0.9, turned -3..3, mirrored+2
    out = capsys.readouterr().out
    assert "| 0.8 | 0.9 | -3 | -2 | -1 | +1 | +3 | mirror+2 |" in out
    assert "8 of 8 readings with nodes 2, 14, 22 and 18 within 5% of the height" in out


def test_genuine_tryon_tells_old_garment_left_from_the_parses_slack_on_the_wall():
    """The old-garment figure counts every pixel the genuine parse calls garment that the result leaves as it was.
    A parse reaching 2 pixels onto the wall around the garment counts the wall painted back there; the figure
    beside it counts only the pixels whose photo colour is not the wall's: the old garment itself, where kept."""
    photo = np.full((40, 40, 3), 200, np.uint8)  # a grey wall
    photo[10:30, 10:30] = (200, 30, 30)  # the old, red garment
    parse = np.zeros((40, 40), np.uint8)
    parse[8:32, 8:32] = 5  # CIHP upper clothes, 2 pixels onto the wall
    keep = np.ones((40, 40), bool)
    target, warped = np.zeros((40, 40), np.uint8), np.zeros((40, 40, 3), np.uint8)  # no new garment here
    painted_over = photo.copy()
    painted_over[10:30, 10:30] = 200  # the old garment painted over as wall
    figures = genuine_tryon.figures(photo, parse, painted_over, keep, target, warped)
    assert figures["old_garment_left"] == pytest.approx((24 * 24 - 20 * 20) / (24 * 24))  # the slack
    assert figures["old_garment_not_wall_coloured"] == 0
    figures = genuine_tryon.figures(photo, parse, photo, keep, target, warped)  # the old garment kept
    assert figures["old_garment_left"] == 1
    assert figures["old_garment_not_wall_coloured"] == pytest.approx(20 * 20 / (24 * 24))


def test_genuine_tryon_measures_the_step_where_painted_skin_meets_kept_skin():
    """An arm whose upper half is kept and lower half painted: painted 30 levels darker, the seam step is 30; painted
    in the kept colour, 0; with no painted skin touching kept skin, there is no seam to measure."""
    photo = np.full((40, 40, 3), 200, np.uint8)
    target = np.zeros((40, 40), np.uint8)
    target[5:35, 10:30] = LEFT_ARM
    keep = np.ones((40, 40), bool)
    keep[20:35, 5:35] = False  # the lower half of the arm and the wall beside it
    parse, warped = np.zeros((40, 40), np.uint8), np.zeros((40, 40, 3), np.uint8)
    result = photo.copy()
    result[20:35, 10:30] = 170
    assert genuine_tryon.figures(photo, parse, result, keep, target, warped)["seam_step"] == pytest.approx(30)
    assert genuine_tryon.figures(photo, parse, photo, keep, target, warped)["seam_step"] == 0
    keep[5:20, 10:30] = False  # the whole arm painted
    assert np.isnan(genuine_tryon.figures(photo, parse, result, keep, target, warped)["seam_step"])


def test_landmark_ties_reads_tied_tops_both_ways(capsys):
    """Four synthetic tops with a tie at each place, read with and without it: one row per place, every top
    counted, and the tops read as without the tie outnumber the rest (before the wide ties were cut, none was)."""
    assert landmark_ties.main(["--tops", "4", "--seed", "3"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| side")
            or line.startswith("| middle")]
    assert [row[0].strip() for row in rows] == ["side", "middle"]
    for _, tops, within_1, within_3, refused, other_sleeve, _ in rows:
        assert int(tops) == 4 and int(within_3) <= 4
        assert int(within_1) >= 3 and int(refused) + int(other_sleeve) <= 1


def test_gpu_without_a_gpu_says_so_and_succeeds(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the real run is kgi bench gpu")
    document = run_tiny("gpu", tmp_path)
    assert document["results"] == {"measured": False, "reason": "torch.cuda.is_available() is False"}


def test_gpu_serve_config_is_valid_for_serve_and_the_app():
    from ray.serve.schema import ServeDeploySchema

    from bench.gpu import INPAINT_BATCH, gpu_serve_config
    from deployments.config import parse_app_args

    config = gpu_serve_config(DEFAULT_VERSION, 256, 8123)
    (application,) = ServeDeploySchema.model_validate(config).applications
    args = parse_app_args(application.args)
    assert args.inpaint.device == "cuda" and args.inpaint.dtype == "bfloat16"
    inpaints = [d for d in application.deployments if d.name == "Inpaint"]
    assert sum(d.ray_actor_options.num_gpus * d.num_replicas for d in inpaints) <= 1  # all fit on one card
    assert all(d.user_config == INPAINT_BATCH and d.max_ongoing_requests >= INPAINT_BATCH["max_batch_size"]
               for d in inpaints)


def test_monolith_answers_the_service_form():
    from starlette.testclient import TestClient

    from bench.monolith import InProcessTryOn, build_app

    client = TestClient(build_app(InProcessTryOn(DEFAULT_VERSION, working_height=128, torch_threads=1)))
    files, data = example_form(steps=2)
    answer = client.post("/v1/tryon", files=files, data=data)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(answer.content))).shape == (128, 96, 3)
    assert set(json.loads(answer.headers["x-kgi-timings"])) == {"preprocess", "keypoints", "parse_warp", "inpaint",
                                                                "total"}
    refused = client.post("/v1/tryon", files={name: files[name] for name in ("person", "pose", "parse")}, data=data)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "missing_input"
    assert "garment" in refused.json()["error"]["message"]


def test_cli_lists_runs_and_refuses(capsys):
    parser = argparse.ArgumentParser(prog="kgi bench")
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["list"])) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(cli.BENCHMARKS)
    args = parser.parse_args(["throughput", "--tiny", "--concurrency", "1,2"])
    assert (args.name, args.arguments) == ("throughput", ["--tiny", "--concurrency", "1,2"])
    with pytest.raises(CommandError, match="only --tiny and --out"):
        cli.run(parser.parse_args(["all", "--requests", "3"]))
