"""The Serve application for real: configs, preprocessing, and a local Ray cluster answering HTTP.

The first tests need no cluster (configs against Ray's own schema; the preprocessing rules are in
test_preprocessing.py). The rest use the session's shared ``service`` (conftest.py): ``platform/serve/local.yaml``
deployed on ``ray.init(num_cpus=4)`` with a random-weights model version, "default" and "fast" split 50/50.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app, check_versions, load_serve_config
from deployments.config import parse_app_args
from deployments.errors import RequestError, error_response
from deployments.ingress import require_admin_token
from deployments.routing import ExperimentSettings, VersionRouter
from kgi.cli import CommandError
from kgi.data.labels import NUM_PARSE13

from serving_support import ADMIN_TOKEN, CONFIGS

APP = "kgi"
HEIGHT, WIDTH = 1024, 768  # the genuine photo's size: local.yaml tries on at the photo's own resolution


# ---------------------------------------------------------------- inputs


def sample_files(root: Path) -> dict[str, bytes]:
    """The genuine pair's uploads: person 00006_00 with the striped t-shirt 06396_00."""
    test = root / "test"
    return {"person": (test / "image" / "00006_00.jpg").read_bytes(),
            "garment": (test / "cloth" / "06396_00.jpg").read_bytes(),
            "parse": (test / "image-parse-v3" / "00006_00.png").read_bytes(),
            "pose": (test / "openpose_json" / "00006_00_keypoints.json").read_bytes(),
            "cloth_mask": (test / "cloth-mask" / "06396_00.jpg").read_bytes()}


def scaled_person(files: dict[str, bytes], height: int) -> dict[str, bytes]:
    """``files`` with the person's photo, parse and pose scaled to ``height`` rows (the garment as it is)."""
    photo = Image.open(io.BytesIO(files["person"]))
    factor = height / photo.height
    size = (round(photo.width * factor), height)
    person, parse = io.BytesIO(), io.BytesIO()
    photo.resize(size, Image.Resampling.BILINEAR).save(person, format="JPEG", quality=95)
    Image.open(io.BytesIO(files["parse"])).resize(size, Image.Resampling.NEAREST).save(parse, format="PNG")
    pose = json.loads(files["pose"])
    for person_pose in pose["people"]:
        points = np.asarray(person_pose["pose_keypoints_2d"], dtype=float).reshape(-1, 3)  # (18, 3): x, y, score
        points[:, :2] *= factor
        person_pose["pose_keypoints_2d"] = points.ravel().tolist()
    return {**files, "person": person.getvalue(), "parse": parse.getvalue(), "pose": json.dumps(pose).encode()}


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
    parse_app_args(application.args)
    configured = {deployment.name for deployment in application.deployments}
    # One deployment per stage serves every version; a misspelt name would silently configure nothing.
    assert configured == {"Ingress", "Preprocess", "ExperimentStore", "Keypoints", "ParseWarp", "Inpaint"}
    (ingress,) = [d for d in application.deployments if d.name == "Ingress"]
    settings = ExperimentSettings.parse(ingress.user_config)
    assert set(settings.versions) == {"default", "fast"}
    for deployment in application.deployments:
        assert deployment.max_queued_requests not in (None, -1), f"{deployment.name}: unbounded queue"
        if deployment.name == "Inpaint":
            assert deployment.max_ongoing_requests >= deployment.user_config["max_batch_size"]


def test_local_config_is_cpu_only_and_ab_out_of_the_box():
    (application,) = yaml.safe_load(CONFIGS["local"].read_text())["applications"]
    args = parse_app_args(application["args"])
    assert args.inpaint.device == "cpu"
    (ingress,) = [d for d in application["deployments"] if d["name"] == "Ingress"]
    settings = ExperimentSettings.parse(ingress["user_config"])
    assert {v.path for v in settings.versions.values()} == {"default"}  # two versions, one set of weights
    assert settings.weights == {"default": 0.5, "fast": 0.5}
    assert all("num_gpus" not in d.get("ray_actor_options", {}) for d in application["deployments"])
    most_replicas = [d.get("autoscaling_config", {}).get("max_replicas", d.get("num_replicas", 1))
                     for d in application["deployments"]]
    cpus = sum(d["ray_actor_options"]["num_cpus"] * n for d, n in zip(application["deployments"], most_replicas))
    assert cpus <= 2.0  # every deployment at its most replicas fits a two-core laptop


