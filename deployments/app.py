"""The Serve application: ``build_app(args)`` wires the try-on DAG for every configured model version.

::

    HTTP -> Ingress -> Preprocess                          decode, normalise, landmarks
                    -> Keypoints -> ParseWarp -> Inpaint   every version, by its weights (multiplexed model id);
                                                           stage to stage, batched per version at the end
                    -> ExperimentStore                     assignments and outcomes (SQLite)

The ingress picks the version per request (A/B routing by the versions and experiment in its ``user_config``),
awaits Preprocess and chains the three model stages (``deployments.stages``).
Run it from a config file, which sets each deployment's resources, replicas and batching
(``platform/serve/local.yaml``, ``platform/serve/gpu-cluster.yaml``)::

    serve run platform/serve/local.yaml          # from the repository root; or: kgi serve

:func:`load_serve_config` reads such a file with local overrides (port, models folder) and :func:`deploy` does
what ``serve deploy FILE`` does, from Python (the ``kgi serve`` command and the tests use both).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from ray import serve
from ray.serve import Application

from deployments.config import parse_app_args
from deployments.experiments import DASHBOARD_ADDRESS_ENV, DEFAULT_DASHBOARD_ADDRESS, ExperimentStore, ray_auth_token
from deployments.ingress import Ingress
from deployments.preprocess import Preprocess
from deployments.stages import Inpaint, Keypoints, ParseWarp


def build_app(args: dict) -> Application:
    """The application for the ``args`` of a config file (keys: ``deployments.config.AppArgs``).

    Raises ``ValueError`` for bad arguments and ``FileNotFoundError`` for a parser file that does not exist, before
    any replica starts. The served versions are the Ingress's ``user_config`` (:func:`check_versions` checks a
    config file's before it is deployed).
    """
    config = parse_app_args(args)
    threads, cache = config.torch_threads, config.registry_cache
    keypoints = Keypoints.bind(cache, threads)
    parse_warp = ParseWarp.bind(cache, threads)
    inpaint = Inpaint.bind(cache, config.inpaint.device, config.inpaint.dtype, threads)
    preprocess = Preprocess.bind(config.preprocess_sources(), config.max_upload_bytes, config.max_image_pixels,
                                 threads)
    store_path = Path(config.ab_store)
    if not store_path.is_absolute() and not config.ab_store.startswith("~"):  # "~" is expanded on the store's node
        store_path = Path(config.models_dir).expanduser().absolute() / store_path
    store = ExperimentStore.bind(str(store_path))
    return Ingress.bind(preprocess, keypoints, parse_warp, inpaint, store, config)


BUILDER_IMPORT_PATH = "deployments.app:build_app"


def check_versions(application: dict) -> dict:
    """Resolve the served versions of a config file's application (its Ingress ``user_config``) as the Ingress
    will, so a missing folder or a bad experiment fails before Ray starts; returns them by name
    (``deployments.config.ModelVersion``). Raises ``ValueError`` (``WeightsError``, ``RegistryError``) or
    ``FileNotFoundError`` naming the problem."""
    from deployments.experiments import INGRESS_DEPLOYMENT
    from deployments.routing import ExperimentSettings

    ingress = next((d for d in application.get("deployments", []) if d.get("name") == INGRESS_DEPLOYMENT), {})
    settings = ExperimentSettings.parse(ingress.get("user_config") or {})
    return parse_app_args(application.get("args")).resolve_versions(settings.versions)


def load_serve_config(path: str | Path, *, port: int | None = None, host: str | None = None,
                      models_dir: str | Path | None = None) -> dict:
    """Read a Serve config file and apply local overrides.

    Args:
        path: the YAML file (``platform/serve/local.yaml``).
        port, host: replace ``http_options``' when given.
        models_dir: replaces the ``models_dir`` of every application built by :func:`build_app`.

    Every application's ``models_dir`` ends up absolute (relative ones are taken from the current directory),
    so replicas find the model folders whatever their working directory. Raises ``ValueError`` when the file
    does not follow Ray's ``ServeDeploySchema``.
    """
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(Path(path).read_text())
    http_options = config.setdefault("http_options", {})
    if port is not None:
        http_options["port"] = port
    if host is not None:
        http_options["host"] = host
    for application in config.get("applications", []):
        if application.get("import_path") == BUILDER_IMPORT_PATH:
            args = application.setdefault("args", {})
            args["models_dir"] = str(Path(models_dir if models_dir is not None else args.get("models_dir", "."))
                                     .expanduser().absolute())
    ServeDeploySchema.model_validate(config)
    return config


class DeployError(RuntimeError):
    """An application of a config file did not reach RUNNING; the message carries Serve's reasons."""


