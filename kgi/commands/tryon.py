"""One try-on on this machine, without a server, on the shipped checkpoints (or any model version folder).

Two photos are enough: what is not given is computed as the service computes it (``kgi.preprocess``). The pose
is estimated by BlazePose (--pose-estimator mediapipe, the default: an environment with mediapipe named by
--pose-python or $KGI_POSE_PYTHON), the parse by the --parser (default: the photo parser, in that same
environment, which also refuses a photo a try-on cannot work on; --parser synthetic parses synthetic people
only), and the garment's mask and keypoints are taken from a plain-background product photo. --stages writes
every intermediate, the estimated pose and parse included, as one sheet; --stages-dir writes each as its own
file at the photo's size; `kgi prep person` writes the pose and parse as OpenPose JSON and CIHP PNG.

The result has the person photo's size: the try-on is made on the photo's 3:4 box around the person at its
own resolution (up to 1024 rows; a larger box is made at 1024 and scaled back, --height sets another working
height) and pasted back into the photo.

Examples:
  kgi tryon person.jpg garment.jpg -o out.png --pose person_keypoints.json --parse person_parse.png
  kgi tryon person.jpg garment.jpg -o out.png --pose-python /opt/kgi-pose/bin/python --parser-onnx schp-lip.onnx \\
      --label-set lip --input-size 473 473 --stages sheet.png
  kgi tryon person.jpg garment.jpg -o out.png --pose p.json --stages sheet.png --steps 10 --seed 3
  kgi tryon person.jpg garment.jpg -o out.png --pose p.json --parse p.png --stages-dir stages/
"""

from __future__ import annotations

import sys
from pathlib import Path

from kgi.cli import CommandError
from kgi.commands.prep import add_source_arguments, parser_from_args
from kgi.shipped import DEFAULT_VERSION

HELP = "one try-on from two photos, no server needed"
# --stages-dir: file name -> what it holds (every file has the person photo's size).
STAGE_FILES = {
    "result.png": "the try-on (RGB), as -o",
    "warped_garment.png": "the five-segment warp of the garment as shown in the result (RGB), black elsewhere",
    "keep_mask.png": "white where the result keeps the recomposed image (or the photo), black where painted",
    "target_parse.png": "the target parse: the 13 model classes as pixel values 0-12 (single channel)",
    "recomposed.png": "the image the inpainter completed (RGB): grey where it painted",
    "skin_mask.png": "white on the visible skin painted skin's colour was learnt from",
}


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
    parser.add_argument("--stages", type=Path, metavar="SHEET.png", help="also write every intermediate stage "
                                                                         "as one sheet")
    parser.add_argument("--stages-dir", type=Path, metavar="DIR",
                        help="also write every intermediate as its own file at the photo's size: "
                             + "; ".join(f"{name} ({what})" for name, what in STAGE_FILES.items()))
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION, metavar="DIR",
                        help="model version folder (default: the shipped models/default)")
    parser.add_argument("--steps", type=int, metavar="N", help="sampler steps (default: the version's)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same image (default 0)")
    parser.add_argument("--height", type=int, metavar="ROWS",
                        help="working height of the try-on (a multiple of 4, width = 3/4 of it; default: the photo's "
                             "own, up to 1024); the result always has the photo's size")


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

    from kgi.data.images import decode_rgb, encode_png
    from kgi.parsing import SynthParser
    from kgi.pipeline import TryOnPipeline
    from kgi.preprocess import MissingInputError, Preprocessor, Uploads, paste_back
    from kgi.pictures import colorize_parse13, contact_sheet, draw_garment_keypoints, draw_pose, mask_tile

    if args.height is not None and (args.height % 4 or not 64 <= args.height <= 4096):
        raise CommandError("--height must be a multiple of 4 between 64 and 4096")
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
    photo = decode_rgb(uploads.person, source="person")
    image = paste_back(result.image, sample, photo)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(encode_png(image))
    print(f"{args.out}: {result.unet_evaluations} UNet evaluations, "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    if args.stages:
        height, width = sample.size
        origin = {field: "estimated" if field in estimated else "given" for field in ("pose", "parse")}
        sheet = contact_sheet([[
            (f"pose ({origin['pose']})", draw_pose(sample.person, sample.pose_nodes)),
            (f"parse ({origin['parse']})", colorize_parse13(sample.parse13)),
            ("garment", draw_garment_keypoints(sample.cloth, sample.cloth_keypoints)),
            ("garment mask", mask_tile(sample.cloth_mask)),
        ], [
            ("garment keypoints", draw_garment_keypoints(sample.person, result.worn_keypoints)),
            ("target parse", colorize_parse13(result.target_parse13)),
            ("warped garment", result.warped_garment),
            ("recomposed", result.recomposed),
            ("keep mask", mask_tile(result.keep_mask)),
            ("try-on", result.image),
        ]])
        args.stages.parent.mkdir(parents=True, exist_ok=True)
        args.stages.write_bytes(encode_png(sheet))
        print(f"{args.stages}: stages sheet")
    if args.stages_dir:
        write_stages(args.stages_dir, image, result, sample)
        print(f"{args.stages_dir}: {', '.join(STAGE_FILES)}")
    return 0


def _in_photo(array, sample, fill: int):
    """A sample-sized (H, W) or (H, W, 3) uint8 array placed in a photo-sized one at the sample's box (resized to
    it: nearest for single-channel maps, as labels and masks are), ``fill`` outside the box."""
    import cv2
    import numpy as np

    if sample.frame is None:
        return array
    top, left, box_height, box_width = sample.frame.box
    canvas = np.full((*sample.frame.photo_size, *array.shape[2:]), fill, np.uint8)
    interpolation = cv2.INTER_NEAREST_EXACT if array.ndim == 2 else cv2.INTER_LINEAR
    canvas[top:top + box_height, left:left + box_width] = cv2.resize(array, (box_width, box_height),
                                                                     interpolation=interpolation)
    return canvas


def write_stages(directory: Path, image, result, sample) -> None:
    """Write ``STAGE_FILES`` into ``directory``: the pasted-back ``image`` and ``result``'s intermediates placed at
    the sample's box in photo-sized files (outside the box: kept, no garment, background)."""
    import numpy as np

    from kgi.data.images import encode_png

    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "result.png": image,
        "warped_garment.png": _in_photo(result.warped_garment, sample, 0),
        "keep_mask.png": _in_photo(result.keep_mask.astype(np.uint8) * 255, sample, 255),
        "target_parse.png": _in_photo(result.target_parse13, sample, 0),
        "recomposed.png": _in_photo(result.recomposed, sample, 0),
        "skin_mask.png": _in_photo(result.skin_mask.astype(np.uint8) * 255, sample, 0),
    }
    for name, array in files.items():
        (directory / name).write_bytes(encode_png(array))
