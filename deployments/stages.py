"""The model stages of the try-on DAG: thin Serve deployments around ``TryOnPipeline``'s stage methods.

One ``Keypoints``, one ``ParseWarp`` and one ``Inpaint`` deployment serve every model version. Each replica holds
its own stage's network only (``TryOnPipeline.from_pretrained(stages=...)``), per set of weights: a request names
the weights it needs as its multiplexed model id (``handle.options(multiplexed_model_id=version.weights_id)``,
``deployments.config.ModelVersion.weights_id``), Serve routes it to a replica that has them loaded when there is
one, and the replica loads them on first use (``@serve.multiplexed``; past ``MAX_WEIGHTS_PER_REPLICA`` the least
recently used go). Versions that differ only in sampler settings or working height share their weights id, so one
loaded network serves them all with each request's own sampler settings; a version added to the Ingress's
``user_config`` is loaded by the running replicas on its first request, none restarts.

The stages chain without the Ingress in between: it passes Keypoints' response into ParseWarp's call and
ParseWarp's into Inpaint's, Serve hands each stage the previous one's result, and each output carries what the
request needs downstream (the garment keypoints, each stage's seconds). Every stage runs its model calls on one
:class:`~deployments.compute.ComputeThread`, in a process set up by ``kgi.runtime.configure_inference_process``.

``Inpaint`` is the expensive stage and the batched one: a :class:`~deployments.batching.Batcher` stacks the
requests that queued while the previous sampler call ran into the next one, and runs one sampler call per version
and sampler settings among them (items keep their own seed and masks). Batches can only fill if every caller
upstream allows enough requests in flight, which is why ``max_ongoing_requests`` is raised along the whole path and
``max_queued_requests`` bounds every queue.

Every stage's ``check_health`` (called by Serve every ``health_check_period_s``) fails when a loaded network holds
a NaN or infinite weight, or when the device cannot be read any more; Serve then replaces the replica. It costs
one device sync per loaded network, on a stream of its own (:func:`check_finite`).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import metrics

from deployments.batching import Batcher
from deployments.compute import ComputeThread
from deployments.config import weights_folder
from kgi.data.sample import TryOnSample
from kgi.pipeline import SamplerSettings, StageTwoOutput, TryOnPipeline, to_uint8_images
from kgi.runtime import configure_inference_process

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BATCH_SIZE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
MAX_WEIGHTS_PER_REPLICA = 4  # sets of weights a stage replica keeps loaded (a GPU holds four inpainters)


def check_finite(stage: str, model: torch.nn.Module) -> None:
    """Raise ``RuntimeError`` naming the first floating-point parameter or buffer of ``model`` that holds NaN or
    infinity (what a corrupted model looks like); a device that fails to answer raises its own error.

    One device sync whatever the model's size: each tensor's largest ``|value|`` (NaN or infinite exactly when
    the tensor holds one) is reduced on the device by fused kernels and only the (N,) flags are read back. On a
    GPU the check runs on a CUDA stream of its own, so it does not wait behind the sampler's queued kernels.
    """
    named = [(name, tensor) for name, tensor in (*model.named_parameters(), *model.named_buffers())
             if tensor.is_floating_point() and tensor.numel() > 0]
    if not named:
        return
    device = named[0][1].device
    with torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else contextlib.nullcontext():
        largest = torch._foreach_norm([tensor for _, tensor in named], float("inf"))  # max |value| per tensor
        finite = torch.isfinite(torch.stack([value.float() for value in largest])).cpu()  # (N,): the one sync
    if not bool(finite.all()):
        name = named[int(finite.logical_not().nonzero()[0])][0]
        raise RuntimeError(f"{stage}: {name} holds NaN or infinite values; the model is broken")


class _Stage:
    """What the stage deployments share: their networks per weights id, loaded on first use, and a compute thread.

    Args:
        registry_cache: where this node keeps its verified copies of registry versions (``AppArgs``).
        device: where the networks run.
        torch_threads: intra-op threads of this replica, ``None`` for torch's default.
    """

    stage: str  # the network this stage loads, one of kgi.pipeline.STAGES
    network: str  # the pipeline's attribute holding it

    def __init__(self, registry_cache: str, device: str = "cpu", torch_threads: int | None = None):
        configure_inference_process(torch_threads)
        self.registry_cache = registry_cache
        self.device = device
        self.compute = ComputeThread(self.stage)
        # What Serve's multiplexer holds, by weights id; an entry goes when Serve drops the pipeline.
        self.loaded: weakref.WeakValueDictionary[str, TryOnPipeline] = weakref.WeakValueDictionary()

    @serve.multiplexed(max_num_models_per_replica=MAX_WEIGHTS_PER_REPLICA)
    async def pipeline_for(self, weights_id: str) -> TryOnPipeline:
        """This stage's network of ``weights_id`` (a ``ModelVersion.weights_id``) in a pipeline, loaded once."""
        pipeline = await self.compute.run(self._load, weights_id)
        self.loaded[weights_id] = pipeline
        return pipeline

    def _load(self, weights_id: str) -> TryOnPipeline:
        return TryOnPipeline.from_pretrained(weights_folder(weights_id, self.registry_cache), self.device,
                                             stages=(self.stage,))

    async def request_pipeline(self) -> TryOnPipeline:
        """The pipeline of the weights the current request names (its multiplexed model id)."""
        weights_id = serve.get_multiplexed_model_id()
        if not weights_id:
            raise RuntimeError(f"{type(self).__name__}: called without a multiplexed_model_id (the version's "
                               "weights_id); the Ingress sets it")
        return await self.pipeline_for(weights_id)

    def loaded_weights(self) -> list[str]:
        """The weights ids this replica has loaded now."""
        return sorted(self.loaded)

    def check_health(self) -> None:
        """Serve's health check: fails when a loaded network is broken (see :func:`check_finite`)."""
        for weights_id, pipeline in list(self.loaded.items()):
            check_finite(f"{self.stage} network of {weights_id}", getattr(pipeline, self.network))


