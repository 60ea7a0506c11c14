"""OpenPose BODY_25 poses: reading and writing the JSON, and the 10-node pose graph features."""

from __future__ import annotations

import json

import numpy as np

from kgi.graphs import NUM_POSE_NODES, POSE_BODY25_INDEX, POSE_FILL_FROM

NUM_BODY25 = 25


class PoseError(ValueError):
    """A pose that cannot be used: malformed JSON, wrong length, non-finite or negative numbers."""


def parse_openpose(text: str | bytes, *, source: str = "pose JSON") -> np.ndarray:
    """Parse OpenPose JSON (version 1.x, BODY_25) into a (25, 3) float32 array of (x px, y px, confidence).

    Args:
        text: the JSON document, as written by OpenPose (``{"people": [{"pose_keypoints_2d": [75 numbers]}]}``).
            A bare list of 75 numbers or of 25 triples is accepted too.
        source: what to call the input in error messages (a file name, a form field).

    Returns the first person's joints; undetected joints stay (0, 0, 0). Raises ``PoseError`` naming the source.
    """
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise PoseError(f"{source}: not valid JSON ({exc})") from None
    if isinstance(doc, dict):
        people = doc.get("people")
        if not isinstance(people, list) or not people:
            raise PoseError(f"{source}: no person in 'people'")
        if not isinstance(people[0], dict) or "pose_keypoints_2d" not in people[0]:
            raise PoseError(f"{source}: first person has no 'pose_keypoints_2d'")
        doc = people[0]["pose_keypoints_2d"]
    try:
        joints = np.asarray(doc, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise PoseError(f"{source}: keypoints must be numbers") from None
    if joints.size != NUM_BODY25 * 3:
        raise PoseError(f"{source}: expected {NUM_BODY25 * 3} numbers (BODY_25), got {joints.size}")
    joints = joints.reshape(NUM_BODY25, 3)
    if not np.isfinite(joints).all():
        raise PoseError(f"{source}: keypoints contain NaN or infinity")
    if (joints < 0).any():
        raise PoseError(f"{source}: keypoints contain negative numbers")
    return joints.astype(np.float32)


def openpose_json(body25: np.ndarray) -> str:
    """Serialise a (25, 3) pose as OpenPose 1.3 JSON (the VITON-HD ``openpose_json`` schema)."""
    flat = [round(float(v), 3) for v in np.asarray(body25, dtype=np.float64).reshape(-1)]
    person = {"person_id": [-1], "pose_keypoints_2d": flat, "face_keypoints_2d": [],
              "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
              "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}
    return json.dumps({"version": 1.3, "people": [person]})


def pose_graph_nodes(body25: np.ndarray, width: int, height: int) -> np.ndarray:
    """The 10 pose-graph node positions, normalised to [0, 1] by image width and height: (10, 2) float32.

    Undetected joints (confidence 0) are filled as KGI does: nose, shoulders and hips take the neck;
    elbows and wrists take the previous joint of their arm. Raises ``PoseError`` if the neck is missing and
    nothing can stand in for it.
    """
    joints = np.asarray(body25, dtype=np.float32)[list(POSE_BODY25_INDEX)]  # (10, 3)
    found = joints[:, 2] > 0
    nodes = joints[:, :2].copy()
    if not found[1]:
        shoulders = [i for i in (2, 5) if found[i]]
        if not shoulders:
            raise PoseError("pose has neither a neck nor a shoulder: no person found")
        nodes[1] = nodes[shoulders].mean(axis=0)
        found[1] = True
    for node in range(NUM_POSE_NODES):  # POSE_FILL_FROM parents come before their children
        if not found[node]:
            nodes[node] = nodes[POSE_FILL_FROM[node]]
    return nodes / np.array([width, height], dtype=np.float32)
