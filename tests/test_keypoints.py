"""Stage 1: the SemGCN layer, the two-stream keypoint network, its loss, and the geometric baseline."""

from __future__ import annotations

import math

import pytest
import torch

from kgi.baseline import fit_similarity, geometric_transfer
from kgi.graphs import GARMENT_EDGES, NUM_GARMENT_NODES, KeypointInputError, edge_index, garment_edge_index
from kgi.models.checkpoint import CheckpointError
from kgi.models.keypoints import (
    GARMENT_MIRROR,
    POSE_MIRROR,
    KeypointGNN,
    SemGraphConv,
    keypoint_loss,
    mean_keypoint_error,
    mirror_keypoints,
)

ASPECT = 0.75


def flat_garment(sleeve: str = "long") -> torch.Tensor:
    """A hand-drawn flat T-shirt, (32, 2) normalised: the image-left half written out, the right half mirrored."""
    left = {
        0: (0.40, 0.15), 1: (0.45, 0.19), 2: (0.50, 0.21), 5: (0.30, 0.17),
        6: (0.26, 0.22), 7: (0.20, 0.40), 8: (0.16, 0.55), 9: (0.14, 0.62), 10: (0.20, 0.64),
        11: (0.22, 0.57), 12: (0.27, 0.43), 13: (0.31, 0.33), 14: (0.33, 0.32),
        15: (0.33, 0.45), 16: (0.33, 0.60), 17: (0.33, 0.78), 18: (0.50, 0.79),
    }
    points = torch.zeros(NUM_GARMENT_NODES, 2)
    for node, xy in left.items():
        points[node] = torch.tensor(xy)
    if sleeve == "none":  # sleeve nodes evenly on the armhole from shoulder 5 to armpit 14
        for k, node in enumerate(range(6, 14), start=1):
            points[node] = points[5] + k / 9 * (points[14] - points[5])
    mirrored = torch.tensor(GARMENT_MIRROR)
    right = [n for n in range(NUM_GARMENT_NODES) if n not in left and not (sleeve == "none" and 6 <= n <= 13)]
    points[right] = torch.tensor([1.0, 0.0]) + torch.tensor([-1.0, 1.0]) * points[mirrored[right]]
    return points


def similarity(points: torch.Tensor, scale: float, angle: float, shift: tuple[float, float]) -> torch.Tensor:
    """A similarity applied in isotropic units (x * aspect, y), returned normalised."""
    iso = torch.tensor([ASPECT, 1.0])
    rotation = scale * torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return ((points * iso) @ rotation.T + torch.tensor(shift)) / iso


def pose_for(worn: torch.Tensor, hip_half_width: float = 0.08, arm_stretch: float = 1.3) -> torch.Tensor:
    """A pose whose shoulders, hips and arms agree exactly with a worn garment (normalised, (10, 2))."""
    iso = torch.tensor([ASPECT, 1.0])
    g = worn * iso
    pose = torch.zeros(10, 2)
    pose[2], pose[5] = g[5], g[31]
    pose[1] = 0.5 * (g[5] + g[31])
    pose[0] = pose[1] - torch.tensor([0.0, 0.1])
    hem = g[[17, 18, 19]].mean(0)
    across = (g[31] - g[5]) / (g[31] - g[5]).norm()
    pose[8], pose[9] = hem - hip_half_width * across, hem + hip_half_width * across
    for (shoulder, elbow, wrist), (armhole, elbow_nodes, cuff_nodes) in (
        ((2, 3, 4), ((5, 14), (7, 12), (9, 10))), ((5, 6, 7), ((31, 22), (29, 24), (27, 26)))
    ):
        axis_upper = g[list(elbow_nodes)].mean(0) - g[list(armhole)].mean(0)
        axis_lower = g[list(cuff_nodes)].mean(0) - g[list(elbow_nodes)].mean(0)
        pose[elbow] = pose[shoulder] + arm_stretch * axis_upper
        pose[wrist] = pose[elbow] + arm_stretch * axis_lower
    return pose / iso


# ---------------------------------------------------------------- SemGraphConv


def dense_semgcn(layer: SemGraphConv, x: torch.Tensor) -> torch.Tensor:
    """The layer's equation written with a dense N x N weight matrix."""
    n = layer.num_nodes
    logits = torch.full((n, n), float("-inf"))
    source, target = layer.edge_index
    num_edges = source.numel()
    logits[target, source] = layer.edge_logit.detach()[:num_edges]  # row i: weights of the edges j -> i
    logits[range(n), range(n)] = layer.edge_logit.detach()[num_edges:]
    alpha = logits.softmax(dim=1)
    diag = torch.diagonal(alpha)
    w0, w1 = layer.lin_self.weight.detach(), layer.lin_neighbour.weight.detach()
    return diag[:, None] * (x @ w0.T) + (alpha - torch.diag(diag)) @ (x @ w1.T) + layer.bias.detach()


