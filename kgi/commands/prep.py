"""Preprocess person photos with the built-in estimators, and measure them against a VITON-HD root.

`kgi prep person PHOTO... --out DIR` writes what ``kgi tryon --pose/--parse`` and the service take for each
photo, in the VITON-HD formats: ``DIR/{stem}_keypoints.json`` (OpenPose BODY_25) and ``DIR/{stem}.png``
(CIHP palette PNG).

`kgi prep eval ROOT...` prints, for the split's pairs of the roots (pooled) and for synthetic people:

- pose: the mean distance between the estimator's joints and the dataset's OpenPose joints, over the joints
  both detect (OpenPose confidence > 0.1), as a fraction of the image height; all joints and the pose-graph
  joints (BODY_25 0-7, 9, 12). On synthetic people (``kgi.data.synth``) the reference is the generator's pose;
- cloth mask: IoU of ``kgi.preprocess.cloth_mask_from_photo`` against the ``cloth-mask`` of every garment photo
  of the split (the first --limit);
- parse: IoU per class of the 13 model classes (``kgi.data.labels``; intersections and unions summed over the
  people), their mean over the classes present (mIoU), the upper-garment and arms IoU, of the parser against the
  dataset's ``image-parse-v3`` and on held-out synthetic people; the same three figures person by person; and the
  parser's time per photo (after one untimed warm-up call).

The people are read from the unpaired pairs, so a root without the people's own garments (like
``../shared/vitonhd-extra``) works.

The pose estimator is BlazePose run by the interpreter of --pose-python or $KGI_POSE_PYTHON (an environment with
mediapipe, which cannot share one with Ray: see ``kgi.pose_estimation``), else in this process. The parser is
the photo parser in that same environment (``kgi.parsing.PhotoParser``), or --parser synthetic (synthetic people
only), or --parser-onnx with its --label-set and --input-size.
``kgi tryon`` takes the same options.

Examples:

    kgi prep person me.jpg --out prepared/ --pose-python /opt/kgi-pose/bin/python
    kgi prep person me.jpg --out prepared/ --pose-python /opt/kgi-pose/bin/python --parser-onnx schp-lip.onnx \\
        --label-set lip --input-size 473 473
    kgi prep eval ../shared/vitonhd-sample --pose-python /opt/kgi-pose/bin/python --synth-people 50
    kgi prep eval ../shared/vitonhd-sample ../shared/vitonhd-extra --synth-people 0    # the 4 genuine people
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kgi.cli import CommandError
from kgi.data.images import ImageError, decode_gray, decode_rgb, encode_palette_png
from kgi.data.labels import CIHP_PALETTE, LEFT_ARM, NUM_PARSE13, PARSE13_LABELS, RIGHT_ARM, UPPER, to_parse13
from kgi.data.pose import openpose_json
from kgi.data.synth import make_pair
from kgi.data.vitonhd import DatasetError, VitonHD
from kgi.graphs import POSE_BODY25_INDEX
from kgi.models.parse import iou_counts
from kgi.parsing import LABEL_SETS, PARSER_SOURCES, HumanParser, ParserUnavailable, ParsingError, make_parser
from kgi.pose_estimation import POSE_PYTHON_ENV, POSE_SOURCES, PoseEstimationError, PoseEstimatorUnavailable, \
    make_pose_estimator
from kgi.preprocess import MASK_THRESHOLD, cloth_mask_from_photo

HELP = "measure the built-in pose estimator, cloth mask and human parser against genuine and synthetic data"
OPENPOSE_MIN_CONFIDENCE = 0.1
SYNTH_HEIGHT = 256


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options choosing the pose estimator and the human parser (``kgi prep`` and ``kgi tryon``); build them
    with ``make_pose_estimator(args.pose_estimator, args.pose_python)`` and :func:`parser_from_args`."""
    parser.add_argument("--pose-estimator", default="mediapipe", choices=POSE_SOURCES,
                        help="what estimates a pose (default: mediapipe, i.e. BlazePose)")
    parser.add_argument("--pose-python", metavar="PYTHON",
                        help=f"interpreter of an environment with mediapipe (default: ${POSE_PYTHON_ENV}, else this "
                             f"process)")
    parser.add_argument("--parser", choices=PARSER_SOURCES,
                        help="what computes a parse (default: onnx with --parser-onnx, else mediapipe, the photo "
                             "parser in the pose environment; synthetic parses synthetic people only)")
    parser.add_argument("--parser-onnx", metavar="MODEL.onnx", help="the human-parsing model of --parser onnx")
    parser.add_argument("--label-set", default="cihp", choices=tuple(LABEL_SETS),
                        help="the ONNX parser's labels (default: cihp)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="the ONNX parser's input (default: read from the model)")


def parser_from_args(args: argparse.Namespace) -> HumanParser | None:
    """The parser of :func:`add_source_arguments`' options, or None; raises ``CommandError`` when it cannot load."""
    source = args.parser or ("onnx" if args.parser_onnx else "mediapipe")
    if args.parser_onnx and source != "onnx":
        raise CommandError(f"--parser-onnx is the model of --parser onnx, not of --parser {source}")
    try:
        return make_parser(source, args.parser_onnx, args.label_set, args.input_size, python=args.pose_python)
    except (ParserUnavailable, ValueError) as exc:  # ParsingError is a ValueError
        raise CommandError(f"--parser {source}: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    estimators = argparse.ArgumentParser(add_help=False)
    add_source_arguments(estimators)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    person = actions.add_parser("person", parents=[estimators], help="write pose JSON and parse PNG of photos")
    person.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="person photos")
    person.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the files go")
    evaluate = actions.add_parser("eval", parents=[estimators], help="print the preprocessing figures")
    evaluate.add_argument("roots", nargs="+", metavar="ROOT",
                          help="VITON-HD roots (local folders or s3://bucket/prefix): their people are pooled")
    evaluate.add_argument("--split", default="test", choices=("train", "test"), help="split (default: test)")
    evaluate.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N pairs of each root")
    evaluate.add_argument("--synth-people", type=int, default=20, metavar="N",
                          help="synthetic people for the pose and parse figures (default: 20)")
    evaluate.add_argument("--synth-seed", type=int, default=7, metavar="S",
                          help="their seed; the shipped parser was trained on seed 1000 (default: 7)")


def joint_distance(estimated: np.ndarray, reference: np.ndarray, height: int, joints=None,
                   min_confidence: float = OPENPOSE_MIN_CONFIDENCE) -> tuple[float, int]:
    """Mean distance between two (25, 3) poses over the joints both detect, as a fraction of ``height``.

    Args:
        estimated, reference: BODY_25 poses in pixels of one image.
        height: the image height.
        joints: BODY_25 indices to compare (default: all 25).
        min_confidence: reference joints at or below it count as undetected.

    Returns ``(mean distance, joints compared)``; the mean is NaN when no joint is compared.
    """
    chosen = np.zeros(len(reference), bool)
    chosen[list(range(len(reference)) if joints is None else joints)] = True
    both = chosen & (estimated[:, 2] > 0) & (reference[:, 2] > min_confidence)
    if not both.any():
        return float("nan"), 0
    distances = np.linalg.norm(estimated[both, :2] - reference[both, :2], axis=1)
    return float(distances.mean() / height), int(both.sum())


def mask_iou(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks."""
    union = np.logical_or(predicted, reference).sum()
    return float(np.logical_and(predicted, reference).sum() / union) if union else 1.0


class ParseScore:
    """Sums per-class intersections and unions of 13-class parses over a set of images (IoU of the set, not the
    mean of per-image IoUs), and the seconds each parse took."""

    def __init__(self):
        self.intersection = torch.zeros(NUM_PARSE13, dtype=torch.long)
        self.union = torch.zeros(NUM_PARSE13, dtype=torch.long)
        self.seconds: list[float] = []

    def add(self, predicted_cihp: np.ndarray, reference_cihp: np.ndarray, seconds: float | None = None) -> None:
        """Add one image's (H, W) CIHP parses (grouped into the 13 classes here) and its parse time."""
        intersection, union = iou_counts(torch.from_numpy(to_parse13(predicted_cihp)),
                                         torch.from_numpy(to_parse13(reference_cihp)))
        self.intersection += intersection
        self.union += union
        if seconds is not None:
            self.seconds.append(seconds)

    def iou(self, classes: tuple[int, ...]) -> float:
        """IoU of the union of ``classes`` (13-class labels) over the set; NaN when none is present."""
        union = int(self.union[list(classes)].sum())
        return float(self.intersection[list(classes)].sum()) / union if union else float("nan")

    @property
    def miou(self) -> float:
        """Mean IoU over the classes present in either parse."""
        present = self.union > 0
        return float((self.intersection[present].float() / self.union[present].float()).mean())

    def lines(self, label: str) -> list[str]:
        """The figures: mIoU, upper garment, arms, per class, and the time per photo."""
        per_class = ", ".join(f"{name} {self.iou((c,)):.3f}" for c, name in enumerate(PARSE13_LABELS)
                              if self.union[c] > 0)
        lines = [f"{label}: mIoU {self.miou:.4f} (13 classes), upper garment IoU {self.iou((UPPER,)):.4f}, "
                 f"arms IoU {self.iou((LEFT_ARM, RIGHT_ARM)):.4f}", f"  per class: {per_class}"]
        if self.seconds:
            lines.append(f"  time per photo: mean {np.mean(self.seconds):.2f} s, max {np.max(self.seconds):.2f} s "
                         f"over {len(self.seconds)} photos")
        return lines


class PoseScore:
    """Runs a pose estimator on people and sums its joint distances to their reference poses."""

    JOINT_SETS = {"all": None, "pose-graph": list(POSE_BODY25_INDEX)}

    def __init__(self, estimator):
        self.estimator = estimator
        self.people = self.found = 0
        self.sums = {name: [0.0, 0] for name in self.JOINT_SETS}  # name -> [sum of distances / H, joints]

    def add(self, sample) -> None:
        """Estimate the pose of one ``TryOnSample``'s person and compare it with ``sample.pose``."""
        self.people += 1
        try:
            estimated = self.estimator.estimate(sample.person)
        except PoseEstimationError:
            return
        self.found += 1
        for name, joints in self.JOINT_SETS.items():
            mean, compared = joint_distance(estimated, sample.pose, sample.size[0], joints)
            if compared:
                self.sums[name][0] += mean * compared
                self.sums[name][1] += compared

    def line(self, label: str) -> str:
        figures = "; ".join(f"{name} joints {total / max(joints, 1):.4f} H over {joints}"
                            for name, (total, joints) in self.sums.items())
        return f"pose {label}: person found in {self.found}/{self.people}; mean joint distance: {figures}"


def garment_mask_ious(storage, split: str, limit: int | None) -> dict[str, float]:
    """IoU of :func:`cloth_mask_from_photo` against the ``cloth-mask`` of every garment photo of the split that
    has one (the first ``limit``, when given): garment name -> IoU."""
    names = [rel.rsplit("/", 1)[1] for rel in storage.list(f"{split}/cloth")]
    names = [name for name in names if storage.exists(f"{split}/cloth-mask/{name}")][:limit]
    ious = {}
    for name in tqdm(names, desc="garment masks", unit="garment", disable=None, file=sys.stderr):
        try:
            cloth = decode_rgb(storage.read_bytes(f"{split}/cloth/{name}"), source=name)
            reference = decode_gray(storage.read_bytes(f"{split}/cloth-mask/{name}"), source=name) >= MASK_THRESHOLD
        except ImageError as exc:
            print(f"cloth mask: {name} skipped ({exc})")
            continue
        ious[name] = mask_iou(cloth_mask_from_photo(cloth), reference)
    return ious


def _pose_estimator(args, required: bool):
    """The estimator, or None (with the reason printed) when it is not required and cannot start."""
    try:
        estimator = make_pose_estimator(args.pose_estimator, args.pose_python)
    except PoseEstimatorUnavailable as exc:
        if required:
            raise CommandError(f"--pose-estimator {args.pose_estimator}: {exc}") from None
        print(f"pose: skipped ({exc})")
        return None
    if estimator is None and required:
        raise CommandError("--pose-estimator none: this action estimates poses")
    return estimator


def _human_parser(args) -> HumanParser:
    parser = parser_from_args(args)
    if parser is None:
        raise CommandError("--parser none: this action parses people")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the action. Raises ``CommandError`` for bad arguments, a bad root or an unusable estimator."""
    torch.set_num_threads(1)
    return prepare_people(args) if args.action == "person" else evaluate(args)


def prepare_people(args: argparse.Namespace) -> int:
    """Write each photo's OpenPose JSON and CIHP parse PNG; a photo without a person is reported and skipped. With
    the photo parser, one call gives both, and a photo a try-on would refuse is written with a warning saying why."""
    missing = [str(photo) for photo in args.photos if not photo.is_file()]
    if missing:
        raise CommandError(f"no such photo: {', '.join(missing)}")
    parser = _human_parser(args)
    estimator = parser if hasattr(parser, "analyse") else _pose_estimator(args, required=True)
    failures = 0
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for photo in args.photos:
            try:
                rgb = decode_rgb(photo.read_bytes(), source=str(photo))
                if estimator is parser:
                    pose, parse, problem = parser.analyse(rgb)
                    if parse is None:
                        raise ParsingError(problem)
                    if problem:
                        print(f"{photo}: warning: a try-on would refuse it ({problem})", file=sys.stderr)
                else:
                    pose, parse = estimator.estimate(rgb), parser.parse(rgb)
            except (ImageError, PoseEstimationError, ParsingError) as exc:
                print(f"{photo}: skipped ({exc})", file=sys.stderr)
                failures += 1
                continue
            (args.out / f"{photo.stem}_keypoints.json").write_text(openpose_json(pose))
            (args.out / f"{photo.stem}.png").write_bytes(encode_palette_png(parse, CIHP_PALETTE))
            print(f"{photo}: {int((pose[:, 2] > 0).sum())} joints, parse -> {args.out}")
    except OSError as exc:
        raise CommandError(f"{exc.filename}: {exc.strerror}") from None
    finally:
        for source in {id(estimator): estimator, id(parser): parser}.values():
            if hasattr(source, "close"):
                source.close()
    return 1 if failures else 0


def _parse_or_background(parser, sample) -> tuple[np.ndarray, str]:
    """The parser's parse of ``sample.person`` and "", or all background and the parser's reason for refusing the
    photo (scored as a parse that found nothing)."""
    try:
        return parser.parse(sample.person), ""
    except ParsingError as exc:
        return np.zeros(sample.parse.shape, np.uint8), str(exc)


def evaluate(args: argparse.Namespace) -> int:
    """Print the figures."""
    if args.limit is not None and args.limit < 1 or args.synth_people < 0:
        raise CommandError("--limit and --synth-people must be positive")
    try:  # the people come from the unpaired pairs: a root without the people's own garments still works
        roots = [VitonHD(root, args.split, "unpaired") for root in args.roots]
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    people = [(persons, index) for persons in roots
              for index in range(len(persons) if args.limit is None else min(args.limit, len(persons)))]
    count = len(people)
    estimator = _pose_estimator(args, required=False)
    parser = _human_parser(args)
    parser_name = type(parser).__name__

    genuine_pose, genuine_parse = PoseScore(estimator), ParseScore()
    if count:
        try:  # once untimed: the first call of a model pays for its warm-up, not the photo's parse
            parser.parse(people[0][0][people[0][1]].person)
        except ParsingError:
            pass
    started = time.time()
    per_person = []
    for persons, index in tqdm(people, desc="genuine people", unit="person", disable=None, file=sys.stderr):
        sample = persons[index]
        if estimator is not None:
            genuine_pose.add(sample)
        parse_start = time.perf_counter()
        parse, problem = _parse_or_background(parser, sample)
        if problem:
            print(f"{sample.person_name}: no parse ({problem}); scored as all background")
        genuine_parse.add(parse, sample.parse, time.perf_counter() - parse_start)
        alone = ParseScore()
        alone.add(parse, sample.parse)
        per_person.append(f"  {sample.person_name}: mIoU {alone.miou:.3f}, upper {alone.iou((UPPER,)):.3f}, "
                          f"arms {alone.iou((LEFT_ARM, RIGHT_ARM)):.3f}")
    masks = [(name, iou) for persons in roots
             for name, iou in garment_mask_ious(persons.storage, args.split, args.limit).items()]
    if estimator is not None:
        print(genuine_pose.line(f"{args.split} ({count} people)"))
    ious = [iou for _, iou in masks]
    print(f"cloth mask: mean IoU {np.mean(ious):.4f} over {len(ious)} garments (min {np.min(ious):.4f}); "
          + ", ".join(f"{name} {iou:.4f}" for name, iou in masks))
    print("\n".join(genuine_parse.lines(f"parse {parser_name}: {args.split} ({count} people)") + per_person))

    if args.synth_people:
        synth_pose, synth_parse, unparsed = PoseScore(estimator), ParseScore(), 0
        for index in range(args.synth_people):
            sample = make_pair(args.synth_seed, index, SYNTH_HEIGHT)
            if estimator is not None:
                synth_pose.add(sample)
            parse, problem = _parse_or_background(parser, sample)
            unparsed += bool(problem)
            synth_parse.add(parse, sample.parse)
        label = f"synthetic (seed {args.synth_seed}, {args.synth_people} people)"
        if estimator is not None:
            print(synth_pose.line(label))
        print(f"parse {parser_name}: {label} mIoU {synth_parse.miou:.4f} (13 classes; {unparsed} refused by the "
              "parser, scored as all background)")
    print(f"({time.time() - started:.0f} s)")
    for source in (estimator, parser):
        if hasattr(source, "close"):
            source.close()
    return 0
