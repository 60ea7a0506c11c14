"""One try-on on this machine, without a server, on the shipped checkpoints (or any model version folder).

The person needs an OpenPose BODY_25 JSON and a CIHP parse PNG (as in VITON-HD); the garment's mask and
keypoints are computed from a plain-background product photo unless given.

Examples:
  kgi tryon person.jpg garment.jpg -o out.png --pose person_keypoints.json --parse person_parse.png
  kgi tryon person.jpg garment.jpg -o out.png --pose p.json --parse p.png --stages sheet.png --steps 10 --seed 3
"""

from __future__ import annotations

from pathlib import Path

from kgi.cli import CommandError

HELP = "one try-on from two photos, no server needed"
DEFAULT_VERSION = Path(__file__).resolve().parents[2] / "models" / "default"


def add_arguments(parser):
    parser.add_argument("person", type=Path, metavar="PERSON", help="person photo")
    parser.add_argument("garment", type=Path, metavar="GARMENT", help="garment product photo")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png", help="where the result goes")
    parser.add_argument("--pose", type=Path, metavar="JSON", help="OpenPose BODY_25 JSON of the person photo")
    parser.add_argument("--parse", type=Path, metavar="PNG", help="CIHP label PNG of the person photo")
    parser.add_argument("--cloth-mask", type=Path, metavar="IMG", help="garment mask (computed if absent)")
    parser.add_argument("--stages", type=Path, metavar="SHEET.png", help="also write every intermediate stage")
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION, metavar="DIR",
                        help="model version folder (default: the shipped models/default)")
    parser.add_argument("--steps", type=int, metavar="N", help="sampler steps (default: the version's)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same image (default 0)")
    parser.add_argument("--height", type=int, default=256, help="output height, width = 3/4 (default 256)")


def run(args) -> int:
    from dataclasses import replace

    from kgi.data.images import encode_png
    from kgi.pipeline import TryOnPipeline
    from kgi.preprocess import InputError, prepare_sample
    from kgi.sheets import colorize_parse13, contact_sheet, draw_pose, mask_tile
    from kgi.landmarks import overlay

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
    try:
        sample = prepare_sample(args.person.read_bytes(), args.garment.read_bytes(),
                                pose_json=args.pose.read_bytes() if args.pose else None,
                                parse_png=args.parse.read_bytes() if args.parse else None,
                                cloth_mask=args.cloth_mask.read_bytes() if args.cloth_mask else None,
                                height=args.height, person_name=args.person.name, cloth_name=args.garment.name)
    except InputError as exc:
        raise CommandError(str(exc)) from None
    sampler = replace(pipeline.info.sampler, num_steps=args.steps) if args.steps else None
    result = pipeline([sample], seeds=[args.seed], sampler=sampler)[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(encode_png(result.image))
    print(f"{args.out}: {result.unet_evaluations} UNet evaluations, "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    if args.stages:
        height, width = sample.size
        sheet = contact_sheet([[
            ("person + pose", draw_pose(sample.person, sample.pose_nodes * [width, height])),
            ("garment", overlay(sample.cloth, sample.cloth_keypoints)),
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
