"""Stage 1 and 2a figures per garment kind, without the warps: the quick before/after check of a model version.

``kgi eval stages`` gives the same keypoint and parse figures (per kind too) beside the warp figures, which take
most of its time; this runs only the keypoint network (against the geometric transfer) and the parse network on
the paired test split of a synthetic dataset, and prints, per garment kind, the mean keypoint error (fraction of
the image height, mean ± s.e.) of the network, of its keypoints seated on the person as a try-on uses them
(``kgi.pipeline.seated_keypoints``: shoulder seams, sleeves and hem corrected against the pose and the parse) and
of the geometric baseline, and the upper-garment IoU of the network's parse and of the target parse, then the
mean IoU over all classes of both.

    python -m bench.kinds data/synth --version models/default --limit 300
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kgi.baseline import geometric_transfer
from kgi.data.labels import NUM_PARSE13, UPPER
from kgi.data.synth import GARMENT_TAG
from kgi.data.vitonhd import VitonHD
from kgi.metrics import mean_and_standard_error
from kgi.models.keypoints import mean_keypoint_error
from kgi.models.parse import iou_counts
from kgi.pipeline import TryOnPipeline, seated_keypoints
from kgi.shipped import DEFAULT_VERSION


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="synthetic dataset root (kgi synth)")
    parser.add_argument("--version", type=Path, default=DEFAULT_VERSION)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    pipeline = TryOnPipeline.from_pretrained(args.version)
    dataset = VitonHD(args.root, split="test", mode="paired", height=args.height)
    count = min(args.limit, len(dataset))
    errors = defaultdict(lambda: defaultdict(list))  # kind -> method -> per-pair errors
    upper = defaultdict(lambda: np.zeros(4, np.int64))  # kind -> network (intersection, union), target (...)
    classes = {name: [torch.zeros(NUM_PARSE13, dtype=torch.long)] * 2 for name in ("network", "target")}
    for begin in tqdm(range(0, count, args.batch_size), desc="kinds", unit="batch"):
        batch = [dataset[i] for i in range(begin, min(begin + args.batch_size, count))]
        height, width = batch[0].size
        scale = np.array([width, height], np.float32)
        cloth_kp = np.stack([s.cloth_keypoints / scale for s in batch]).astype(np.float32)
        pose_nodes = np.stack([s.pose_nodes for s in batch])
        truth = torch.from_numpy(np.stack([s.worn_keypoints / scale for s in batch]).astype(np.float32))
        predicted = pipeline.predict_keypoints(cloth_kp, pose_nodes)
        baseline = geometric_transfer(torch.from_numpy(cloth_kp), torch.from_numpy(pose_nodes))
        kinds = [next((t.removeprefix(GARMENT_TAG) for t in s.tags if t.startswith(GARMENT_TAG)), "?") for s in batch]
        seated = seated_keypoints(batch, predicted)
        for method, kp in (("network", torch.from_numpy(predicted)), ("seated", torch.from_numpy(seated)),
                           ("baseline", baseline)):
            for kind, error in zip(kinds, mean_keypoint_error(kp, truth, width / height).tolist()):
                errors[kind][method].append(error)
                errors["all"][method].append(error)
        raw, target = pipeline.predict_parse(batch, predicted)
        truth_parses = torch.from_numpy(np.stack([s.parse13 for s in batch])).long()
        for name, parse in (("network", raw), ("target", target)):
            classes[name] = [total + part for total, part in zip(classes[name], iou_counts(parse.cpu(), truth_parses))]
        for i, (kind, sample) in enumerate(zip(kinds, batch)):
            truth_parse = torch.from_numpy(sample.parse13[None]).long()
            counts = [c[UPPER] for parse in (raw, target) for c in iou_counts(parse[i:i + 1].cpu(), truth_parse)]
            upper[kind] += np.array(counts)
            upper["all"] += np.array(counts)
    print(f"{args.version}, {args.root} test, {count} pairs")
    print(f"{'kind':<15}{'n':>5}{'keypoints: network':>24}{'seated':>22}{'geometric baseline':>22}"
          f"{'upper IoU net':>15}{'target':>9}")
    for kind in sorted(errors, key=lambda k: (k != "all", k)):
        net, seated, base = (mean_and_standard_error(torch.tensor(errors[kind][m]))
                             for m in ("network", "seated", "baseline"))
        i_net, u_net, i_target, u_target = upper[kind]
        print(f"{kind:<15}{len(errors[kind]['network']):>5}{net[0]:>15.4f} ± {net[1]:.4f}{seated[0]:>13.4f} ± "
              f"{seated[1]:.4f}{base[0]:>13.4f} ± {base[1]:.4f}{i_net / max(u_net, 1):>15.3f}"
              f"{i_target / max(u_target, 1):>9.3f}")
    for name, (intersection, union) in classes.items():
        present = union > 0
        print(f"parse mIoU, {name}: {float((intersection[present] / union[present]).mean()):.3f}")


if __name__ == "__main__":
    main()
