"""Generate a synthetic VITON-HD dataset: people wearing garments, with ground-truth garment keypoints.

Writes OUT/{train,test}/{image,cloth,cloth-mask,image-parse-v3,openpose_json,cloth-landmark-json,
image-landmark-json}, OUT/train_pairs.txt (paired), OUT/test_pairs.txt (unpaired: each test person with
another test garment) and OUT/synth.json, readable by kgi.data.vitonhd.VitonHD like the real dataset.
Pair i depends only on (seed, i), so a dataset can be regenerated exactly. OUT may be a local folder or
s3://bucket/prefix and must be empty or missing.

Example:

    kgi synth data/synth --pairs 2000 --test-pairs 200 --height 256 --seed 0 --preview synth.png
"""

from __future__ import annotations

import argparse

import numpy as np

from kgi.cli import CommandError
from kgi.data.images import encode_png
from kgi.data.labels import CIHP_PALETTE
from kgi.data.synth import SynthError, generate, make_pair
from kgi.pictures import draw_garment_keypoints, draw_pose

HELP = "generate a synthetic VITON-HD dataset with garment keypoints (optionally a preview sheet)"
PREVIEW_PAIRS = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="new or empty dataset folder (local or s3://bucket/prefix)")
    parser.add_argument("--pairs", type=int, default=200, metavar="N", help="train pairs (default: 200)")
    parser.add_argument("--test-pairs", type=int, default=None, metavar="M",
                        help="test pairs (default: max(N // 5, 8))")
    parser.add_argument("--height", type=int, default=256, metavar="H",
                        help="image height, divisible by 4; width = 3H/4 (default: 256)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="dataset seed (default: 0)")
    parser.add_argument("--preview", default=None, metavar="PNG",
                        help="also write a contact sheet of the first test pairs: person, cloth, parse, keypoints")


def run(args: argparse.Namespace) -> int:
    """Generate the dataset (and the preview). Raises ``CommandError`` for bad arguments."""
    test_pairs = max(args.pairs // 5, 8) if args.test_pairs is None else args.test_pairs
    if args.pairs < 1:
        raise CommandError(f"--pairs: expected at least 1 train pair, got {args.pairs}")
    if test_pairs < 2:
        raise CommandError(f"--test-pairs: expected at least 2 (unpaired pairs need another garment), "
                           f"got {test_pairs}")
    if args.height < 64 or args.height % 4:
        raise CommandError(f"--height: expected a multiple of 4 of at least 64, got {args.height}")
    if args.seed < 0:
        raise CommandError(f"--seed: expected a non-negative integer, got {args.seed}")
    if args.preview is not None and not str(args.preview).lower().endswith(".png"):
        raise CommandError(f"--preview: expected a .png file name, got {args.preview}")
    try:
        summary = generate(args.out, args.pairs, test_pairs, height=args.height, seed=args.seed)
    except (SynthError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {summary['train_pairs']} train and {summary['test_pairs']} test pairs "
          f"({summary['width']}x{summary['height']}) to {args.out}")
    if args.preview is not None:
        first_test = args.pairs
        samples = [make_pair(args.seed, first_test + k, args.height) for k in range(min(PREVIEW_PAIRS, test_pairs))]
        try:
            with open(args.preview, "wb") as file:
                file.write(encode_png(preview_sheet(samples)))
        except OSError as exc:
            raise CommandError(f"--preview: cannot write {args.preview}: {exc.strerror}") from None
        print(f"preview of {len(samples)} test pairs: {args.preview}")
    return 0


def preview_sheet(samples) -> np.ndarray:
    """One row per sample: person, person with pose and worn keypoints, cloth with its keypoints, parse.

    Args:
        samples: :class:`~kgi.data.sample.TryOnSample` s of one size with ``cloth_keypoints`` and
            ``worn_keypoints`` (the generator's pairs, or a synthetic dataset read in the paired mode).

    Returns an (rows * H, 4 * W, 3) uint8 RGB image (``kgi.pictures``' overlays).
    """
    palette = np.array(CIHP_PALETTE, dtype=np.uint8)
    rows = []
    for sample in samples:
        posed = draw_pose(sample.person, sample.pose_nodes)
        tiles = [sample.person, draw_garment_keypoints(posed, sample.worn_keypoints),
                 draw_garment_keypoints(sample.cloth, sample.cloth_keypoints), palette[sample.parse]]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)
