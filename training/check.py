"""``kgi convert --check``: every pair of a VITON-HD root (or of ``kgi convert``'s shards) checked before anyone
spends GPU hours on it.

Each pair goes through ``PAIR_CHECKS`` in order; the first check that fails names the file and what is wrong,
and the pair's later checks are skipped (they would only repeat it). A check is one entry of the list: a name and
a function of a :class:`Pair` that raises ``DatasetError`` (any ``training.errors.DATA_ERRORS``) when the pair
fails it, so another check (a stricter landmark check) is one more entry. The checks are those that ``kgi
convert`` and training rely on, so a root that passes converts, and shards that pass train.

Pairs are checked in a pool of processes on this machine (no Ray cluster needed).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from kgi.data import storage
from kgi.data.images import decode_gray, decode_labels, decode_rgb
from kgi.data.labels import NUM_CIHP
from kgi.data.pose import parse_openpose
from kgi.data.vitonhd import MASK_THRESHOLD, DatasetError
from kgi.graphs import NUM_GARMENT_NODES, SLEEVE_TYPES
from training.errors import DATA_ERRORS
from kgi.data.storage import arrow_filesystem

REQUIRED_JOINTS = {1: "neck", 2: "right shoulder", 5: "left shoulder"}  # BODY_25; the garment frame needs them


class _Decoded:
    """An attribute of :class:`Pair`: its file of ``kind`` read and decoded by ``decode(data, source=uri)`` on first
    use (an error names the file), then kept in the pair for the next check."""

    def __init__(self, kind: str, decode: Callable[..., np.ndarray]):
        self.kind, self.decode = kind, decode

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, pair: Pair | None, owner: type | None = None):
        if pair is None:
            return self
        value = self.decode(pair.root.read_bytes(pair.files[self.kind]), source=pair.uri(self.kind))
        pair.__dict__[self.name] = value  # found before this (non-data) descriptor from now on
        return value


def _decode_garment_mask(data: bytes, *, source: str) -> np.ndarray:
    """(H, W) bool: the garment mask's pixels at or above ``MASK_THRESHOLD``."""
    return decode_gray(data, source=source) >= MASK_THRESHOLD


class Pair:
    """One (person, own garment) pair of a split: its files, decoded on first use and kept for the next check.

    Args:
        root: the storage holding the split (a VITON-HD root, or one shard row's files).
        split: the split's folder.
        person_name: the person image's file name (the garment has the same name: the paired setting).
    """

    person = _Decoded("image", decode_rgb)  # (H, W, 3) uint8
    cloth = _Decoded("cloth", decode_rgb)  # (H, W, 3) uint8
    cloth_mask = _Decoded("cloth-mask", _decode_garment_mask)  # (H, W) bool
    parse = _Decoded("image-parse-v3", decode_labels)  # (H, W) CIHP labels
    pose = _Decoded("openpose_json", parse_openpose)  # (25, 3) BODY_25 x, y, confidence

    def __init__(self, root: storage.Storage, split: str, person_name: str):
        self.root, self.split, self.person_name = root, split, person_name
        stem = PurePosixPath(person_name).stem
        self.files = {
            "image": f"{split}/image/{person_name}",
            "cloth": f"{split}/cloth/{person_name}",
            "cloth-mask": f"{split}/cloth-mask/{person_name}",
            "image-parse-v3": f"{split}/image-parse-v3/{stem}.png",
            "openpose_json": f"{split}/openpose_json/{stem}_keypoints.json",
        }

    def uri(self, kind: str) -> str:
        return self.root.uri(self.files[kind])

    @functools.cached_property
    def landmarks(self) -> tuple[dict, dict]:
        """The landmark documents of the flat and of the worn garment, as a shard holds them (the dataset's
        files, else extracted as ``kgi convert`` does)."""
        from kgi.data.shards import garment_landmarks

        return garment_landmarks(self.root, self.split, self.person_name, self)  # a Pair has a sample's arrays


def check_files(pair: Pair) -> None:
    """Every file of the pair is there."""
    missing = [pair.uri(kind) for kind, rel in pair.files.items() if not pair.root.exists(rel)]
    if missing:
        raise DatasetError(f"missing {', '.join(missing)}")


def check_images(pair: Pair) -> None:
    """Person, garment and garment mask decode, the person is 3:4, and all three have one size."""
    height, width = pair.person.shape[:2]
    if height * 3 != width * 4:
        raise DatasetError(f"{pair.uri('image')}: {width}x{height} is not 3:4 (width:height)")
    for kind, array in (("cloth", pair.cloth), ("cloth-mask", pair.cloth_mask)):
        if array.shape[:2] != (height, width):
            raise DatasetError(f"{pair.uri(kind)}: size {array.shape[1]}x{array.shape[0]} differs from the "
                               f"person image's {width}x{height}")
    if not pair.cloth_mask.any():
        raise DatasetError(f"{pair.uri('cloth-mask')}: empty mask (no pixel >= {MASK_THRESHOLD})")


