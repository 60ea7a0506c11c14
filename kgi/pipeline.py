"""``TryOnPipeline``: person + garment in, try-on image and every intermediate out.

A small composition of the three stage models and a scheduler, in the manner of a diffusers pipeline::

    stage 1   KeypointGNN      flat-garment keypoints + pose graph      -> garment keypoints on the person
    stage 2a  ParseUNet        agnostic parse + skeleton + garment drawing -> target parse (arms: the pose's)
    stage 2b  warp + recompose five-segment TPS warp, paste              -> recomposed image, keep mask
    stage 3   SpadeUNet + sampler  keep-mask diffusion inpainting        -> try-on image
              + composite          skin learnt from the person, fills from kept pixels -> full-resolution result

Each stage is a method of its own (``predict_keypoints``, ``parse_and_warp``, ``inpaint``) so the serving
DAG can run them in separate deployments on the same code. The parse network and the inpainter run at the
resolution they were trained at; everything image-to-image (warp, recomposition, masks, compositing) runs at
the input's resolution (the photo's own, up to 1024 rows: ``kgi.preprocess``), with every kept pixel of the
recomposed image exact in the result.

A model version on disk (``models/default`` is the shipped one) is a folder::

    version.yaml            name, resolutions, sampler settings, provenance
    keypoints.safetensors   KeypointGNN
    parse.safetensors       ParseUNet
    inpainter/              SpadeUNet (diffusers format) + scheduler/ config
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from diffusers import DDPMScheduler

from kgi.composite import composite
from kgi.data.images import width_for
from kgi.data.labels import AGNOSTIC_CIHP, BOTTOM, FACE_CIHP, HAIR_CIHP, LOWER_GARMENT_CIHP, NECK_CIHP, NUM_PARSE13, \
    UPPER
from kgi.data.sample import TryOnSample
from kgi.limbs import (centre_long_sleeves, fit_short_sleeves, lengthen_short_body, seat_shoulder_seams,
                       widen_hem_to_lower_garment, widen_neckline_to_neck)
from kgi.models.inpainter import SpadeUNet
from kgi.models.keypoints import GARMENT_MIRROR, POSE_MIRROR, KeypointGNN, mirror_points
from kgi.models.parse import ParseUNet, parse_input
from kgi.posed_arms import pose_arms
from kgi.recompose import MARGIN, agnostic_parse, change_region, cover_old_neckline, fill_garment_holes, recompose
from kgi.sampling import inpaint, make_scheduler
from kgi.warp import warp_garment

VERSION_FILE = "version.yaml"
STAGES = ("keypoints", "parse", "inpaint")  # what ``TryOnPipeline.from_pretrained(stages=...)`` can load


LABEL_HEIGHT = 512  # rows at which the target parse's classes are decided (``_labels``)


def _labels(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The parse network's (B, 13, h, w) scores as (B, H, W) uint8 labels at the image's size.

    The network decides each class pixel by pixel at 128 rows: its scores step from one pixel to the next, and
    class borders upsampled from them have the steps (8 pixels at 1024 rows). Smoothed first (two 3x3 means, a
    Gaussian of about one pixel there), the borders are smooth curves. The scores are upsampled to at most
    ``LABEL_HEIGHT`` rows and every class but the two garments is decided there, then upsampled nearest (at 1024
    rows this saves 0.1 s of 13-channel interpolation and argmax, for 2-pixel steps on their borders). The
    garments' borders are decided at full size, each from its margin over the best class after it (the upper
    garment over all others, the lower garment over all but the upper) upsampled bilinearly: the warped garment
    is cut to the upper garment's border, and the painted lower garment's edge is the other; decided at 512 rows,
    both stepped by 2 pixels along the arms and the wall. The upsampling is OpenCV's (the same pixel centres as
    ``F.interpolate``'s bilinear without corners aligned), a class plane at a time: a quarter of torch's time.
    """
    for _ in range(2):
        logits = F.avg_pool2d(logits, 3, stride=1, padding=1, count_include_pad=False)
    label_height = min(height, LABEL_HEIGHT)
    label_width = round(width * label_height / height)
    rest = [label for label in range(logits.shape[1]) if label not in (UPPER, BOTTOM)]
    labels = np.empty((len(logits), height, width), np.uint8)
    for index, planes in enumerate(logits.float().cpu().numpy()):  # (13, h, w)
        scores = np.stack([cv2.resize(plane, (label_width, label_height), interpolation=cv2.INTER_LINEAR)
                           for plane in planes])  # (13, h', w')
        best_rest, rest_label = scores[rest[0]].copy(), np.full(scores.shape[1:], rest[0], np.uint8)
        for label in rest[1:]:  # the first best on ties, as an argmax
            better = scores[label] > best_rest
            best_rest = np.maximum(best_rest, scores[label])
            rest_label[better] = label
        upper_margin = scores[UPPER] - np.maximum(best_rest, scores[BOTTOM])
        lower_margin = scores[BOTTOM] - best_rest
        upper_margin, lower_margin = (cv2.resize(margin, (width, height), interpolation=cv2.INTER_LINEAR)
                                      for margin in (upper_margin, lower_margin))
        decided = cv2.resize(rest_label, (width, height), interpolation=cv2.INTER_NEAREST)
        decided[lower_margin > 0] = BOTTOM
        decided[upper_margin > 0] = UPPER
        labels[index] = decided
    return torch.from_numpy(labels).to(logits.device)


