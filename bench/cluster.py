"""The local Ray cluster and the Serve DAG of ``platform/serve/local.yaml`` that the benchmarks and the service
tests (``tests/serving_support.py``) run on.

    with ray_cluster(), serve_dag(DEFAULT_VERSION) as dag:
        ...  # POST dag.url
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deployments.app import free_port
from kgi.shipped import LOCAL_SERVE_CONFIG, MODELS_DIR

REPO = Path(__file__).resolve().parents[1]
SERVED_VERSION = "default"  # the version of local.yaml every benchmark request names
INPAINT = "Inpaint"  # the deployment that inpaints every version


@contextmanager
def ray_cluster(num_cpus: int | None = None, *, dashboard_port: int | None = None,
                env_vars: dict[str, str] | None = None) -> Iterator[None]:
    """A local Ray cluster for the ``with`` block, or the one this process already joined (left running).

    The dashboard runs on localhost, and ``$RAY_DASHBOARD_ADDRESS`` (``DASHBOARD_ADDRESS_ENV``) names it for the
    block: Serve configs deploy through its REST API (``deployments.app.deploy``).

    Args:
        num_cpus: Ray's CPUs (default ``max(4, cores)``: they are reservations, and the Serve DAG and two training
            workers need 2 or more).
        dashboard_port: the dashboard's port (default: a free one).
        env_vars: environment of every replica and worker, beside ``PYTHONPATH`` (this checkout).
    """
    import ray

    from deployments.experiments import DASHBOARD_ADDRESS_ENV

    if ray.is_initialized():
        yield
        return
    dashboard_port = dashboard_port or free_port()
    ray.init(num_cpus=num_cpus or max(4, os.cpu_count() or 1), include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=dashboard_port, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), **(env_vars or {})}})
    previous = os.environ.get(DASHBOARD_ADDRESS_ENV)
    os.environ[DASHBOARD_ADDRESS_ENV] = f"http://127.0.0.1:{dashboard_port}"
    try:
        yield
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop(DASHBOARD_ADDRESS_ENV)
        else:
            os.environ[DASHBOARD_ADDRESS_ENV] = previous


@contextmanager
def deployed(config: dict) -> Iterator[None]:
    """A Serve config (``deployments.app.load_serve_config``) deployed on the current Ray cluster for the ``with``
    block, then Serve shut down."""
    from ray import serve

    from deployments.app import deploy

    try:
        deploy(config, timeout_s=600)
        yield
    finally:
        serve.shutdown()


def model_version(version_dir: Path, working_height: int = 256):
    """A version folder as the Serve app sees it (``deployments.config.ModelVersion``), named "default"."""
    from deployments.config import parse_app_args

    versions = {SERVED_VERSION: {"path": str(Path(version_dir).absolute()), "working_height": working_height}}
    return parse_app_args({}).resolve_versions(versions)[SERVED_VERSION]


def local_serve_config(version_dir: Path, *, working_height: int, port: int,
                       inpaint_user_config: dict | None = None, inpaint_replicas: int | None = None) -> dict:
    """``platform/serve/local.yaml`` as shipped, with every version on ``version_dir`` at ``working_height``.

    Args:
        version_dir: the model version folder all of the file's versions serve (an absolute path in the config,
            so ``models_dir`` stays the repository's ``models/`` for everything else the file names).
        working_height: requests' working resolution (the file's is the photo's own, up to 1024 rows).
        port: HTTP port.
        inpaint_user_config: replaces the ``Inpaint`` deployment's batching ``user_config`` when given.
        inpaint_replicas: the ``Inpaint`` deployment runs this many replicas instead of autoscaling, when given.
    """
    from deployments.app import load_serve_config

    config = load_serve_config(LOCAL_SERVE_CONFIG, port=port, models_dir=MODELS_DIR)
    (application,) = config["applications"]
    (ingress,) = [d for d in application["deployments"] if d["name"] == "Ingress"]
    for version in ingress["user_config"]["versions"].values():
        version.update(path=str(Path(version_dir).absolute()), working_height=working_height)
    for deployment in application["deployments"]:
        if deployment["name"] != INPAINT:
            continue
        if inpaint_user_config is not None:
            deployment["user_config"] = dict(inpaint_user_config)
        if inpaint_replicas is not None:
            deployment.pop("autoscaling_config", None)
            deployment["num_replicas"] = inpaint_replicas
    return config


@dataclass
class ServedDag:
    """A running DAG (:func:`serve_dag`): its ``POST /v1/tryon`` URL and the config it was deployed with."""

    url: str
    config: dict

    @property
    def inpaint_batching(self) -> dict:
        """The batching ``user_config`` of the ``Inpaint`` deployment as deployed."""
        (deployment,) = [d for d in self.config["applications"][0]["deployments"] if d["name"] == INPAINT]
        return dict(deployment["user_config"])

    def running_replicas(self, deployment: str) -> int:
        """How many replicas of ``deployment`` (e.g. ``"Inpaint"``) are running now."""
        from ray import serve

        (application,) = self.config["applications"]
        status = serve.status().applications[application["name"]].deployments[deployment]
        return status.replica_states.get("RUNNING", 0)


@contextmanager
def serve_dag(version_dir: Path, *, working_height: int = 256, inpaint_user_config: dict | None = None,
              inpaint_replicas: int | None = None) -> Iterator[ServedDag]:
    """The try-on DAG of ``platform/serve/local.yaml`` (see :func:`local_serve_config`) on the current Ray
    cluster for the ``with`` block, then Serve is shut down."""
    port = free_port()
    config = local_serve_config(version_dir, working_height=working_height, port=port,
                                inpaint_user_config=inpaint_user_config, inpaint_replicas=inpaint_replicas)
    with deployed(config):
        yield ServedDag(f"http://127.0.0.1:{port}/v1/tryon", config)


def version_with_random_inpainter(base_dir: Path, preset: str, inpaint_height: int, directory: Path) -> Path:
    """A copy of model version ``base_dir`` whose inpainter is a random-weights ``SpadeUNet`` preset run at
    ``inpaint_height``, written to ``directory/default``: for timing sizes no trained checkpoint exists for
    (the weights' values do not change the cost). Returns the new version folder."""
    from dataclasses import replace

    from kgi.models.inpainter import SpadeUNet
    from kgi.pipeline import TryOnPipeline

    pipeline = TryOnPipeline.from_pretrained(base_dir)
    pipeline.unet = SpadeUNet.from_preset(preset)
    pipeline.info = replace(pipeline.info, inpaint_height=inpaint_height,
                            description=f"{pipeline.info.name} with a random {preset} inpainter at {inpaint_height}")
    pipeline.save_pretrained(Path(directory) / SERVED_VERSION)
    return Path(directory) / SERVED_VERSION
