"""Stage 2a: the target-parse U-Net, its 19-channel input, its loss and the IoU counts."""

from __future__ import annotations

import pytest
import torch

from kgi.data.labels import NUM_PARSE13
from kgi.drawing import draw_garment_contour, draw_skeleton
from kgi.graphs import KeypointInputError
from kgi.models.parse import ParseInputError, ParseUNet, iou_counts, parse_input, parse_loss

HEIGHT, WIDTH = 64, 32


def pose_and_garment(batch: int):
    """A standing person (arms down) and a garment box on the torso, normalised."""
    pose = torch.tensor([[0.5, 0.1], [0.5, 0.2], [0.35, 0.22], [0.3, 0.4], [0.28, 0.55],
                         [0.65, 0.22], [0.7, 0.4], [0.72, 0.55], [0.42, 0.6], [0.58, 0.6]])
    garment = torch.zeros(32, 2)
    garment[:, 0] = torch.linspace(0.3, 0.7, 32)
    garment[:, 1] = 0.25 + 0.3 * (torch.arange(32) % 2)
    return pose.expand(batch, -1, -1).clone(), garment.expand(batch, -1, -1).clone()


def random_onehot(batch: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, NUM_PARSE13, (batch, HEIGHT, WIDTH), generator=generator)
    return torch.nn.functional.one_hot(labels, NUM_PARSE13).permute(0, 3, 1, 2).float()


def test_parse_input_places_each_part_in_its_channels():
    generator = torch.Generator().manual_seed(0)
    agnostic = random_onehot(2, generator)
    agnostic[:, :, 10:20] = 0  # an unknown band: zero vectors
    pose, garment = pose_and_garment(2)
    x = parse_input(agnostic, pose, garment)
    assert x.shape == (2, 19, HEIGHT, WIDTH) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, :13], agnostic)
    torch.testing.assert_close(x[:, 13:16], draw_skeleton(pose, HEIGHT, WIDTH))
    torch.testing.assert_close(x[:, 16:19], draw_garment_contour(garment, HEIGHT, WIDTH))
    # The drawings depend on their own keypoints only.
    moved = parse_input(agnostic, pose + torch.tensor([0.1, 0.0]), garment)
    assert not torch.equal(moved[:, 13:16], x[:, 13:16])
    torch.testing.assert_close(moved[:, 16:19], x[:, 16:19])


def test_parse_input_rejects_mismatched_inputs():
    pose, garment = pose_and_garment(2)
    with pytest.raises(ParseInputError, match="agnostic_onehot"):
        parse_input(torch.zeros(2, 12, HEIGHT, WIDTH), pose, garment)
    with pytest.raises(ParseInputError, match="batch sizes"):
        parse_input(torch.zeros(3, 13, HEIGHT, WIDTH), pose, garment)
    with pytest.raises(KeypointInputError, match="garment_kp"):
        parse_input(torch.zeros(2, 13, HEIGHT, WIDTH), pose, garment[:, :30])


def test_unet_output_shape_and_size_check():
    model = ParseUNet(base_channels=4, max_channels=16)
    assert model(torch.zeros(2, 19, HEIGHT, WIDTH)).shape == (2, NUM_PARSE13, HEIGHT, WIDTH)
    assert model(torch.zeros(1, 19, 128, 96)).shape == (1, NUM_PARSE13, 128, 96)
    with pytest.raises(ParseInputError, match="multiples of 32"):
        model(torch.zeros(1, 19, 48, 32))
    with pytest.raises(ParseInputError, match="19"):
        model(torch.zeros(1, 13, HEIGHT, WIDTH))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ParseUNet(base_channels=4, max_channels=16).eval()
    model.save(tmp_path / "parse.safetensors")
    loaded = ParseUNet.load(tmp_path / "parse.safetensors")
    assert loaded.config == {"base_channels": 4, "max_channels": 16}
    x = torch.rand(1, 19, HEIGHT, WIDTH)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_loss_near_zero_at_target_and_positive_otherwise():
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, NUM_PARSE13, (2, HEIGHT, WIDTH), generator=generator)
    confident = 40.0 * torch.nn.functional.one_hot(target, NUM_PARSE13).permute(0, 3, 1, 2).float()
    loss, parts = parse_loss(confident, target)
    assert loss.item() < 1e-6
    wrong = confident.roll(1, dims=1)  # every pixel confidently the next class
    loss, parts = parse_loss(wrong, target)
    assert parts["ce"] > 1.0 and parts["dice"] > 0.9


def test_loss_rejects_bad_targets():
    logits = torch.zeros(1, NUM_PARSE13, HEIGHT, WIDTH)
    with pytest.raises(ParseInputError, match="0..12"):
        parse_loss(logits, torch.full((1, HEIGHT, WIDTH), 13))
    with pytest.raises(ParseInputError, match="target must be"):
        parse_loss(logits, torch.zeros(1, HEIGHT, WIDTH + 1, dtype=torch.long))


def test_iou_counts_by_hand():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 2, 3]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 2, 0, 5]]])
    intersection, union = iou_counts(pred, target)
    assert intersection[:4].tolist() == [1, 2, 2, 0] and union[:4].tolist() == [3, 3, 3, 1]
    assert union[5] == 1 and intersection[5] == 0 and union[6:].sum() == 0


@pytest.mark.slow  # trains the parse U-Net
def test_few_steps_overfit_a_tiny_batch():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    pose, garment = pose_and_garment(2)
    target = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.long)
    target[:, 15:40, 8:24] = 3  # an upper garment
    target[:, 40:, 10:22] = 4  # trousers
    agnostic = torch.nn.functional.one_hot(target, NUM_PARSE13).permute(0, 3, 1, 2).float()
    agnostic[:, 3] = 0  # upper garment unknown
    x = parse_input(agnostic, pose, garment) + 0.01 * torch.randn(2, 19, HEIGHT, WIDTH, generator=generator)
    model = ParseUNet(base_channels=8, max_channels=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss, _ = parse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
