"""The Serve application for real: configs, preprocessing, and a local Ray cluster answering HTTP.

The first tests need no cluster (configs against Ray's own schema, the preprocessing rules on the genuine
VITON-HD pair). The rest share one module-scoped service: ``platform/serve/local.yaml`` deployed on
``ray.init(num_cpus=4)`` with a random-weights model version, "default" and "fast" split 50/50.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json

import cv2
import httpx
import numpy as np
import pytest
import yaml
from PIL import Image
from ray.serve.exceptions import BackPressureError
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app, load_serve_config
from deployments.config import parse_app_args
from deployments.errors import MissingInputError, RequestError, error_response
from deployments.ingress import require_admin_token
from deployments.preprocess import Uploads, background_mask, fit_garment, fit_person, prepare_sample
from deployments.routing import VersionRouter
from kgi.cli import CommandError
from kgi.data.images import ImageError, decode_gray, decode_labels, decode_rgb
from kgi.data.labels import NUM_PARSE13
from kgi.data.pose import parse_openpose

from serving_support import ADMIN_TOKEN, CONFIGS, model_root, service  # noqa: F401 - imported fixtures

pytestmark = pytest.mark.slow

APP = "kgi"
HEIGHT, WIDTH = 256, 192  # local.yaml's working resolution


# ---------------------------------------------------------------- inputs


def sample_files(root: Path) -> dict[str, bytes]:
    """The genuine pair's uploads: person 00006_00 with the striped t-shirt 06396_00."""
    test = root / "test"
    return {"person": (test / "image" / "00006_00.jpg").read_bytes(),
            "garment": (test / "cloth" / "06396_00.jpg").read_bytes(),
            "parse": (test / "image-parse-v3" / "00006_00.png").read_bytes(),
            "pose": (test / "openpose_json" / "00006_00_keypoints.json").read_bytes(),
            "cloth_mask": (test / "cloth-mask" / "06396_00.jpg").read_bytes()}


def multipart(files: dict[str, bytes], leave_out: tuple[str, ...] = ("cloth_mask",)) -> dict:
    return {name: (name, data) for name, data in files.items() if name not in leave_out}


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def b64png(text: str) -> np.ndarray:
    return png(base64.b64decode(text))


# ---------------------------------------------------------------- configs (no cluster)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_follow_rays_schema_and_name_every_deployment(name):
    config = yaml.safe_load(CONFIGS[name].read_text())
    schema = ServeDeploySchema.model_validate(config)  # what `serve run FILE` checks
    (application,) = schema.applications
    assert application.import_path == "deployments.app:build_app"
    args = parse_app_args(application.args)
    expected = {"Ingress", "Preprocess"} | {f"{stage}-{version}" for version in args.versions
                                            for stage in ("Keypoints", "ParseWarp", "Inpaint")}
    configured = {deployment.name for deployment in application.deployments}
    assert configured == expected  # a misspelt name would silently configure nothing
    for deployment in application.deployments:
        assert deployment.max_queued_requests not in (None, -1), f"{deployment.name}: unbounded queue"
        if deployment.name.startswith("Inpaint-"):
            assert deployment.max_ongoing_requests >= deployment.user_config["max_batch_size"]


def test_local_config_is_cpu_only_and_ab_out_of_the_box():
    (application,) = yaml.safe_load(CONFIGS["local"].read_text())["applications"]
    args = parse_app_args(application["args"])
    assert args.inpaint.device == "cpu"
    assert {v.path for v in args.versions.values()} == {"default"}
    assert sorted(v.weight for v in args.versions.values()) == [0.5, 0.5]
    assert all("num_gpus" not in d.get("ray_actor_options", {}) for d in application["deployments"])
    cpus = sum(d["ray_actor_options"]["num_cpus"] * d.get("num_replicas", 1) for d in application["deployments"])
    assert cpus <= 2.0  # fits a two-core laptop


def test_gpu_config_puts_inpaint_on_gpus_with_autoscaling():
    (application,) = yaml.safe_load(CONFIGS["gpu-cluster"].read_text())["applications"]
    assert application["args"]["inpaint"] == {"device": "cuda", "dtype": "bfloat16"}
    for deployment in application["deployments"]:
        if deployment["name"].startswith("Inpaint-"):
            assert deployment["ray_actor_options"]["num_gpus"] == 1
        if deployment["name"] != "Ingress":
            scaling = deployment["autoscaling_config"]
            assert 1 <= scaling["min_replicas"] < scaling["max_replicas"]