@dataclass
class SamplerSettings:
    """How stage 3 samples: a diffusers scheduler name, its steps, and optional RePaint jumps.

    The default is ``kgi.sampling.FAST_SETTING``: 25 DDPM steps with the kept region re-noised before each
    evaluation, measured on par with KGI's 410-evaluation setting on held-out synthetic pairs.
    """

    scheduler: str = "ddpm"
    num_steps: int = 25
    jump_length: int = 0
    jump_n_sample: int = 1


@dataclass
class VersionInfo:
    """The ``version.yaml`` of a model version."""

    name: str
    parse_height: int = 128
    inpaint_height: int = 128
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    description: str = ""
    provenance: dict = field(default_factory=dict)  # stage -> where its weights came from (run, step, data)

    @classmethod
    def read(cls, directory: Path) -> "VersionInfo":
        doc = yaml.safe_load((directory / VERSION_FILE).read_text())
        return cls(**{**doc, "sampler": SamplerSettings(**doc.get("sampler", {}))})

    def write(self, directory: Path) -> None:
        (directory / VERSION_FILE).write_text(yaml.safe_dump(asdict(self), sort_keys=False))


@dataclass
class TryOnResult:
    """One try-on and its intermediates, all at the input's resolution (numpy, ready to encode).

    Attributes:
        image: (H, W, 3) uint8 the try-on result.
        worn_keypoints: (32, 2) float32 the new garment's keypoints on the person (stage 1's prediction), pixels;
            the flat garment's are the sample's ``cloth_keypoints``.
        target_parse13: (H, W) uint8 predicted 13-class parse of the person wearing the garment.
        warped_garment: (H, W, 3) uint8 five-segment warp (black where no garment).
        recomposed: (H, W, 3) uint8 the image the inpainter completes.
        keep_mask: (H, W) bool pixels kept from ``recomposed``; the rest was inpainted.
        skin_mask: (H, W) bool the person's visible skin painted skin's colour was learnt from.
        unet_evaluations: UNet calls spent on this image.
        timings: seconds per stage ("keypoints", "parse_warp", "inpaint") for the batch it was part of.
    """

    image: np.ndarray
    worn_keypoints: np.ndarray
    target_parse13: np.ndarray
    warped_garment: np.ndarray
    recomposed: np.ndarray
    keep_mask: np.ndarray
    skin_mask: np.ndarray
    unet_evaluations: int
    timings: dict[str, float]


@dataclass
class StageTwoOutput:
    """Stage 2's batched tensors, the input of stage 3: all (B, C, H, W) at the input's resolution."""

    target_parse13: torch.Tensor  # (B, H, W) long, as composed (``Recomposition.target_parse13``)
    warped_garment: torch.Tensor  # (B, 3, H, W) [0, 1], black where the result shows no new garment
    recomposed: torch.Tensor  # (B, 3, H, W) [0, 1]
    keep_mask: torch.Tensor  # (B, 1, H, W) {0, 1}
    skin_mask: torch.Tensor  # (B, 1, H, W) {0, 1} visible skin (``Recomposition.skin_mask``)

    def __reduce__(self):
        """Pickle the tensors as numpy arrays, which pickle protocol 5 ships out of band; torch pickles a tensor
        through ``torch.save``, ~2.5 ms for one 256x192 output, paid at every hop between serving stages.
        Unpickles on the CPU."""
        return _stage_two_from_arrays, tuple(getattr(self, f.name).detach().cpu().numpy() for f in fields(self))


