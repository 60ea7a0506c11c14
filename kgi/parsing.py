"""Human parsing: a person photo in, CIHP labels out (the ``parse`` a try-on request otherwise has to bring).

Four sources of a parse:

1. the request's own CIHP label PNG (``kgi.preprocess.Uploads.parse``), as VITON-HD has it;
2. :class:`PhotoParser`, the default for genuine photos: mediapipe's shipped models (BlazePose's segmentation
   mask, selfie segmentation, face mesh) and classical colour analysis (``kgi.photo_parsing``), run in the pose
   environment's worker next to BlazePose, so one call gives the pose, the parse and whether the photo can be
   tried on (:meth:`PhotoParser.analyse`). Nothing to download; figures on genuine people in
   ``models/parser/README.md``;
3. :class:`OnnxParser`: any human-parsing network exported to ONNX by the user (for instance SCHP trained on
   LIP or ATR), run with ``onnxruntime`` (optional extra ``kgi-platform[parse]``); its label set ("cihp",
   "lip" or "atr") is mapped to the 20 CIHP labels (``to_cihp``);
4. :class:`SynthParser`: a small U-Net the project trains on its *synthetic* people
   (``kgi train synth_parser``, weights in ``models/parser/``). It parses synthetic people well and real
   photos badly: for synthetic data and tests, not for photos.

Anything with a ``parse(rgb)`` method returning (H, W) uint8 CIHP labels is a :class:`HumanParser`;
:func:`make_parser` builds the one a configuration names ("none", "mediapipe", "synthetic" or "onnx").

Label sets (orders as the LIP and ATR datasets and the SCHP parsers define them). LIP has no torso-skin
label: the neck comes out as face or background. Its "jumpsuits" become CIHP "dress" (a one-piece garment the
try-on replaces). ATR's "belt" joins "pants" (it belongs to the kept lower garment) and its "bag" becomes
background, as CIHP annotates carried objects.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from kgi.data.images import width_for
from kgi.data.labels import CIHP_LABELS, NUM_CIHP
from kgi.models.unet import UNet
from kgi.pose_estimation import PoseEstimationError, PoseEstimatorUnavailable, check_rgb, make_pose_estimator
from kgi.shipped import SYNTH_PARSER as DEFAULT_SYNTH_PARSER

LIP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks", "pants",
    "jumpsuits", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg", "right-leg", "left-shoe",
    "right-shoe",
)
ATR_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "sunglasses", "upper-clothes", "skirt", "pants", "dress", "belt", "left-shoe",
    "right-shoe", "face", "left-leg", "right-leg", "left-arm", "right-arm", "bag", "scarf",
)
LABEL_SETS: dict[str, tuple[str, ...]] = {"cihp": CIHP_LABELS, "lip": LIP_LABELS, "atr": ATR_LABELS}
# Labels of a set without a CIHP label of the same name, and the CIHP label they become.
_RENAMED = {"jumpsuits": "dress", "belt": "pants", "bag": "background"}
# label_set -> (its number of labels,) uint8 lookup table into CIHP.
TO_CIHP: dict[str, np.ndarray] = {
    name: np.array([CIHP_LABELS.index(_RENAMED.get(label, label)) for label in labels], dtype=np.uint8)
    for name, labels in LABEL_SETS.items()
}

PARSER_SOURCES = ("none", "mediapipe", "synthetic", "onnx")  # what a configuration may name (make_parser)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ParsingError(ValueError):
    """A photo the parser cannot work on, or a parser model whose inputs or outputs do not fit."""


class ParserUnavailable(RuntimeError):
    """The parser's optional dependency or model file is missing; the message says what to install or send."""


