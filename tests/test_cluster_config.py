"""The cluster definitions are what Ray and Kubernetes accept, and every workload fits the machines they define.

``cluster.yaml`` goes through the cluster launcher's own preparation and schema validation (what ``ray up`` runs
before it contacts AWS). ``platform/kuberay``'s Serve config goes through Ray Serve's ``ServeDeploySchema`` and
the application's argument validation, and the RayJob's entrypoint through the ``kgi`` command line itself. Every
Serve deployment and every training worker must fit a node type or worker group: the autoscaler would never place
one that fits none.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config  # what `ray up` validates with
from ray.serve.schema import ServeDeploySchema

from deployments.app import BUILDER_IMPORT_PATH
from deployments.config import parse_app_args
from kgi.cli import build_parser
from training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
CLUSTER_FILE = REPO / "cluster.yaml"
KUBERAY = REPO / "platform" / "kuberay"
GPU_SERVE_CONFIG = REPO / "platform" / "serve" / "gpu-cluster.yaml"
GPU_TRAIN_CONFIGS = sorted((REPO / "platform" / "train").glob("*-gpu.yaml"))
IMAGE_CHECKOUT = Path("/home/ray/kgi-platform")  # where platform/kuberay/Dockerfile puts this checkout


def _prepared_cluster(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _kgi_application(serve_config: dict) -> dict:
    (application,) = [a for a in serve_config["applications"] if a["import_path"] == BUILDER_IMPORT_PATH]
    return application


def _actor_demand(ray_actor_options: dict) -> dict[str, float]:
    """The resources a Serve replica asks for, in a node's resource names."""
    demand = {"CPU": ray_actor_options.get("num_cpus", 1), "GPU": ray_actor_options.get("num_gpus", 0),
              **ray_actor_options.get("resources", {})}
    return {name: amount for name, amount in demand.items() if amount}


HEAD_NODE_RESOURCE = {"node:__internal_head__": 1.0}  # Ray gives the head node this resource (the A/B store asks it)


def _fits(demand: dict[str, float], offer: dict[str, float]) -> bool:
    return all(offer.get(name, 0) >= amount for name, amount in demand.items())


def _kubernetes_cpus(quantity: str | int) -> float:
    """A Kubernetes CPU quantity ("8", "500m") in CPUs."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _group_offer(group: dict) -> dict[str, float]:
    """What a KubeRay group's Ray node offers: KubeRay derives num-cpus / num-gpus from the container limits."""
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    offer = {"CPU": _kubernetes_cpus(limits["cpu"]), "GPU": float(limits.get("nvidia.com/gpu", 0))}
    if "num-cpus" in group.get("rayStartParams", {}):
        offer["CPU"] = float(group["rayStartParams"]["num-cpus"])
    return offer


def _groups(cluster_spec: dict) -> dict[str, dict]:
    return {"head": cluster_spec["headGroupSpec"], **{g["groupName"]: g for g in cluster_spec["workerGroupSpecs"]}}


def _images(cluster_spec: dict) -> set[str]:
    return {container["image"] for group in _groups(cluster_spec).values()
            for container in group["template"]["spec"]["containers"]}


@pytest.fixture(scope="module")
def cluster() -> dict:
    return _prepared_cluster(yaml.safe_load(CLUSTER_FILE.read_text()))


@pytest.fixture(scope="module")
def rayservice() -> dict:
    return yaml.safe_load((KUBERAY / "rayservice.yaml").read_text())


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load((KUBERAY / "rayjob.yaml").read_text())


