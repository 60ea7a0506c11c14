"""Multi-node for real, on one machine: a two-node Ray cluster on localhost started with ``ray start``.

The head (``ray start --head``) stands for the cluster's CPU nodes and carries the custom resource ``cpu_node``;
the second node (``ray start --address``) stands for a GPU node and carries ``gpu_node`` (this machine has no
GPU: a custom resource places work on a kind of node the way ``num_gpus`` does on a real cluster). The Serve
config is ``platform/serve/local.yaml`` with one version whose Inpaint asks for ``gpu_node`` and whose other
deployments ask for ``cpu_node``. The tests show that

- the Inpaint replica runs on the GPU node and the CPU stages on the head, and a try-on crosses both;
- a training run's two workers (``placement_strategy: SPREAD``) land on both nodes and finish;
- killing the GPU node mid-serving takes Inpaint down, and once a GPU node is back Serve starts a new Inpaint
  replica on it and try-ons succeed again.

Both nodes are subprocesses of this module in their own process groups, with their own ports and temp dir; the
module kills exactly those (and the Ray workers started under that temp dir) at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import ray
import yaml
from ray import serve
from ray.util.state import list_actors

from deployments.app import deploy, load_serve_config
from kgi.data.synth import generate
from training.config import TrainConfig
from training.job import read_history
from training.shards import plan, write_shard

from serving_support import CONFIGS, REPO, free_port, keep_only_version

pytestmark = pytest.mark.slow

RAY_EXECUTABLE = Path(sys.executable).parent / "ray"
NODE_CPUS = 2
CPU_NODE, GPU_NODE = "cpu_node", "gpu_node"  # the custom resources of the head and of the second node
APP = "kgi"
NODE_START_TIMEOUT_S = 120
RECOVERY_TIMEOUT_S = 240
# Every process of the cluster: this checkout importable (as an installed package would be on real nodes), no
# token authentication (localhost only), node death noticed within ~3 s, slow starts on a loaded machine tolerated.
NODE_ENVIRONMENT = {"PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled", "RAY_health_check_period_ms": "1000",
                    "RAY_health_check_failure_threshold": "3", "RAY_raylet_start_wait_time_s": "120",
                    "KGI_POSE_PYTHON": ""}


class LocalCluster:
    """A head node and, when started, a "GPU" node: ``ray start --block`` subprocesses on localhost.

    Args:
        temp_dir: Ray's temp dir for both nodes (short: it holds the nodes' Unix sockets).
    """

    def __init__(self, temp_dir: Path):
        self.temp_dir = temp_dir
        self.address = f"127.0.0.1:{free_port()}"
        self.dashboard = f"http://127.0.0.1:{free_port()}"  # ray.util.state asks it; deploy goes through it
        self.gpu_node: subprocess.Popen | None = None
        self.head = self._start(
            "head", "--head", "--port", self.address.rsplit(":", 1)[1], "--temp-dir", str(temp_dir),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", self.dashboard.rsplit(":", 1)[1],
            "--ray-client-server-port", str(free_port()), "--resources", json.dumps({CPU_NODE: 100}))

    def _start(self, name: str, *options: str) -> subprocess.Popen:
        """One ``ray start --block`` in a process group of its own; its output goes to ``<temp_dir>/<name>.log``."""
        with open(self.temp_dir / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                [str(RAY_EXECUTABLE), "start", "--block", "--num-cpus", str(NODE_CPUS), "--disable-usage-stats",
                 "--dashboard-agent-listen-port", str(free_port()), *options],
                env={**os.environ, **NODE_ENVIRONMENT}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def connect(self) -> None:
        """``ray.init`` this process as a driver of the cluster, as soon as the head answers."""
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while True:
            try:
                ray.init(address=self.address, log_to_driver=False)
                return
            except ConnectionError:
                if self.head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the head node did not start: {self.log('head')}") from None
                time.sleep(1)

    def start_gpu_node(self) -> str:
        """Start the second node and return its node id once the cluster lists it alive."""
        known = set(alive_nodes())
        self.gpu_node = self._start("gpu-node", "--address", self.address, "--resources", json.dumps({GPU_NODE: 1}))
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while not (new := [node for node in alive_nodes() if node not in known]):
            if self.gpu_node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the GPU node did not join: {self.log('gpu-node')}")
            time.sleep(0.5)
        return new[0]

    def kill_gpu_node(self) -> None:
        """SIGKILL the second node's process group: its raylet and everything it started die at once."""
        os.killpg(self.gpu_node.pid, signal.SIGKILL)
        self.gpu_node.wait()

    def log(self, name: str) -> str:
        return (self.temp_dir / f"{name}.log").read_text(errors="replace")[-3000:]

    def shutdown(self) -> None:
        """Kill both nodes' process groups, then any Ray worker left under this cluster's temp dir."""
        for node in (self.gpu_node, self.head):
            if node is not None and node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        for process in psutil.process_iter(["cmdline"]):
            if any(str(self.temp_dir) in part for part in process.info["cmdline"] or []):
                process.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def alive_nodes() -> dict[str, dict]:
    """Node id -> resources of every node the cluster lists alive."""
    return {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}


