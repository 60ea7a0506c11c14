"""The model stages of the try-on DAG: thin Serve deployments around ``TryOnPipeline``'s stage methods.

One set per model version (``Keypoints-<version>``, ``ParseWarp-<version>``, ``Inpaint-<version>``, named by
``build_app``), so every version scales on its own. Each replica loads its version's folder with
``TryOnPipeline.from_pretrained`` (in a process set up by ``kgi.runtime.configure_inference_process``), runs its
model calls on one :class:`~deployments.compute.ComputeThread`, and every call returns its output together with
the seconds it took.

``Inpaint`` is the expensive stage and the batched one: a :class:`~deployments.batching.Batcher` stacks the
requests that queued while the previous sampler call ran into the next one (items keep their own seed and masks;
items asking for different step counts run as separate groups). Batches can only fill if every caller upstream
allows enough requests in flight, which is why ``max_ongoing_requests`` is raised along the whole path and
``max_queued_requests`` bounds every queue.

Every stage's ``check_health`` (called by Serve every ``health_check_period_s``) fails when its network holds
a NaN or infinite weight, or when the device cannot be read any more; Serve then replaces the replica. It costs
one device sync, on a stream of its own (:func:`check_finite`).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import metrics

from deployments.batching import Batcher
from deployments.compute import ComputeThread
from deployments.config import ModelVersion
from kgi.data.sample import TryOnSample
from kgi.pipeline import StageTwoOutput, TryOnPipeline, to_uint8_images
from kgi.runtime import configure_inference_process

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BATCH_SIZE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]


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


def _load(version: ModelVersion, device: str, torch_threads: int | None) -> TryOnPipeline:
    configure_inference_process(torch_threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"Inpaint-{version.name}: device 'cuda' configured but this replica sees no GPU "
                           "(give the deployment num_gpus: 1 or set inpaint.device: cpu)")
    return TryOnPipeline.from_pretrained(version.local_directory(), device=device)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32, max_queued_requests=128)
class Keypoints:
    """Stage 1 (CPU): ``TryOnPipeline.predict_keypoints``, flat-garment keypoints -> keypoints on the person.

    Args:
        version: the model version this deployment serves.
        torch_threads: intra-op threads of this replica, ``None`` for torch's default.
    """

    def __init__(self, version: ModelVersion, torch_threads: int | None = None):
        self.pipeline = _load(version, "cpu", torch_threads)
        self.compute = ComputeThread("keypoints")

    def check_health(self) -> None:
        """Serve's health check: fails when the keypoint network is broken (see :func:`check_finite`)."""
        check_finite("keypoint network", self.pipeline.keypoint_net)

    async def __call__(self, cloth_kp: np.ndarray, pose_nodes: np.ndarray) -> tuple[np.ndarray, float]:
        """``cloth_kp`` (B, 32, 2) and ``pose_nodes`` (B, 10, 2) normalised -> ((B, 32, 2) normalised, seconds)."""
        return await self.compute.run(self._predict, cloth_kp, pose_nodes)

    def _predict(self, cloth_kp: np.ndarray, pose_nodes: np.ndarray) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        # Arrays arrive read-only (Ray's zero-copy deserialisation) and torch warns on those: copy, they are small.
        garment_kp = self.pipeline.predict_keypoints(np.array(cloth_kp), np.array(pose_nodes))
        return garment_kp, time.perf_counter() - start


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32, max_queued_requests=128)
class ParseWarp:
    """Stage 2 (CPU): ``TryOnPipeline.parse_and_warp``, target parse, five-segment warp and recomposition.

    Args:
        version: the model version this deployment serves.
        torch_threads: intra-op threads of this replica, ``None`` for torch's default.
    """

    def __init__(self, version: ModelVersion, torch_threads: int | None = None):
        self.pipeline = _load(version, "cpu", torch_threads)
        self.compute = ComputeThread("parse-warp")

    def check_health(self) -> None:
        """Serve's health check: fails when the parse network is broken (see :func:`check_finite`)."""
        check_finite("parse network", self.pipeline.parse_net)

    async def __call__(self, samples: list[TryOnSample], garment_kp: np.ndarray) -> tuple[StageTwoOutput, float]:
        """Stage 2 of ``samples`` given stage 1's (B, 32, 2) normalised ``garment_kp``; returns (output, seconds)."""
        return await self.compute.run(self._parse_and_warp, samples, garment_kp)

    def _parse_and_warp(self, samples: list[TryOnSample], garment_kp: np.ndarray) -> tuple[StageTwoOutput, float]:
        start = time.perf_counter()
        stage_two = self.pipeline.parse_and_warp(samples, np.array(garment_kp))  # writable copy, see Keypoints
        return stage_two, time.perf_counter() - start


@dataclass
class InpaintOutput:
    """One request's share of an inpainting batch.

    Attributes:
        image: (H, W, 3) uint8 the try-on result at the request's working resolution.
        unet_evaluations: UNet calls spent on the image.
        seconds: time of the sampler call the request was part of.
        batch_size: how many requests that sampler call stacked.
    """

    image: np.ndarray
    unet_evaluations: int
    seconds: float
    batch_size: int


