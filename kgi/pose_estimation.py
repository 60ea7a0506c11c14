"""Built-in pose estimation: a person photo in, OpenPose BODY_25 joints out, with no OpenPose build.

The pipeline takes poses as OpenPose BODY_25 ``(25, 3)`` arrays (x px, y px, confidence; undetected joints
``(0, 0, 0)``, see :mod:`kgi.data.pose`). Anything with an ``estimate(rgb)`` method returning such an array
is a :class:`PoseEstimator`. The one shipped is :class:`MediaPipePose`: Google's BlazePose through the
``mediapipe`` package, whose wheels 0.10.14 to 0.10.21 carry the "full" BlazePose model (the "lite" and
"heavy" ones are downloaded at first use, so they are not offered): nothing is downloaded at run time.

**mediapipe cannot live beside Ray.** mediapipe 0.10.14-0.10.21 needs ``protobuf < 6`` (its graph code fails
on protobuf 6 and 7), while Ray 2.60 needs protobuf 6 (dashboard agent: the node does not start) and 7 (Serve's
gRPC reflection); it also replaces ``opencv-python-headless`` with ``opencv-contrib-python`` and pulls ``jax``.
So it is not an extra of ``kgi-platform``: install it in a separate environment, which needs only numpy and
mediapipe (this file imports nothing else and runs there as a script, without ``kgi`` installed)::

    python3 -m venv /opt/kgi-pose && /opt/kgi-pose/bin/pip install mediapipe==0.10.14

and use :class:`SubprocessPose` (``python="/opt/kgi-pose/bin/python"``), which runs ``MediaPipePose`` in a
worker process of that environment and talks to it over a pipe. Where mediapipe does import (a process
without Ray), ``MediaPipePose`` works directly.

BlazePose's 33 landmarks map to BODY_25 by name (``BODY25_FROM_BLAZEPOSE``); BODY_25 joints BlazePose lacks
are derived: the neck is the shoulders' midpoint, the mid-hip the hips' midpoint, and the small toes stay
undetected. Both skeletons name sides from the person's point of view (OpenPose's right shoulder is on the
image's left for a person facing the camera), so no side swap is needed. ``kgi prep eval`` measures the
distance to OpenPose's joints.

Configurations name a pose source ("none" or "mediapipe") and :func:`make_pose_estimator` builds it; with no
interpreter named it takes ``$KGI_POSE_PYTHON``. Example::

    estimator = make_pose_estimator("mediapipe", "/opt/kgi-pose/bin/python")   # a SubprocessPose
    body25 = estimator.estimate(rgb)                           # (25, 3) float32, pixels of ``rgb``
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

# This module imports nothing but numpy and OpenCV (and kgi.photo_parsing, which imports only those), so that its
# worker runs in a slim environment (mediapipe, numpy, OpenCV):
# NUM_BODY25 repeats kgi.data.pose.NUM_BODY25 rather than importing it (kgi.data.pose pulls in torch).
NUM_BODY25 = 25
NUM_BLAZEPOSE = 33

# BODY_25 joint -> BlazePose landmark of the same body part (the person's own left and right).
BODY25_FROM_BLAZEPOSE: dict[int, int] = {
    0: 0,     # nose
    2: 12,    # right shoulder
    3: 14,    # right elbow
    4: 16,    # right wrist
    5: 11,    # left shoulder
    6: 13,    # left elbow
    7: 15,    # left wrist
    9: 24,    # right hip
    10: 26,   # right knee
    11: 28,   # right ankle
    12: 23,   # left hip
    13: 25,   # left knee
    14: 27,   # left ankle
    15: 5,    # right eye
    16: 2,    # left eye
    17: 8,    # right ear
    18: 7,    # left ear
    19: 31,   # left big toe <- left foot index
    21: 29,   # left heel
    22: 32,   # right big toe <- right foot index
    24: 30,   # right heel
}
# BODY_25 joints placed at the midpoint of two others: neck (shoulders) and mid-hip (hips).
BODY25_MIDPOINTS: dict[int, tuple[int, int]] = {1: (2, 5), 8: (9, 12)}

# mediapipe's model_complexity of the one BlazePose landmark model inside its wheels ("full").
FULL_MODEL = 1

POSE_SOURCES = ("none", "mediapipe")  # what a configuration may name (make_pose_estimator)
# The worker's standard error (mediapipe logs its TensorFlow Lite setup and protobuf deprecations on every start)
# is kept in a file; when the worker dies, the last lines of it that are not these logs say why.
WORKER_LOG_TAIL = 5
_LOG_NOISE = ("W0000", "I0000", "WARNING: All log messages", "INFO: Created TensorFlow Lite")
POSE_PYTHON_ENV = "KGI_POSE_PYTHON"  # the interpreter of an environment with mediapipe, when none is named
MEDIAPIPE_SETUP = "python3 -m venv /opt/kgi-pose && /opt/kgi-pose/bin/pip install mediapipe==0.10.14"


class PoseEstimationError(ValueError):
    """A photo the estimator cannot work on (wrong shape or type) or in which it finds no person."""


class PoseEstimatorUnavailable(RuntimeError):
    """The estimator's optional dependency is not installed; the message says what to install."""


