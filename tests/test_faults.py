"""Faults on the real service: overload, a killed replica, a model that breaks while serving.

One local Ray cluster for the module (``serving_support.running_service``) with ``platform/serve/local.yaml`` made
small: one model version, an ingress that takes 4 requests at a time and queues 4 more, a request timeout of 60 s,
and the inpainting stage on one replica (no autoscaling: the killed-replica test kills the one) with health checks
every second. Every test ends with the service fully healthy again, so the next one starts from a working service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import httpx
import numpy as np
import pytest
import torch

from deployments.stages import check_finite
from kgi.models.keypoints import KeypointGNN

from serving_support import REPO, keep_only_version, running_service

APP, INPAINT = "kgi", "Inpaint-default"
REQUEST_TIMEOUT_S = 60
INGRESS_ONGOING, INGRESS_QUEUED = 4, 4
TIMEOUT_SLACK_S = 10  # how late after request_timeout_s Serve's proxy may answer a request it timed out
RECOVERY_TIMEOUT_S = 180  # a replacement replica starts a process and loads the models on a busy 2-core machine
EXAMPLES = REPO / "examples"


def make_small(config: dict) -> None:
    """The config changes of this module (see the module docstring)."""
    config["http_options"]["request_timeout_s"] = REQUEST_TIMEOUT_S
    (application,) = config["applications"]
    keep_only_version(config, "default")
    for deployment in application["deployments"]:
        if deployment["name"] == "Ingress":
            deployment.update(max_ongoing_requests=INGRESS_ONGOING, max_queued_requests=INGRESS_QUEUED)
        if deployment["name"] == INPAINT:
            deployment.pop("autoscaling_config", None)
            deployment.update(num_replicas=1, health_check_period_s=1, health_check_timeout_s=10)


@pytest.fixture(scope="module")
def small_service(model_root):
    with running_service(model_root, configure=make_small) as url:
        yield url


def example_files() -> list[tuple[str, tuple[str, bytes]]]:
    names = {"person": "person.jpg", "garment": "garment.jpg", "pose": "person_keypoints.json",
             "parse": "person_parse.png"}
    return [(field, (name, (EXAMPLES / name).read_bytes())) for field, name in names.items()]


async def _post_timed(client: httpx.AsyncClient, url: str, steps: int) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = await client.post(f"{url}/v1/tryon", files=example_files(), data={"steps": str(steps)})
    return response, time.perf_counter() - start


async def post_many(url: str, count: int, steps: int, spacing_s: float = 0.0) -> list[tuple[httpx.Response, float]]:
    """``count`` try-ons started ``spacing_s`` apart, each with its latency; the client waits past the
    service's own timeout so that a request the service let hang would show here."""
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S + 30) as client:
        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(_post_timed(client, url, steps)))
            await asyncio.sleep(spacing_s)
        return await asyncio.gather(*tasks)


