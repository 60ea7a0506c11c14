"""A/B experiments on a real local Ray cluster with two Ingress replicas, over real HTTP.

The experiment is the Ingress's ``user_config``: a weight change reaches both replicas and restarts no replica of
any deployment; a replica killed comes back with the same weights. Feedback for 1000 simulated requests gives the
report's exact counts and finds the planted difference only; a canary whose sampler calls fail half the time is
rolled back by ``kgi ab rollout``. The tests share the session's ``service`` (conftest.py): the module scales its
Ingress to two replicas through Serve's REST API and puts the experiment back at the end.
"""

from __future__ import annotations

import io
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import pytest

from deployments.experiments import ServeConfigWriter
from kgi.cli import main as kgi_main

from serving_support import ADMIN_TOKEN

pytestmark = pytest.mark.slow

APP = "kgi"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def ab_service(service: str):
    """The shared service with two Ingress replicas (a lightweight config update: nothing else restarts). The
    experiment is put back at the end; the second replica stays (no other test depends on their number, and
    stopping it would cost the suite a graceful shutdown)."""
    writer = ServeConfigWriter(APP)
    experiment = writer.options().get("user_config")
    writer.write({"num_replicas": 2, "autoscaling_config": None}, timeout_s=600)  # a replica start: slow on 2 cores
    assert len(replicas()["Ingress"]) == 2
    yield service
    writer.write({"user_config": experiment})


def replicas() -> dict[str, set[str]]:
    """deployment -> the ids of its live replicas (Serve's replica actors are named app#deployment#id)."""
    import ray

    found: dict[str, set[str]] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == "serve" and entry["name"].startswith(f"SERVE_REPLICA::{APP}#"):
            _, deployment, replica = entry["name"].split("::", 1)[1].split("#")
            found.setdefault(deployment, set()).add(replica)
    return found


def views(url: str, wanted: int = 2, tries: int = 200) -> dict[str, dict]:
    """replica id -> its ``GET /v1/ab`` (the proxy spreads requests over the replicas: ask until ``wanted``)."""
    seen = {}
    for _ in range(tries):
        body = httpx.get(f"{url}/v1/ab", timeout=TIMEOUT_S).json()
        seen[body["replica"]] = body
        if len(seen) >= wanted:
            break
    return seen


def example_files() -> dict:
    return {name: (path.name, path.read_bytes()) for name, path in (
        ("person", EXAMPLES / "person.jpg"), ("garment", EXAMPLES / "garment.jpg"),
        ("pose", EXAMPLES / "person_keypoints.json"), ("parse", EXAMPLES / "person_parse.png"))}


