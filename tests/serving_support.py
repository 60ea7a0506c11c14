"""What the service tests share: a random-weights model version and ``platform/serve/local.yaml`` running on a
fresh local Ray cluster.

``conftest.py`` turns them into the session fixtures ``model_root`` and ``service`` (one cluster for every module
that uses ``service``); a module that needs other settings starts its own with :func:`running_service`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from bench.cluster import REPO, deployed, free_port, ray_cluster
from deployments.app import load_serve_config
from deployments.ingress import ADMIN_TOKEN_ENV
from kgi.models.inpainter import SpadeUNet, make_training_scheduler
from kgi.models.keypoints import KeypointGNN
from kgi.models.parse import ParseUNet
from kgi.pipeline import SamplerSettings, TryOnPipeline, VersionInfo

CONFIGS = {name: REPO / "platform" / "serve" / f"{name}.yaml" for name in ("local", "gpu-cluster")}
ADMIN_TOKEN = "test-admin-token-5f1c"


def write_random_version(root: Path, name: str = "default", seed: int = 0) -> Path:
    """Write a random-weights model version (2 sampler steps; the weights drawn from ``seed``) as ``root/name``;
    returns ``root``."""
    torch.manual_seed(seed)
    TryOnPipeline(KeypointGNN(garment_channels=16, pose_channels=16), ParseUNet(base_channels=8, max_channels=16),
                  SpadeUNet.from_preset("tiny"), make_training_scheduler(),
                  VersionInfo(name=name, sampler=SamplerSettings(num_steps=2))).save_pretrained(root / name)
    return root


def keep_only_version(config: dict, version: str = "default") -> None:
    """A loaded Serve config reduced to one of its versions: the Ingress serves ``version`` alone."""
    (application,) = config["applications"]
    (ingress,) = [d for d in application["deployments"] if d["name"] == "Ingress"]
    versions = ingress["user_config"]["versions"]
    ingress["user_config"] = {**ingress["user_config"], "versions": {version: versions[version]},
                              "weights": {version: 1.0}}


@contextmanager
def running_service(model_root: Path, configure: Callable[[dict], None] | None = None) -> Iterator[str]:
    """``platform/serve/local.yaml`` running on a fresh local Ray cluster; yields the base URL.

    ``configure`` may change the loaded config in place before it is deployed (limits, deployment options). The
    replicas see no ``KGI_POSE_PYTHON``, so the shipped config's pose estimator is unavailable whatever the test
    machine has; a ``configure`` can name one in the ``preprocess`` args.
    """
    port, dashboard_port = free_port(), free_port()
    config = load_serve_config(CONFIGS["local"], port=port, models_dir=model_root)
    config["applications"][0]["args"]["ab_store"] = str(model_root / f"experiments-{port}.sqlite")  # not in ~
    if configure is not None:
        configure(config)
    # Replicas import `deployments` and `kgi` from this checkout. They inherit the admin token from this
    # process's environment, as under `kgi serve`: Ray writes runtime_env variables to its logs. The dashboard
    # serves Serve's REST API, through which PUT /v1/ab/... rewrites the experiment.
    os.environ[ADMIN_TOKEN_ENV] = ADMIN_TOKEN  # ray_cluster names the dashboard in this process's environment
    replica_env = {"KGI_POSE_PYTHON": "", "RAY_DASHBOARD_ADDRESS": f"http://127.0.0.1:{dashboard_port}"}
    try:
        with ray_cluster(4, dashboard_port=dashboard_port, env_vars=replica_env), deployed(config):
            yield f"http://127.0.0.1:{port}"
    finally:
        os.environ.pop(ADMIN_TOKEN_ENV, None)