def replica_nodes() -> dict[str, set[str]]:
    """Deployment name -> node ids of its running replicas (Serve replica actors, from Ray's state API)."""
    placement: dict[str, set[str]] = {}
    for actor in list_actors(address=ray.get_runtime_context().gcs_address, filters=[("state", "=", "ALIVE")],
                             limit=1000):
        if actor.class_name.startswith(f"ServeReplica:{APP}:"):
            placement.setdefault(actor.class_name.rsplit(":", 1)[1], set()).add(actor.node_id)
    return placement


def serve_config(model_root: Path, port: int) -> dict:
    """local.yaml with its "default" version only, Inpaint on ``gpu_node`` and every other deployment on
    ``cpu_node``; requests bring their own pose and parse."""
    config = load_serve_config(CONFIGS["local"], port=port, models_dir=model_root)
    (application,) = config["applications"]
    keep_only_version(config, "default")
    application["args"]["preprocess"] = {"pose": {"source": "none"}, "parser": {"source": "none"}}
    application["args"]["ab_store"] = str(model_root / f"experiments-{port}.sqlite")
    for deployment in application["deployments"]:
        node = GPU_NODE if deployment["name"].startswith("Inpaint-") else CPU_NODE
        deployment["ray_actor_options"]["resources"] = {node: 1}
    return config


def tryon(url: str, timeout_s: float = 120) -> httpx.Response:
    examples = REPO / "examples"
    files = {"person": (examples / "person.jpg").read_bytes(), "garment": (examples / "garment.jpg").read_bytes(),
             "pose": (examples / "person_keypoints.json").read_bytes(),
             "parse": (examples / "person_parse.png").read_bytes()}
    return httpx.post(f"{url}/v1/tryon", files={name: (name, data) for name, data in files.items()},
                      timeout=timeout_s)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    """The running two-node cluster, this process connected: {"cluster", "head", "gpu_node"} (node ids)."""
    local = LocalCluster(Path(tempfile.mkdtemp(prefix="kgi-ray-")))
    try:
        local.connect()
        (head,) = alive_nodes()
        gpu_node = local.start_gpu_node()
        yield {"cluster": local, "head": head, "gpu_node": gpu_node}
    finally:
        ray.shutdown()
        local.shutdown()


@pytest.fixture(scope="module")
def two_node_service(cluster, model_root) -> Iterator[str]:
    """The Serve application deployed on the two-node cluster; yields its URL."""
    port = free_port()
    deploy(serve_config(model_root, port), timeout_s=600, dashboard_address=cluster["cluster"].dashboard)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