def test_a_weight_change_reaches_both_replicas_and_restarts_none(ab_service):
    before = replicas()
    assert len(before["Ingress"]) == 2
    response = httpx.put(f"{ab_service}/v1/ab/weights", json={"weights": {"default": 0.2, "fast": 0.8}},
                         headers=ADMIN, timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    assert response.json()["weights"] == pytest.approx({"default": 0.2, "fast": 0.8})
    # Answered once every replica runs it: both replicas show it at once.
    seen = views(ab_service)
    assert set(seen) == before["Ingress"]
    for body in seen.values():
        assert body["weights"] == pytest.approx({"default": 0.2, "fast": 0.8})
        assert body["experiment"] == "default-vs-fast"
    assert replicas() == before  # the same replicas of every deployment: nothing restarted


def test_a_killed_ingress_replica_comes_back_with_the_weights(ab_service):
    import ray

    weights = {"default": 0.3, "fast": 0.7}
    assert httpx.put(f"{ab_service}/v1/ab/weights", json={"weights": weights}, headers=ADMIN,
                     timeout=TIMEOUT_S).status_code == 200
    victim = sorted(replicas()["Ingress"])[0]
    ray.kill(ray.get_actor(f"SERVE_REPLICA::{APP}#Ingress#{victim}", namespace="serve"), no_restart=True)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        live = replicas()["Ingress"]
        if victim not in live and len(live) == 2:
            seen = views(ab_service)
            if set(seen) == live:
                break
        assert time.monotonic() < deadline, f"Ingress replica {victim} was not replaced"
        time.sleep(1)
    for body in seen.values():  # the new replica got the weights from Serve, not from its code's defaults
        assert body["weights"] == pytest.approx(weights)


def test_feedback_for_1000_simulated_requests_gives_the_report(ab_service):
    from ray import serve

    # Real try-ons carry a request id; feedback names it; a request that names its version is counted apart; every
    # routed request is copied to the shadow version too.
    started = httpx.put(f"{ab_service}/v1/ab/experiment", headers=ADMIN, timeout=TIMEOUT_S, json={
        "experiment": "live-1", "weights": {"default": 1}, "shadow": {"version": "fast", "share": 1.0}})
    assert started.status_code == 200, started.text
    answers = [httpx.post(f"{ab_service}/v1/tryon", files=example_files(), timeout=TIMEOUT_S, data=data,
                          headers={"X-User-Id": "shopper-1"})
               for data in ({"steps": "1"}, {"steps": "1", "version": "fast", "response": "json"})]
    assert [a.status_code for a in answers] == [200, 200], [a.text[:200] for a in answers]
    request_ids = [a.headers["x-kgi-request-id"] for a in answers]
    assert answers[1].json()["request_id"] == request_ids[1] and len(set(request_ids)) == 2
    posted = [httpx.post(f"{ab_service}/v1/feedback", json={"request_id": request_id, "event": "kept"})
              for request_id in request_ids]
    assert [p.status_code for p in posted] == [200, 200]
    assert [(p.json()["experiment"], p.json()["routing"]) for p in posted] == [("live-1", "routed"),
                                                                               ("live-1", "requested")]
    unknown = httpx.post(f"{ab_service}/v1/feedback", json={"request_id": "0" * 32, "event": "kept"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_request"
    deadline = time.monotonic() + TIMEOUT_S
    while (live := httpx.get(f"{ab_service}/v1/ab/report").json())["versions"]["fast"]["shadow"] is None:
        assert time.monotonic() < deadline, "the shadow copy was never recorded"
        time.sleep(0.5)  # the shadow copy runs after the answer
    assert live["experiment"] == "live-1" and answers[0].headers["x-kgi-version"] == "default"
    assert live["versions"]["default"]["routed"]["requests"] == 1
    assert live["versions"]["fast"]["requested"]["requests"] == 1
    assert live["versions"]["fast"]["shadow"]["requests"] == 1 and live["versions"]["fast"]["shadow"]["errors"] == 0
    assert live["versions"]["fast"]["shadow"]["latency_s"]["p50"] > 0
    assert live["versions"]["default"]["outcomes"]["kept"]["count"] == 1
    assert live["versions"]["fast"]["outcomes"]["kept"]["count"] == 0  # the named request's outcome stays out

    # 1000 simulated requests (500 per version) stored as the ingress stores them, their outcomes over HTTP:
    # "added_to_cart" planted at 10% vs 20%, "kept" at 30% for both.
    store = serve.get_deployment_handle("ExperimentStore", app_name=APP)
    rows, outcomes = [], []
    for version, cart_rate in (("default", 0.10), ("fast", 0.20)):
        for i in range(500):
            request_id = f"sim-{version}-{i}"
            rows.append({"id": request_id, "experiment": "sim-1", "version": version, "routing": "routed",
                         "user_id": f"user-{i}", "status": 500 if i % 100 == 99 else 200,
                         "latency_s": 0.1 * (1 + i % 10)})
            if i < cart_rate * 500:
                outcomes.append({"request_id": request_id, "event": "added_to_cart", "value": 20.0})
            if 100 <= i < 250:
                outcomes.append({"request_id": request_id, "event": "kept"})
    store.record.remote(rows).result(timeout_s=TIMEOUT_S)
    with httpx.Client(timeout=TIMEOUT_S) as client:
        assert {client.post(f"{ab_service}/v1/feedback", json=body).status_code for body in outcomes} == {200}

    report = httpx.get(f"{ab_service}/v1/ab/report", params={"experiment": "sim-1"}).json()
    for version, carts in (("default", 50), ("fast", 99)):  # fast's i = 99 answered 500: never shown
        entry = report["versions"][version]
        assert entry["routed"]["requests"] == 500 and entry["routed"]["errors"] == 5
        assert entry["requested"] is None and entry["shadow"] is None
        assert entry["routed"]["latency_s"]["p50"] == pytest.approx(0.55, abs=0.051)
        assert (entry["outcomes"]["added_to_cart"]["count"], entry["outcomes"]["added_to_cart"]["trials"]) == \
            (carts, 495)  # the 5 server errors do not count
        assert entry["outcomes"]["added_to_cart"]["value_mean"] == pytest.approx(20.0)
        assert entry["outcomes"]["kept"]["count"] == 149  # i = 199 answered 500
    assert report["tests"]["added_to_cart"]["fast"]["ztest"]["significant"]
    assert report["tests"]["added_to_cart"]["fast"]["msprt"]["significant"]
    assert not report["tests"]["kept"]["fast"]["ztest"]["significant"]
    assert not report["tests"]["kept"]["fast"]["msprt"]["significant"]

    printed = io.StringIO()
    with redirect_stdout(printed):
        assert kgi_main(["ab", "--url", ab_service, "report", "--experiment", "sim-1"]) == 0
    text = printed.getvalue()
    assert "experiment sim-1" in text and "fast - default: +9.9%" in text and "(significant)" in text


def test_a_canary_with_planted_errors_is_rolled_back(ab_service):
    import ray

    original = {"default": 1.0, "fast": 0.0}
    assert httpx.put(f"{ab_service}/v1/ab/experiment", headers=ADMIN, timeout=TIMEOUT_S,
                     json={"experiment": "canary-1", "weights": original}).status_code == 200

    def fail_every_other_call(replica_actor) -> None:  # the candidate's sampler calls break half the time
        inpaint = replica_actor._replica_impl._user_callable_wrapper._callable
        sample, calls = inpaint._sample, []

        def planted(pipeline, version, *args):
            if version == "fast":
                calls.append(1)
                if len(calls) % 2:
                    raise RuntimeError("planted fault")
            return sample(pipeline, version, *args)

        inpaint._sample = planted

    def repair(replica_actor) -> None:
        del replica_actor._replica_impl._user_callable_wrapper._callable._sample  # the class's method again

    # One Inpaint deployment serves both versions: the fault is planted in its replicas for "fast" only.
    inpaint_replicas = [ray.get_actor(f"SERVE_REPLICA::{APP}#Inpaint#{replica}", namespace="serve")
                        for replica in replicas()["Inpaint"]]
    ray.get([replica.__ray_call__.remote(fail_every_other_call) for replica in inpaint_replicas])

    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=TIMEOUT_S) as client:
            while not stop.is_set():
                client.post(f"{ab_service}/v1/tryon", files=example_files(), data={"steps": "1"})

    senders = [threading.Thread(target=traffic) for _ in range(2)]
    for sender in senders:
        sender.start()
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            code = kgi_main(["ab", "--url", ab_service, "--token", ADMIN_TOKEN, "rollout", "fast",
                             "--steps", "0.5,1", "--interval", "60", "--poll", "1", "--min-requests", "6",
                             "--max-error-rate", "0.2"])
    finally:
        stop.set()
        for sender in senders:
            sender.join()
        ray.get([replica.__ray_call__.remote(repair) for replica in inpaint_replicas])
    assert code == 1, printed.getvalue()
    assert "rolled back to default 100%, fast 0%: fast's error rate" in printed.getvalue()
    summary = httpx.get(f"{ab_service}/v1/ab").json()
    assert summary["weights"] == pytest.approx(original) and summary["experiment"] == "canary-1"