@runtime_checkable
class PoseEstimator(Protocol):
    """Anything that finds one person's OpenPose BODY_25 joints in a photo."""

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person.

        Returns (25, 3) float32 BODY_25 joints (x px, y px, confidence), undetected joints (0, 0, 0).
        Raises ``PoseEstimationError`` when no person is found.
        """
        ...


def check_rgb(rgb: np.ndarray, name: str = "rgb", error: type[ValueError] = PoseEstimationError) -> np.ndarray:
    """Refuse anything but an (H, W, 3) uint8 image of at least 16x16, raising ``error``; returns it C-contiguous."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise error(f"{name}: expected an (H, W, 3) uint8 RGB image, got {dtype} {shape}")
    if rgb.shape[0] < 16 or rgb.shape[1] < 16:
        raise error(f"{name}: image of {rgb.shape[1]}x{rgb.shape[0]} is too small")
    return np.ascontiguousarray(rgb)


def body25_from_blazepose(landmarks: np.ndarray, width: int, height: int, min_visibility: float = 0.5
                          ) -> np.ndarray:
    """Convert BlazePose landmarks to OpenPose BODY_25 joints.

    Args:
        landmarks: (33, 3) BlazePose landmarks: x and y normalised by the image width and height, and the
            visibility (0..1, the model's confidence that the landmark is in view and not occluded).
        width, height: the image size in pixels.
        min_visibility: landmarks below it, or outside the image, are reported undetected.

    Returns (25, 3) float32 (x px, y px, confidence). A midpoint joint (neck, mid-hip) is detected when both
    its ends are, with the lower of their confidences.
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (NUM_BLAZEPOSE, 3) or not np.isfinite(landmarks).all():
        raise PoseEstimationError(f"landmarks: expected ({NUM_BLAZEPOSE}, 3) finite numbers, "
                                  f"got {landmarks.shape}")
    pixels = landmarks[:, :2] * np.array([width, height], dtype=np.float32)  # (33, 2)
    inside = (pixels >= 0).all(axis=1) & (pixels[:, 0] < width) & (pixels[:, 1] < height)
    found = inside & (landmarks[:, 2] >= min_visibility)
    body25 = np.zeros((NUM_BODY25, 3), dtype=np.float32)
    targets = list(BODY25_FROM_BLAZEPOSE)
    sources = [BODY25_FROM_BLAZEPOSE[t] for t in targets]
    body25[targets, :2] = pixels[sources]
    body25[targets, 2] = landmarks[sources, 2]
    body25[targets] *= found[sources, None]
    for joint, (first, second) in BODY25_MIDPOINTS.items():
        if body25[first, 2] > 0 and body25[second, 2] > 0:
            body25[joint, :2] = (body25[first, :2] + body25[second, :2]) / 2
            body25[joint, 2] = min(body25[first, 2], body25[second, 2])
    return body25


class MediaPipePose:
    """BlazePose (mediapipe's legacy ``solutions.pose``, static-image mode) mapped to OpenPose BODY_25.

    Needs ``mediapipe`` 0.10.14 to 0.10.21 importable in this process, which rules out a process that uses
    Ray (see the module docstring; :class:`SubprocessPose` runs this class in another environment). One
    instance holds one mediapipe graph: it is not thread-safe, so give each thread its own.

    With ``parse=True`` it also parses the photo (:meth:`analyse`, ``kgi.photo_parsing``): BlazePose then
    returns its segmentation mask too, and the selfie-segmentation, face-mesh and face-detection models of the
    same wheel run beside it.

    Args:
        min_detection_confidence: person-detector threshold; below it ``estimate`` finds no person.
        min_visibility: landmarks whose visibility is below it are reported undetected (confidence 0).
        parse: load the models :meth:`analyse` needs.

    Raises ``PoseEstimatorUnavailable`` saying what to install when mediapipe cannot be imported.
    """

    def __init__(self, min_detection_confidence: float = 0.5, min_visibility: float = 0.5, parse: bool = False):
        if not 0.0 <= min_visibility <= 1.0 or not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError("min_visibility and min_detection_confidence must lie in [0, 1]")
        try:
            from mediapipe.python.solutions import face_detection, face_mesh, selfie_segmentation
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise PoseEstimatorUnavailable(
                f"MediaPipePose needs mediapipe 0.10.14-0.10.21 ({exc}): install it in a separate environment "
                f"and use SubprocessPose (see kgi.pose_estimation), or send the person's OpenPose BODY_25 JSON "
                f"as 'pose'") from None
        self.min_visibility = min_visibility
        self._pose = mp_pose.Pose(static_image_mode=True, model_complexity=FULL_MODEL,
                                  enable_segmentation=parse, min_detection_confidence=min_detection_confidence)
        self._parse_models = None
        if parse:
            self._parse_models = (
                selfie_segmentation.SelfieSegmentation(model_selection=0),  # the square "general" model
                face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1),
                face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5),  # full range
            )

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person.

        Returns (25, 3) float32 BODY_25 joints in pixels of ``rgb`` (undetected (0, 0, 0)). Raises
        ``PoseEstimationError`` when no person is found.
        """
        rgb = check_rgb(rgb)
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            raise PoseEstimationError("no person found in the photo")
        landmarks = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], np.float32)
        return body25_from_blazepose(landmarks, rgb.shape[1], rgb.shape[0], self.min_visibility)

    def analyse(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Pose, parse and fitness for try-on of a photo in one pass (needs ``parse=True``).

        Args: rgb: (H, W, 3) uint8 RGB photo of one person.

        Returns ``(pose, parse, problem)``: (25, 3) float32 BODY_25 joints (all undetected when no person is
        found), (H, W) uint8 CIHP labels (None when no person is found) and why the photo cannot be tried on
        ("" when it can; ``kgi.photo_parsing.photo_problem``).
        """
        if self._parse_models is None:
            raise ValueError("analyse needs a MediaPipePose made with parse=True")
        from kgi import photo_parsing

        rgb = check_rgb(rgb)
        height, width = rgb.shape[:2]
        selfie, mesh, detector = self._parse_models
        result = self._pose.process(rgb)
        faces = sorted((d.location_data.relative_bounding_box.width * width
                        for d in detector.process(rgb).detections or ()), reverse=True)
        silhouette = selfie.process(rgb).segmentation_mask
        count, _, stats, _ = cv2.connectedComponentsWithStats((silhouette > 0.5).astype(np.uint8), connectivity=8)
        silhouettes = sorted(stats[1:, cv2.CC_STAT_AREA].tolist(), reverse=True)
        if result.pose_landmarks is None:
            return np.zeros((NUM_BODY25, 3), np.float32), None, photo_parsing.photo_problem(
                (height, width), None, faces, silhouettes)
        landmarks = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], np.float32)
        pose = body25_from_blazepose(landmarks, width, height, self.min_visibility)
        landmarks[:, :2] *= np.array([width, height], np.float32)
        problem = photo_parsing.photo_problem((height, width), landmarks, faces, silhouettes)
        found = mesh.process(rgb).multi_face_landmarks
        face = None if not found else \
            np.array([(p.x, p.y) for p in found[0].landmark], np.float32) * np.array([width, height], np.float32)
        person = (result.segmentation_mask + silhouette) / 2
        return pose, photo_parsing.parse_photo(rgb, landmarks, person, face), problem

    def close(self) -> None:
        """Release the mediapipe graphs."""
        self._pose.close()
        for model in self._parse_models or ():
            model.close()


class SubprocessPose:
    """:class:`MediaPipePose` run by a worker process in another Python environment, over a pipe.

    The worker is this file run as a script in isolated mode (``PYTHON -I .../kgi/pose_estimation.py``), so
    its environment needs only numpy, OpenCV and mediapipe, and nothing of this one leaks into it. It starts once (a
    few seconds to import mediapipe and load the model) and serves every call. Messages
    both ways are a status byte, an 8-byte little-endian length and that many bytes of ``.npy``: requests
    carry the image, answers the (25, 3) joints or a UTF-8 error message. Calls are serialised by a lock; the
    worker ends with :meth:`close` or when this object is collected.

    Args:
        python: the interpreter of the environment that has mediapipe.
        min_detection_confidence, min_visibility, parse: as for :class:`MediaPipePose`.

    Raises ``PoseEstimatorUnavailable`` when the worker cannot start or its mediapipe cannot be imported.
    """

    def __init__(self, python: str | os.PathLike, min_detection_confidence: float = 0.5,
                 min_visibility: float = 0.5, parse: bool = False):
        command = [os.fspath(python), "-I", str(Path(__file__).resolve()), str(min_detection_confidence),
                   str(min_visibility), str(int(parse))]
        try:
            self._log = tempfile.TemporaryFile()
            self._worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=self._log)
        except OSError as exc:
            raise PoseEstimatorUnavailable(f"pose worker {os.fspath(python)!r} cannot start: {exc}") from None
        self._lock = threading.Lock()
        self._read_answer()  # the worker's first answer says whether its estimator loaded

    def _read_answer(self) -> np.ndarray:
        message = _receive(self._worker.stdout)
        if message is None:
            self.close()
            raise self._exited()
        status, answer = message
        if status == _OK:
            return answer
        message = answer.tobytes().decode("utf-8")
        if status == _UNAVAILABLE:
            self.close()
            raise PoseEstimatorUnavailable(message)
        raise PoseEstimationError(message)

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        """Args: rgb: (H, W, 3) uint8 RGB photo of one person.

        Returns (25, 3) float32 BODY_25 joints in pixels of ``rgb``. Raises ``PoseEstimationError`` when no
        person is found, ``PoseEstimatorUnavailable`` when the worker has gone.
        """
        (joints,) = self._request(_OK, rgb, answers=1)
        return joints

    def analyse(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str]:
        """:meth:`MediaPipePose.analyse` in the worker (made with ``parse=True``): one request, three answers, or
        one error (``PoseEstimationError``) when the analysis fails on this photo."""
        pose, parse, problem = self._request(_ANALYSE, rgb, answers=3)
        return pose, (parse if parse.size else None), problem.tobytes().decode("utf-8")

    def _request(self, kind: bytes, rgb: np.ndarray, answers: int) -> list[np.ndarray]:
        """Send one image as a request of ``kind`` and read its ``answers`` arrays, under the lock."""
        rgb = check_rgb(rgb)
        with self._lock:
            if self._worker.poll() is not None:
                raise self._exited()
            try:
                _send(self._worker.stdin, kind, rgb)
            except BrokenPipeError:
                raise self._exited() from None
            return [self._read_answer() for _ in range(answers)]

    def _exited(self) -> PoseEstimatorUnavailable:
        """The error for a worker that has gone: its exit code and the last lines of its standard error that are
        not mediapipe's start-up logs."""
        self._log.seek(0)
        lines = [line for line in self._log.read().decode("utf-8", "replace").splitlines()
                 if line.strip() and not line.startswith(_LOG_NOISE)]
        said = " | ".join(lines[-WORKER_LOG_TAIL:])
        return PoseEstimatorUnavailable(f"pose worker exited (code {self._worker.poll()})"
                                        + (f": {said}" if said else ""))

    def cpu_seconds(self) -> float | None:
        """CPU seconds (user and system) the worker has used so far, from Linux's ``/proc``; None where that
        cannot be read (another system, or the worker has exited). Benchmarks take differences of it."""
        try:
            fields = Path(f"/proc/{self._worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime in clock ticks

    def close(self) -> None:
        """Stop the worker (closing its stdin ends its loop)."""
        if self._worker.poll() is None:
            self._worker.stdin.close()
            try:
                self._worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._worker.kill()
                self._worker.wait()

    def __del__(self):
        if getattr(self, "_worker", None) is not None:
            self.close()


def make_pose_estimator(source: str, python: str | os.PathLike | None = None, parse: bool = False
                        ) -> PoseEstimator | None:
    """The pose estimator a configuration names.

    Args:
        source: "none" (no estimator: every request brings its own pose) or "mediapipe" (BlazePose).
        python: for "mediapipe", the interpreter of an environment that has mediapipe: the estimator is a
            :class:`SubprocessPose` of it. ``None`` takes ``$KGI_POSE_PYTHON``; without that either,
            :class:`MediaPipePose` runs in this process (mediapipe importable here, so no Ray).
        parse: load the photo parser's models too (``analyse``; ``kgi.parsing.PhotoParser``).

    Returns None for "none". Raises ``ValueError`` for an unknown source and ``PoseEstimatorUnavailable``,
    saying what to install or set, when mediapipe cannot run.
    """
    if source not in POSE_SOURCES:
        raise ValueError(f"pose source: expected one of {POSE_SOURCES}, got {source!r}")
    if source == "none":
        return None
    python = python or os.environ.get(POSE_PYTHON_ENV) or None
    if python is not None:
        return SubprocessPose(python, parse=parse)
    try:
        return MediaPipePose(parse=parse)
    except PoseEstimatorUnavailable:
        raise PoseEstimatorUnavailable(
            f"mediapipe is not importable in this process and ${POSE_PYTHON_ENV} is not set: create an environment "
            f"with it ({MEDIAPIPE_SETUP}) and set {POSE_PYTHON_ENV}=/opt/kgi-pose/bin/python") from None


_OK, _ERROR, _UNAVAILABLE, _ANALYSE = b"0", b"1", b"2", b"3"  # _ANALYSE: a request for MediaPipePose.analyse


def _send(stream, status: bytes, array: np.ndarray) -> None:
    payload = io.BytesIO()
    np.save(payload, array, allow_pickle=False)
    stream.write(status + len(payload.getbuffer()).to_bytes(8, "little") + payload.getbuffer())
    stream.flush()


def _receive(stream) -> tuple[bytes, np.ndarray] | None:
    """One message of ``_send``, or None at the end of the stream."""
    header = stream.read(9)
    if len(header) < 9:
        return None
    payload = stream.read(int.from_bytes(header[1:], "little"))
    return header[:1], np.load(io.BytesIO(payload), allow_pickle=False)


def _text(message: str) -> np.ndarray:
    return np.frombuffer(message.encode("utf-8"), dtype=np.uint8)


def _serve(min_detection_confidence: float, min_visibility: float, parse: bool) -> None:
    """The worker of :class:`SubprocessPose`: answers ``.npy`` images on stdin until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        estimator = MediaPipePose(min_detection_confidence, min_visibility, parse)
    except (PoseEstimatorUnavailable, ValueError) as exc:
        _send(stdout, _UNAVAILABLE, _text(f"pose worker ({sys.executable}): {exc}"))
        return
    _send(stdout, _OK, np.zeros(0, np.float32))
    while (request := _receive(stdin)) is not None:
        if request[0] == _ANALYSE:  # check_rgb passed in the caller
            try:
                pose, parse, problem = estimator.analyse(request[1])
            except Exception as exc:  # noqa: BLE001 - a photo the analysis trips on: say so, keep serving
                _send(stdout, _ERROR, _text(f"the photo analysis failed: {type(exc).__name__}: {exc}"))
                continue
            _send(stdout, _OK, pose)
            _send(stdout, _OK, np.zeros((0, 0), np.uint8) if parse is None else parse)
            _send(stdout, _OK, _text(problem))
            continue
        try:
            _send(stdout, _OK, estimator.estimate(request[1]))
        except PoseEstimationError as exc:
            _send(stdout, _ERROR, _text(str(exc)))
    estimator.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for kgi.photo_parsing (numpy and OpenCV only)
    _serve(float(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1")
