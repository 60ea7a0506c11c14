"""Train the synthetic-only human parser (``kgi.parsing.SynthParser``) and write its weights.

The network (``kgi.parsing.ParserUNet``) learns RGB -> CIHP labels on people of the synthetic generator
(``kgi.data.synth.make_pair``), rendered at 256 px and fitted to the network's input as ``SynthParser`` fits
photos. Augmentation: horizontal flips (left/right labels swapped) and per-channel colour gains. The loss is
``kgi.models.parse.parse_loss``: cross-entropy plus a soft-Dice term over the classes present, so thin parts (arms,
neck) count. It parses synthetic people only; ``kgi prep eval`` measures it on held-out synthetic pairs (another
seed) and on genuine photos.

The shipped ``models/parser/synth_parser.safetensors`` was made with the defaults on one CPU thread (about 30
minutes on a busy 2-core machine: 3 minutes of rendering, then about 1.5 s a step):

    python scripts/train_parser.py --out models/parser/synth_parser.safetensors
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kgi.data.images import resize_labels
from kgi.data.labels import MIRRORED_CIHP
from kgi.data.synth import make_pair
from kgi.models.parse import parse_loss
from kgi.parsing import ParserUNet, fit_image

RENDER_HEIGHT = 256


def synthetic_set(seed: int, count: int, input_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic people as the parser sees them: (N, 3, h, w) uint8 images and (N, h, w) CIHP labels."""
    images, labels = [], []
    for index in range(count):
        sample = make_pair(seed, index, RENDER_HEIGHT)
        images.append(fit_image(sample.person, *input_size)[0])
        labels.append(resize_labels(sample.parse, *input_size))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), torch.from_numpy(np.stack(labels))


def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and colour gains of a uint8 batch -> ((B, 3, h, w) float in [0, 1], (B, h, w) long)."""
    batch = images.size(0)
    flip = torch.rand(batch, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images).float() / 255
    mirrored = torch.from_numpy(MIRRORED_CIHP).long()[labels.long()].flip(-1)
    labels = torch.where(flip[:, None, None], mirrored, labels.long())
    gains = 0.75 + 0.5 * torch.rand(batch, 3, 1, 1, generator=generator)
    return (images * gains).clamp(0, 1), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where the .safetensors weights go")
    parser.add_argument("--pairs", type=int, default=600, help="synthetic training people (default 600)")
    parser.add_argument("--seed", type=int, default=1000,
                        help="synthetic dataset seed; evaluate on another one (default 1000)")
    parser.add_argument("--steps", type=int, default=900, help="optimiser steps (default 900)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-decayed (default 2e-3)")
    parser.add_argument("--input-height", type=int, default=128, help="network input height (default 128)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = ParserUNet(base_channels=8, max_channels=64, levels=4, input_height=args.input_height)
    started = time.time()
    images, labels = synthetic_set(args.seed, args.pairs, model.input_size)
    print(f"{args.pairs} synthetic people at {model.input_size} in {time.time() - started:.0f} s")
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, args.steps)
    model.train()
    for step in range(1, args.steps + 1):
        chosen = torch.randint(0, args.pairs, (args.batch,), generator=generator)
        batch_images, batch_labels = augment(images[chosen], labels[chosen], generator)
        loss, _ = parse_loss(model(batch_images), batch_labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  loss {loss.item():.3f}  {time.time() - started:.0f} s", flush=True)
    model.eval().save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