def test_bad_app_args_and_missing_models_fail_before_any_replica(tmp_path):
    with pytest.raises(ValueError, match="versions"):
        build_app({"versions": {}})
    with pytest.raises(ValueError, match="stepz"):
        build_app({"versions": {"a": {"path": "a", "sampler": {"stepz": 3}}}})
    with pytest.raises(ValueError, match="version name"):
        build_app({"versions": {"a b": {"path": "a"}}})
    with pytest.raises(FileNotFoundError, match="not a model version folder"):
        build_app({"models_dir": str(tmp_path), "versions": {"default": {"path": "default"}}})


def test_load_serve_config_applies_overrides(tmp_path):
    config = load_serve_config(CONFIGS["local"], port=9123, models_dir=tmp_path)
    assert config["http_options"]["port"] == 9123
    assert config["applications"][0]["args"]["models_dir"] == str(tmp_path.absolute())


def test_kgi_serve_refuses_missing_models_before_starting_ray(tmp_path):
    from deployments.commands import serve as serve_command

    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    args = parser.parse_args(["--models", str(tmp_path), "--port", "8123"])
    assert args.config == CONFIGS["local"] and args.port == 8123
    with pytest.raises(CommandError, match="not a model version folder"):
        serve_command.run(args)
    with pytest.raises(CommandError, match="does not exist"):
        serve_command.run(parser.parse_args(["--config", str(tmp_path / "nope.yaml")]))


def test_error_mapping_for_overload_and_internal_failures():
    overloaded = error_response(BackPressureError(num_queued_requests=64, max_queued_requests=64))
    assert overloaded.status_code == 503 and overloaded.headers["retry-after"] == "1"
    assert json.loads(overloaded.body)["error"]["code"] == "overloaded"
    internal = error_response(RuntimeError("secret detail"))
    body = json.loads(internal.body)
    assert internal.status_code == 500 and "secret detail" not in body["error"]["message"]


def test_admin_route_is_disabled_without_a_configured_token(monkeypatch):
    monkeypatch.delenv("KGI_ADMIN_TOKEN", raising=False)
    with pytest.raises(RequestError) as refused:
        require_admin_token(f"Bearer {ADMIN_TOKEN}")
    assert refused.value.status == 403


# ---------------------------------------------------------------- preprocessing rules (no cluster)


@pytest.mark.parametrize("cloth", ["06396_00", "00006_00"])  # white stripes on white; long sleeves close to the body
def test_background_mask_matches_the_shipped_cloth_mask(vitonhd_sample, cloth):
    garment = decode_rgb((vitonhd_sample / "test" / "cloth" / f"{cloth}.jpg").read_bytes(), source="garment")
    shipped = decode_gray((vitonhd_sample / "test" / "cloth-mask" / f"{cloth}.jpg").read_bytes(),
                          source="cloth_mask") >= 128
    computed = background_mask(garment)
    assert (computed & shipped).sum() / (computed | shipped).sum() > 0.95


def test_background_mask_refuses_a_photo_without_a_garment():
    with pytest.raises(RequestError, match="cloth_mask"):
        background_mask(np.full((64, 48, 3), 250, np.uint8))