def test_semgcn_layer_matches_dense_equation():
    torch.manual_seed(0)
    layer = SemGraphConv(3, 5, edge_index(((0, 1), (1, 2), (2, 3), (1, 3))), num_nodes=4)
    with torch.no_grad():
        layer.edge_logit.normal_()
        layer.bias.normal_()
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(layer(x), dense_semgcn(layer, x))


def test_semgcn_untrained_weights_average_the_neighbourhood():
    layer = SemGraphConv(1, 1, edge_index(((0, 1), (1, 2))), num_nodes=3)
    alpha_edge, alpha_self = layer.edge_weights()
    sums = alpha_self + torch.zeros(3).index_add_(0, layer.edge_index[1], alpha_edge)
    torch.testing.assert_close(sums, torch.ones(3))
    torch.testing.assert_close(alpha_edge[layer.edge_index[1] == 1], torch.full((2,), 1 / 3))
    torch.testing.assert_close(alpha_self, torch.tensor([1 / 2, 1 / 3, 1 / 2]))


def test_semgcn_is_permutation_equivariant():
    torch.manual_seed(1)
    edges = garment_edge_index()
    layer = SemGraphConv(2, 4, edges, NUM_GARMENT_NODES)
    with torch.no_grad():
        layer.edge_logit.normal_()
    perm = torch.randperm(NUM_GARMENT_NODES)  # new node k is old node perm[k]
    inverse = torch.argsort(perm)
    permuted = SemGraphConv(2, 4, inverse[edges], NUM_GARMENT_NODES)
    permuted.load_state_dict(layer.state_dict())
    num_edges = edges.size(1)
    with torch.no_grad():
        permuted.edge_logit[num_edges:] = layer.edge_logit[num_edges:][perm]  # self-loop weights follow the nodes
    x = torch.randn(3, NUM_GARMENT_NODES, 2)
    torch.testing.assert_close(permuted(x[:, perm]), layer(x)[:, perm])


def test_semgcn_rejects_self_loops():
    with pytest.raises(ValueError, match="self loops"):
        SemGraphConv(2, 2, torch.tensor([[0, 1], [0, 0]]), num_nodes=2)


# ---------------------------------------------------------------- KeypointGNN


def random_batch(batch: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    cloth = flat_garment() + 0.02 * torch.randn(batch, NUM_GARMENT_NODES, 2, generator=generator)
    pose = pose_for(flat_garment()) + 0.02 * torch.randn(batch, 10, 2, generator=generator)
    return cloth, pose


def untrained_network() -> KeypointGNN:
    """A small network in eval mode whose zero-initialised output layer is given random weights, so the
    output depends on every input."""
    model = KeypointGNN(garment_channels=32, pose_channels=16).eval()
    with torch.no_grad():
        for weight in (model.garment_out.lin_self.weight, model.garment_out.lin_neighbour.weight):
            weight.normal_(std=0.1)
    return model


def test_untrained_network_is_the_geometric_baseline():
    """With its zero-initialised output layer, the network reproduces the geometric transfer it corrects."""
    cloth, pose = random_batch(3)
    with torch.no_grad():
        worn = KeypointGNN(garment_channels=8, pose_channels=8).eval()(cloth, pose)
    torch.testing.assert_close(worn, geometric_transfer(cloth, pose, ASPECT))


def test_network_shapes_and_batching_consistency():
    torch.manual_seed(0)
    model = untrained_network()
    cloth, pose = random_batch(5)
    with torch.no_grad():
        batched = model(cloth, pose)
        one_by_one = torch.cat([model(cloth[i:i + 1], pose[i:i + 1]) for i in range(5)])
    assert batched.shape == (5, NUM_GARMENT_NODES, 2)
    torch.testing.assert_close(batched, one_by_one)


def test_network_follows_the_person_and_ignores_the_flat_photo_scale():
    """Moving or scaling the person moves or scales the prediction alike; the flat garment's size is ignored."""
    torch.manual_seed(0)
    model = untrained_network()
    cloth, pose = random_batch(3)
    shift = torch.tensor([0.07, -0.04])
    neck = pose[:, 1:2]
    with torch.no_grad():
        reference = model(cloth, pose)
        torch.testing.assert_close(model(cloth, pose + shift), reference + shift)
        torch.testing.assert_close(model(cloth, neck + 0.8 * (pose - neck)), neck + 0.8 * (reference - neck))
        torch.testing.assert_close(model(0.5 + 1.3 * (cloth - 0.5), pose), reference)


@pytest.mark.parametrize("cloth_shape,pose_shape", [((2, 31, 2), (2, 10, 2)), ((2, 32, 2), (2, 10, 3)),
                                                    ((32, 2), (10, 2)), ((2, 32, 2), (3, 10, 2))])
def test_network_rejects_bad_shapes(cloth_shape, pose_shape):
    model = KeypointGNN(garment_channels=8, pose_channels=8)
    with pytest.raises(KeypointInputError):
        model(torch.rand(cloth_shape), torch.rand(pose_shape))


def test_network_rejects_nan():
    cloth, pose = random_batch(2)
    cloth[0, 3, 0] = float("nan")
    with pytest.raises(KeypointInputError, match="cloth_kp contains NaN"):
        KeypointGNN(garment_channels=8, pose_channels=8)(cloth, pose)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = KeypointGNN(garment_channels=24, pose_channels=12, blocks_per_depth=2)
    cloth, pose = random_batch(4)
    model.train()
    model(cloth, pose)  # moves the BatchNorm running statistics away from their initial values
    model.eval()
    path = tmp_path / "keypoints.safetensors"
    model.save(path)
    loaded = KeypointGNN.load(path)
    assert loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(cloth, pose), model(cloth, pose))


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        KeypointGNN.load(tmp_path / "missing.safetensors")
    from kgi.models.parse import ParseUNet

    ParseUNet(base_channels=4, max_channels=8).save(tmp_path / "parse.safetensors")
    with pytest.raises(CheckpointError, match="ParseUNet"):
        KeypointGNN.load(tmp_path / "parse.safetensors")


