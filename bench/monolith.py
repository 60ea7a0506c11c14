"""The try-on pipeline in ONE process, called directly or behind a minimal HTTP server: the baseline the Serve
DAG is measured against.

:class:`InProcessTryOn` does per request exactly what the DAG's stages do, in the calling thread and without Ray:
``kgi.preprocess.Preprocessor``, ``TryOnPipeline.predict_keypoints``, ``parse_and_warp``, ``inpaint`` and PNG
encoding. Requests must bring their pose and parse (the benchmarks' example does): no estimator is loaded.

:func:`build_app` puts it behind ``POST /v1/tryon`` with the service's own form (``deployments.form``: same
fields, same limits, same JSON errors) and answers the PNG, computing one request at a time on the torch threads
it is given; that is the plain way to serve the pipeline without Ray.

Example:
  python -m bench.monolith --port 8100                   # models/default, one torch thread
  curl -o out.png -F person=@examples/person.jpg -F garment=@examples/garment.jpg \\
       -F pose=@examples/person_keypoints.json -F parse=@examples/person_parse.png http://127.0.0.1:8100/v1/tryon
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.cluster import free_port, model_version
from bench.common import DEFAULT_VERSION, REPO, BenchmarkError
from kgi.data.images import DEFAULT_MAX_PIXELS, encode_png
from kgi.pipeline import StageTwoOutput, TryOnPipeline, keypoint_inputs, to_uint8_images
from kgi.preprocess import Preprocessor
from kgi.runtime import configure_inference_process

MAX_UPLOAD_BYTES = 15_000_000  # platform/serve/local.yaml's limits (max_upload_bytes, max_steps)
MAX_STEPS = 100
STARTUP_TIMEOUT_S = 120.0


class InProcessTryOn:
    """One model version's whole try-on in this process: uploads in, PNG bytes and per-stage seconds out.

    Args:
        version_dir: the model version folder.
        working_height: requests are normalised to ``working_height x 3*working_height/4`` (the service's 256).
        torch_threads: intra-op threads of torch and OpenCV in this process; None keeps the libraries' defaults.
    """

    def __init__(self, version_dir: Path, working_height: int = 256, torch_threads: int | None = None):
        configure_inference_process(torch_threads)
        self.version = model_version(version_dir, working_height)
        self.pipeline = TryOnPipeline.from_pretrained(version_dir)
        self.preprocessor = Preprocessor(max_bytes=MAX_UPLOAD_BYTES, max_pixels=DEFAULT_MAX_PIXELS)

    def stage_two(self, uploads) -> tuple[StageTwoOutput, dict[str, float]]:
        """Stages 0-2 of one request's ``uploads`` (``kgi.preprocess.Uploads``): the ``ParseWarp`` output (a batch
        of 1) the ``Inpaint`` stage takes, and the seconds of "preprocess", "keypoints" and "parse_warp"."""
        timings = {}
        start = time.perf_counter()
        sample = self.preprocessor(uploads, self.version.working_height)
        timings["preprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        garment_kp = self.pipeline.predict_keypoints(*keypoint_inputs([sample]))  # (1, 32, 2), (1, 10, 2)
        timings["keypoints"] = time.perf_counter() - start
        start = time.perf_counter()
        stage_two = self.pipeline.parse_and_warp([sample], garment_kp)
        timings["parse_warp"] = time.perf_counter() - start
        return stage_two, timings

    def __call__(self, uploads, seed: int = 0, steps: int | None = None) -> tuple[bytes, dict[str, float]]:
        """Try on one request's ``uploads`` with ``steps`` sampler steps (default: the version's); returns the PNG
        and the seconds of each stage and of the whole, as the service's ``X-KGI-Timings`` header does."""
        start = time.perf_counter()
        stage_two, timings = self.stage_two(uploads)
        inpaint_start = time.perf_counter()
        sampler = replace(self.version.sampler, num_steps=steps or self.version.sampler.num_steps)
        images, _ = self.pipeline.inpaint(stage_two, [seed], sampler)
        timings["inpaint"] = time.perf_counter() - inpaint_start
        png = encode_png(to_uint8_images(images)[0])
        timings["total"] = time.perf_counter() - start
        return png, timings


def build_app(tryon: InProcessTryOn):
    """A Starlette app: ``POST /v1/tryon`` (the service's form; PNG answer) and ``GET /healthz``.

    One request computes at a time (a single worker thread), so concurrent requests queue in arrival order.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from deployments.compute import ComputeThread
    from deployments.errors import error_response
    from deployments.form import read_tryon_form

    compute = ComputeThread("tryon")

    async def tryon_route(request: Request) -> Response:
        try:
            form = await read_tryon_form(request, max_upload_bytes=MAX_UPLOAD_BYTES, max_steps=MAX_STEPS)
            png, timings = await compute.run(tryon, form.uploads, form.seed, form.steps)
        except Exception as exc:  # noqa: BLE001 - the service's JSON errors, as the DAG's ingress answers them
            return error_response(exc)
        timings = {stage: round(seconds, 4) for stage, seconds in timings.items()}
        return Response(png, media_type="image/png",
                        headers={"X-KGI-Timings": json.dumps(timings, separators=(",", ":"))})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/tryon", tryon_route, methods=["POST"]), Route("/healthz", healthz)])


@contextmanager
def monolith_server(version_dir: Path = DEFAULT_VERSION, *, working_height: int = 256,
                    torch_threads: int = 1) -> Iterator[str]:
    """This module's server in a subprocess for the ``with`` block; yields its ``POST /v1/tryon`` URL.

    Args:
        version_dir, working_height: as :class:`InProcessTryOn`.
        torch_threads: the server's torch (and OpenCV) threads.
    """
    port = free_port()
    command = [sys.executable, "-m", "bench.monolith", "--port", str(port), "--version", str(version_dir),
               "--working-height", str(working_height), "--torch-threads", str(torch_threads)]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_healthy(process, f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/v1/tryon"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise BenchmarkError(f"the monolith server exited with {process.returncode}:\n{process.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:  # refused, or timed out
            if time.monotonic() > deadline:
                raise BenchmarkError(f"the monolith server did not answer {url} within {STARTUP_TIMEOUT_S} s"
                                     ) from None
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    """Serve one model version on 127.0.0.1 with uvicorn until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.monolith", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION, metavar="DIR", help="model version folder")
    parser.add_argument("--working-height", type=int, default=256, help="requests' working height (default 256)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    args = parser.parse_args(argv)
    uvicorn.run(build_app(InProcessTryOn(args.version, args.working_height, args.torch_threads)),
                host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
