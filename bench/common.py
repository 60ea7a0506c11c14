"""What every benchmark shares: its command line, the run's header (machine, load, versions), latency percentiles,
result files (JSON + PNG + a Markdown table), the example request, the closed-loop HTTP load generator, the local
Ray cluster and the Serve DAG of ``platform/serve/local.yaml``.

A benchmark module uses them as::

    args = benchmark_parser("throughput", __doc__).parse_args(argv)
    with LoadMonitor() as load, ray_cluster(), serve_dag(DEFAULT_VERSION) as dag:
        result = asyncio.run(closed_loop(dag.url, example_form(), concurrency=4, requests=16))
    write_result(out_dir(args), "throughput", argv, settings={...}, results=result.summary(),
                 tables=[Table(...)], figure=None, load=load)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from kgi.evaluation import Table
from kgi.shipped import DEFAULT_VERSION, EXAMPLES_DIR, LOCAL_SERVE_CONFIG, MODELS_DIR

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
TINY_RESULTS_DIR = RESULTS_DIR / "tiny"  # ignored by git: --tiny runs never overwrite the recorded results
CACHE_ENV = "KGI_BENCH_CACHE"  # where the benchmarks keep the synthetic data they build (default bench/.cache)
SERVED_VERSION = "default"  # the version of local.yaml every benchmark request names
INPAINT = "Inpaint"  # the deployment that inpaints every version


class BenchmarkError(ValueError):
    """A benchmark setting or input that cannot be used; the message names it."""


# ---------------------------------------------------------------- command line


def benchmark_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every benchmark has: ``--tiny`` and ``--out``.

    Args:
        name: the benchmark's name (``kgi bench NAME``).
        doc: the module docstring, shown as the description (with its examples).
    """
    parser = argparse.ArgumentParser(prog=f"kgi bench {name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-long smoke run (what CI runs); results go to bench/results/tiny/")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where NAME.json and NAME.png go (default bench/results/, with --tiny "
                             "bench/results/tiny/)")
    return parser


def version_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--version DIR``, the model version folder a benchmark runs (default: the shipped one)."""
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION, metavar="DIR",
                        help="model version folder (default: the shipped models/default)")


def positive_ints(text: str) -> list[int]:
    """An argparse type: ``"1,4,16"`` -> ``[1, 4, 16]``, every number at least 1."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers of at least 1, got {text!r}")
    return values


def cache_dir() -> Path:
    """The folder for data the benchmarks build when none is given: ``$KGI_BENCH_CACHE``, else ``bench/.cache``."""
    return Path(os.environ.get(CACHE_ENV) or REPO / "bench" / ".cache")


def out_dir(args: argparse.Namespace) -> Path:
    """The folder results go to: ``--out``, else ``bench/results/`` (``bench/results/tiny/`` with ``--tiny``)."""
    return args.out or (TINY_RESULTS_DIR if args.tiny else RESULTS_DIR)


# ---------------------------------------------------------------- the run's header


def git_revision() -> str:
    """The checkout's commit (short), with ``+dirty`` when tracked files differ from it; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def machine() -> dict:
    """Where and with what the benchmark ran: CPU cores and model, memory, GPU, date and library versions."""
    import ray
    import torch

    cpu_model = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                      if line.startswith("model name")), platform.processor() or "unknown")
    memory_kb = next((int(line.split()[1]) for line in _read_lines("/proc/meminfo")
                      if line.startswith("MemTotal")), 0)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "kgi": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "numpy": np.__version__,
    }


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


class PeriodicSampler:
    """Calls ``read()`` when the ``with`` block starts, every ``interval_s`` while it runs and when it ends, in a
    background thread, and keeps the values that are not None in ``samples``. Subclasses define ``read``."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def read(self) -> float | None:
        raise NotImplementedError

    def _record(self) -> None:
        value = self.read()
        if value is not None:
            self.samples.append(value)

    def _sample(self) -> None:
        while True:
            self._record()
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._record()