class BatchConfig(BaseModel):
    """The ``user_config`` of an ``Inpaint`` deployment, applied at run time by ``reconfigure``."""

    model_config = ConfigDict(extra="forbid")
    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.0, ge=0, le=10)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=32, max_queued_requests=128,
                  user_config=BatchConfig().model_dump())
class Inpaint:
    """Stage 3 (GPU or CPU): ``TryOnPipeline.inpaint`` over dynamically formed batches.

    Args:
        version: the model version this deployment serves (its sampler settings are the defaults).
        device: "cuda" (give the deployment ``num_gpus``) or "cpu".
        dtype: "float32", or "bfloat16" / "float16" to run the UNet under ``torch.autocast``.
        torch_threads: intra-op threads of this replica, ``None`` for torch's default.

    ``user_config`` (:class:`BatchConfig`): ``max_batch_size`` and ``batch_wait_timeout_s`` of the
    :class:`~deployments.batching.Batcher`; keep ``max_ongoing_requests >= max_batch_size`` or batches never fill.
    The sizes of the batches that ran are recorded in the ``kgi_inpaint_batch_size`` histogram and in
    :meth:`batch_size_counts` (this replica's).
    """

    def __init__(self, version: ModelVersion, device: str = "cpu", dtype: str = "float32",
                 torch_threads: int | None = None):
        self.version = version
        self.pipeline = _load(version, device, torch_threads)
        self.compute = ComputeThread("inpaint")
        self.dtype = DTYPES[dtype]
        self.batcher: Batcher[tuple[StageTwoOutput, int, int], InpaintOutput] = Batcher(self._inpaint_batch)
        self.batch_sizes: Counter[int] = Counter()
        self.batch_size_histogram = metrics.Histogram(
            "kgi_inpaint_batch_size", description="Requests stacked into one inpainting sampler call.",
            boundaries=BATCH_SIZE_BUCKETS, tag_keys=("version",))
        self.batch_size_histogram.set_default_tags({"version": version.name})

    def check_health(self) -> None:
        """Serve's health check: fails when the denoising UNet is broken (see :func:`check_finite`)."""
        check_finite("inpainting UNet", self.pipeline.unet)

    def reconfigure(self, user_config: dict) -> None:
        """Apply a :class:`BatchConfig` (called by Serve at start and on every config change)."""
        config = BatchConfig.model_validate(user_config)
        self.batcher.max_batch_size = config.max_batch_size
        self.batcher.batch_wait_timeout_s = config.batch_wait_timeout_s

    async def inpaint(self, stage_two: StageTwoOutput, seed: int, steps: int) -> InpaintOutput:
        """Inpaint one request as part of the next batch (``handle.inpaint.remote(stage_two, seed, steps)``).

        Args:
            stage_two: the ``ParseWarp`` output for this request (batch of 1).
            seed: the request's sampler seed.
            steps: sampler steps; requests with the same steps share one sampler call, whatever their
                resolutions (the inpainter works at one size; ``TryOnPipeline.inpaint_mixed``).
        """
        return await self.batcher.submit((stage_two, seed, steps))

    async def _inpaint_batch(self, requests: list[tuple[StageTwoOutput, int, int]]) -> list[InpaintOutput]:
        """Run a batch of ``(stage_two, seed, steps)`` requests, one sampler call per steps group."""
        groups: dict[int, list[int]] = {}
        for index, (_, _, num_steps) in enumerate(requests):
            groups.setdefault(num_steps, []).append(index)
        outputs: list[InpaintOutput | None] = [None] * len(requests)
        for num_steps, indices in groups.items():
            # The sampler runs on the compute thread so this replica keeps accepting requests for the next batch.
            images, evaluations, seconds = await self.compute.run(
                self._sample, [requests[i][0] for i in indices], [requests[i][1] for i in indices], num_steps)
            self.batch_sizes[len(indices)] += 1
            self.batch_size_histogram.observe(len(indices))
            for row, index in enumerate(indices):
                outputs[index] = InpaintOutput(images[row], evaluations, seconds, len(indices))
        return outputs

    def _sample(self, stage_twos: list[StageTwoOutput], seeds: list[int], num_steps: int
                ) -> tuple[list[np.ndarray], int, float]:
        """One sampler call over requests of one image each: their (H, W, 3) uint8 images, UNet evaluations per
        image, seconds."""
        start = time.perf_counter()
        device = self.pipeline.device
        stage_twos = [StageTwoOutput(*(getattr(part, f.name).to(device) for f in fields(StageTwoOutput)))
                      for part in stage_twos]
        with torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            images, evaluations = self.pipeline.inpaint_mixed(stage_twos, seeds,
                                                              replace(self.version.sampler, num_steps=num_steps))
        return [to_uint8_images(image)[0] for image in images], evaluations, time.perf_counter() - start

    def batch_size_counts(self) -> dict[int, int]:
        """Batch size -> how many sampler calls of that size this replica ran."""
        return dict(self.batch_sizes)
