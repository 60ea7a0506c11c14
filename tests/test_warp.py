"""Drawings, thin-plate splines and the two garment warps, on hand-made inputs with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from kgi.drawing import (
    SKELETON_CHANNELS,
    DrawingInputError,
    draw_garment_contour,
    draw_skeleton,
    polygon_masks,
)
from kgi.graphs import POSE_EDGES, WARP_PASTE_ORDER, WARP_SEGMENTS
from kgi.warp import BACKBONE_REACH, SEGMENT_NAMES, WarpInputError, tps_sampling_grid, warp_garment

HEIGHT, WIDTH = 128, 96


def flat_tshirt() -> torch.Tensor:
    """(32, 2) normalised keypoints of a flat long-sleeve T-shirt in the kgi.graphs numbering."""
    left = {
        0: (0.38, 0.12), 1: (0.42, 0.16), 2: (0.50, 0.20), 5: (0.30, 0.14),
        6: (0.24, 0.20), 7: (0.18, 0.30), 8: (0.14, 0.40), 9: (0.12, 0.46), 10: (0.20, 0.48),
        11: (0.21, 0.42), 12: (0.25, 0.33), 13: (0.29, 0.27), 14: (0.32, 0.30),
        15: (0.33, 0.45), 16: (0.33, 0.65), 17: (0.33, 0.85), 18: (0.50, 0.86),
    }
    mirror = {4: 0, 3: 1, 31: 5, 30: 6, 29: 7, 28: 8, 27: 9, 26: 10, 25: 11, 24: 12, 23: 13, 22: 14,
              21: 15, 20: 16, 19: 17}
    points = dict(left)
    points.update({node: (1.0 - left[twin][0], left[twin][1]) for node, twin in mirror.items()})
    return torch.tensor([points[i] for i in range(32)])


def crossed_arm(flat: torch.Tensor) -> torch.Tensor:
    """The T-shirt worn with the image-left sleeve's upper arm hanging and its forearm across the torso."""
    target = flat.clone()
    sleeve = {6: (0.22, 0.22), 7: (0.20, 0.42), 8: (0.50, 0.54), 9: (0.62, 0.54), 10: (0.62, 0.46),
              11: (0.50, 0.46), 12: (0.30, 0.40), 13: (0.31, 0.30)}
    for node, point in sleeve.items():
        target[node] = torch.tensor(point)
    return target


SEGMENT_COLOURS = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.7, 0.1], [0.1, 0.1, 0.8], [0.7, 0.6, 0.1],
                                [0.5, 0.1, 0.6]])


def segment_coloured_cloth(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, H, W) cloth, white background, each segment's flat polygon filled with its colour, and its mask."""
    cloth = torch.ones(1, 3, HEIGHT, WIDTH)
    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
    for colour, name in zip(SEGMENT_COLOURS, SEGMENT_NAMES):
        polygon = polygon_masks(flat[list(WARP_SEGMENTS[name])].unsqueeze(0), HEIGHT, WIDTH)
        cloth = torch.where(polygon > 0, colour.view(1, 3, 1, 1), cloth)
        mask = torch.maximum(mask, polygon)
    return cloth, mask


def checkerboard(batch: int, cell: int = 8) -> torch.Tensor:
    rows = torch.arange(HEIGHT).view(-1, 1) // cell
    cols = torch.arange(WIDTH).view(1, -1) // cell
    board = ((rows + cols) % 2).float() * 0.6 + 0.2
    return torch.stack([board, 1 - board, board * 0.5], dim=0).expand(batch, 3, HEIGHT, WIDTH).clone()


# --- drawing -------------------------------------------------------------------------------------------

def test_polygon_mask_fills_the_inside_and_shrinks_by_the_margin():
    square = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]])
    plain = polygon_masks(square, 64, 32)
    assert plain.shape == (1, 1, 64, 32)
    assert plain.sum() == 32 * 16  # rows 16..47, columns 8..23
    assert plain[0, 0, 16, 8] == 1 and plain[0, 0, 15, 8] == 0 and plain[0, 0, 16, 24] == 0
    # Orientation does not matter; a 2-pixel margin removes two pixel rings.
    shrunk = polygon_masks(square.flip(1), 64, 32, shrink_px=2.0)
    assert shrunk.sum() == 28 * 12