@pytest.mark.slow  # trains the graph network
def test_few_steps_overfit_a_tiny_batch():
    torch.manual_seed(0)
    model = KeypointGNN(garment_channels=32, pose_channels=16)
    cloth, pose = random_batch(8)
    # The untrained network is the baseline: the target moves every node away from it.
    offsets = 0.03 * torch.randn(8, NUM_GARMENT_NODES, 2, generator=torch.Generator().manual_seed(1))
    target = geometric_transfer(cloth, pose) + offsets
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, _ = keypoint_loss(model(cloth, pose), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


# ---------------------------------------------------------------- loss and metric


def test_loss_is_zero_at_target_and_positive_elsewhere():
    target = torch.stack([flat_garment(), flat_garment("none")])
    loss, parts = keypoint_loss(target.clone(), target)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    moved = target.clone()
    moved[1, 9] += torch.tensor([0.03, -0.02])
    loss, parts = keypoint_loss(moved, target)
    assert parts["node_mse"] > 0 and parts["edge_cos"] > 0 and loss > 0


def test_edge_term_uses_exactly_the_46_garment_edges():
    target = flat_garment().unsqueeze(0)
    assert len(GARMENT_EDGES) == 46
    for node in (2, 9, 17):
        pred = target.clone()
        pred[0, node] += torch.tensor([0.05, 0.03])
        _, parts = keypoint_loss(pred, target)
        incident = [(a, b) for a, b in GARMENT_EDGES if node in (a, b)]
        expected = sum(
            1 - torch.nn.functional.cosine_similarity(pred[0, b] - pred[0, a], target[0, b] - target[0, a], dim=0)
            for a, b in incident) / 46
        torch.testing.assert_close(parts["edge_cos"], expected)


def test_edge_term_ignores_translation_and_scale():
    target = flat_garment().unsqueeze(0)
    _, parts = keypoint_loss(1.2 * target + 0.05, target)
    assert parts["edge_cos"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["node_mse"] > 0


def test_mean_keypoint_error_in_image_heights():
    target = torch.zeros(1, 4, 2)
    pred = target + torch.tensor([0.0, 0.1])  # 0.1 image heights down
    assert mean_keypoint_error(pred, target).item() == pytest.approx(0.1)
    pred = target + torch.tensor([0.1, 0.0])  # 0.1 image widths right = 0.075 heights at 3:4
    assert mean_keypoint_error(pred, target).item() == pytest.approx(0.075)


# ---------------------------------------------------------------- mirror augmentation


def test_mirror_maps_are_involutions_that_swap_sides():
    assert sorted(GARMENT_MIRROR) == list(range(NUM_GARMENT_NODES))
    assert all(GARMENT_MIRROR[GARMENT_MIRROR[i]] == i for i in range(NUM_GARMENT_NODES))
    assert all(POSE_MIRROR[POSE_MIRROR[i]] == i for i in range(10))
    # Mirroring maps the garment graph onto itself.
    edges = {frozenset(e) for e in GARMENT_EDGES}
    assert {frozenset((GARMENT_MIRROR[a], GARMENT_MIRROR[b])) for a, b in GARMENT_EDGES} == edges
    # The hand-drawn garment is symmetric: mirroring it gives it back.
    cloth = flat_garment().unsqueeze(0)
    mirrored, _, _ = mirror_keypoints(cloth, torch.zeros(1, 10, 2), cloth)
    torch.testing.assert_close(mirrored, cloth)


# ---------------------------------------------------------------- geometric baseline


def test_fit_similarity_recovers_a_known_transform():
    source = torch.rand(2, 5, 2)
    rotation = 1.7 * torch.tensor([[math.cos(0.4), -math.sin(0.4)], [math.sin(0.4), math.cos(0.4)]])
    target = source @ rotation.T + torch.tensor([0.3, -0.1])
    torch.testing.assert_close(fit_similarity(source, target)(source), target)


@pytest.mark.parametrize("sleeve", ["long", "none"])
def test_baseline_maps_garment_onto_a_similar_pose_exactly(sleeve):
    garment = flat_garment(sleeve)
    worn = similarity(garment, scale=0.8, angle=0.2, shift=(0.05, 0.1))
    pose = pose_for(similarity(flat_garment(), scale=0.8, angle=0.2, shift=(0.05, 0.1)))
    torch.testing.assert_close(geometric_transfer(garment, pose), worn, atol=1e-5, rtol=0)


def test_baseline_bends_sleeves_along_the_arms():
    garment = flat_garment()
    worn = similarity(garment, scale=0.9, angle=-0.1, shift=(0.02, 0.05))
    pose = pose_for(worn)
    iso = torch.tensor([ASPECT, 1.0])
    # Raise the person's right arm (image-left sleeve): upper arm turned by 1 rad, forearm by a further 0.8 rad.
    shoulder, elbow, wrist = pose[2] * iso, pose[3] * iso, pose[4] * iso
    turn = lambda v, a: torch.stack([math.cos(a) * v[0] - math.sin(a) * v[1], math.sin(a) * v[0] + math.cos(a) * v[1]])
    new_elbow = shoulder + turn(elbow - shoulder, -1.0)
    new_wrist = new_elbow + turn(wrist - elbow, -1.8)
    pose[3], pose[4] = new_elbow / iso, new_wrist / iso
    result = geometric_transfer(garment, pose) * iso
    expected = worn * iso
    untouched = [n for n in range(NUM_GARMENT_NODES) if not 6 <= n <= 13]
    torch.testing.assert_close(result[untouched], expected[untouched], atol=1e-5, rtol=0)

    def direction(v):
        return v / v.norm()

    sleeve_axis = result[[7, 12]].mean(0) - result[[5, 14]].mean(0)
    torch.testing.assert_close(direction(sleeve_axis), direction(new_elbow - shoulder), atol=1e-5, rtol=0)
    forearm_axis = result[[9, 10]].mean(0) - result[[7, 12]].mean(0)
    torch.testing.assert_close(direction(forearm_axis), direction(new_wrist - new_elbow), atol=1e-5, rtol=0)
    # The sleeve moved rigidly in each half: its upper and lower shapes keep their side lengths.
    for a, b in ((6, 7), (7, 12), (12, 13), (8, 9), (9, 10), (10, 11), (8, 11)):
        assert (result[a] - result[b]).norm().item() == pytest.approx((expected[a] - expected[b]).norm().item(),
                                                                      abs=1e-5)


def test_baseline_is_batched_and_mirror_equivariant():
    torch.manual_seed(0)
    cloth, pose = random_batch(6)
    batched = geometric_transfer(cloth, pose)
    torch.testing.assert_close(batched, torch.stack([geometric_transfer(c, p) for c, p in zip(cloth, pose)]))
    mirrored_cloth, mirrored_pose, mirrored_out = mirror_keypoints(cloth, pose, batched)
    torch.testing.assert_close(geometric_transfer(mirrored_cloth, mirrored_pose), mirrored_out, atol=1e-5, rtol=0)


def test_baseline_rejects_bad_input():
    with pytest.raises(KeypointInputError, match="pose_nodes"):
        geometric_transfer(flat_garment(), torch.rand(9, 2))
