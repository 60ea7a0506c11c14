"""Stage 1 of KGI: a two-stream graph network that places a flat garment's 32 keypoints on a person.

The garment stream runs over the 32-node garment graph (``kgi.graphs.garment_edge_index``) and regresses the
garment keypoints on the person; the pose stream runs over the 10-node pose graph
(``kgi.graphs.pose_edge_index``) and feeds its node features into the garment stream at three depths. Both
streams are stacks of :class:`SemGraphConv`, the SemGCN graph convolution with learnable edge weights.

Batching is *dense*: every sample has the same graph, so node features are ``(B, N, C)`` tensors and each
layer's ``MessagePassing`` propagates along ``node_dim=-2`` with one shared ``edge_index``. No torch-geometric
``Batch`` objects are built.

Coordinates are normalised (``x / W``, ``y / H``; ``docs/ARCHITECTURE.md``). Inside the network both keypoint
sets are put in their own frame, in isotropic units (``x * aspect``, ``y``) so that distances mean the same along
both axes:

* garment: centred on the midpoint of nodes 2 (neckline centre) and 18 (hem centre), as in KGI, and divided by
  its size, the shoulder width (nodes 5-31) plus the centre length (2-18). The flat photo's scale says nothing
  about how large the garment is worn, so only its shape enters.
* person: centred on the neck (pose node 1) and divided by the person's size, shoulder width (2-5) plus torso
  length (neck to the hip midpoint).

The garment stream starts from the geometric transfer of ``kgi.baseline`` (the flat garment placed on the torso
by a similarity and its sleeves bent along the arms) and regresses each node's correction to it, in the person's
frame. Every garment node's input is its flat-shape position (garment frame) and its baseline position (person
frame); the zero-initialised output layer makes an untrained network reproduce the baseline exactly, so training
spends its capacity on what the hand-made rule gets wrong (shoulder seams, hem length, sleeve drape, folds) rather
than on relearning the body's geometry. ``forward`` maps the result back to absolute normalised positions on the
person; the layers never see where the person stands or how large they are in the picture (the network is
equivariant to moving and scaling the person by construction).

Example::

    model = KeypointGNN()
    worn = model(cloth_kp, pose_nodes)          # (B, 32, 2) normalised, on the person
    loss, parts = keypoint_loss(worn, target)   # parts: {"node_mse": ..., "edge_cos": ...}
    model.save("/tmp/keypoints.safetensors")
    model = KeypointGNN.load("/tmp/keypoints.safetensors")
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from kgi.baseline import geometric_transfer
from kgi.graphs import (
    GARMENT_EDGES,
    NUM_GARMENT_NODES,
    NUM_POSE_NODES,
    KeypointInputError,
    check_keypoints,
    garment_edge_index,
    pose_edge_index,
)
from kgi.models.checkpoint import SafetensorsModel

# Index maps of a horizontal flip: node i of the mirrored graph is node MIRROR[i] of the original.
# Garment: the neckline 0-4 reverses, and i <-> 36 - i swaps the image-left and image-right halves (5 <-> 31,
# sleeve 6-13 <-> 30-23, armpit 14 <-> 22, sides 15-17 <-> 21-19, hem centre 18 stays).
GARMENT_MIRROR: tuple[int, ...] = (4, 3, 2, 1, 0, *(36 - i for i in range(5, NUM_GARMENT_NODES)))
# Pose: the person's right and left joints swap (shoulder, elbow, wrist, hip); nose and neck stay.
POSE_MIRROR: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 9, 8)


# Smallest frame size (isotropic normalised units) a keypoint set may have before it counts as collapsed.
_MIN_FRAME_SIZE = 1e-3


class SemGraphConv(MessagePassing):
    r"""Graph convolution with learnable, softmax-normalised edge weights (SemGCN, Zhao et al., CVPR 2019).

    .. math::
        \mathbf{x}'_i = \alpha_{ii}\,\mathbf{W}_0\,\mathbf{x}_i
            + \sum_{j \in \mathcal{N}(i)} \alpha_{ij}\,\mathbf{W}_1\,\mathbf{x}_j + \mathbf{b},
        \qquad
        \alpha_{ij} = \frac{\exp m_{ij}}{\sum_{k \in \mathcal{N}(i) \cup \{i\}} \exp m_{ik}}

    with one learnable scalar :math:`m_{ij}` per directed edge :math:`j \to i` and per self loop :math:`m_{ii}`
    (initialised to 0, so an untrained layer averages over the neighbourhood), a weight :math:`\mathbf{W}_0` for
    the node itself and :math:`\mathbf{W}_1` shared by its neighbours.

    ``message`` weighs the neighbours' :math:`\mathbf{W}_1\mathbf{x}_j` along the edges; ``update`` adds the
    self-loop term and the bias to their sum. The graph is fixed at construction because the edge weights belong
    to its edges. Node features are dense, ``(..., N, C)``: any leading batch dimensions share the graph.

    Args:
        in_channels: input features per node.
        out_channels: output features per node.
        edge_index: (2, E) directed edges ``source -> target`` without self loops (both directions listed for an
            undirected graph, as ``kgi.graphs.edge_index`` returns).
        num_nodes: number of nodes N.
    """

    def __init__(self, in_channels: int, out_channels: int, edge_index: torch.Tensor, num_nodes: int):
        super().__init__(aggr="add", node_dim=-2)
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
        if (edge_index[0] == edge_index[1]).any():
            raise ValueError("edge_index must not contain self loops: the layer adds its own")
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
            raise ValueError(f"edge_index refers to nodes outside 0..{num_nodes - 1}")
        # The graph is part of the architecture, not of the weights: kept out of the state dict.
        self.register_buffer("edge_index", edge_index.long(), persistent=False)  # (2, E)
        # Target node of every weight m: the E edges, then the N self loops.
        self.register_buffer("weight_target", torch.cat([edge_index[1].long(), torch.arange(num_nodes)]),
                             persistent=False)  # (E + N,)
        self.num_nodes = num_nodes
        self.edge_logit = nn.Parameter(torch.zeros(edge_index.size(1) + num_nodes))  # m_ij (E), then m_ii (N)
        self.lin_self = nn.Linear(in_channels, out_channels, bias=False)  # W_0
        self.lin_neighbour = nn.Linear(in_channels, out_channels, bias=False)  # W_1
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def edge_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised weights: alpha_ij per edge of ``edge_index`` (E,) and alpha_ii per node (N,)."""
        alpha = softmax(self.edge_logit, self.weight_target, num_nodes=self.num_nodes)
        return alpha[: self.edge_index.size(1)], alpha[self.edge_index.size(1):]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (..., N, in_channels) node features. Returns (..., N, out_channels)."""
        alpha_edge, alpha_self = self.edge_weights()
        return self.propagate(self.edge_index, x=self.lin_neighbour(x), alpha=alpha_edge,
                              x_self=self.lin_self(x), alpha_self=alpha_self)

    def message(self, x_j: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        # x_j: (..., E, out) W_1 x_j of each edge's source node; alpha: (E,)
        return alpha.unsqueeze(-1) * x_j

    def update(self, aggr_out: torch.Tensor, x_self: torch.Tensor, alpha_self: torch.Tensor) -> torch.Tensor:
        # aggr_out: (..., N, out) the neighbour sum; the self-loop term alpha_ii W_0 x_i and the bias join here.
        return aggr_out + alpha_self.unsqueeze(-1) * x_self + self.bias


class GraphConvBlock(nn.Module):
    """``SemGraphConv`` -> BatchNorm over channels -> ReLU, on (B, N, C) features."""

    def __init__(self, in_channels: int, out_channels: int, edge_index: torch.Tensor, num_nodes: int):
        super().__init__()
        self.conv = SemGraphConv(in_channels, out_channels, edge_index, num_nodes)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (B, N, C)
        h = self.norm(h.transpose(1, 2)).transpose(1, 2)  # BatchNorm1d wants (B, C, N)
        return torch.relu(h)


class GraphResBlock(nn.Module):
    """Two ``GraphConvBlock`` with a residual connection, as in SemGCN: ``x + block2(block1(x))``."""

    def __init__(self, channels: int, edge_index: torch.Tensor, num_nodes: int):
        super().__init__()
        self.block1 = GraphConvBlock(channels, channels, edge_index, num_nodes)
        self.block2 = GraphConvBlock(channels, channels, edge_index, num_nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block2(self.block1(x))


class PoseToGarment(nn.Module):
    r"""Feeds pose-node features into the garment nodes.

    .. math::
        \mathbf{g}_i \mathrel{+}= \sum_{k=1}^{10} \beta_{ik}\,\mathbf{W}\,\mathbf{p}_k,
        \qquad \beta_{ik} = \operatorname{softmax}_k(a_{ik})

    with a learnable logit :math:`a_{ik}` for every (garment node i, pose node k) pair, initialised to 0 (an
    untrained fusion gives every garment node the pooled pose feature; training lets a sleeve node attend to its
    arm's joints).

    Args:
        pose_channels: pose feature width.
        garment_channels: garment feature width.
    """

    def __init__(self, pose_channels: int, garment_channels: int):
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(NUM_GARMENT_NODES, NUM_POSE_NODES))
        self.lin = nn.Linear(pose_channels, garment_channels)

    def forward(self, garment: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Args: garment (B, 32, Cg), pose (B, 10, Cp). Returns garment + fused pose features, (B, 32, Cg)."""
        return garment + self.logit.softmax(dim=-1) @ self.lin(pose)  # (32, 10) @ (B, 10, Cg)


class KeypointGNN(SafetensorsModel):
    """Two-stream keypoint network: flat-garment keypoints + person pose -> garment keypoints on the person.

    Architecture (``Cg = garment_channels``, ``Cp = pose_channels``, ``R = blocks_per_depth``)::

        garment (B,32,4) -> GraphConvBlock 4->Cg -> [+ fuse(pose_d) -> R x GraphResBlock] x 3 -> SemGraphConv Cg->2
        pose    (B,10,2) -> GraphConvBlock 2->Cp -> [R x GraphResBlock -> pose_d          ] x 3
        garment input = (flat shape in the garment frame, geometric baseline in the person frame)
        output = baseline + SemGraphConv output, mapped from the person's frame to the image

    The pose features after each of the three pose stages enter the garment stream through ``PoseToGarment``.
    The sleeve type is not an input: a sleeveless garment is recognisable by its collapsed sleeve nodes.

    Args:
        garment_channels: width of the garment stream (160 in KGI).
        pose_channels: width of the pose stream (512 in KGI; a smaller default trains quickly on CPU).
        blocks_per_depth: residual blocks in each of the three stages of both streams.
        aspect: image width / height of the cloth and person images (VITON-HD: 768 / 1024).
    """

    def __init__(self, garment_channels: int = 160, pose_channels: int = 128, blocks_per_depth: int = 1,
                 aspect: float = 0.75):
        super().__init__()
        if min(garment_channels, pose_channels, blocks_per_depth) < 1:
            raise ValueError("garment_channels, pose_channels and blocks_per_depth must be positive")
        if not aspect > 0:
            raise ValueError(f"aspect must be positive (image width / height), got {aspect}")
        self.config = {"garment_channels": garment_channels, "pose_channels": pose_channels,
                       "blocks_per_depth": blocks_per_depth, "aspect": aspect}
        garment_edges, pose_edges = garment_edge_index(), pose_edge_index()
        self.garment_in = GraphConvBlock(4, garment_channels, garment_edges, NUM_GARMENT_NODES)
        self.pose_in = GraphConvBlock(2, pose_channels, pose_edges, NUM_POSE_NODES)
        self.pose_stages = nn.ModuleList(
            nn.Sequential(*(GraphResBlock(pose_channels, pose_edges, NUM_POSE_NODES)
                            for _ in range(blocks_per_depth)))
            for _ in range(3))
        self.fusions = nn.ModuleList(PoseToGarment(pose_channels, garment_channels) for _ in range(3))
        self.garment_stages = nn.ModuleList(
            nn.Sequential(*(GraphResBlock(garment_channels, garment_edges, NUM_GARMENT_NODES)
                            for _ in range(blocks_per_depth)))
            for _ in range(3))
        self.garment_out = SemGraphConv(garment_channels, 2, garment_edges, NUM_GARMENT_NODES)
        for weight in (self.garment_out.lin_self.weight, self.garment_out.lin_neighbour.weight):
            nn.init.zeros_(weight)  # an untrained network is the geometric baseline

    def forward(self, cloth_kp: torch.Tensor, pose_nodes: torch.Tensor) -> torch.Tensor:
        """Place the garment on the person.

        Args:
            cloth_kp: (B, 32, 2) keypoints of the flat garment, normalised to the cloth image.
            pose_nodes: (B, 10, 2) pose-graph nodes of the person, normalised to the person image
                (``TryOnSample.pose_nodes``).

        Returns:
            (B, 32, 2) garment keypoints on the person, normalised to the person image.
        """
        check_keypoints(cloth_kp, NUM_GARMENT_NODES, "cloth_kp")
        check_keypoints(pose_nodes, NUM_POSE_NODES, "pose_nodes")
        if cloth_kp.size(0) != pose_nodes.size(0):
            raise KeypointInputError(
                f"cloth_kp and pose_nodes have different batch sizes ({cloth_kp.size(0)} vs {pose_nodes.size(0)})")
        aspect = self.config["aspect"]
        to_isotropic = torch.tensor([aspect, 1.0], dtype=cloth_kp.dtype, device=cloth_kp.device)
        garment_centre, garment_size = _frame(cloth_kp * to_isotropic, (2, 18), (5, 31), (2, 18))
        neck, person_size = _frame(pose_nodes * to_isotropic, (1,), (2, 5), (1, 8, 9))
        flat_shape = (cloth_kp * to_isotropic - garment_centre) / garment_size  # (B, 32, 2) garment frame
        baseline = geometric_transfer(cloth_kp, pose_nodes, aspect)  # (B, 32, 2) normalised, on the person
        baseline_shape = (baseline * to_isotropic - neck) / person_size  # (B, 32, 2) person frame
        garment = self.garment_in(torch.cat([flat_shape, baseline_shape], dim=-1))  # (B, 32, 4) -> (B, 32, Cg)
        pose = self.pose_in((pose_nodes * to_isotropic - neck) / person_size)
        for pose_stage, fuse, garment_stage in zip(self.pose_stages, self.fusions, self.garment_stages):
            pose = pose_stage(pose)
            garment = garment_stage(fuse(garment, pose))
        worn_shape = baseline_shape + self.garment_out(garment)  # (B, 32, 2) person frame
        return (neck + person_size * worn_shape) / to_isotropic


def _frame(points: torch.Tensor, origin: tuple[int, ...], across: tuple[int, int], down: tuple[int, ...]):
    """Origin (B, 1, 2) and size (B, 1, 1) of a keypoint set: the mean of the ``origin`` nodes, and the width
    between the two ``across`` nodes plus the length from the first ``down`` node to the mean of the others."""
    width = (points[:, across[0]] - points[:, across[1]]).norm(dim=-1)  # (B,)
    length = (points[:, down[0]] - points[:, list(down[1:])].mean(1)).norm(dim=-1)
    size = (width + length).clamp_min(_MIN_FRAME_SIZE)
    return points[:, list(origin)].mean(1, keepdim=True), size[:, None, None]


# Weight of the edge-direction term. KGI weighs it 1 against a node term in pixels; our node term is in normalised
# units, where a 3%-of-height error is an MSE near 1e-3, so at weight 1 the direction term swamped it and training
# moved nodes away from the targets to straighten edges (held-out error rose above the untrained network's). At
# 0.05 both terms fall together (measured: 250 steps took the held-out error from 0.030 to 0.017 of image height).
EDGE_WEIGHT = 0.05


def keypoint_loss(pred: torch.Tensor, target: torch.Tensor, edge_weight: float = EDGE_WEIGHT,
                  min_edge_length: float = 1e-6) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KGI's keypoint loss: node MSE plus ``edge_weight`` x (1 - cosine) over the garment graph's edges.

    The edge term compares the direction of every edge (the 32 contour and 14 symmetry edges,
    ``kgi.graphs.GARMENT_EDGES``) in ``pred`` with the same edge in ``target``. Target edges shorter than
    ``min_edge_length`` have no direction (a sleeveless garment's collapsed nodes may coincide) and are left out.

    Args:
        pred: (B, 32, 2) predicted keypoints.
        target: (B, 32, 2) true keypoints, same coordinates.
        edge_weight: weight of the edge term (``EDGE_WEIGHT``; see there why it is not KGI's 1).
        min_edge_length: target edges at most this long are ignored by the edge term.

    Returns:
        ``(loss, parts)``: the scalar loss, and ``{"node_mse", "edge_cos"}`` detached scalars.
    """
    check_keypoints(pred, NUM_GARMENT_NODES, "pred")
    check_keypoints(target, NUM_GARMENT_NODES, "target")
    if pred.shape != target.shape:
        raise KeypointInputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    node_mse = (pred - target).square().mean()
    start, end = torch.tensor(GARMENT_EDGES, device=pred.device).t()  # (46,), (46,)
    pred_edges = pred[:, end] - pred[:, start]  # (B, 46, 2)
    target_edges = target[:, end] - target[:, start]
    valid = target_edges.norm(dim=-1) > min_edge_length  # (B, 46)
    cosine = nn.functional.cosine_similarity(pred_edges, target_edges, dim=-1, eps=1e-12)
    edge_cos = ((1.0 - cosine) * valid).sum() / valid.sum().clamp(min=1)
    loss = node_mse + edge_weight * edge_cos
    return loss, {"node_mse": node_mse.detach(), "edge_cos": edge_cos.detach()}


def mean_keypoint_error(pred: torch.Tensor, target: torch.Tensor, aspect: float = 0.75) -> torch.Tensor:
    """Mean Euclidean keypoint distance as a fraction of the image height, per sample: (B,).

    Args:
        pred, target: (B, N, 2) normalised keypoints (``x / W``, ``y / H``).
        aspect: image width / height (VITON-HD: 768 / 1024), to measure x and y in the same unit.
    """
    if pred.shape != target.shape or pred.dim() != 3 or pred.size(-1) != 2:
        raise KeypointInputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (B, N, 2)")
    scale = torch.tensor([aspect, 1.0], dtype=pred.dtype, device=pred.device)
    return ((pred - target) * scale).norm(dim=-1).mean(dim=-1)


def mirror_keypoints(cloth_kp: torch.Tensor, pose_nodes: torch.Tensor, worn_kp: torch.Tensor):
    """Horizontal-flip augmentation of one training triple, node identities swapped to stay correct.

    ``x -> 1 - x`` in every image, then the garment's image-left and image-right nodes trade places
    (``GARMENT_MIRROR``) and so do the person's left and right joints (``POSE_MIRROR``).

    Args:
        cloth_kp: (B, 32, 2) flat-garment keypoints; pose_nodes: (B, 10, 2); worn_kp: (B, 32, 2), normalised.

    Returns:
        The mirrored ``(cloth_kp, pose_nodes, worn_kp)``.
    """
    return mirror_points(cloth_kp, GARMENT_MIRROR), mirror_points(pose_nodes, POSE_MIRROR), \
        mirror_points(worn_kp, GARMENT_MIRROR)


def mirror_points(points: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """(B, N, 2) normalised points of a graph flipped horizontally, ``x -> 1 - x``, node i of the result being node
    ``order[i]`` of ``points`` (``GARMENT_MIRROR`` or ``POSE_MIRROR``)."""
    flip = torch.tensor([-1.0, 1.0], dtype=points.dtype, device=points.device)
    offset = torch.tensor([1.0, 0.0], dtype=points.dtype, device=points.device)
    return (offset + flip * points)[:, list(order)]