def test_inpaint_runs_on_the_gpu_node_and_the_cpu_stages_on_the_head(cluster, two_node_service):
    nodes = alive_nodes()
    assert nodes[cluster["gpu_node"]].get(GPU_NODE) == 1 and GPU_NODE not in nodes[cluster["head"]]
    placement = replica_nodes()
    assert placement.pop("Inpaint-default") == {cluster["gpu_node"]}
    assert set(placement) == {"Ingress", "ExperimentStore", "Preprocess", "Keypoints-default", "ParseWarp-default"}
    assert all(node_ids == {cluster["head"]} for node_ids in placement.values()), placement

    response = tryon(two_node_service)  # Ingress, Preprocess, Keypoints, ParseWarp on the head; Inpaint on the GPU node
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and response.headers["X-KGI-Version"] == "default"


def test_training_workers_spread_over_both_nodes_and_finish(cluster, tmp_path):
    synth = tmp_path / "synth"
    generate(synth, n_train=8, n_test=2, height=128, seed=5, progress=False)
    for spec in plan(str(synth), str(tmp_path / "shards"), "train", shard_size=8):
        write_shard(spec)
    steps = 4
    config = TrainConfig(model="keypoints", data=str(tmp_path / "shards"), storage_path=str(tmp_path / "runs"),
                         run_name="spread", height=128, steps=steps, batch_size=2, checkpoint_every=steps,
                         num_workers=2, cpus_per_worker=0.5, placement_strategy="SPREAD", max_failures=0,
                         model_config={"garment_channels": 16, "pose_channels": 16})
    (tmp_path / "spread.yaml").write_text(yaml.safe_dump(config.to_dict()))
    # Launched as a user launches it on a cluster: `kgi train` in its own driver process, RAY_ADDRESS set.
    launched = subprocess.run(
        [sys.executable, "-c", "import sys; from kgi.cli import main; sys.exit(main())", "train", "keypoints",
         "--config", str(tmp_path / "spread.yaml")],
        env={**os.environ, **NODE_ENVIRONMENT, "RAY_ADDRESS": cluster["cluster"].address},
        capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    checkpoints = sorted(path for path in (tmp_path / "runs" / "spread").glob("checkpoint_*") if path.is_dir())
    assert read_history(ray.train.Checkpoint.from_directory(str(checkpoints[-1])))[-1]["step"] == steps
    workers = list_actors(address=ray.get_runtime_context().gcs_address,
                          filters=[("class_name", "=", "RayTrainWorker")], limit=100)
    assert len(workers) == 2
    assert {worker.node_id for worker in workers} == {cluster["head"], cluster["gpu_node"]}


def test_serving_recovers_when_the_gpu_node_comes_back(cluster, two_node_service):
    assert tryon(two_node_service).status_code == 200
    local: LocalCluster = cluster["cluster"]
    local.kill_gpu_node()
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while cluster["gpu_node"] in alive_nodes():
        assert time.monotonic() < deadline, "the cluster never noticed the GPU node's death"
        time.sleep(0.5)
    while "Inpaint-default" in replica_nodes():  # Serve lost the replica and cannot place another: no gpu_node
        assert time.monotonic() < deadline, "Serve still lists an Inpaint replica on the dead node"
        time.sleep(0.5)

    new_gpu_node = local.start_gpu_node()
    cluster["gpu_node"] = new_gpu_node
    while True:
        try:
            response = tryon(two_node_service, timeout_s=60)
        except httpx.TimeoutException:  # waiting for the new replica longer than the client does
            response = None
        if response is not None and response.status_code == 200:
            break
        if response is not None:
            assert response.status_code == 503, response.text  # unavailable meanwhile, never a 500
        assert time.monotonic() < deadline, f"no successful try-on within {RECOVERY_TIMEOUT_S} s"
        time.sleep(2)
    assert replica_nodes()["Inpaint-default"] == {new_gpu_node}