@runtime_checkable
class HumanParser(Protocol):
    """Anything that labels each pixel of a person photo with the 20 CIHP labels."""

    def parse(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person. Returns (H, W) uint8 CIHP labels 0..19."""
        ...


def to_cihp(labels: np.ndarray, label_set: str) -> np.ndarray:
    """Map a label map of ``label_set`` ("cihp", "lip" or "atr") to CIHP labels: (H, W) uint8."""
    if label_set not in TO_CIHP:
        raise ValueError(f"label_set: expected one of {tuple(TO_CIHP)}, got {label_set!r}")
    table = TO_CIHP[label_set]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= len(table)):
        raise ParsingError(f"labels: {label_set} labels are 0..{len(table) - 1}, got {int(labels.max())}")
    return table[labels]


def fit_image(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Scale ``rgb`` to fit inside ``height x width`` keeping its aspect ratio, centred on black.

    Returns ``(image, (top, left, inner_height, inner_width))``: the (height, width, 3) uint8 image and the
    box the photo occupies in it.
    """
    scale = min(height / rgb.shape[0], width / rgb.shape[1])
    inner_h = max(1, min(height, round(rgb.shape[0] * scale)))
    inner_w = max(1, min(width, round(rgb.shape[1] * scale)))
    resized = cv2.resize(rgb, (inner_w, inner_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    image = cv2.copyMakeBorder(resized, top, height - inner_h - top, left, width - inner_w - left,
                               cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return image, (top, left, inner_h, inner_w)


def labels_from_logits(logits: torch.Tensor, box: tuple[int, int, int, int], fitted_size: tuple[int, int],
                       size: tuple[int, int]) -> np.ndarray:
    """Per-pixel labels of the original photo from a network's logits on its fitted copy.

    Args:
        logits: (1, C, h, w) logits over the fitted image (any resolution: upsampled to ``fitted_size``).
        box: ``(top, left, inner_height, inner_width)`` of the photo in the fitted image (``fit_image``).
        fitted_size: (height, width) of the fitted image.
        size: (H, W) of the original photo.

    Returns (H, W) uint8 argmax labels.
    """
    top, left, inner_h, inner_w = box
    logits = F.interpolate(logits.float(), size=fitted_size, mode="bilinear", align_corners=False)
    logits = logits[:, :, top:top + inner_h, left:left + inner_w]  # (1, C, inner_h, inner_w)
    logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)  # (1, C, H, W)
    return logits[0].argmax(dim=0).to(torch.uint8).numpy()


def normalise(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 ``(image / 255 - mean) / std`` per channel."""
    scaled = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[None])  # (H, W, 3) -> (1, 3, H, W)


class OnnxParser:
    """A user-supplied human-parsing network in ONNX format, run on the CPU with onnxruntime.

    The network takes one (1, 3, h, w) float32 image normalised per channel, and returns (1, C, h', w')
    logits over ``label_set`` (any h', w': they are upsampled). The photo is scaled to fit ``input_size``
    keeping its aspect ratio, centred on black, as SCHP does.

    Args:
        path: the ``.onnx`` file.
        label_set: "cihp" (20 labels), "lip" (20) or "atr" (18): what the network's channels mean.
        input_size: (h, w) the network takes; ``None`` reads it from the model (it must then be static).
            SCHP uses (473, 473) for LIP and (512, 512) for ATR.
        mean, std: per-channel normalisation of the [0, 1] image, in the network's channel order.
        bgr: feed channels as B, G, R (SCHP was trained on OpenCV's BGR images: ``bgr=True`` with
            ``mean=(0.406, 0.456, 0.485), std=(0.225, 0.224, 0.229)``).
        output: the output holding the logits, by name or index (SCHP exports several; pick the fused parse).
        threads: onnxruntime intra-op threads.

    Raises ``ParserUnavailable`` when onnxruntime or the file is missing, ``ParsingError`` when the model
    does not take one 4-D image input.
    """

    def __init__(self, path: str | os.PathLike, label_set: str = "cihp",
                 input_size: tuple[int, int] | None = None, *, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 bgr: bool = False, output: str | int = 0, threads: int = 1):
        if label_set not in LABEL_SETS:
            raise ValueError(f"label_set: expected one of {tuple(LABEL_SETS)}, got {label_set!r}")
        try:
            import onnxruntime
        except ImportError:
            raise ParserUnavailable("OnnxParser needs onnxruntime: pip install 'kgi-platform[parse]'") from None
        if not os.path.isfile(path):
            raise ParserUnavailable(f"parser model {os.fspath(path)!r} does not exist")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(os.fspath(path), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ParsingError(f"parser model {os.fspath(path)!r} cannot be loaded: {exc}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ParsingError(f"parser model {os.fspath(path)!r}: expected one (1, 3, h, w) input, "
                               f"got {[(i.name, i.shape) for i in inputs]}")
        names = [o.name for o in outputs]
        self.output_name = names[output] if isinstance(output, int) and 0 <= output < len(names) else output
        if self.output_name not in names:
            raise ValueError(f"output: the model's outputs are {names}, got {output!r}")
        self.input_name = inputs[0].name
        static = [d if isinstance(d, int) else None for d in inputs[0].shape[2:]]
        if input_size is None:
            if None in static:
                raise ValueError(f"input_size: the model's input {inputs[0].shape} has dynamic height or width; "
                                 f"give input_size=(h, w)")
            input_size = tuple(static)
        elif None not in static and tuple(static) != tuple(input_size):
            raise ValueError(f"input_size: the model takes {tuple(static)}, got {tuple(input_size)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.label_set = label_set
        self.mean, self.std, self.bgr = mean, std, bgr

    def parse(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person. Returns (H, W) uint8 CIHP labels."""
        rgb = check_rgb(rgb, error=ParsingError)
        fitted, box = fit_image(rgb, *self.input_size)
        if self.bgr:
            fitted = fitted[:, :, ::-1]
        logits = self.session.run([self.output_name], {self.input_name: normalise(fitted, self.mean, self.std)})[0]
        num_labels = len(LABEL_SETS[self.label_set])
        if logits.ndim != 4 or logits.shape[:2] != (1, num_labels):
            raise ParsingError(f"parser output {self.output_name!r} has shape {logits.shape}; a {self.label_set} "
                               f"parser returns (1, {num_labels}, h, w) logits")
        labels = labels_from_logits(torch.from_numpy(logits), box, self.input_size, rgb.shape[:2])
        return to_cihp(labels, self.label_set)


class ParserUNet(UNet):
    """A small U-Net (``kgi.models.unet.UNet``) from an RGB photo to CIHP logits: the network of
    :class:`SynthParser`.

    The photo enters with a fourth channel, the pixel's x coordinate from -1 (left) to 1 (right) (CoordConv),
    because the left and right labels of arms, legs and shoes depend on which side of the body a part lies::

        [x (B,3,H,W), column (B,1,H,W)] -> UNet -> logits (B,20,H,W)

    Args:
        base_channels: channels at full resolution.
        max_channels: cap on the channels of the deeper levels.
        levels: 2x downsamplings; H and W must be multiples of ``2**levels``.
        input_height: the height the network was trained at (width 3/4 of it); ``SynthParser`` fits photos
            to it. Kept in the config so a checkpoint says how to use it.
    """

    def __init__(self, base_channels: int = 16, max_channels: int = 64, levels: int = 4, input_height: int = 256):
        if input_height % (2**levels * 4):
            raise ValueError(f"input_height must be a multiple of {2**levels * 4} (so 3/4 of it divides by "
                             f"{2**levels}), got {input_height}")
        super().__init__(4, NUM_CIHP, base_channels, max_channels, levels)
        self.config = {"base_channels": base_channels, "max_channels": max_channels, "levels": levels,
                       "input_height": input_height}

    @property
    def input_size(self) -> tuple[int, int]:
        return self.config["input_height"], width_for(self.config["input_height"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, 3, H, W) RGB in [0, 1], H and W multiples of ``2**levels``. Returns (B, 20, H, W)."""
        multiple = 2 ** self.config["levels"]
        if x.dim() != 4 or x.size(1) != 3 or x.size(2) % multiple or x.size(3) % multiple:
            raise ParsingError(f"input must be (B, 3, H, W) with H and W multiples of {multiple}, "
                               f"got {tuple(x.shape)}")
        batch, _, height, width = x.shape
        column = torch.linspace(-1.0, 1.0, width, device=x.device, dtype=x.dtype).expand(batch, 1, height, width)
        return super().forward(torch.cat([x, column], dim=1))


class SynthParser:
    """The project's parser trained on synthetic people (``kgi train synth_parser``). Synthetic-only:
    on real photos it mislabels most of the person (``kgi prep eval`` reports both figures).

    Args:
        path: a :class:`ParserUNet` checkpoint; defaults to the shipped ``models/parser/synth_parser.safetensors``.
        device: where the network runs.

    Raises ``ParserUnavailable`` when the checkpoint is missing.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_SYNTH_PARSER, device: str | torch.device = "cpu"):
        if not os.path.isfile(path):
            raise ParserUnavailable(f"synthetic parser weights {os.fspath(path)!r} do not exist "
                                    f"(train them with 'kgi train synth_parser', see models/parser/README.md)")
        self.model = ParserUNet.load(path, device)
        self.device = torch.device(device)

    @torch.no_grad()
    def parse(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person. Returns (H, W) uint8 CIHP labels."""
        rgb = check_rgb(rgb, error=ParsingError)
        fitted, box = fit_image(rgb, *self.model.input_size)
        image = torch.from_numpy(fitted).permute(2, 0, 1)[None].float().div(255).to(self.device)  # (1, 3, h, w)
        return labels_from_logits(self.model(image).cpu(), box, self.model.input_size, rgb.shape[:2])


class PhotoParser:
    """The parser for genuine photos: mediapipe's models and colour analysis (``kgi.photo_parsing``).

    It runs in a worker of the pose environment (``kgi.pose_estimation.SubprocessPose``; mediapipe cannot
    share Ray's environment), or in this process when mediapipe is importable here. Not thread-safe: calls are
    serialised by the worker's lock.

    Args:
        python: the interpreter of an environment with mediapipe; ``None`` takes ``$KGI_POSE_PYTHON``, else
            runs mediapipe in this process.

    Raises ``ParserUnavailable`` saying what to install or set when mediapipe cannot run.
    """

    def __init__(self, python: str | os.PathLike | None = None):
        try:
            self.worker = make_pose_estimator("mediapipe", python, parse=True)
        except PoseEstimatorUnavailable as exc:
            raise ParserUnavailable(f"the photo parser needs mediapipe: {exc}") from None

    def analyse(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str]:
        """The pose, the parse and why the photo cannot be tried on, in one call.

        Args: rgb: (H, W, 3) uint8 RGB photo of one person.

        Returns ``(pose, parse, problem)``: (25, 3) float32 BODY_25 joints, (H, W) uint8 CIHP labels (None when
        no person is found) and a refusal to show the user ("" when the photo can be tried on). Raises
        ``ParsingError`` when the analysis fails on this photo.
        """
        try:
            return self.worker.analyse(check_rgb(rgb, error=ParsingError))
        except PoseEstimationError as exc:
            raise ParsingError(str(exc)) from None

    def parse(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person. Returns (H, W) uint8 CIHP labels.

        Raises ``ParsingError`` when no person is found."""
        _, parse, problem = self.analyse(rgb)
        if parse is None:
            raise ParsingError(problem)
        return parse

    def close(self) -> None:
        """Stop the worker."""
        self.worker.close()


def make_parser(source: str, path: str | os.PathLike | None = None, label_set: str = "cihp",
                input_size: tuple[int, int] | None = None, python: str | os.PathLike | None = None
                ) -> HumanParser | None:
    """The human parser a configuration names.

    Args:
        source: "none" (no parser: every request brings its own parse), "mediapipe" (:class:`PhotoParser`, for
            genuine photos), "synthetic" (:class:`SynthParser`, synthetic people only) or "onnx"
            (:class:`OnnxParser`).
        path: the ONNX model (required for "onnx"), or the synthetic parser's weights (default: the shipped ones).
        label_set, input_size: of the ONNX model, as :class:`OnnxParser` takes them.
        python: for "mediapipe", the interpreter of an environment with mediapipe (default ``$KGI_POSE_PYTHON``).

    Returns None for "none". Raises ``ValueError`` for an unknown source or an "onnx" without a path, and
    ``ParserUnavailable`` / ``ParsingError`` as the parsers' constructors do.
    """
    if source not in PARSER_SOURCES:
        raise ValueError(f"parser source: expected one of {PARSER_SOURCES}, got {source!r}")
    if source == "none":
        return None
    if source == "mediapipe":
        return PhotoParser(python)
    if source == "synthetic":
        return SynthParser(DEFAULT_SYNTH_PARSER if path is None else path)
    if path is None:
        raise ValueError("parser source 'onnx' needs the path of the .onnx model")
    return OnnxParser(path, label_set, input_size)