class LoadMonitor(PeriodicSampler):
    """Samples the machine's 1-minute load average every ``interval_s`` while the ``with`` block runs.

    Other people's work shares these machines; the load says how much. ``summary()`` gives the mean and the
    largest sample and the number of CPU cores to read them against.
    """

    def __init__(self, interval_s: float = 5.0):
        super().__init__(interval_s)

    def read(self) -> float:
        return os.getloadavg()[0]

    def summary(self) -> dict:
        """Mean and largest 1-minute load average sampled (the current one if the monitor never ran)."""
        samples = self.samples or [os.getloadavg()[0]]
        return {"mean": round(float(np.mean(samples)), 2), "max": round(max(samples), 2), "samples": len(samples),
                "cpu_cores": os.cpu_count()}


# ---------------------------------------------------------------- figures and result files


def percentiles_ms(seconds: list[float]) -> dict:
    """p50 / p95 / p99 and mean of latencies given in seconds, in milliseconds (``n``: how many)."""
    values = np.asarray(seconds, dtype=np.float64) * 1000
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": len(values), "mean_ms": float(values.mean()), "p50_ms": float(p50), "p95_ms": float(p95),
            "p99_ms": float(p99)}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_result(directory: Path, name: str, argv: list[str], *, settings: dict, results, tables: list[Table],
                 figure, load: LoadMonitor) -> Path:
    """Write ``NAME.json`` (and ``NAME.png`` when ``figure`` is given) and print the run's Markdown.

    Args:
        directory: the results folder (created).
        name: the benchmark's name.
        argv: its command-line arguments (recorded as the command ``kgi bench NAME ARGV...``).
        settings: what was run (sizes, counts, options).
        results: the figures (JSON-serialisable; every number must be finite: NaN or infinity raise ValueError).
        tables: what is printed (and pasted into BENCHMARKS.md).
        figure: a matplotlib figure, saved at 110 dpi and closed; or None.
        load: the load monitor of the run.

    Returns the JSON path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": name, "command": " ".join(["kgi bench", name, *argv]), "machine": machine(),
                "load_average": load.summary(), "settings": settings, "results": results}
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    if figure is not None:
        figure.savefig(directory / f"{name}.png", dpi=110)
        pyplot().close(figure)
    header = document["machine"]
    print(f"## {name}\n\n{header['date']}, {header['cpu_cores']} cores ({header['cpu_model']}), GPU: "
          f"{header['gpu'] or 'none'}, load average mean {document['load_average']['mean']} / max "
          f"{document['load_average']['max']}; kgi {header['kgi']}, torch {header['torch']}, ray {header['ray']}\n"
          f"\n`{document['command']}`\n")
    for table in tables:
        print(table.markdown())
    print(f"results: {path}" + (f", plot: {directory / (name + '.png')}" if figure is not None else ""))
    return path


# ---------------------------------------------------------------- the example request


def example_files() -> dict[str, bytes]:
    """The bundled example request's files (``examples/``): person photo, garment photo, pose JSON, parse PNG."""
    names = {"person": "person.jpg", "garment": "garment.jpg", "pose": "person_keypoints.json",
             "parse": "person_parse.png"}
    return {field: (EXAMPLES_DIR / name).read_bytes() for field, name in names.items()}


def example_uploads():
    """The example request as the ``Preprocess`` stage receives it (``kgi.preprocess.Uploads``)."""
    from kgi.preprocess import Uploads

    return Uploads(**example_files(), person_name="person.jpg", garment_name="garment.jpg")


def example_form(steps: int | None = None, seed: int = 0) -> tuple[dict, dict]:
    """``(files, data)`` of ``POST /v1/tryon`` for httpx: the example's files, version "default", a fixed seed."""
    files = {field: (field, data) for field, data in example_files().items()}
    data = {"version": SERVED_VERSION, "seed": str(seed)}
    if steps is not None:
        data["steps"] = str(steps)
    return files, data