def test_fit_person_crops_wide_photos_around_the_person_and_pads_narrow_ones():
    height, width = 400, 600  # wider than 3:4: crop to 300 columns
    person = np.zeros((height, width, 3), np.uint8)
    person[:, 400:] = 200
    parse = np.zeros((height, width), np.uint8)
    pose = np.zeros((25, 3), np.float32)
    pose[[1, 2, 5], :] = [[420, 100, 1], [380, 120, 1], [460, 120, 1]]  # the person stands right of centre
    pose[7] = [50, 300, 1]  # a stray detection far left
    cropped, cropped_parse, moved = fit_person(person, parse, pose)
    assert cropped.shape == (400, 300, 3) and cropped_parse.shape == (400, 300)
    left = 420 - 150  # the window is centred on the neck
    np.testing.assert_array_equal(cropped, person[:, left:left + 300])
    np.testing.assert_allclose(moved[[1, 2, 5]], pose[[1, 2, 5]] - [left, 0, 0])
    assert (moved[7] == 0).all()  # fell outside the window: undetected

    pose[1] = 0  # no neck: the median detected joint (x = 380 of 50, 380, 460) is the centre
    _, _, moved = fit_person(person, parse, pose)
    np.testing.assert_allclose(moved[2], pose[2] - [380 - 150, 0, 0])
    assert (moved[0] == 0).all()  # undetected joints stay (0, 0, 0)

    narrow = np.full((400, 200, 3), 7, np.uint8)  # narrower than 3:4: pad 50 columns on each side
    standing = np.zeros((25, 3), np.float32)
    standing[1] = [100, 80, 1]
    padded, padded_parse, shifted = fit_person(narrow, np.ones((400, 200), np.uint8), standing)
    assert padded.shape == (400, 300, 3) and (padded == 7).all()  # edge columns repeated
    assert padded_parse[:, :50].max() == 0 and padded_parse[:, 50:250].min() == 1
    np.testing.assert_allclose(shifted[1], [150, 80, 1])
    assert (shifted[0] == 0).all()


def test_fit_garment_pads_with_the_background_colour_and_moves_keypoints():
    garment = np.full((100, 200, 3), 240, np.uint8)  # wider than 3:4: pad top and bottom to 267 rows
    garment[40:60, 80:120] = 30
    mask = np.zeros((100, 200), bool)
    mask[40:60, 80:120] = True
    keypoints = np.tile(np.array([[80.0, 40.0]], np.float32), (32, 1))
    padded, padded_mask, moved = fit_garment(garment, mask, keypoints)
    assert padded.shape == (267, 200, 3) and padded_mask.shape == (267, 200)
    top = (267 - 100) // 2
    assert (padded[:top] == 240).all() and padded_mask.sum() == mask.sum()
    np.testing.assert_allclose(moved[0], [80, 40 + top])
    assert padded_mask[40 + top, 80]