# Below Linux's ephemeral range (32768-60999), from which the kernel gives a port to every socket bound to port 0
# (as the processes that `ray.init` starts do), and above Ray's worker ports (10002-19999).
UNCLAIMED_PORTS = range(20000, 32768)
_ports_given: set[int] = set()


def free_port() -> int:
    """A TCP port free on localhost now, and not given before by this process.

    It is drawn from ``UNCLAIMED_PORTS``, so nothing that asks the kernel for any free port takes it before its user
    binds it: a port from the ephemeral range could go to one of Ray's own processes while ``ray.init`` starts them.
    """
    for port in random.sample(UNCLAIMED_PORTS, 100):
        if port in _ports_given:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError(f"no free TCP port on localhost in {UNCLAIMED_PORTS}")


def deploy(config: dict, timeout_s: float | None = None, dashboard_address: str | None = None) -> None:
    """Deploy every application of a Serve config file (already loaded) and wait until all run.

    Does what ``serve deploy FILE`` does, through Serve's public REST API (``PUT /api/serve/applications/`` on
    the Ray dashboard): Serve starts with the file's HTTP options and the controller gets the whole config, so
    the file's per-deployment options apply exactly as Serve documents them (they replace the code's). The
    replicas get this driver's ``runtime_env`` environment variables under each application's own, as they
    would from a deploy made by this driver. Call ``ray.init`` first, with the dashboard on.

    Args:
        config: the config file's content (:func:`load_serve_config`).
        timeout_s: give up after this many seconds; ``None`` waits as long as the deployments are starting.
        dashboard_address: the Ray dashboard's HTTP address; default ``$RAY_DASHBOARD_ADDRESS``, else
            ``http://127.0.0.1:8265``.

    Raises ``DeployError`` when the dashboard refuses the config or cannot be reached, with every unhealthy
    deployment's message if an application fails, or when one is still not running after ``timeout_s``.
    """
    import ray
    from ray.serve.schema import ApplicationStatus, ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    driver_variables = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
    body = schema.model_dump(mode="json", exclude_unset=True)
    for application in body["applications"]:
        runtime_env = application.setdefault("runtime_env", {})
        runtime_env["env_vars"] = {**driver_variables, **runtime_env.get("env_vars", {})}
    address = (dashboard_address or os.environ.get(DASHBOARD_ADDRESS_ENV) or DEFAULT_DASHBOARD_ADDRESS).rstrip("/")
    _put_serve_config(address, body)
    names = [app.name for app in schema.applications]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        applications = serve.status().applications
        if all(name in applications and applications[name].status == ApplicationStatus.RUNNING for name in names):
            return
        failed = [name for name in names if name in applications and applications[name].status in (
            ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY)]
        if failed or (deadline is not None and time.monotonic() > deadline):
            raise DeployError("Serve application(s) not running:\n" + "\n".join(
                _status_lines(name, applications.get(name)) for name in failed or names))
        time.sleep(1.0)


def _put_serve_config(address: str, body: dict) -> None:
    """``PUT`` a whole Serve config to the dashboard at ``address`` (with Ray's token where it needs one)."""
    headers = {"Content-Type": "application/json"}
    token = ray_auth_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{address}/api/serve/applications/", method="PUT", headers=headers,
                                     data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError as exc:
        raise DeployError(f"Serve's REST API at {address} refused the config ({exc.code}): "
                          f"{exc.read().decode()[:500]}") from None
    except OSError as exc:
        raise DeployError(f"Serve's REST API is not reachable at {address} ({exc}): start Ray with its dashboard "
                          f"(ray.init(include_dashboard=True)) and pass its address or set {DASHBOARD_ADDRESS_ENV}") \
            from None


def _status_lines(name: str, status) -> str:
    """An application's status and its unhealthy deployments' messages, one per line."""
    if status is None:
        return f"{name}: not started"
    lines = [f"{name}: {status.status.value} {status.message}".rstrip()]
    lines += [f"  {deployment}: {info.status.value} {info.message}".rstrip()
              for deployment, info in status.deployments.items() if info.status.value != "HEALTHY"]
    return "\n".join(lines)