# ---------------------------------------------------------------- closed-loop HTTP load


@dataclass
class LoadResult:
    """What a closed-loop run measured.

    Attributes:
        latencies_s: seconds of each successful request, in completion order.
        errors: HTTP status (or exception name) -> count of failed requests.
        elapsed_s: from the first request sent to the last answer.
        server_timings: the ``X-KGI-Timings`` header of each successful request (stage -> seconds), if sent.
    """

    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    server_timings: list[dict] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict:
        return {"requests_per_s": self.requests_per_s, "ok": len(self.latencies_s), "errors": self.errors,
                "elapsed_s": self.elapsed_s, **percentiles_ms(self.latencies_s)}


async def closed_loop(url: str, form: tuple[dict, dict], *, concurrency: int, requests: int,
                      progress: str | None = None, timeout_s: float = 900.0) -> LoadResult:
    """Closed-loop load: ``concurrency`` clients each send a request, wait for its answer, and send the next,
    until ``requests`` have been answered.

    Args:
        url: the ``POST /v1/tryon`` endpoint.
        form: ``(files, data)`` of each request (:func:`example_form`).
        concurrency: requests in flight at every moment.
        requests: total requests to send (at least ``concurrency``).
        progress: a tqdm bar with this label, or None for none.
        timeout_s: per-request timeout; a request that exceeds it counts as an error.
    """
    import httpx
    from tqdm.auto import tqdm

    if concurrency < 1 or requests < concurrency:
        raise BenchmarkError(f"closed_loop: need 1 <= concurrency <= requests, got {concurrency}, {requests}")
    files, data = form
    result = LoadResult()
    remaining = requests
    bar = tqdm(total=requests, desc=progress, unit="req", disable=progress is None, leave=False)

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            sent = time.perf_counter()
            try:
                response = await session.post(url, files=files, data=data)
            except httpx.HTTPError as exc:
                result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
            else:
                if response.status_code == 200:
                    result.latencies_s.append(time.perf_counter() - sent)
                    if "x-kgi-timings" in response.headers:
                        result.server_timings.append(json.loads(response.headers["x-kgi-timings"]))
                else:
                    status = str(response.status_code)
                    result.errors[status] = result.errors.get(status, 0) + 1
            bar.update()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - start
    bar.close()
    return result


def send_one(url: str, form: tuple[dict, dict]) -> LoadResult:
    """One request (a closed loop of one): a warm-up, or a single latency sample."""
    return asyncio.run(closed_loop(url, form, concurrency=1, requests=1))


# ---------------------------------------------------------------- Ray and the Serve DAG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def ray_cluster(num_cpus: int | None = None) -> Iterator[None]:
    """A local Ray cluster for the ``with`` block, or the one this process already joined (left running).

    Replicas and workers get this checkout on their ``PYTHONPATH``. ``num_cpus`` defaults to
    ``max(4, cores)``: Ray's CPUs are reservations, and the Serve DAG and two training workers need 2 or more.
    The dashboard runs on a free port (``$RAY_DASHBOARD_ADDRESS`` for the block): Serve configs deploy through it.
    """
    import ray

    from deployments.experiments import DASHBOARD_ADDRESS_ENV

    if ray.is_initialized():
        yield
        return
    dashboard_port = free_port()
    ray.init(num_cpus=num_cpus or max(4, os.cpu_count() or 1), include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=dashboard_port, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
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
    from ray import serve

    from deployments.app import deploy

    port = free_port()
    config = local_serve_config(version_dir, working_height=working_height, port=port,
                                inpaint_user_config=inpaint_user_config, inpaint_replicas=inpaint_replicas)
    deploy(config, timeout_s=600)
    try:
        yield ServedDag(f"http://127.0.0.1:{port}/v1/tryon", config)
    finally:
        serve.shutdown()


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
