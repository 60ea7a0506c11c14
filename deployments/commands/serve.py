"""Serve the try-on HTTP API on this machine with Ray Serve.

Starts a local Ray cluster, deploys a Serve config file (by default platform/serve/local.yaml: every stage on
the CPU, versions "default" and "fast" of models/default split 50/50), prints the URL and an example request,
and serves until Ctrl-C or SIGTERM, then shuts Serve and Ray down. The API is documented at
http://HOST:PORT/docs.

Examples:
  kgi serve
  kgi serve --port 8080 --models /data/kgi-models        # version folders under /data/kgi-models
  KGI_ADMIN_TOKEN=$(openssl rand -hex 16) kgi serve      # enables PUT /v1/ab/weights
  kgi serve --config my-serve.yaml --num-cpus 8
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from kgi.cli import CommandError
from kgi.shipped import LOCAL_SERVE_CONFIG, MODELS_DIR

HELP = "serve the try-on HTTP API on this machine (Ray Serve)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=LOCAL_SERVE_CONFIG,
                        help="Serve config file (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: the config's, 8000)")
    parser.add_argument("--host", default=None, help="HTTP host (default: the config's, 127.0.0.1)")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder holding the model version folders (default: the config's models_dir; with the "
                             "default config, the shipped models/ folder)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1,
                        help="logical CPUs of the local Ray cluster (default: this machine's, %(default)s)")


def _example_curl(url: str) -> str:
    return (f"curl -o tryon.png -F person=@person.jpg -F garment=@garment.jpg \\\n"
            f"     -F pose=@person_keypoints.json -F parse=@person_parse.png {url}/v1/tryon")


def run(args: argparse.Namespace) -> int:
    from deployments.app import (BUILDER_IMPORT_PATH, DeployError, check_versions, deploy, free_port,
                                 load_serve_config)
    from deployments.experiments import DASHBOARD_ADDRESS_ENV

    if not args.config.is_file():
        raise CommandError(f"--config: {args.config} does not exist")
    try:
        models_dir = MODELS_DIR if args.models is None and args.config == LOCAL_SERVE_CONFIG else args.models
        config = load_serve_config(args.config, port=args.port, host=args.host, models_dir=models_dir)
        for application in config["applications"]:
            if application.get("import_path") == BUILDER_IMPORT_PATH:
                check_versions(application)  # fail here, not in a replica
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None

    import ray
    from ray import serve

    # The dashboard serves Serve's REST API: the config is deployed and PUT /v1/ab/weights rewrites the experiment
    # through it. Its port is chosen here, so the replicas are told this cluster's dashboard, not another one's.
    dashboard_port = free_port()
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    ray.init(num_cpus=args.num_cpus, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=dashboard_port,
             runtime_env={"env_vars": {DASHBOARD_ADDRESS_ENV: dashboard}})
    try:
        print(f"deploying {args.config} (first start takes a minute: every stage loads its models) ...", flush=True)
        deploy(config, dashboard_address=dashboard)
        http = config["http_options"]
        host = http.get("host", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # bound to every interface: show a local one
        url = f"http://{host}:{http.get('port', 8000)}"
        print(f"\nKGI try-on API at {url}   (docs: {url}/docs, models: {url}/v1/models, A/B: {url}/v1/ab)\n"
              f"example:\n  {_example_curl(url)}\nCtrl-C stops the service.", flush=True)
        while True:  # until Ctrl-C (KeyboardInterrupt) or SIGTERM (ray.init's handler exits: `finally` still runs)
            time.sleep(3600)
    except DeployError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        print("\nshutting down ...", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