def _stage_two_from_arrays(*arrays: np.ndarray) -> StageTwoOutput:
    # Copied: arrays unpickled from shared memory (Ray's object store) are read-only.
    return StageTwoOutput(*(torch.from_numpy(array.copy()) for array in arrays))


def margin_px(height: int) -> int:
    """The change region's margin at this height (``kgi.recompose.MARGIN``), at least a pixel."""
    return max(round(MARGIN * height), 1)


def keypoint_inputs(samples: list[TryOnSample]) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1's inputs of a batch (``TryOnPipeline.predict_keypoints``): the flat garments' keypoints (B, 32, 2)
    and the poses' nodes (B, 10, 2), both normalised."""
    return np.stack([s.normalised(s.cloth_keypoints) for s in samples]), np.stack([s.pose_nodes for s in samples])


def seated_keypoints(samples: list[TryOnSample], garment_kp: np.ndarray) -> np.ndarray:
    """Stage 1's keypoints with the garment's shoulder seams on each person's shoulders
    (``kgi.limbs.seat_shoulder_seams``; the body is the photo's old garment, neck and arms, and a body top right
    under hair or the face is none) and its neckline at least as wide as the neck
    (``kgi.limbs.widen_neckline_to_neck``), then each sleeve that disagrees with the flat sleeve and the pose
    rebuilt and each short sleeve turned around its upper arm (``kgi.limbs.fit_short_sleeves``), each long sleeve's cuff
    centred on its forearm (``kgi.limbs.centre_long_sleeves``), then a body shorter for its shoulder width than the
    flat garment's lengthened to its proportions (``kgi.limbs.lengthen_short_body``), then each hem corner out to
    the side of the lower garment the photo shows on its row (``kgi.limbs.widen_hem_to_lower_garment``):
    (B, 32, 2) normalised, as ``garment_kp``."""
    height, width = samples[0].size
    scale = np.array([width, height], np.float64)
    seated = []
    for sample, keypoints in zip(samples, garment_kp):
        nodes, parse = sample.pose_nodes * scale, sample.parse
        worn = seat_shoulder_seams(keypoints * scale, nodes, np.isin(parse, AGNOSTIC_CIHP), parse == HAIR_CIHP,
                                   parse == FACE_CIHP)
        worn = widen_neckline_to_neck(worn, parse == NECK_CIHP)
        fitted = centre_long_sleeves(fit_short_sleeves(worn, sample.cloth_keypoints, nodes), sample.cloth_keypoints,
                                     nodes)
        lengthened = lengthen_short_body(fitted, sample.cloth_keypoints)
        seated.append(widen_hem_to_lower_garment(lengthened, np.isin(parse, LOWER_GARMENT_CIHP)) / scale)
    return np.stack(seated).astype(np.float32)