def test_polygon_mask_is_clipped_to_the_image():
    # A triangle reaching past the image's top-left corner: the pixels inside the image are the ones whose
    # centre satisfies x + y < 1.2 (in normalised units), as if the whole plane were rasterised.
    triangle = torch.tensor([[[-0.5, -0.5], [1.7, -0.5], [-0.5, 1.7]]])
    mask = polygon_masks(triangle, 40, 20)[0, 0]
    x = (torch.arange(20) + 0.5) / 20
    y = (torch.arange(40) + 0.5) / 40
    assert torch.equal(mask.bool(), (x.view(1, -1) + y.view(-1, 1)) < 1.2)
    assert polygon_masks(triangle + 2.0, 40, 20).sum() == 0  # wholly outside
    assert polygon_masks(torch.full((1, 4, 2), float("nan")), 40, 20).sum() == 0


def test_degenerate_polygon_is_empty_and_bad_points_are_refused():
    on_a_line = torch.tensor([[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9], [0.5, 0.5]]])
    assert polygon_masks(on_a_line, 32, 32).sum() == 0
    with pytest.raises(DrawingInputError, match="points"):
        polygon_masks(torch.rand(2, 4), 32, 32)
    with pytest.raises(DrawingInputError, match="pose_nodes"):
        draw_skeleton(torch.rand(1, 9, 2), 32, 32)


def test_skeleton_draws_every_bone_in_its_channel():
    torch.manual_seed(0)
    pose = torch.rand(3, 10, 2) * 0.8 + 0.1
    drawing = draw_skeleton(pose, HEIGHT, WIDTH)
    assert drawing.shape == (3, 3, HEIGHT, WIDTH) and drawing.dtype == torch.float32
    assert set(drawing.unique().tolist()) <= {0.0, 1.0}
    assert sorted(bone for bones in SKELETON_CHANNELS for bone in bones) == sorted(POSE_EDGES)
    for channel, bones in enumerate(SKELETON_CHANNELS):
        for i, j in bones:
            for t in (0.0, 0.3, 0.7, 1.0):  # points along the bone, in pixel indices
                x, y = (pose[:, i] + t * (pose[:, j] - pose[:, i])).unbind(-1)
                col, row = (x * WIDTH).long(), (y * HEIGHT).long()
                assert drawing[torch.arange(3), channel, row, col].eq(1).all()
    # The right-arm channel holds nothing far from the right arm.
    far = pose[:, [2, 3, 4]].mean(1)
    arm_only = draw_skeleton(torch.cat([pose[:, :2], far.unsqueeze(1).expand(3, 8, 2)], 1), HEIGHT, WIDTH)
    assert arm_only[:, 1].sum() < drawing[:, 1].sum()


def test_garment_contour_channels():
    flat = flat_tshirt().unsqueeze(0)
    drawing = draw_garment_contour(flat, HEIGHT, WIDTH)
    assert drawing.shape == (1, 3, HEIGHT, WIDTH)
    assert set(drawing.unique().tolist()) == {0.0, 1.0}
    row, col = int(0.5 * HEIGHT), int(0.5 * WIDTH)
    assert drawing[0, 1, row, col] == 1 and drawing[0, 2, row, col] == 0  # torso centre: backbone only
    cuff = ((flat[0, 8] + flat[0, 11]) / 2 * torch.tensor([WIDTH, HEIGHT])).long()
    assert drawing[0, 2, cuff[1], cuff[0]] == 1 and drawing[0, 1, cuff[1], cuff[0]] == 0
    hem = (flat[0, 18] * torch.tensor([WIDTH, HEIGHT])).long()
    assert drawing[0, 0, hem[1] - 1, hem[0]] == 1  # the contour passes through the hem centre
    # A sleeveless garment (sleeve nodes on the armhole line) has no sleeve area.
    sleeveless = flat.clone()
    for nodes, start, end in ((range(6, 14), 5, 14), (range(23, 31), 31, 22)):
        for k, node in enumerate(nodes):
            sleeveless[0, node] = flat[0, start] + (k + 1) / 9 * (flat[0, end] - flat[0, start])
    assert draw_garment_contour(sleeveless, HEIGHT, WIDTH)[:, 2].sum() == 0


# --- thin-plate spline -----------------------------------------------------------------------------------