@dataclass
class KeypointsOutput:
    """Stage 1's answer: ``garment_kp`` (B, 32, 2) normalised keypoints on the person; ``timings`` its seconds."""

    garment_kp: np.ndarray
    timings: dict[str, float]


@dataclass
class ParseWarpOutput:
    """Stage 2's answer: the inpainter's input, stage 1's keypoints and both stages' seconds."""

    stage_two: StageTwoOutput
    garment_kp: np.ndarray
    timings: dict[str, float]


class _CpuStage(_Stage):
    """A stage on the CPU that answers each request with one call on its compute thread.

    Args: as :class:`_Stage`, less ``device``.
    """

    def __init__(self, registry_cache: str, torch_threads: int | None = None):
        super().__init__(registry_cache, "cpu", torch_threads)

    async def _answer(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(pipeline, *args)`` on the compute thread, with the pipeline of the weights the request names."""
        pipeline = await self.request_pipeline()
        return await self.compute.run(work, pipeline, *args)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32, max_queued_requests=128)
class Keypoints(_CpuStage):
    """Stage 1 (CPU): ``TryOnPipeline.predict_keypoints``, flat-garment keypoints -> keypoints on the person.

    Args: as :class:`_CpuStage`.
    """

    stage, network = "keypoints", "keypoint_net"

    async def __call__(self, cloth_kp: np.ndarray, pose_nodes: np.ndarray) -> KeypointsOutput:
        """``cloth_kp`` (B, 32, 2) and ``pose_nodes`` (B, 10, 2) normalised -> (B, 32, 2) normalised."""
        return await self._answer(self._predict, cloth_kp, pose_nodes)

    def _predict(self, pipeline: TryOnPipeline, cloth_kp: np.ndarray, pose_nodes: np.ndarray) -> KeypointsOutput:
        start = time.perf_counter()
        # Arrays arrive read-only (Ray's zero-copy deserialisation) and torch warns on those: copy, they are small.
        garment_kp = pipeline.predict_keypoints(np.array(cloth_kp), np.array(pose_nodes))
        return KeypointsOutput(garment_kp, {"keypoints": time.perf_counter() - start})


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32, max_queued_requests=128)
class ParseWarp(_CpuStage):
    """Stage 2 (CPU): ``TryOnPipeline.parse_and_warp``, target parse, five-segment warp and recomposition.

    Args: as :class:`_CpuStage`.
    """

    stage, network = "parse", "parse_net"

    async def __call__(self, samples: list[TryOnSample], keypoints: KeypointsOutput) -> ParseWarpOutput:
        """Stage 2 of ``samples`` given stage 1's answer (pass Keypoints' response itself: Serve resolves it)."""
        return await self._answer(self._parse_and_warp, samples, keypoints)

    def _parse_and_warp(self, pipeline: TryOnPipeline, samples: list[TryOnSample], keypoints: KeypointsOutput
                        ) -> ParseWarpOutput:
        start = time.perf_counter()
        garment_kp = np.array(keypoints.garment_kp)  # writable copy, see Keypoints
        stage_two = pipeline.parse_and_warp(samples, garment_kp)
        return ParseWarpOutput(stage_two, garment_kp,
                               {**keypoints.timings, "parse_warp": time.perf_counter() - start})


@dataclass
class InpaintOutput:
    """One request's share of an inpainting batch: the DAG's answer.

    Attributes:
        image: (H, W, 3) uint8 the try-on result at the request's working resolution.
        garment_kp: (32, 2) normalised garment keypoints on the person (stage 1's).
        unet_evaluations: UNet calls spent on the image.
        batch_size: how many requests the sampler call stacked.
        timings: seconds of each stage ("keypoints", "parse_warp", "inpaint": the sampler call it was part of).
    """

    image: np.ndarray
    garment_kp: np.ndarray
    unet_evaluations: int
    batch_size: int
    timings: dict[str, float]


@dataclass
class _InpaintRequest:
    pipeline: TryOnPipeline
    version: str
    sampler: SamplerSettings
    parse_warp: ParseWarpOutput
    seed: int


class BatchConfig(BaseModel):
    """The ``user_config`` of an ``Inpaint`` deployment, applied at run time by ``reconfigure``."""

    model_config = ConfigDict(extra="forbid")
    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.0, ge=0, le=10)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=32, max_queued_requests=128,
                  user_config=BatchConfig().model_dump())
class Inpaint(_Stage):
    """Stage 3 (GPU or CPU): ``TryOnPipeline.inpaint`` over dynamically formed batches.

    Args:
        registry_cache: as :class:`_Stage`.
        device: "cuda" (give the deployment ``num_gpus``) or "cpu".
        dtype: "float32", or "bfloat16" / "float16" to run the UNet under ``torch.autocast``.
        torch_threads: intra-op threads of this replica, ``None`` for torch's default.

    ``user_config`` (:class:`BatchConfig`): ``max_batch_size`` and ``batch_wait_timeout_s`` of the
    :class:`~deployments.batching.Batcher`; keep ``max_ongoing_requests >= max_batch_size`` or batches never fill.
    The sizes of the sampler calls that ran are recorded per version in the ``kgi_inpaint_batch_size`` histogram and
    in :meth:`batch_size_counts` (this replica's).
    """

    stage, network = "inpaint", "unet"

    def __init__(self, registry_cache: str, device: str = "cpu", dtype: str = "float32",
                 torch_threads: int | None = None):
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("Inpaint: device 'cuda' configured but this replica sees no GPU (give the deployment "
                               "num_gpus: 1 or set inpaint.device: cpu)")
        super().__init__(registry_cache, device, torch_threads)
        self.dtype = DTYPES[dtype]
        self.batcher: Batcher[_InpaintRequest, InpaintOutput] = Batcher(self._inpaint_batch)
        self.batch_sizes: dict[str, Counter[int]] = {}
        self.batch_size_histogram = metrics.Histogram(
            "kgi_inpaint_batch_size", description="Requests stacked into one inpainting sampler call.",
            boundaries=BATCH_SIZE_BUCKETS, tag_keys=("version",))

    def reconfigure(self, user_config: dict) -> None:
        """Apply a :class:`BatchConfig` (called by Serve at start and on every config change)."""
        config = BatchConfig.model_validate(user_config)
        self.batcher.max_batch_size = config.max_batch_size
        self.batcher.batch_wait_timeout_s = config.batch_wait_timeout_s

    async def inpaint(self, parse_warp: ParseWarpOutput, seed: int, version: str, sampler: SamplerSettings
                      ) -> InpaintOutput:
        """Inpaint one request as part of the next batch
        (``handle.options(multiplexed_model_id=...).inpaint.remote(parse_warp, seed, version, sampler)``).

        Args:
            parse_warp: ParseWarp's answer for this request (batch of 1; pass its response: Serve resolves it).
            seed: the request's sampler seed.
            version: the version's name: requests of one version and sampler settings share one sampler call,
                whatever their resolutions (the inpainter works at one size; ``TryOnPipeline.inpaint_mixed``).
            sampler: the version's sampler settings with the request's steps.
        """
        pipeline = await self.request_pipeline()
        return await self.batcher.submit(_InpaintRequest(pipeline, version, sampler, parse_warp, seed))

    async def _inpaint_batch(self, requests: list[_InpaintRequest]) -> list[InpaintOutput]:
        """Run a batch of requests, one sampler call per version and sampler settings."""
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.version, id(request.pipeline), astuple(request.sampler)), []).append(index)
        outputs: list[InpaintOutput | None] = [None] * len(requests)
        for indices in groups.values():
            group = [requests[i] for i in indices]
            version = group[0].version
            # The sampler runs on the compute thread so this replica keeps accepting requests for the next batch.
            images, evaluations, seconds = await self.compute.run(
                self._sample, group[0].pipeline, version, group[0].sampler,
                [r.parse_warp.stage_two for r in group], [r.seed for r in group])
            self.batch_sizes.setdefault(version, Counter())[len(group)] += 1
            self.batch_size_histogram.observe(len(group), tags={"version": version})
            for image, request, index in zip(images, group, indices, strict=True):
                outputs[index] = InpaintOutput(image, request.parse_warp.garment_kp[0], evaluations, len(group),
                                               {**request.parse_warp.timings, "inpaint": seconds})
        return outputs

    def _sample(self, pipeline: TryOnPipeline, version: str, sampler: SamplerSettings,
                stage_twos: list[StageTwoOutput], seeds: list[int]) -> tuple[list[np.ndarray], int, float]:
        """One sampler call of ``version`` over requests of one image each: their (H, W, 3) uint8 images, UNet
        evaluations per image, seconds."""
        start = time.perf_counter()
        device = pipeline.device
        stage_twos = [StageTwoOutput(*(getattr(part, f.name).to(device) for f in fields(StageTwoOutput)))
                      for part in stage_twos]
        with torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            images, evaluations = pipeline.inpaint_mixed(stage_twos, seeds, sampler)
        return [to_uint8_images(image)[0] for image in images], evaluations, time.perf_counter() - start

    def batch_size_counts(self) -> dict[str, dict[int, int]]:
        """Version -> batch size -> how many sampler calls of that size this replica ran."""
        return {version: dict(counts) for version, counts in self.batch_sizes.items()}
