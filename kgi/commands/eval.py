"""Evaluate a model version on a VITON-HD root (synthetic or real): the stages, or whole try-ons.

``kgi eval stages`` trains nothing and reports the stage-1/2 figures, each beside its baseline in the same
run: keypoint error (graph network vs. geometric transfer) overall, per sleeve type and on crossed arms; target
parse IoU per class with predicted keypoints; five-segment vs. single-TPS warp in the garment region. It needs
ground-truth garment landmarks (the synthetic generator writes them).

``kgi eval tryon`` runs the whole pipeline: in the paired setting SSIM/PSNR over the whole image and inside the
inpainted region, beside a mean-colour fill and OpenCV (Telea) inpainting of the same holes, at the image's
resolution and at the inpainter's (the inpainter's own contribution, resolution aside); LPIPS/FID/KID only from
feature-network weights you supply (never substitutes).

Both write a Markdown report and a PNG sheet of examples into --out.

Examples:
  kgi eval stages data/synth --split test --out reports/stages
  kgi eval tryon data/synth --split test --mode paired --out reports/tryon --limit 64
"""

from __future__ import annotations

from pathlib import Path

from kgi.cli import CommandError
from kgi.shipped import DEFAULT_VERSION

HELP = "evaluate stages or whole try-ons against ground truth, with baselines"


def add_arguments(parser):
    parser.add_argument("what", choices=["stages", "tryon"], help="stages: figures per stage; tryon: end to end")
    parser.add_argument("root", metavar="ROOT", help="VITON-HD root (folder or s3://)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--mode", default="paired", choices=["paired", "unpaired"], help="tryon only")
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION, metavar="DIR", help="model version folder")
    parser.add_argument("--height", type=int, default=256, help="evaluation resolution (default 256)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N pairs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="report folder")


def run(args) -> int:
    from tqdm import tqdm

    from kgi.data.images import encode_png
    from kgi.data.vitonhd import VitonHD
    from kgi.evaluation import evaluate_stages, evaluate_tryon
    from kgi.landmarks import fill_garment_keypoints
    from kgi.pipeline import TryOnPipeline

    try:
        pipeline = TryOnPipeline.from_pretrained(args.version)
        mode = "paired" if args.what == "stages" else args.mode
        dataset = VitonHD(args.root, split=args.split, mode=mode, height=args.height)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    samples = tqdm((dataset[i] for i in range(count)), total=count, desc=f"eval {args.what}", unit="pair")
    try:  # ValueError: a pair the evaluation cannot use (DatasetError, LandmarkError, no landmark files for stages)
        if args.what == "stages":
            report = evaluate_stages(pipeline, samples, batch_size=args.batch_size)
        else:
            report = evaluate_tryon(pipeline, map(fill_garment_keypoints, samples), paired=mode == "paired",
                                    batch_size=args.batch_size)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = "\n".join(table.markdown() for table in report.tables)
    title = f"# kgi eval {args.what}: {args.root} ({args.split}, {mode}, {count} pairs, version {args.version})\n\n"
    if args.what == "tryon":
        markdown += "\nLPIPS / FID / KID: not available (no feature-network weights given).\n"
    (args.out / f"{args.what}.md").write_text(title + markdown + f"\n![examples]({args.what}.png)\n")
    (args.out / f"{args.what}.png").write_bytes(encode_png(report.sheet))
    print(markdown)
    print(f"report: {args.out / (args.what + '.md')}, examples: {args.out / (args.what + '.png')}")
    return 0