def _pixel_points(batch: int, count: int, generator: torch.Generator):
    """Distinct pixel centres (rows, cols) and their normalised (x, y), (B, N, 2)."""
    flat_index = torch.stack([torch.randperm(HEIGHT * WIDTH, generator=generator)[:count] for _ in range(batch)])
    rows, cols = flat_index // WIDTH, flat_index % WIDTH
    return rows, cols, torch.stack([(cols + 0.5) / WIDTH, (rows + 0.5) / HEIGHT], dim=-1)


def test_tps_reproduces_an_affine_map_exactly():
    generator = torch.Generator().manual_seed(1)
    rows, cols, target = _pixel_points(2, 9, generator)
    linear = torch.tensor([[1.1, 0.2], [-0.15, 0.9]])
    shift = torch.tensor([0.05, -0.03])
    grid = tps_sampling_grid(target, target @ linear.T + shift, HEIGHT, WIDTH)
    ys, xs = torch.meshgrid((torch.arange(HEIGHT) + 0.5) / HEIGHT, (torch.arange(WIDTH) + 0.5) / WIDTH,
                            indexing="ij")
    expected = 2 * (torch.stack([xs, ys], -1) @ linear.T + shift) - 1
    torch.testing.assert_close(grid, expected.expand(2, HEIGHT, WIDTH, 2), atol=1e-5, rtol=0)


def test_tps_interpolates_its_control_points():
    generator = torch.Generator().manual_seed(2)
    rows, cols, target = _pixel_points(3, 12, generator)
    source = target + 0.05 * torch.randn(target.shape, generator=generator)
    batch_index = torch.arange(3).view(3, 1)
    exact = tps_sampling_grid(target, source, HEIGHT, WIDTH, regularization=0.0)[batch_index, rows, cols]
    torch.testing.assert_close(exact, 2 * source - 1, atol=1e-4, rtol=0)
    smoothed = tps_sampling_grid(target, source, HEIGHT, WIDTH)[batch_index, rows, cols]
    assert (smoothed - (2 * source - 1)).abs().max() < 0.01


def test_tps_batched_equals_per_sample_and_survives_repeated_and_collinear_points():
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(4, 10, 2, generator=generator)
    source = target + 0.05 * torch.randn(4, 10, 2, generator=generator)
    target[1, 5:] = target[1, 4]  # repeated rows (collapsed sleeve nodes)
    source[1, 5:] = source[1, 4]
    target[2] = torch.linspace(0.1, 0.9, 10).unsqueeze(1) * torch.tensor([1.0, 0.5])  # all on one line
    batched = tps_sampling_grid(target, source, 24, 20)
    assert torch.isfinite(batched).all()
    for b in range(4):
        torch.testing.assert_close(batched[b:b + 1], tps_sampling_grid(target[b:b + 1], source[b:b + 1], 24, 20))


def test_tps_gradients_reach_both_point_sets():
    generator = torch.Generator().manual_seed(4)
    target = torch.rand(2, 8, 2, generator=generator).requires_grad_(True)
    source = (target.detach() + 0.05).requires_grad_(True)
    tps_sampling_grid(target, source, 16, 12).square().mean().backward()
    for points in (target, source):
        assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0


def test_tps_refuses_mismatched_points():
    with pytest.raises(WarpInputError, match="source_pts"):
        tps_sampling_grid(torch.rand(1, 5, 2), torch.rand(1, 6, 2), 8, 8)
    with pytest.raises(WarpInputError, match="target_pts"):
        tps_sampling_grid(torch.rand(1, 2, 2), torch.rand(1, 2, 2), 8, 8)
    with pytest.raises(WarpInputError, match="finite"):
        tps_sampling_grid(torch.full((1, 4, 2), float("nan")), torch.rand(1, 4, 2), 8, 8)


# --- warps -----------------------------------------------------------------------------------------------

def test_identity_keypoints_give_back_the_cloth():
    flat = flat_tshirt().unsqueeze(0).expand(2, 32, 2)
    cloth = checkerboard(2)
    _, mask = segment_coloured_cloth(flat[0])
    mask = mask.expand(2, 1, HEIGHT, WIDTH)
    single = warp_garment(cloth, mask, flat, flat, method="single_tps")
    torch.testing.assert_close(single.mask, mask)
    torch.testing.assert_close(single.garment, cloth * mask, atol=1e-3, rtol=0)
    five = warp_garment(cloth, mask, flat, flat, shrink_px=0.0)
    covered = five.mask > 0
    assert covered.float().mean() > 0.95 * mask.mean()  # only pixels on shared segment borders may be lost
    torch.testing.assert_close(five.garment * covered, cloth * covered, atol=1e-3, rtol=0)