def test_prepare_sample_on_the_genuine_pair(vitonhd_sample):
    files = sample_files(vitonhd_sample)
    uploads = Uploads(person=files["person"], garment=files["garment"], pose=files["pose"], parse=files["parse"])
    sample = prepare_sample(uploads, HEIGHT, max_bytes=10_000_000, max_pixels=10_000_000)
    assert sample.size == (HEIGHT, WIDTH)
    assert sample.person.shape == (HEIGHT, WIDTH, 3) and sample.parse.shape == (HEIGHT, WIDTH)
    assert sample.cloth.shape == (HEIGHT, WIDTH, 3) and sample.cloth_mask.shape == (HEIGHT, WIDTH)
    original = parse_openpose(files["pose"])
    np.testing.assert_allclose(sample.pose[:, :2], original[:, :2] * HEIGHT / 1024, atol=1e-3)
    labels = set(np.unique(decode_labels(files["parse"], source="parse")))
    assert set(np.unique(sample.parse)) <= labels  # nearest-neighbour resizing invents no label
    keypoints = sample.cloth_keypoints
    assert keypoints.shape == (32, 2)
    near_garment = cv2.dilate(sample.cloth_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    on_outline = near_garment[np.clip(np.round(keypoints[:, 1]).astype(int), 0, HEIGHT - 1),
                              np.clip(np.round(keypoints[:, 0]).astype(int), 0, WIDTH - 1)]
    assert on_outline.all()  # keypoints lie on the computed garment mask's outline


def test_prepare_sample_says_what_is_missing_or_wrong(vitonhd_sample):
    files = sample_files(vitonhd_sample)
    limits = {"max_bytes": 10_000_000, "max_pixels": 10_000_000}
    with pytest.raises(MissingInputError, match="pose .* and parse"):
        prepare_sample(Uploads(person=files["person"], garment=files["garment"]), HEIGHT, **limits)
    with pytest.raises(ImageError, match="person: 87905 bytes exceeds"):
        prepare_sample(Uploads(person=files["person"], garment=files["garment"], pose=files["pose"],
                               parse=files["parse"]), HEIGHT, max_bytes=50_000, max_pixels=10_000_000)
    with pytest.raises(RequestError, match="garment_keypoints: expected 32"):
        prepare_sample(Uploads(person=files["person"], garment=files["garment"], pose=files["pose"],
                               parse=files["parse"], garment_keypoints=b"[[1, 2]]"), HEIGHT, **limits)
    small_parse = Image.open(io.BytesIO(files["parse"])).resize((96, 128), Image.NEAREST)
    buffer = io.BytesIO()
    small_parse.save(buffer, format="PNG")
    with pytest.raises(RequestError, match="parse: 96x128 does not match the person photo's 768x1024"):
        prepare_sample(Uploads(person=files["person"], garment=files["garment"], pose=files["pose"],
                               parse=buffer.getvalue()), HEIGHT, **limits)


# ---------------------------------------------------------------- the service over HTTP


def inpaint_batch_counts(version: str) -> dict[int, int]:
    from ray import serve

    return serve.get_deployment_handle(f"Inpaint-{version}", app_name=APP).batch_size_counts.remote().result()


def test_tryon_answers_a_png_end_to_end(service, vitonhd_sample):
    files = sample_files(vitonhd_sample)
    response = httpx.post(f"{service}/v1/tryon", files=multipart(files), timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-kgi-version"] in ("default", "fast")
    timings = json.loads(response.headers["x-kgi-timings"])
    assert set(timings) == {"preprocess", "keypoints", "parse_warp", "inpaint", "total"}
    assert all(seconds > 0 for seconds in timings.values())
    assert timings["total"] >= timings["inpaint"]
    assert png(response.content).shape == (HEIGHT, WIDTH, 3)


def test_tryon_json_carries_every_stage_and_keeps_known_pixels(service, vitonhd_sample):
    files = sample_files(vitonhd_sample)
    response = httpx.post(f"{service}/v1/tryon", files=multipart(files, leave_out=()), timeout=120,
                          data={"response": "json", "stages": "true", "version": "fast", "seed": "7", "steps": "3"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == response.headers["x-kgi-version"] == "fast"
    assert (body["seed"], body["steps"], body["unet_evaluations"]) == (7, 3, 3)
    image = b64png(body["image"])
    stages = {name: b64png(value) for name, value in body["stages"].items() if isinstance(value, str)}
    assert image.shape == stages["recomposed"].shape == stages["warped_garment"].shape == (HEIGHT, WIDTH, 3)
    keep = stages["keep_mask"] > 127
    assert 0 < keep.mean() < 1
    np.testing.assert_array_equal(image[keep], stages["recomposed"][keep])  # kept pixels are exact
    parse_image = Image.open(io.BytesIO(base64.b64decode(body["stages"]["target_parse"])))
    assert parse_image.mode == "P" and int(np.asarray(parse_image).max()) < NUM_PARSE13
    assert len(body["garment_keypoints"]) == len(body["stages"]["cloth_keypoints"]) == 32


async def _post_many(url: str, requests: list[tuple[dict, dict, dict]]) -> list[httpx.Response]:
    """POST every (files, data, headers) at once."""
    async with httpx.AsyncClient(timeout=300) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/tryon", files=files, data=data, headers=headers)
                                      for files, data, headers in requests))


def test_concurrent_requests_are_batched_and_keep_their_seeds(service, vitonhd_sample):
    files = multipart(sample_files(vitonhd_sample))
    before = inpaint_batch_counts("default")
    seeds = [1, 2] * 6
    responses = asyncio.run(_post_many(service, [
        (files, {"version": "default", "seed": str(seed), "response": "json"}, {}) for seed in seeds]))
    assert [r.status_code for r in responses] == [200] * 12, [r.text[:200] for r in responses]
    after = inpaint_batch_counts("default")
    formed = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * count for size, count in formed.items()) == 12  # every request went through a batch
    assert max(size for size, count in formed.items() if count > 0) > 1
    bodies = [r.json() for r in responses]
    assert max(body["inpaint_batch_size"] for body in bodies) > 1
    # Batch-mates do not influence each other: the same seed gives the same image (up to float rounding across
    # batch sizes), another seed another one.
    images = np.stack([b64png(body["image"]).astype(np.int16) for body in bodies])  # (12, H, W, 3)
    same = np.abs(images[0::2] - images[0]).max(), np.abs(images[1::2] - images[1]).max()
    assert max(same) <= 2
    assert np.abs(images[0] - images[1]).mean() > 1.0


def test_ab_routing_is_sticky_per_user_and_mixes_versions(service, vitonhd_sample):
    files = multipart(sample_files(vitonhd_sample))
    summary_before = httpx.get(f"{service}/v1/ab").json()
    router = VersionRouter(summary_before["weights"])
    users = [f"shopper-{i}" for i in range(12)]
    expected = {user: router.choose(user_id=user) for user in users}
    assert set(expected.values()) == {"default", "fast"}  # these ids land on both sides of a 50/50 split
    plan = [(files, {"steps": "1"}, {"X-User-Id": user}) for user in users + users[::-1]] + \
        [(files, {"steps": "1"}, {}) for _ in range(6)]
    responses = asyncio.run(_post_many(service, plan))
    assert [r.status_code for r in responses] == [200] * len(plan), [r.text[:200] for r in responses]
    served = [r.headers["x-kgi-version"] for r in responses]
    for (_, _, headers), version in zip(plan, served):
        if headers:
            assert version == expected[headers["X-User-Id"]]
    summary = httpx.get(f"{service}/v1/ab").json()["versions"]
    for version in ("default", "fast"):
        assert summary[version]["requests"] - summary_before["versions"][version]["requests"] == served.count(version)
        assert summary[version]["latency_p95_s"] >= summary[version]["latency_p50_s"] > 0


def test_admin_changes_weights_only_with_the_right_token(service):
    url = f"{service}/v1/ab/weights"
    body = {"weights": {"default": 0.7, "fast": 0.3}}
    assert httpx.put(url, json=body).status_code == 401
    wrong = httpx.put(url, json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert wrong.headers["www-authenticate"] == "Bearer"
    bad = httpx.put(url, json={"weights": {"slow": 1}}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_weights"
    try:
        ok = httpx.put(url, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert ok.status_code == 200 and ok.json()["weights"] == pytest.approx(body["weights"])
        models = {v["name"]: v["weight"] for v in httpx.get(f"{service}/v1/models").json()["versions"]}
        assert models == pytest.approx(body["weights"])
    finally:
        httpx.put(url, json={"weights": {"default": 0.5, "fast": 0.5}},
                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.mark.parametrize("change, status, code, says, routed", [
    ({"files": {"person": ("notes.txt", b"not an image")}}, 422, "invalid_image", "person: not an image", True),
    ({"files": {"person": ("huge.jpg", bytes(15_000_001))}}, 413, "payload_too_large", "person: larger", False),
    ({"data": {"version": "slow"}}, 422, "unknown_version", "'slow' is not served", False),
    ({"data": {"steps": "0"}}, 422, "invalid_input", "steps: must be between 1 and 100", False),
    ({"data": {"steps": "many"}}, 422, "invalid_input", "steps: expected an integer", False),
    ({"data": {"colour": "red"}}, 422, "unknown_field", "unknown form field(s) ['colour']", False),
    ({"data": {"response": "gif"}}, 422, "invalid_input", "response: expected one of", False),
    ({"drop": "parse"}, 422, "missing_input", "send parse", True),
    ({"drop": "person"}, 422, "missing_input", "person: required", False),
    ({"files": {"pose": ("pose.json", b'{"people": []}')}}, 422, "invalid_pose", "no person", True),
])
def test_bad_requests_answer_json_4xx(service, vitonhd_sample, change, status, code, says, routed):
    files = multipart(sample_files(vitonhd_sample))
    files.update(change.get("files", {}))
    files.pop(change.get("drop"), None)
    response = httpx.post(f"{service}/v1/tryon", files=files, data=change.get("data", {}), timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and says in error["message"]
    # Failures after routing name the version they hit; form errors come before any version is chosen.
    assert ("x-kgi-version" in response.headers) == routed


def test_service_routes_models_health_docs(service):
    assert httpx.get(f"{service}/healthz").json() == {"status": "ok", "versions": ["default", "fast"]}
    versions = {v["name"]: v for v in httpx.get(f"{service}/v1/models").json()["versions"]}
    assert versions["default"]["default_steps"] == 2 and versions["fast"]["default_steps"] == 4
    assert versions["fast"]["resolution"] == {"height": HEIGHT, "width": WIDTH}
    assert "swagger" in httpx.get(f"{service}/docs").text.lower()
    schema = httpx.get(f"{service}/openapi.json").json()
    form = schema["paths"]["/v1/tryon"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"person", "garment", "pose", "parse", "steps", "version"} <= set(form["properties"])
    missing = httpx.get(f"{service}/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