def test_gpu_config_puts_inpaint_on_gpus_with_autoscaling():
    (application,) = yaml.safe_load(CONFIGS["gpu-cluster"].read_text())["applications"]
    assert application["args"]["inpaint"] == {"device": "cuda", "dtype": "bfloat16"}
    for deployment in application["deployments"]:
        if deployment["name"] == "Inpaint":
            assert deployment["ray_actor_options"]["num_gpus"] == 1
        if deployment["name"] == "ExperimentStore":
            assert deployment["num_replicas"] == 1  # the one writer of its SQLite file
        else:
            scaling = deployment["autoscaling_config"]
            assert 1 <= scaling["min_replicas"] < scaling["max_replicas"]
            assert deployment["name"] != "Ingress" or scaling["min_replicas"] >= 2


def test_bad_app_args_and_missing_models_fail_before_any_replica(tmp_path):
    with pytest.raises(ValueError, match="versions: the served versions moved to the Ingress"):
        build_app({"versions": {"default": {"path": "default"}}})
    with pytest.raises(ValueError, match="max_stepz"):
        build_app({"max_stepz": 3})

    def application(versions: dict) -> dict:
        return {"args": {"models_dir": str(tmp_path)},
                "deployments": [{"name": "Ingress", "user_config": {"versions": versions}}]}

    with pytest.raises(ValueError, match="stepz"):
        check_versions(application({"a": {"path": "a", "sampler": {"stepz": 3}}}))
    with pytest.raises(ValueError, match="version name"):
        check_versions(application({"a b": {"path": "a"}}))
    with pytest.raises(ValueError, match="at least one version"):
        check_versions(application({}))
    with pytest.raises(FileNotFoundError, match="not a model version folder"):
        check_versions(application({"default": {"path": "default"}}))


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


# ---------------------------------------------------------------- the service over HTTP


@pytest.mark.slow  # the running service
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


@pytest.mark.slow  # the running service
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
    assert len(body["worn_keypoints"]) == len(body["stages"]["cloth_keypoints"]) == 32


async def _post_many(url: str, requests: list[tuple[dict, dict, dict]]) -> list[httpx.Response]:
    """POST every (files, data, headers) at once."""
    async with httpx.AsyncClient(timeout=300) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/tryon", files=files, data=data, headers=headers)
                                      for files, data, headers in requests))


@pytest.mark.slow  # the running service
def test_concurrent_requests_are_batched_and_keep_their_seeds(service, vitonhd_sample):
    # Batches form where requests queue: at Inpaint only when it is the slowest stage. A 256-row photo makes
    # ParseWarp cheap (at 1024 rows its full-resolution compositing outlasts the test model's 2 sampler steps),
    # 50 steps make Inpaint dear.
    files = multipart(scaled_person(sample_files(vitonhd_sample), 256))
    seeds = [1, 2] * 6
    responses = asyncio.run(_post_many(service, [
        (files, {"version": "default", "seed": str(seed), "steps": "50", "response": "json"}, {})
        for seed in seeds]))
    assert [r.status_code for r in responses] == [200] * 12, [r.text[:200] for r in responses]
    bodies = [r.json() for r in responses]
    assert max(body["inpaint_batch_size"] for body in bodies) > 1
    # Batch-mates do not influence each other: the same seed gives the same image (up to float rounding across
    # batch sizes), another seed another one.
    images = np.stack([b64png(body["image"]).astype(np.int16) for body in bodies])  # (12, H, W, 3)
    same = np.abs(images[0::2] - images[0]).max(), np.abs(images[1::2] - images[1]).max()
    assert max(same) <= 2
    assert np.abs(images[0] - images[1]).mean() > 1.0


@pytest.mark.slow  # the running service
def test_ab_routing_is_sticky_per_user_and_mixes_versions(service, vitonhd_sample):
    files = multipart(sample_files(vitonhd_sample))
    summary_before = httpx.get(f"{service}/v1/ab").json()
    router = VersionRouter(tuple(summary_before["weights"]), ExperimentSettings(
        experiment=summary_before["experiment"], weights=summary_before["weights"]))
    users = [f"shopper-{i}" for i in range(12)]
    expected = {user: router.choose(user_id=user)[0] for user in users}
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


@pytest.mark.slow  # the running service
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
    ({"drop": "pose"}, 422, "missing_input", "as 'pose'", True),  # local.yaml's estimator is unavailable here
    ({"drop": "person"}, 422, "missing_input", "person: required", False),
    ({"files": {"pose": ("pose.json", b'{"people": []}')}}, 422, "invalid_pose", "no person", True),
])
@pytest.mark.slow  # the running service
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