def test_five_segment_warp_places_each_segment_in_its_target_polygon():
    flat = flat_tshirt()
    target = crossed_arm(flat)
    cloth, mask = segment_coloured_cloth(flat)
    result = warp_garment(cloth, mask, flat.unsqueeze(0), target.unsqueeze(0), shrink_px=1.0)
    assert result.garment.shape == (1, 3, HEIGHT, WIDTH) and result.segment_masks.shape == (1, 5, HEIGHT, WIDTH)
    torch.testing.assert_close(result.segment_masks.sum(1, keepdim=True), result.mask)  # a partition
    polygons = {name: polygon_masks(target[list(WARP_SEGMENTS[name])].unsqueeze(0), HEIGHT, WIDTH, 1.0)[0, 0] > 0
                for name in SEGMENT_NAMES}
    reach = round(BACKBONE_REACH * HEIGHT)
    backbone_reach = torch.nn.functional.max_pool2d(polygons["backbone"][None].float(), 2 * reach + 3, 1, reach + 1)
    for channel, name in enumerate(SEGMENT_NAMES):
        shown = result.segment_masks[0, channel] > 0
        # Only inside its own (1-px shrunk) target polygon; the backbone within its reach of it.
        assert not (shown & ~(backbone_reach[0] > 0 if name == "backbone" else polygons[name])).any()
        pasted_later = WARP_PASTE_ORDER[WARP_PASTE_ORDER.index(name) + 1:]
        covered_later = torch.stack([torch.zeros_like(shown)] + [polygons[later] for later in pasted_later]).any(0)
        unoccluded = polygons[name] & ~covered_later
        assert (shown & unoccluded).sum() > 0.75 * unoccluded.sum()  # and fills it where nothing covers it
        colour_error = (result.garment[0, :, shown] - SEGMENT_COLOURS[channel].view(3, 1)).abs().amax(0)
        assert (colour_error < 0.05).float().mean() > 0.8, name  # and it shows its own flat segment


def test_sleeve_is_pasted_over_the_backbone():
    flat = flat_tshirt()
    target = crossed_arm(flat)
    cloth, mask = segment_coloured_cloth(flat)
    result = warp_garment(cloth, mask, flat.unsqueeze(0), target.unsqueeze(0))
    polygon = {name: polygon_masks(target[list(WARP_SEGMENTS[name])].unsqueeze(0), HEIGHT, WIDTH, 2.0)[0, 0] > 0
               for name in SEGMENT_NAMES}
    overlap = polygon["backbone"] & polygon["left_low"]
    assert overlap.sum() > 50  # the crossed sleeve really lies on the torso
    assert WARP_PASTE_ORDER.index("left_low") > WARP_PASTE_ORDER.index("backbone")
    left_low = SEGMENT_NAMES.index("left_low")
    assert (result.segment_masks[0, left_low][overlap] == 1).float().mean() > 0.95
    colour_error = (result.garment[0][:, overlap] - SEGMENT_COLOURS[left_low].view(3, 1)).abs().amax(0)
    assert (colour_error < 0.05).float().mean() > 0.9


