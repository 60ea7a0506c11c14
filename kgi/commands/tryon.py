"""One try-on on this machine, without a server, on the shipped checkpoints (or any model version folder).

Two photos are enough: what is not given is computed as the service computes it (``kgi.preprocess``). The pose
is estimated by BlazePose (--pose-estimator mediapipe, the default: an environment with mediapipe named by
--pose-python or $KGI_POSE_PYTHON), the parse by the --parser (default: the photo parser, in that same
environment, which also refuses a photo a try-on cannot work on; --parser synthetic parses synthetic people
only), and the garment's mask and keypoints are taken from a plain-background product photo. --stages writes
every intermediate, the estimated pose and parse included; `kgi prep person` writes them as OpenPose JSON and CIHP
PNG.

Examples:
  kgi tryon person.jpg garment.jpg -o out.png --pose person_keypoints.json --parse person_parse.png
  kgi tryon person.jpg garment.jpg -o out.png --pose-python /opt/kgi-pose/bin/python --parser-onnx schp-lip.onnx \\
      --label-set lip --input-size 473 473 --stages sheet.png
  kgi tryon person.jpg garment.jpg -o out.png --pose p.json --stages sheet.png --steps 10 --seed 3
"""

from __future__ import annotations

import sys
from pathlib import Path

from kgi.cli import CommandError
from kgi.commands.prep import add_source_arguments, parser_from_args

HELP = "one try-on from two photos, no server needed"
DEFAULT_VERSION = Path(__file__).resolve().parents[2] / "models" / "default"


def add_arguments(parser):
    parser.add_argument("person", type=Path, metavar="PERSON", help="person photo")
    parser.add_argument("garment", type=Path, metavar="GARMENT", help="garment product photo")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png", help="where the result goes")
    parser.add_argument("--pose", type=Path, metavar="JSON",
                        help="OpenPose BODY_25 JSON of the person photo (estimated if absent)")
    parser.add_argument("--parse", type=Path, metavar="PNG", help="CIHP label PNG of the person photo (computed "
                                                                   "if absent)")
    parser.add_argument("--cloth-mask", type=Path, metavar="IMG", help="garment mask (computed if absent)")
    add_source_arguments(parser)
    parser.add_argument("--stages", type=Path, metavar="SHEET.png", help="also write every intermediate stage")
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION, metavar="DIR",
                        help="model version folder (default: the shipped models/default)")
    parser.add_argument("--steps", type=int, metavar="N", help="sampler steps (default: the version's)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same image (default 0)")
    parser.add_argument("--height", type=int, default=256, help="output height, width = 3/4 (default 256)")


def _sources(args):
    """The pose estimator and parser the inputs need (None where given or unavailable) and, per input, what to
    pass when it is missing and nothing can compute it."""
    from kgi.pose_estimation import PoseEstimatorUnavailable, make_pose_estimator

    estimator = parser = None
    advice = {"pose": "pass --pose-estimator mediapipe", "parse": "pass --parser mediapipe or --parser-onnx"}
    if args.parse is None:
        parser = parser_from_args(args)
    if args.pose is None and not hasattr(parser, "analyse"):  # the photo parser estimates the pose too
        try:
            estimator = make_pose_estimator(args.pose_estimator, args.pose_python)
        except PoseEstimatorUnavailable as exc:
            advice["pose"] = f"make --pose-estimator {args.pose_estimator} available: {exc}"
    return estimator, parser, advice


def run(args) -> int:
    from dataclasses import replace

    from kgi.data.images import encode_png
    from kgi.landmarks import overlay
    from kgi.parsing import SynthParser
    from kgi.pipeline import TryOnPipeline
    from kgi.preprocess import MissingInputError, Preprocessor, Uploads
    from kgi.sheets import colorize_parse13, contact_sheet, draw_pose, mask_tile

    if args.height % 32 or args.height < 64:
        raise CommandError("--height must be a multiple of 32, at least 64")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise CommandError("--steps must be between 1 and 1000")
    paths = {"person": args.person, "garment": args.garment, "--pose": args.pose, "--parse": args.parse,
             "--cloth-mask": args.cloth_mask}
    for name, path in paths.items():
        if path is not None and not path.is_file():
            raise CommandError(f"{name}: {path} does not exist")
    try:
        pipeline = TryOnPipeline.from_pretrained(args.version)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    estimator, parser, advice = _sources(args)
    uploads = Uploads(person=args.person.read_bytes(), garment=args.garment.read_bytes(),
                      pose=args.pose.read_bytes() if args.pose else None,
                      parse=args.parse.read_bytes() if args.parse else None,
                      cloth_mask=args.cloth_mask.read_bytes() if args.cloth_mask else None,
                      person_name=args.person.name, garment_name=args.garment.name)
    try:
        sample = Preprocessor(estimator, parser)(uploads, args.height)
    except MissingInputError as exc:
        raise CommandError(f"{exc}; or {advice[exc.field]}") from None
    except ValueError as exc:  # every input problem (kgi.preprocess), its message naming the input
        raise CommandError(str(exc)) from None
    finally:
        for source in (estimator, parser):
            if hasattr(source, "close"):
                source.close()
    estimated = [tag.removeprefix("estimated-") for tag in sample.tags]
    if estimated:
        print(f"estimated: {', '.join(estimated)}" + (" (the synthetic parser parses synthetic people only)"
                                                     if isinstance(parser, SynthParser) else ""), file=sys.stderr)
    sampler = replace(pipeline.info.sampler, num_steps=args.steps) if args.steps else None
    result = pipeline([sample], seeds=[args.seed], sampler=sampler)[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(encode_png(result.image))
    print(f"{args.out}: {result.unet_evaluations} UNet evaluations, "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    if args.stages:
        height, width = sample.size
        origin = {field: "estimated" if field in estimated else "given" for field in ("pose", "parse")}
        sheet = contact_sheet([[
            (f"pose ({origin['pose']})", draw_pose(sample.person, sample.pose_nodes * [width, height])),
            (f"parse ({origin['parse']})", colorize_parse13(sample.parse13)),
            ("garment", overlay(sample.cloth, sample.cloth_keypoints)),
            ("garment mask", mask_tile(sample.cloth_mask)),
        ], [
            ("garment keypoints", overlay(sample.person, result.garment_keypoints)),
            ("target parse", colorize_parse13(result.target_parse13)),
            ("warped garment", result.warped_garment),
            ("recomposed", result.recomposed),
            ("keep mask", mask_tile(result.keep_mask)),
            ("try-on", result.image),
        ]])
        args.stages.parent.mkdir(parents=True, exist_ok=True)
        args.stages.write_bytes(encode_png(sheet))
        print(f"{args.stages}: stages sheet")
    return 0