def check_parse(pair: Pair) -> None:
    """The parse decodes as labels, has the person's size, and every label is a CIHP label."""
    if pair.parse.shape != pair.person.shape[:2]:
        raise DatasetError(f"{pair.uri('image-parse-v3')}: size {pair.parse.shape[1]}x{pair.parse.shape[0]} "
                           f"differs from the person image's {pair.person.shape[1]}x{pair.person.shape[0]}")
    labels = np.unique(pair.parse)
    bad = labels[labels >= NUM_CIHP]
    if bad.size:
        raise DatasetError(f"{pair.uri('image-parse-v3')}: label(s) {', '.join(map(str, bad[:5]))} are not "
                           f"CIHP labels (0..{NUM_CIHP - 1})")


def check_pose(pair: Pair) -> None:
    """The OpenPose JSON reads as BODY_25 and has the joints the garment's frame is built on."""
    missing = [name for joint, name in REQUIRED_JOINTS.items() if not pair.pose[joint, 2] > 0]
    if missing:
        raise DatasetError(f"{pair.uri('openpose_json')}: no {', '.join(missing)} detected")


def check_landmarks(pair: Pair) -> None:
    """The landmarks a shard holds for both garments: 32 finite points inside their image and a known sleeve
    kind."""
    for what, doc in zip(("garment", "worn garment"), pair.landmarks):
        points = np.asarray(doc["keypoints"], dtype=np.float64)
        width, height = doc["width"], doc["height"]
        outside = ~((points >= 0) & (points <= [width, height])).all(axis=1)
        if outside.any():
            raise DatasetError(f"{pair.uri('image')}: {what} landmark(s) {np.flatnonzero(outside).tolist()} lie "
                               f"outside the {width}x{height} image")
        if doc["sleeve"] not in SLEEVE_TYPES or points.shape != (NUM_GARMENT_NODES, 2):
            raise DatasetError(f"{pair.uri('image')}: {what} landmarks malformed")


def check_landmark_consistency(pair: Pair) -> None:
    """The flat garment's landmarks are in order, symmetric and on the garment's mask
    (``kgi.landmarks.checks.landmark_problems``)."""
    from kgi.landmarks.checks import landmark_problems

    doc = pair.landmarks[0]
    scale = np.array([pair.cloth_mask.shape[1] / doc["width"], pair.cloth_mask.shape[0] / doc["height"]])
    problems = landmark_problems(np.asarray(doc["keypoints"], dtype=np.float64) * scale, pair.cloth_mask)
    if problems:
        raise DatasetError(f"{pair.uri('cloth')}: garment landmarks: {'; '.join(problems)}")


@dataclass(frozen=True)
class PairCheck:
    """One check every pair goes through: ``run(pair)`` raises a data error naming the file when it fails."""

    name: str
    run: Callable[[Pair], None]


PAIR_CHECKS: list[PairCheck] = [
    PairCheck("files", check_files),
    PairCheck("images", check_images),
    PairCheck("parse", check_parse),
    PairCheck("pose", check_pose),
    PairCheck("landmarks", check_landmarks),
    PairCheck("consistency", check_landmark_consistency),
]


@dataclass
class PairResult:
    """What the checks found for one pair: the first failing check and its message, or none."""

    split: str
    person_name: str
    failed_check: str | None = None
    message: str = ""


@dataclass
class Report:
    """The result of checking a root or shards: per split, the pairs checked and the failures."""

    uri: str
    kind: str  # "VITON-HD root" or "shards"
    splits: dict[str, int] = field(default_factory=dict)  # split -> pairs checked
    failures: list[PairResult] = field(default_factory=list)
    missing_splits: dict[str, str] = field(default_factory=dict)  # split -> why it cannot be checked

    @property
    def ok(self) -> bool:
        return not self.failures and not self.missing_splits

    def table(self, first: int = 10) -> str:
        """A Markdown summary: per split, the pairs and how many failed each check; then the first failures."""
        names = [check.name for check in PAIR_CHECKS]
        lines = [f"{self.kind} {self.uri}", "",
                 "| split | pairs | " + " | ".join(names) + " | ok |",
                 "|---|---:|" + "---:|" * len(names) + "---:|"]
        for split, count in self.splits.items():
            failed = [f for f in self.failures if f.split == split]
            cells = [str(sum(f.failed_check == name for f in failed)) for name in names]
            lines.append(f"| {split} | {count} | " + " | ".join(cells) + f" | {count - len(failed)} |")
        for split, why in self.missing_splits.items():
            lines.append(f"| {split} | - | " + " | ".join("-" for _ in names) + " | - |")
        if self.missing_splits:
            lines += ["", *(f"{split}: {why}" for split, why in self.missing_splits.items())]
        if self.failures:
            lines += ["", f"first failing pairs ({min(first, len(self.failures))} of {len(self.failures)}):"]
            lines += [f"  {f.split} {f.person_name} [{f.failed_check}] {f.message}" for f in self.failures[:first]]
        return "\n".join(lines)