def test_five_segment_mask_respects_upper_mask_and_keeps_white_unless_asked():
    flat = flat_tshirt()
    cloth, mask = segment_coloured_cloth(flat)
    cloth[:, :, : HEIGHT // 4] = 1.0  # white band over the shoulders, inside the cloth mask
    upper = torch.ones(1, 1, HEIGHT, WIDTH)
    upper[..., HEIGHT // 2:, :] = 0  # the target parse has garment only in the top half
    dropped = warp_garment(cloth, mask, flat.unsqueeze(0), flat.unsqueeze(0), upper_mask=upper,
                                 white_threshold=0.95)
    assert dropped.mask[..., HEIGHT // 2:, :].sum() == 0
    assert dropped.mask[..., : HEIGHT // 4 - 1, :].sum() == 0
    assert dropped.mask[..., HEIGHT // 4 + 1: HEIGHT // 2, :].sum() > 0
    kept_white = warp_garment(cloth, mask, flat.unsqueeze(0), flat.unsqueeze(0))  # the cloth mask trusted
    white_in_mask = mask[..., : HEIGHT // 4 - 1, :].sum()
    assert kept_white.mask[..., : HEIGHT // 4 - 1, :].sum() > 0.9 * white_in_mask


def test_five_segment_warp_is_batched_and_differentiable():
    flat = flat_tshirt()
    keypoints = torch.stack([flat, crossed_arm(flat)])
    cloth = checkerboard(2)
    _, mask = segment_coloured_cloth(flat)
    mask = mask.expand(2, 1, HEIGHT, WIDTH)
    target = keypoints.clone().requires_grad_(True)
    batched = warp_garment(cloth, mask, flat.expand(2, 32, 2), target)
    for b in range(2):
        alone = warp_garment(cloth[b:b + 1], mask[b:b + 1], flat.unsqueeze(0), keypoints[b:b + 1])
        torch.testing.assert_close(batched.garment[b:b + 1], alone.garment, atol=1e-5, rtol=0)
        torch.testing.assert_close(batched.segment_masks[b:b + 1], alone.segment_masks)
    batched.garment.sum().backward()
    assert torch.isfinite(target.grad).all() and target.grad.abs().sum() > 0


def test_warps_refuse_bad_shapes():
    cloth, mask = segment_coloured_cloth(flat_tshirt())
    keypoints = flat_tshirt().unsqueeze(0)
    with pytest.raises(WarpInputError, match="cloth_mask"):
        warp_garment(cloth, mask[:, :, :10], keypoints, keypoints)
    with pytest.raises(WarpInputError, match="target_kp"):
        warp_garment(cloth, mask, keypoints, keypoints[:, :10], method="single_tps")
    with pytest.raises(WarpInputError, match="five_segments, single_tps"):
        warp_garment(cloth, mask, keypoints, keypoints, method="five")


def test_the_back_seen_through_the_front_neckline_is_not_worn():
    """A product photo shows the inside of the back through a V neckline: the mask covers it, but worn it is
    behind the person's neck, so the warp leaves it out and keeps the rest."""
    flat = flat_tshirt().unsqueeze(0)  # neckline 0 (0.38, 0.12) - 2 (0.50, 0.20) - 4 (0.62, 0.12)
    cloth = checkerboard(1)
    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
    mask[..., round(0.10 * HEIGHT):round(0.86 * HEIGHT), round(0.3 * WIDTH):round(0.7 * WIDTH)] = 1
    worn = warp_garment(cloth, mask, flat, flat, method="single_tps")
    inside_v = (round(0.14 * HEIGHT), round(0.50 * WIDTH))  # between the neck corners' line and the V's bottom
    below_v, beside_v = (round(0.30 * HEIGHT), round(0.50 * WIDTH)), (round(0.14 * HEIGHT), round(0.32 * WIDTH))
    assert mask[0, 0][inside_v] == 1 and worn.mask[0, 0][inside_v] == 0
    assert worn.mask[0, 0][below_v] == 1 and worn.mask[0, 0][beside_v] == 1
    hole = polygon_masks(flat[:, [0, 1, 2, 3, 4]], HEIGHT, WIDTH)[0, 0] > 0
    assert ((worn.mask[0, 0] > 0) == ((mask[0, 0] > 0) & ~hole)).float().mean() > 0.995
    # Where it went is known: the person's neck shows there (``kgi.recompose``), never the garment.
    assert worn.neck_hole[0, 0][inside_v] == 1 and worn.neck_hole[0, 0][below_v] == 0
    assert not (worn.neck_hole.bool() & worn.mask.bool()).any()
    above_corners = (round(0.05 * HEIGHT), round(0.50 * WIDTH))  # the neck, above the neckline
    above_shoulder = (round(0.05 * HEIGHT), round(0.32 * WIDTH))
    assert worn.neck_hole[0, 0][above_corners] == 1 and worn.neck_hole[0, 0][above_shoulder] == 0
    moved = warp_garment(cloth, mask, flat, flat + torch.tensor([0.05, 0.03]))  # the five segments, shifted
    shifted_v = (round(0.17 * HEIGHT), round(0.55 * WIDTH))
    assert moved.neck_hole[0, 0][shifted_v] == 1 and moved.mask[0, 0][shifted_v] == 0


def _neckline_photo(neckline: list, fabric: tuple, inside: tuple, inside_polygon: list) -> tuple:
    """The single-spline warp, keypoints unmoved, of a 256-row flat photo of ``fabric`` colour with ``neckline``
    (nodes 0-4) and the ``inside_polygon`` (fractions of the width and height) of ``inside`` colour: the worn
    garment mask and the inside's pixels in the garment mask, (H, W) bool each."""
    height, width = 256, 192
    flat = flat_tshirt().unsqueeze(0).clone()
    flat[0, :5] = torch.tensor(neckline)
    mask = torch.zeros(1, 1, height, width)
    mask[..., round(0.08 * height):round(0.86 * height), round(0.3 * width):round(0.7 * width)] = 1
    rgb = np.full((height, width, 3), fabric, np.uint8)
    shown = np.zeros((height, width), np.uint8)
    cv2.fillPoly(shown, [np.round(np.array(inside_polygon) * [width, height]).astype(np.int32)], 1)
    rgb[shown.astype(bool)] = inside
    cloth = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    worn = warp_garment(cloth, mask, flat, flat, method="single_tps")
    return worn.mask[0, 0].bool().numpy(), shown.astype(bool) & mask[0, 0].bool().numpy()


def test_the_shaded_inside_beside_a_round_necklines_curve_is_not_worn_but_a_vs_facing_is():
    """A crew neck's product photo shows the dark inside of the back from corner to corner, a U the curve through
    the five neckline nodes cuts at the corners: all of it is left out (left in, it was a dark band along the worn
    neckline). A white tee's white inside is the front's colour: only the curve's hole is left out. A V's darker
    facing, outside the V, is its own front: worn."""
    angles = np.linspace(0, np.pi, 25)
    u = [(0.5 - 0.12 * np.cos(a), 0.08 + 0.09 * np.sin(a)) for a in angles]  # corner to corner, down to 0.17
    crew = [(0.38, 0.08), (0.4236, 0.1494), (0.5, 0.17), (0.5764, 0.1494), (0.62, 0.08)]  # nodes on the U
    worn, inside = _neckline_photo(crew, (230, 30, 30), (70, 10, 10), u)
    assert not (worn & inside).any()
    assert worn[round(0.19 * 256), 96]  # the front below the neckline
    worn, inside = _neckline_photo(crew, (245, 245, 245), (240, 240, 240), u)
    assert 0.1 * inside.sum() < (worn & inside).sum() < 0.25 * inside.sum()  # the corners beside the curve
    v = [(0.38, 0.08), (0.44, 0.19), (0.5, 0.30), (0.56, 0.19), (0.62, 0.08)]
    worn, dark = _neckline_photo(v, (230, 30, 30), (70, 10, 10), [(0.35, 0.08), (0.5, 0.34), (0.65, 0.08)])
    facing = dark & (polygon_masks(torch.tensor([v]), 256, 192)[0, 0] == 0).numpy()
    assert (worn & facing).sum() > 0.95 * facing.sum()


def test_the_photos_outline_blended_with_its_background_is_not_pasted():
    """A product photo at 512 rows blends the cloth's outermost pixel with the white background: inside the mask,
    it would be stretched into a pale line along the worn garment's edge."""
    height, width = 512, 384
    flat = flat_tshirt().unsqueeze(0)
    mask = torch.zeros(1, 1, height, width)
    mask[..., 60:440, 110:274] = 1
    cloth = torch.where(mask > 0, 0.2, 1.0).expand(1, 3, height, width).clone()
    cloth[..., 60, 110:274] = cloth[..., 439, 110:274] = 0.9  # the blended outline, top and bottom rows
    cloth[..., 60:440, 110] = cloth[..., 60:440, 273] = 0.9  # and sides
    worn = warp_garment(cloth, mask, flat, flat, method="single_tps")
    garment = worn.mask[0, 0] > 0
    assert garment.float().sum() > 0.94 * mask.sum()  # all but the rim and the neck hole (about 5%)
    assert worn.garment[0, :, garment].max() < 0.5


@pytest.mark.parametrize("garment_colour, band_kept", [((0.1, 0.1, 0.1), False), ((0.96, 0.96, 0.96), True)])
def test_backdrop_a_loose_mask_takes_in_at_the_outline_is_not_pasted(garment_colour, band_kept):
    """A mask made from a photo closes the narrow wedges of backdrop at its concave corners, where a dark garment's
    edge casts a grey shadow (the black Stussy tee's cuff: a white line along the worn cuff). A band of the
    backdrop's colour inside the mask, at its outline, is not pasted on a garment that stands out from its
    backdrop; a white garment on white, whose edges are the backdrop's colour, keeps every pixel."""
    height, width = 512, 384
    flat = flat_tshirt().unsqueeze(0)
    mask = torch.zeros(1, 1, height, width)
    mask[..., 60:440, 110:274] = 1
    cloth = torch.ones(1, 3, height, width)  # a white backdrop
    cloth[..., 60:440, 110:274] = torch.tensor(garment_colour).view(3, 1, 1)
    cloth[..., 60:440, 270:274] = 0.8  # a 4-pixel band of shaded backdrop inside the mask along one side
    worn = warp_garment(cloth, mask, flat, flat, method="single_tps")
    garment = worn.mask[0, 0] > 0
    band, body = garment[150:400, 270:273], garment[150:400, 150:260]  # the outermost pixel is the rim
    assert body.all()
    assert band.all() if band_kept else not band.any()


def test_segment_borders_at_full_size_do_not_step_on_the_geometry_grid():
    """The segment each pixel shows is chosen at ``GEOMETRY_HEIGHT`` rows; at 1024 rows a border taken from the
    nearest small pixel changes only every fourth row (a staircase), one from the segments' upsampled shares on
    any row."""
    height, width = 1024, 768
    flat = flat_tshirt().unsqueeze(0)
    worn = crossed_arm(flat[0]).unsqueeze(0)
    cloth, mask = segment_coloured_cloth(flat[0])
    cloth = torch.nn.functional.interpolate(cloth, size=(height, width), mode="nearest")
    mask = torch.nn.functional.interpolate(mask, size=(height, width), mode="nearest")
    warped = warp_garment(cloth, mask, flat, worn)
    segments, shown = warped.segment_masks[0].argmax(0), warped.mask[0, 0] > 0  # (H, W) each
    border = (segments[1:] != segments[:-1]) & shown[1:] & shown[:-1]  # between two segments, rows r and r + 1
    rows = torch.nonzero(border)[:, 0]
    assert len(rows) > 0 and (rows % 4 != 3).float().mean() > 0.3


@pytest.mark.parametrize("size", [(1024, 768), (700, 525)])
def test_full_size_window_reads_the_small_maps_as_upsampling_does(size):
    """At full size the warp reads its small maps on a window only: the segments' shares and outline bilinearly, and
    each pixel's own segment's grid. Both equal ``F.interpolate``'s upsampling of the whole map (then the grid of the
    pixel's segment picked), up to rounding, on windows inside the image and at its edges (where it clamps)."""
    from kgi.warp import _bilinear_at, _own_segment_grid, _source_coordinates, _upsampled_span
    height, width = size
    generator = torch.Generator().manual_seed(0)
    small = torch.nn.functional.avg_pool2d(torch.rand(2, 5, 2, 40, 30, generator=generator).flatten(0, 1), 3, 1, 1)
    grids = small.view(2, 5, 2, 40, 30).permute(0, 1, 3, 4, 2)  # (B, S, h, w, 2) smooth maps
    upsampled = torch.nn.functional.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    upsampled = upsampled.view(2, 5, 2, height, width)
    for small_rows, small_columns in ((slice(0, 40), slice(0, 30)), (slice(10, 25), slice(3, 17)),
                                      (slice(35, 40), slice(0, 4))):
        rows, columns = _upsampled_span(small_rows, 40, height), _upsampled_span(small_columns, 30, width)
        assert rows.start <= small_rows.start * height / 40 and rows.stop >= small_rows.stop * height / 40
        source_rows, source_columns = _source_coordinates(rows, 40, height), _source_coordinates(columns, 30, width)
        read = _bilinear_at(grids[..., 0], source_rows, source_columns)  # (B, 5, R, Q)
        torch.testing.assert_close(read, upsampled[:, :, 0, rows, columns], atol=1e-5, rtol=0)
        segment = torch.randint(0, 5, (2, 1, rows.stop - rows.start, columns.stop - columns.start),
                                generator=generator).float()
        expected = upsampled[..., rows, columns].gather(
            1, segment.long().unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, 0].permute(0, 2, 3, 1)
        torch.testing.assert_close(_own_segment_grid(grids, segment, source_rows, source_columns), expected,
                                   atol=1e-5, rtol=0)