def test_cluster_yaml_passes_the_cluster_launchers_validation(cluster):
    assert cluster["provider"]["type"] == "aws" and cluster["head_node_type"] == "head"
    types = cluster["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert "GPU" not in types["head"]["resources"] and "GPU" not in types["cpu_worker"]["resources"]
    assert types["gpu_worker"]["resources"]["GPU"] >= 1
    for name in ("cpu_worker", "gpu_worker"):
        assert 0 <= types[name]["min_workers"] <= types[name]["max_workers"] <= cluster["max_workers"]
        assert "instance-profile" in types[name]["node_config"]["IamInstanceProfile"]["Arn"]  # S3 for the workers
    # Every node installs this checkout (synced by file_mounts) with the launcher's own Ray version.
    assert cluster["file_mounts"] == {"~/kgi-platform": "."}
    for commands in (cluster["head_setup_commands"], cluster["worker_setup_commands"]):
        setup = "\n".join(commands)
        assert f'"ray[default,serve,train,data]=={ray.__version__}" -e ~/kgi-platform' in setup
        assert "torch==" in setup and "KGI_POSE_PYTHON=" in setup


def test_the_launchers_validation_refuses_a_broken_cluster_yaml():
    config = yaml.safe_load(CLUSTER_FILE.read_text())
    misspelt = copy.deepcopy(config)
    misspelt["available_node_types"]["gpu_worker"]["gpus"] = 1  # not a field of a node type
    with pytest.raises(jsonschema.ValidationError, match="gpus"):
        _prepared_cluster(misspelt)
    too_many = copy.deepcopy(config)
    too_many["available_node_types"]["cpu_worker"]["min_workers"] = config["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        _prepared_cluster(too_many)


def test_every_serve_deployment_and_training_worker_fits_a_cluster_node_type(cluster):
    offers = {name: {**node_type["resources"], **(HEAD_NODE_RESOURCE if name == cluster["head_node_type"] else {})}
              for name, node_type in cluster["available_node_types"].items()}
    application = _kgi_application(yaml.safe_load(GPU_SERVE_CONFIG.read_text()))
    for deployment in application["deployments"]:
        demand = _actor_demand(deployment["ray_actor_options"])
        fitting = {name for name, offer in offers.items() if _fits(demand, offer)}
        assert fitting, f"{deployment['name']} asks for {demand}: no node type offers it"
        if deployment["name"].startswith("Inpaint-"):
            assert fitting == {"gpu_worker"}
    gpu_worker = cluster["available_node_types"]["gpu_worker"]
    for path in GPU_TRAIN_CONFIGS:
        cfg = TrainConfig.from_yaml(path)
        assert _fits({"CPU": cfg.cpus_per_worker, "GPU": 1}, gpu_worker["resources"]), path.name
        assert cfg.num_workers <= gpu_worker["max_workers"], f"{path.name}: more workers than GPU nodes"


def test_rayservice_runs_the_gpu_cluster_serve_config(rayservice):
    assert (rayservice["apiVersion"], rayservice["kind"]) == ("ray.io/v1", "RayService")
    serve_config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)  # what Serve checks when KubeRay submits it
    assert serve_config == yaml.safe_load(GPU_SERVE_CONFIG.read_text())  # one cluster profile, not two
    application = _kgi_application(serve_config)
    args = parse_app_args(application["args"])  # what build_app validates first
    assert all(v.registry and v.registry.startswith("s3://") for v in args.versions.values())  # no shared volume

    cluster_spec = rayservice["spec"]["rayClusterConfig"]
    assert cluster_spec["rayVersion"] == ray.__version__ and len(_images(cluster_spec)) == 1
    offers = {name: _group_offer(group) for name, group in _groups(cluster_spec).items()}
    offers["head"].update(HEAD_NODE_RESOURCE)
    for deployment in application["deployments"]:
        demand = _actor_demand(deployment["ray_actor_options"])
        assert any(_fits(demand, offer) for offer in offers.values()), f"{deployment['name']} fits no group"
    for group in cluster_spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def _most_replicas(deployment: dict) -> int:
    return deployment.get("autoscaling_config", {}).get("max_replicas", deployment.get("num_replicas", 1))


def test_gpu_deployments_at_their_most_replicas_fit_the_gpu_workers_and_finish_their_batches(cluster, rayservice):
    """Every GPU replica the autoscaler may ask for has a GPU node to go to; a GPU replica being stopped has time
    to answer what it holds, and its health check has time to answer beside a running batch."""
    serve_config = yaml.safe_load(GPU_SERVE_CONFIG.read_text())
    gpu_deployments = [d for d in _kgi_application(serve_config)["deployments"]
                       if d["ray_actor_options"].get("num_gpus", 0) > 0]
    assert gpu_deployments
    gpus_wanted = sum(d["ray_actor_options"]["num_gpus"] * _most_replicas(d) for d in gpu_deployments)
    gpu_worker = cluster["available_node_types"]["gpu_worker"]
    assert gpus_wanted <= gpu_worker["max_workers"] * gpu_worker["resources"]["GPU"]
    gpu_groups = [g for g in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"] if _group_offer(g)["GPU"]]
    assert gpus_wanted <= sum(g["maxReplicas"] * _group_offer(g)["GPU"] for g in gpu_groups)
    request_timeout_s = serve_config["http_options"]["request_timeout_s"]
    for deployment in gpu_deployments:
        assert deployment["graceful_shutdown_timeout_s"] >= request_timeout_s, deployment["name"]
        assert deployment["health_check_timeout_s"] >= 30, deployment["name"]  # Serve's default: keep it or more


def test_rayjob_runs_a_real_kgi_train_command_that_fits_its_cluster(rayjob, rayservice):
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[0] == "kgi"
    args = build_parser(argv[1]).parse_args(argv[1:])  # the real `kgi` command line
    assert args.command == "train"
    config_path = REPO / Path(args.config).relative_to(IMAGE_CHECKOUT)
    assert config_path.is_file(), f"{args.config}: no {config_path.relative_to(REPO)} in this checkout"
    cfg = TrainConfig.from_yaml(config_path)
    assert cfg.model == args.model and cfg.use_gpu and cfg.data.startswith("s3://")

    cluster_spec = rayjob["spec"]["rayClusterSpec"]
    assert cluster_spec["rayVersion"] == ray.__version__
    assert _images(cluster_spec) == _images(rayservice["spec"]["rayClusterConfig"])
    gpu_groups = [g for g in cluster_spec["workerGroupSpecs"] if _group_offer(g)["GPU"] >= 1]
    fitting = [g for g in gpu_groups if _fits({"CPU": cfg.cpus_per_worker, "GPU": 1}, _group_offer(g))]
    assert sum(g["minReplicas"] for g in fitting) >= cfg.num_workers  # every training worker has its GPU node


def test_the_image_puts_the_checkout_where_the_manifests_expect_it():
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    assert re.search(rf"^WORKDIR {IMAGE_CHECKOUT}$", dockerfile, re.MULTILINE)
    assert re.search(rf"^FROM rayproject/ray:{re.escape(ray.__version__)}-", dockerfile, re.MULTILINE)