def run_checks(pair: Pair, checks: list[PairCheck] | None = None) -> PairResult:
    """``checks`` (default ``PAIR_CHECKS``) on ``pair`` in order, up to the first that fails."""
    for check in PAIR_CHECKS if checks is None else checks:
        try:
            check.run(pair)
        except DATA_ERRORS as exc:
            return PairResult(pair.split, pair.person_name, check.name, str(exc).strip().splitlines()[-1])
        except Exception as exc:  # an unexpected failure on this pair's data is still this pair's problem
            return PairResult(pair.split, pair.person_name, check.name, f"{type(exc).__name__}: {exc}")
    return PairResult(pair.split, pair.person_name)


def _check_root_pair(root_uri: str, split: str, person_name: str) -> PairResult:
    return run_checks(Pair(_open_root(root_uri), split, person_name))


@functools.lru_cache(maxsize=4)
def _open_root(uri: str) -> storage.Storage:
    """One storage (one S3 client) per root and process, shared by the pairs the process checks."""
    return storage.open_root(uri)


def _check_shard(data_uri: str, shard: str) -> list[PairResult]:
    import pyarrow.parquet as pq

    from kgi.data.shards import row_storage

    filesystem, path = arrow_filesystem(data_uri)
    shard_path = f"{path}/{shard}"
    try:
        rows = pq.read_table(shard_path, filesystem=filesystem).to_pylist()
    except Exception as exc:  # an unreadable shard fails all its rows, named by the shard
        return [PairResult(shard.split("/")[0], shard, "files", f"{data_uri}/{shard}: unreadable ({exc})")]
    results = []
    for row in rows:
        row["path"] = f"{data_uri.rstrip('/')}/{shard}"  # messages name the shard
        result = run_checks(Pair(row_storage(row), "train", row["person_name"]))
        result.split = shard.split("/")[0]  # a row's files are laid out as "train"; report the shard's split
        results.append(result)
    return results


def check(uri: str, splits: tuple[str, ...] = ("train", "test"), workers: int | None = None,
          progress: bool = True) -> Report:
    """Check every pair of ``splits`` of ``uri``: a VITON-HD root (``{split}_pairs.txt``) or shards written by
    ``kgi convert`` (``{split}/*.parquet``), local or s3://.

    Args:
        uri: the root or the shards.
        splits: the splits to check; one that is absent is reported as missing.
        workers: processes checking pairs in parallel (default: this machine's CPUs).
        progress: show a progress bar.
    """
    root = storage.open_root(uri)
    is_shards = not any(root.exists(f"{split}_pairs.txt") for split in splits) and any(
        rel.endswith(".parquet") for split in splits for rel in root.list(split))
    report = Report(uri, "shards" if is_shards else "VITON-HD root")
    jobs = []  # (split, callable, args)
    for split in splits:
        if is_shards:
            shards = [rel for rel in root.list(split) if rel.endswith(".parquet")]
            if not shards:
                report.missing_splits[split] = f"no {split}/*.parquet shards"
                continue
            report.splits[split] = 0
            jobs += [(split, _check_shard, (uri, rel)) for rel in shards]
        else:
            from kgi.data.shards import read_pairs

            try:
                names = read_pairs(root, split)
            except FileNotFoundError:
                report.missing_splits[split] = f"no {split}_pairs.txt"
                continue
            report.splits[split] = len(names)
            jobs += [(split, _check_root_pair, (uri, split, name)) for name in names]
    for results in _map(jobs, workers, progress):
        results = results if isinstance(results, list) else [results]
        for result in results:
            if is_shards:
                report.splits[result.split] = report.splits.get(result.split, 0) + 1
            if result.failed_check is not None:
                report.failures.append(result)
    return report


def _map(jobs: list, workers: int | None, progress: bool) -> Iterator:
    """Each job's result in order: in this process for a handful of jobs, else in a process pool."""
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), unit="job", desc="checking", disable=not progress)
    if workers == 1 or len(jobs) <= 4:
        for _, function, args in jobs:
            yield function(*args)
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(_call, [(function, args) for _, function, args in jobs], chunksize=8):
                yield result
                bar.update()
    bar.close()


def _call(job):
    function, args = job
    return function(*args)