def to_tensor_images(arrays: list[np.ndarray], device) -> torch.Tensor:
    """A list of (H, W, 3) uint8 images -> (B, 3, H, W) float [0, 1] on ``device``."""
    return torch.from_numpy(np.stack(arrays)).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8_images(images01: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] (any float dtype, any device) -> (B, H, W, 3) uint8 on the CPU."""
    return (images01.float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class TryOnPipeline:
    """The three KGI stages over a batch of ``TryOnSample`` (same resolution, garment keypoints present).

    Args:
        keypoint_net: stage 1 network.
        parse_net: stage 2a network, run at ``info.parse_height``.
        unet: stage 3 denoiser, run at ``info.inpaint_height``.
        scheduler: the noise schedule the denoiser was trained with (samplers are built from its config).
        info: the version's settings (resolutions, sampler).
        device: where the models run.

    A network may be ``None`` when the pipeline only runs the other stages (a serving stage replica loads its own
    network alone: ``from_pretrained(..., stages=("inpaint",))``); calling a stage without its network raises
    ``RuntimeError``.
    """

    def __init__(self, keypoint_net: KeypointGNN | None, parse_net: ParseUNet | None, unet: SpadeUNet | None,
                 scheduler: DDPMScheduler | None, info: VersionInfo, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.keypoint_net = None if keypoint_net is None else keypoint_net.to(self.device).eval()
        # Channels-last weights: the convolutions run in NHWC, which on the CPU (one thread, 256x192 request) cut
        # the parse network from 53 to 39 ms and a UNet call from 38.5 to 30.6 ms.
        self.parse_net = None if parse_net is None else parse_net.to(self.device,
                                                                      memory_format=torch.channels_last).eval()
        self.unet = None if unet is None else unet.to(self.device, memory_format=torch.channels_last).eval()
        self.scheduler = scheduler
        self.info = info

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        stages: tuple[str, ...] = STAGES) -> "TryOnPipeline":
        """Load a model version folder (see the module docstring).

        Args:
            directory: the version folder.
            device: where the networks run.
            stages: which networks to load, of ``STAGES`` ("keypoints", "parse", "inpaint"); the others stay
                ``None`` (a serving stage holds its own network only).
        """
        directory = Path(directory)
        if not (directory / VERSION_FILE).is_file():
            raise FileNotFoundError(f"{directory}: not a model version (no {VERSION_FILE})")
        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            raise ValueError(f"stages: unknown {unknown}; choose from {list(STAGES)}")
        inpaint = "inpaint" in stages
        return cls(KeypointGNN.load(directory / "keypoints.safetensors") if "keypoints" in stages else None,
                   ParseUNet.load(directory / "parse.safetensors") if "parse" in stages else None,
                   SpadeUNet.from_pretrained(directory / "inpainter") if inpaint else None,
                   DDPMScheduler.from_pretrained(directory / "inpainter" / "scheduler") if inpaint else None,
                   VersionInfo.read(directory), device)

    def _network(self, stage: str, network):
        if network is None:
            raise RuntimeError(f"this pipeline was loaded without its {stage} network (from_pretrained's stages)")
        return network

    def save_pretrained(self, directory: str | Path) -> None:
        """Write this pipeline as a model version folder that ``from_pretrained`` reads back."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.keypoint_net.save(directory / "keypoints.safetensors")
        self.parse_net.save(directory / "parse.safetensors")
        self.unet.save_pretrained(directory / "inpainter")
        self.scheduler.save_pretrained(directory / "inpainter" / "scheduler")
        self.info.write(directory)

    @torch.no_grad()
    def predict_keypoints(self, cloth_kp: np.ndarray, pose_nodes: np.ndarray) -> np.ndarray:
        """Stage 1. ``cloth_kp`` (B, 32, 2) and ``pose_nodes`` (B, 10, 2) normalised -> (B, 32, 2) normalised.

        The network's prediction averaged with its prediction for the mirrored garment and pose, mirrored back (a
        horizontal flip at test time, the flip it was trained with): what the network gets wrong one way on one
        side and the other way on the other cancels. On 300 held-out synthetic pairs the mean error falls from
        1.43% to 1.38% of the height; on genuine photos the image-left sleeve's cuff, which the network alone hangs
        0.09 of the shoulder span outside the arm on average (22 try-ons), moves in by a third.
        """
        cloth = torch.as_tensor(cloth_kp, dtype=torch.float32, device=self.device)
        pose = torch.as_tensor(pose_nodes, dtype=torch.float32, device=self.device)
        network = self._network("keypoints", self.keypoint_net)
        both = network(torch.cat([cloth, mirror_points(cloth, GARMENT_MIRROR)]),
                       torch.cat([pose, mirror_points(pose, POSE_MIRROR)]))  # (2B, 32, 2): as given, then mirrored
        direct, mirrored = both.chunk(2)
        return ((direct + mirror_points(mirrored, GARMENT_MIRROR)) / 2).clamp(0, 1).cpu().numpy()

    @torch.no_grad()
    def predict_parse(self, samples: list[TryOnSample], garment_kp: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2a: the parse of each person wearing the new garment.

        Args:
            samples: the batch (same resolution); uses each person's parse and pose.
            garment_kp: (B, 32, 2) normalised garment keypoints on the person (stage 1's output).

        Returns ``(predicted, target)``, both (B, H, W) long at the input's resolution: the network's own
        prediction, and the target parse used downstream, which keeps the person's parse outside the region a
        new garment may change (``kgi.recompose.change_region``) unless the prediction is garment there, and
        whose neck stops at the new garment's neckline (``kgi.recompose.cover_old_neckline``) and whose arms are
        where the pose has them (``kgi.posed_arms.pose_arms``).
        """
        height, width = samples[0].size
        parse13 = torch.from_numpy(np.stack([s.parse13 for s in samples])).to(self.device)  # (B, H, W) uint8
        parse_cihp = torch.from_numpy(np.stack([s.parse for s in samples])).to(self.device)
        pose_nodes = torch.from_numpy(np.stack([s.pose_nodes for s in samples])).to(self.device)
        target_kp = torch.as_tensor(garment_kp, dtype=torch.float32, device=self.device)
        parse_h = self.info.parse_height
        small = F.interpolate(parse13[:, None], size=(parse_h, width_for(parse_h)), mode="nearest")  # uint8
        parse_net = self._network("parse", self.parse_net)
        logits = parse_net(parse_input(agnostic_parse(small[:, 0].long()), pose_nodes, target_kp))
        predicted = _labels(logits, height, width)
        changes = change_region(parse_cihp, margin_px(height))[0] | (predicted == UPPER)
        target = fill_garment_holes(torch.where(changes, predicted, parse13), parse_cihp)
        target = cover_old_neckline(target, parse_cihp, pose_nodes.cpu().numpy(), garment_kp)
        return predicted.long(), pose_arms(target, parse_cihp, pose_nodes.cpu().numpy())

    @torch.no_grad()
    def warp_and_recompose(self, samples: list[TryOnSample], garment_kp: np.ndarray, target_parse13: torch.Tensor,
                           warp_method: str = "five_segments") -> StageTwoOutput:
        """Stage 2b: warp each garment onto its person and build the image the inpainter completes.

        Args:
            samples: the batch; uses person, parse, cloth, cloth mask and cloth keypoints.
            garment_kp: (B, 32, 2) normalised garment keypoints on the person.
            target_parse13: (B, H, W) the target parse (``predict_parse``'s second output).
            warp_method: ``"five_segments"`` (KGI) or ``"single_tps"`` (the baseline), see ``kgi.warp.warp_garment``.
        """
        height, width = samples[0].size
        parse_cihp = torch.from_numpy(np.stack([s.parse for s in samples])).to(self.device)  # (B, H, W) uint8
        cloth = to_tensor_images([s.cloth for s in samples], self.device)
        cloth_mask = torch.from_numpy(np.stack([s.cloth_mask for s in samples])).to(self.device)[:, None].float()
        cloth_kp = torch.from_numpy(np.stack([s.normalised(s.cloth_keypoints) for s in samples])).float()
        target_kp = torch.as_tensor(garment_kp, dtype=torch.float32, device=self.device)
        warp = warp_garment(cloth, cloth_mask, cloth_kp.to(self.device), target_kp,
                            upper_mask=(target_parse13 == UPPER)[:, None].float(), method=warp_method)
        person = to_tensor_images([s.person for s in samples], self.device)
        composed = recompose(person, parse_cihp, target_parse13, warp, margin_px(height),
                             pose_nodes=np.stack([s.pose_nodes for s in samples]), garment_keypoints=garment_kp)
        shown = (composed.target_parse13 == UPPER)[:, None]  # the warped garment and its extension to the shoulders
        return StageTwoOutput(composed.target_parse13, composed.image * shown, composed.image, composed.keep_mask,
                              composed.skin_mask)

    def parse_and_warp(self, samples: list[TryOnSample], garment_kp: np.ndarray) -> StageTwoOutput:
        """Stage 2: ``seated_keypoints``, ``predict_parse`` then ``warp_and_recompose`` (the serving DAG's
        ParseWarp step)."""
        garment_kp = seated_keypoints(samples, garment_kp)
        _, target_parse13 = self.predict_parse(samples, garment_kp)
        return self.warp_and_recompose(samples, garment_kp, target_parse13)

    def inpainter_inputs(self, images01: torch.Tensor, keep_mask: torch.Tensor, parse13: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, keep mask and parse at the inpainter's resolution (``inpaint_height x 3/4 of it``).

        Args:
            images01: (B, 3, H, W) [0, 1]. keep_mask: (B, 1, H, W) {0, 1}. parse13: (B, H, W) integer labels.

        Returns ``(images01, keep_mask, parse_onehot)`` at (h, w): images area-averaged, a pixel kept only where all
        of it was known, the parse nearest-sampled and one-hot (B, 13, h, w).
        """
        size = (self.info.inpaint_height, width_for(self.info.inpaint_height))
        images = F.interpolate(images01, size=size, mode="area")
        keep = (F.interpolate(keep_mask, size=size, mode="area") > 0.999).float()  # keep only all-known
        parse = F.interpolate(parse13[:, None].float(), size=size, mode="nearest")[:, 0].long()
        onehot = F.one_hot(parse, NUM_PARSE13).permute(0, 3, 1, 2).float()  # (B, h, w, 13) -> (B, 13, h, w)
        return images, keep, onehot

    @torch.no_grad()
    def inpaint(self, stage_two: StageTwoOutput, seeds: list[int], sampler: SamplerSettings | None = None
                ) -> tuple[torch.Tensor, int]:
        """Stage 3 at the inpainter's resolution, composited at the input's (``kgi.composite``); returns
        (B, 3, H, W) [0, 1] and UNet calls/image.

        Every pixel the keep mask marks is the recomposed image's own value in the result.
        """
        images, evaluations = self.inpaint_mixed([stage_two], seeds, sampler)
        return images[0], evaluations

    @torch.no_grad()
    def inpaint_mixed(self, stage_twos: list[StageTwoOutput], seeds: list[int],
                      sampler: SamplerSettings | None = None) -> tuple[list[torch.Tensor], int]:
        """``inpaint`` of several stage-2 outputs of any resolutions in one sampler call (the inpainter works at
        one size): returns each one's (B_i, 3, H_i, W_i) [0, 1] images and the UNet calls per image.

        Args:
            stage_twos: stage-2 outputs, each a batch of one resolution.
            seeds: one per image, in order.
            sampler: overrides the version's sampler settings.
        """
        sampler = sampler or self.info.sampler
        small = [self.inpainter_inputs(part.recomposed, part.keep_mask, part.target_parse13) for part in stage_twos]
        known, keep, onehot = (torch.cat(tensors) for tensors in zip(*small))
        unet = self._network("inpaint", self.unet)
        result = inpaint(unet, make_scheduler(sampler.scheduler, self.scheduler.config),
                         known, keep, onehot, num_steps=sampler.num_steps, jump_length=sampler.jump_length,
                         jump_n_sample=sampler.jump_n_sample, seeds=seeds)
        images, start = [], 0
        for part in stage_twos:
            stop = start + len(part.recomposed)
            images.append(composite(result.images01[start:stop], part.recomposed, part.keep_mask,
                                    part.target_parse13, part.skin_mask, seed=seeds[start:stop]))
            start = stop
        return images, result.unet_evaluations

    def __call__(self, samples: list[TryOnSample], seeds: list[int] | None = None,
                 sampler: SamplerSettings | None = None) -> list[TryOnResult]:
        """Try each sample's garment on its person.

        Args:
            samples: a batch of the same resolution, each with ``cloth_keypoints`` (see
                ``kgi.landmarks.flat_garment_keypoints`` to extract them).
            seeds: one seed per sample (default 0, 1, ...); the same seed gives the same image.
            sampler: overrides the version's sampler settings.
        """
        if not samples:
            return []
        sizes = {s.size for s in samples}
        if len(sizes) > 1:
            raise ValueError(f"samples of one batch must share a resolution, got {sorted(sizes)}")
        missing = [s.cloth_name for s in samples if s.cloth_keypoints is None]
        if missing:
            raise ValueError(f"garment keypoints missing for {', '.join(missing)}: extract them first")
        height, width = samples[0].size
        seeds = list(range(len(samples))) if seeds is None else seeds
        timings = {}
        start = time.perf_counter()
        garment_kp = self.predict_keypoints(*keypoint_inputs(samples))
        timings["keypoints"] = time.perf_counter() - start
        start = time.perf_counter()
        stage_two = self.parse_and_warp(samples, garment_kp)
        timings["parse_warp"] = time.perf_counter() - start
        start = time.perf_counter()
        images, evaluations = self.inpaint(stage_two, seeds, sampler)
        timings["inpaint"] = time.perf_counter() - start

        images, warped, recomposed = (to_uint8_images(t)
                                      for t in (images, stage_two.warped_garment, stage_two.recomposed))
        return [TryOnResult(image=images[i], worn_keypoints=(garment_kp[i] * [width, height]).astype(np.float32),
                            target_parse13=stage_two.target_parse13[i].byte().cpu().numpy(),
                            warped_garment=warped[i], recomposed=recomposed[i],
                            keep_mask=stage_two.keep_mask[i, 0].bool().cpu().numpy(),
                            skin_mask=stage_two.skin_mask[i, 0].bool().cpu().numpy(),
                            unet_evaluations=evaluations, timings=dict(timings))
                for i in range(len(samples))]