def latency_line(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{label}: none"
    p50, p90, p99 = np.percentile(seconds, [50, 90, 99])
    return (f"{label}: n={len(seconds)} p50={p50:.2f}s p90={p90:.2f}s p99={p99:.2f}s max={max(seconds):.2f}s")


def assert_only_clean_outcomes(results: list[tuple[httpx.Response, float]], allowed: set[int]) -> Counter:
    """Every answer has an ``allowed`` status (a 503 with Retry-After) and came by the service's timeout."""
    statuses = Counter(response.status_code for response, _ in results)
    assert set(statuses) <= allowed, {r.status_code: r.text[:200] for r, _ in results}
    for response, seconds in results:
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
        assert seconds < REQUEST_TIMEOUT_S + TIMEOUT_SLACK_S
    return statuses


def inpaint_replicas() -> dict[str, int]:
    """Actor name -> process id of every live Inpaint replica (Serve names replica actors by deployment)."""
    import ray

    prefix = f"SERVE_REPLICA::{APP}#{INPAINT}#"
    replicas = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != "serve" or not entry["name"].startswith(prefix):
            continue
        try:
            actor = ray.get_actor(entry["name"], namespace="serve")
            replicas[entry["name"]] = ray.get(actor.__ray_call__.remote(lambda replica: os.getpid()), timeout=30)
        except (ValueError, ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            continue  # gone, or not started yet
    return replicas


def inpaint_replica() -> tuple[str, int]:
    """(actor name, process id) of the one live Inpaint replica."""
    (replica,) = inpaint_replicas().items()
    return replica


def wait_until_replaced(url: str, old_pid: int) -> float:
    """Seconds until a new Inpaint replica serves and a try-on succeeds again (fails after the bound)."""
    from ray import serve

    start = time.monotonic()
    while time.monotonic() - start < RECOVERY_TIMEOUT_S:
        status = serve.status().applications[APP].deployments[INPAINT].status.value
        if status == "HEALTHY" and old_pid not in inpaint_replicas().values():
            response = httpx.post(f"{url}/v1/tryon", files=example_files(), data={"steps": "1"},
                                  timeout=REQUEST_TIMEOUT_S)
            if response.status_code == 200:
                return time.monotonic() - start
        time.sleep(1)
    pytest.fail(f"{INPAINT} was not replaced within {RECOVERY_TIMEOUT_S} s")


# ---------------------------------------------------------------- no cluster


def test_check_finite_names_the_broken_tensor():
    model = KeypointGNN(garment_channels=8, pose_channels=8)
    check_finite("keypoint network", model)  # a fresh model is healthy
    parameter_name, parameter = next(iter(model.named_parameters()))
    with torch.no_grad():
        parameter.view(-1)[0] = float("nan")
    with pytest.raises(RuntimeError, match=f"keypoint network: {parameter_name} holds NaN"):
        check_finite("keypoint network", model)
    # An infinity in a later tensor of another dtype is named too (the check reduces every tensor at once).
    with torch.no_grad():
        parameter.view(-1)[0] = 0.0
    model = model.to(torch.bfloat16)
    check_finite("keypoint network", model)
    last_name, last = list(model.named_parameters())[-1]
    with torch.no_grad():
        last.view(-1)[-1] = float("-inf")
    with pytest.raises(RuntimeError, match=f"keypoint network: {last_name} holds NaN"):
        check_finite("keypoint network", model)


# ---------------------------------------------------------------- the service


@pytest.mark.slow
def test_overload_is_answered_503_with_retry_after_quickly(small_service):
    """A burst four times the ingress's capacity: what fits is served, the rest refused at once, no 5xx else."""
    burst = 4 * (INGRESS_ONGOING + INGRESS_QUEUED)
    results = asyncio.run(post_many(small_service, burst, steps=2))
    statuses = assert_only_clean_outcomes(results, allowed={200, 503})
    served = [seconds for response, seconds in results if response.status_code == 200]
    refused = [seconds for response, seconds in results if response.status_code == 503]
    print(f"\nburst of {burst}: {dict(statuses)}\n  {latency_line('200', served)}\n  {latency_line('503', refused)}")
    assert len(served) >= INGRESS_ONGOING and refused  # capacity was used, and exceeded


@pytest.mark.slow
def test_killed_inpaint_replica_is_replaced_and_no_request_hangs(small_service):
    """Requests inside the killed replica fail at once (503 unavailable); those waiting for the stage go to
    its replacement (200) or, if it takes longer to start than the request timeout, end there (408)."""
    import ray

    name, pid = inpaint_replica()
    replica = ray.get_actor(name, namespace="serve")

    def kill_once_busy() -> None:
        """SIGKILL the replica's process as soon as it holds requests (within the request timeout)."""
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while ray.get(replica.get_num_ongoing_requests.remote()) == 0:
            assert time.monotonic() < deadline, "the load never reached the Inpaint replica"
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    async def load_then_kill() -> list[tuple[httpx.Response, float]]:
        load = asyncio.create_task(post_many(small_service, INGRESS_ONGOING, steps=100, spacing_s=0.2))
        await asyncio.to_thread(kill_once_busy)
        return await load

    results = asyncio.run(load_then_kill())
    statuses = assert_only_clean_outcomes(results, allowed={200, 503, 408})
    print(f"\nduring the kill: {dict(statuses)}; {latency_line('all', [s for _, s in results])}")
    assert statuses[503] >= 1  # the requests inside the killed replica failed at once, and cleanly
    for response, _ in results:
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "unavailable"
    recovered = wait_until_replaced(small_service, pid)
    print(f"replaced and serving again {recovered:.1f} s after the load ended")


@pytest.mark.slow
def test_health_check_replaces_a_replica_whose_model_broke(small_service):
    """NaN weights put into the live replica's UNet (through Ray's ``__ray_call__``, no route for it): the
    health check fails and Serve replaces the replica with one that loaded the model afresh."""
    import ray

    name, pid = inpaint_replica()

    def break_the_unet(replica_actor) -> int:
        deployment = replica_actor._replica_impl._user_callable_wrapper._callable  # our Inpaint object
        with torch.no_grad():
            for parameter in deployment.pipeline.unet.parameters():
                parameter.fill_(float("nan"))
        return os.getpid()

    actor = ray.get_actor(name, namespace="serve")
    assert ray.get(actor.__ray_call__.remote(break_the_unet)) == pid
    recovered = wait_until_replaced(small_service, pid)
    print(f"\nbroken model detected and replaced in {recovered:.1f} s")
    response = httpx.post(f"{small_service}/v1/tryon", files=example_files(), data={"steps": "2", "response": "json"},
                          timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200 and response.json()["image"]
