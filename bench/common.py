"""What every benchmark shares: its command line, the run's header (machine, load, versions), latency percentiles,
result files (JSON + PNG + a Markdown table), the example request and the closed-loop HTTP load generator. The
local Ray cluster and the Serve DAG are ``bench.cluster``'s.

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
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.cluster import REPO, SERVED_VERSION
from kgi.evaluation import Table
from kgi.shipped import DEFAULT_VERSION, EXAMPLES_DIR, output_dir

# The checkout's bench/results/ (installed: ~/.local/share/kgi/bench/results, see kgi.shipped.output_dir).
RESULTS_DIR = output_dir("bench/results", "data/bench/results")
TINY_RESULTS_DIR = RESULTS_DIR / "tiny"  # ignored by git: --tiny runs never overwrite the recorded results
CACHE_ENV = "KGI_BENCH_CACHE"  # where the benchmarks keep the synthetic data they build (default: cache_dir())


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
                        help=f"a seconds-long smoke run (what CI runs); results go to {TINY_RESULTS_DIR}")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help=f"where NAME.json and NAME.png go (default {RESULTS_DIR}, with --tiny "
                             f"{TINY_RESULTS_DIR})")
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
    """The folder for data the benchmarks build when none is given: ``$KGI_BENCH_CACHE``, else the checkout's
    ``bench/.cache`` (installed: ``~/.cache/kgi/bench``)."""
    return Path(os.environ.get(CACHE_ENV) or output_dir("bench/.cache", "cache/bench"))


def out_dir(args: argparse.Namespace) -> Path:
    """The folder results go to: ``--out``, else :data:`RESULTS_DIR` (its ``tiny/`` with ``--tiny``)."""
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