@pytest.mark.slow  # the running service
def test_service_routes_models_health_docs(service):
    assert httpx.get(f"{service}/healthz").json() == {"status": "ok", "versions": ["default", "fast"]}
    versions = {v["name"]: v for v in httpx.get(f"{service}/v1/models").json()["versions"]}
    assert versions["default"]["default_steps"] == 2 and versions["fast"]["default_steps"] == 4
    assert versions["fast"]["resolution"] == {"height": None, "width": None}  # the photo's own
    assert "swagger" in httpx.get(f"{service}/docs").text.lower()
    schema = httpx.get(f"{service}/openapi.json").json()
    form = schema["paths"]["/v1/tryon"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"person", "garment", "pose", "parse", "steps", "version"} <= set(form["properties"])
    missing = httpx.get(f"{service}/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# ---------------------------------------------------------------- many versions, one set of stage deployments

STAGES = ("Keypoints", "ParseWarp", "Inpaint")


def replica_processes() -> dict[str, dict[str, tuple[int, list[str]]]]:
    """deployment -> replica id -> (process id, the weights ids it has loaded; empty for non-stage deployments)."""
    import ray

    def look(replica_actor) -> tuple[int, list[str]]:
        deployment = replica_actor._replica_impl._user_callable_wrapper._callable
        return os.getpid(), deployment.loaded_weights() if hasattr(deployment, "loaded_weights") else []

    found: dict[str, dict[str, tuple[int, list[str]]]] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == "serve" and entry["name"].startswith(f"SERVE_REPLICA::{APP}#"):
            _, deployment, replica = entry["name"].split("::", 1)[1].split("#")
            actor = ray.get_actor(entry["name"], namespace="serve")
            found.setdefault(deployment, {})[replica] = ray.get(actor.__ray_call__.remote(look))
    return found


def test_one_set_of_stages_serves_every_version_and_a_new_registry_version_without_restarts(
        service, model_root, vitonhd_sample):
    from deployments.experiments import ServeConfigWriter
    from kgi.registry import ModelRegistry

    from serving_support import write_random_version

    # Two more versions with weights of their own, published in a registry under the models folder.
    registry = ModelRegistry(model_root / "registry")
    for seed, name in ((1, "v2"), (2, "v3")):
        if name not in registry.names():
            registry.push(write_random_version(model_root / "trained", name, seed) / name, name)
    writer = ServeConfigWriter(APP)
    original = writer.options()["user_config"]
    files = multipart(sample_files(vitonhd_sample))

    def serve_versions(extra: dict) -> None:
        writer.write({"user_config": {**original, "versions": {**original["versions"], **extra}}}, timeout_s=300)

    def try_on(version: str) -> np.ndarray:
        response = httpx.post(f"{service}/v1/tryon", files=files, timeout=300,
                              data={"version": version, "steps": "1", "seed": "3", "response": "json"})
        assert response.status_code == 200, response.text
        assert response.headers["x-kgi-version"] == version
        return b64png(response.json()["image"]).astype(np.int16)

    try:
        before = replica_processes()
        assert {name for name in serve.status().applications[APP].deployments if name.startswith("Inpaint")} == \
            {"Inpaint"}
        serve_versions({"v2": {"registry": "registry", "version": "v2"}})
        images = {version: try_on(version) for version in ("default", "fast", "v2")}
        assert np.abs(images["v2"] - images["default"]).mean() > 0.5  # other weights, another image
        loaded = {stage: {w for _, weights in replicas.values() for w in weights}
                  for stage, replicas in replica_processes().items() if stage in STAGES}
        # "default" and "fast" differ in sampler settings only: one set of weights serves both, in every stage.
        default_weights, v2_weights = str(model_root / "default"), str(model_root / "registry" / "v2")
        assert loaded == dict.fromkeys(STAGES, {default_weights, v2_weights})

        serve_versions({"v2": {"registry": "registry", "version": "v2"},
                        "v3": {"registry": "registry", "version": "v3", "sampler": {"num_steps": 1}}})
        assert [v["name"] for v in httpx.get(f"{service}/v1/models").json()["versions"]] == \
            ["default", "fast", "v2", "v3"]
        try_on("v3")
        after = replica_processes()
        # The same replicas, in the same processes, of every deployment: nothing restarted or redeployed.
        assert {d: {r: pid for r, (pid, _) in replicas.items()} for d, replicas in after.items()} == \
            {d: {r: pid for r, (pid, _) in replicas.items()} for d, replicas in before.items()}
        assert str(model_root / "registry" / "v3") in {w for _, weights in after["Inpaint"].values() for w in weights}
    finally:
        writer.write({"user_config": original}, timeout_s=300)
