"""The ``Preprocess`` stage: a request's uploads in, a ``TryOnSample`` at the version's working resolution out.

A thin Serve shell around ``kgi.preprocess.Preprocessor`` (what a request must bring, what is computed when it
does not, and the resolution rules are in that module's docstring), with the pose estimator and human parser
the application's ``preprocess`` args name (``deployments.config.PreprocessArgs``). A request that lacks an
input nothing configured can compute is answered 422 ``missing_input``, saying what to send or configure.
"""

from __future__ import annotations

import logging
import time

from ray import serve

from deployments.compute import ComputeThread
from deployments.config import PoseSourceArgs, PreprocessArgs
from deployments.errors import MissingInputError
import kgi.preprocess
from kgi.data.sample import TryOnSample
from kgi.parsing import HumanParser, ParserUnavailable, make_parser
from kgi.pose_estimation import PoseEstimator, PoseEstimatorUnavailable, make_pose_estimator
from kgi.preprocess import Preprocessor, Uploads
from kgi.runtime import configure_inference_process

logger = logging.getLogger("ray.serve")

PARSER_ADVICE = ("configure a human parser in the application's args (preprocess.parser.source: mediapipe, the "
                 "photo parser of the pose environment, or onnx with a human-parsing model)")


def _pose_estimator(args: PoseSourceArgs) -> tuple[PoseEstimator | None, str]:
    """The configured estimator (None when there is none) and what to configure when a request lacks a pose.

    Raises ``PoseEstimatorUnavailable`` when a ``required`` estimator cannot start.
    """
    try:
        estimator = make_pose_estimator(args.source, args.python)
    except PoseEstimatorUnavailable as exc:
        if args.required:
            raise
        logger.warning("Preprocess: no pose estimator, requests must send 'pose' (%s)", exc)
        return None, f"make this service's pose estimator (preprocess.pose.source: mediapipe) available: {exc}"
    return estimator, "configure a pose estimator in the application's args (preprocess.pose.source: mediapipe)"


def _human_parser(sources: PreprocessArgs) -> tuple[HumanParser | None, str]:
    """The configured parser (None when there is none) and what to configure when a request lacks a parse.

    The photo parser ("mediapipe") runs in the pose estimator's environment and is as required as it: when the
    pose source is optional and the environment is missing, the service starts without it. Raises
    ``ParserUnavailable`` otherwise.
    """
    try:
        parser = make_parser(sources.parser.source, sources.parser.path, sources.parser.label_set,
                             sources.parser.input_size, python=sources.pose.python)
    except ParserUnavailable as exc:
        if sources.parser.source != "mediapipe" or sources.pose.required:
            raise
        logger.warning("Preprocess: no human parser, requests must send 'parse' (%s)", exc)
        return None, f"make this service's photo parser (preprocess.parser.source: mediapipe) available: {exc}"
    return parser, PARSER_ADVICE


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32, max_queued_requests=128)
class Preprocess:
    """Stage 0 (CPU): uploads -> ``TryOnSample`` with ``kgi.preprocess.Preprocessor``.

    Args:
        sources: the ``preprocess`` args: pose estimator and human parser, paths absolute
            (``AppArgs.preprocess_sources``).
        max_upload_bytes: largest accepted upload, per file.
        max_image_pixels: largest accepted image, in pixels.
        torch_threads: intra-op threads of this replica (the parser, OpenCV), ``None`` for the default.

    Raises ``PoseEstimatorUnavailable`` / ``ParserUnavailable`` when a configured source cannot start (the
    replica then fails, and the deployment with it, saying why).
    """

    def __init__(self, sources: PreprocessArgs, max_upload_bytes: int, max_image_pixels: int,
                 torch_threads: int | None = None):
        configure_inference_process(torch_threads)
        pose_estimator, pose_advice = _pose_estimator(sources.pose)
        parser, parser_advice = _human_parser(sources)
        self.preprocessor = Preprocessor(pose_estimator, parser, max_bytes=max_upload_bytes,
                                         max_pixels=max_image_pixels)
        self.advice = {"pose": pose_advice, "parse": parser_advice}  # field -> what to configure when missing
        self.compute = ComputeThread("preprocess")

    async def __call__(self, uploads: Uploads, working_height: int | None) -> tuple[TryOnSample, float]:
        """The sample at ``working_height`` (None: the photo's own, up to 1024 rows) and this stage's seconds."""
        return await self.compute.run(self._preprocess, uploads, working_height)

    def _preprocess(self, uploads: Uploads, working_height: int | None) -> tuple[TryOnSample, float]:
        start = time.perf_counter()
        try:
            sample = self.preprocessor(uploads, working_height)
        except kgi.preprocess.MissingInputError as exc:
            raise MissingInputError(f"{exc}; or {self.advice[exc.field]}") from None
        return sample, time.perf_counter() - start
