"""A/B testing of model versions: which version serves a request, and how each version is doing.

Serve has no traffic-split API, so the ingress holds one set of stage deployments per version and asks a
:class:`VersionRouter` which one to use. Both classes here are plain Python (no Ray), one instance per ingress
replica; the metrics that aggregate across replicas are the ingress's Prometheus counters.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Mapping

import numpy as np

from deployments.errors import RequestError, UnknownVersionError


class WeightsError(RequestError):
    """A weight table the router cannot use: unknown versions, negative or non-finite weights, zero total."""

    code = "invalid_weights"


class VersionRouter:
    """Chooses the version that serves a request.

    In order: an explicitly requested version wins; else a request carrying a user id goes where the user's
    sticky point ``u = hash(user id)`` in [0, 1) falls on the cumulative normalised weights (the same user gets
    the same version for as long as the weights do not change); else a random draw by the weights.

    Args:
        weights: version name -> non-negative weight, in the order versions are laid out on [0, 1). A version
            with weight 0 is served only when asked for by name.
        rng: the random source of anonymous draws (seed it for reproducible tests).
    """

    def __init__(self, weights: Mapping[str, float], rng: random.Random | None = None):
        self.versions = tuple(weights)
        if not self.versions:
            raise WeightsError("weights: at least one version is needed")
        self.rng = rng or random.Random()
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, float]:
        """The current weights, normalised to sum to 1."""
        return dict(zip(self.versions, self._shares, strict=True))

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replace the weight table; versions not named get weight 0.

        Raises ``WeightsError`` for an unknown version, a weight that is not a finite number >= 0, or a zero total.
        """
        unknown = sorted(set(weights) - set(self.versions))
        if unknown:
            raise WeightsError(f"weights: unknown version(s) {unknown}; served versions are {list(self.versions)}")
        raw = []
        for name in self.versions:
            weight = weights.get(name, 0.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                    or weight < 0:
                raise WeightsError(f"weights: {name!r} must be a finite number >= 0, got {weight!r}")
            raw.append(float(weight))
        total = sum(raw)
        if total <= 0:
            raise WeightsError("weights: at least one version needs a positive weight")
        self._shares = [weight / total for weight in raw]
        self._bounds = np.cumsum(self._shares)  # (versions,) upper end of each version's interval on [0, 1)

    def choose(self, requested: str | None = None, user_id: str | None = None) -> str:
        """The version for a request.

        Args:
            requested: the version the client asked for by name, if any.
            user_id: a stable client identifier (the ``X-User-Id`` header), if any.

        Raises ``UnknownVersionError`` when ``requested`` is not served.
        """
        if requested is not None:
            if requested not in self.versions:
                raise UnknownVersionError(f"version: {requested!r} is not served; choose one of "
                                          f"{list(self.versions)} or leave it out")
            return requested
        point = sticky_point(user_id) if user_id else self.rng.random()
        return self.version_at(point)

    def version_at(self, point: float) -> str:
        """The version whose interval of [0, 1) holds ``point`` (intervals laid out in version order)."""
        index = int(np.searchsorted(self._bounds, point, side="right"))
        # Floating-point sums may end a hair below 1: a point there belongs to the last version with weight.
        index = min(index, max(i for i, share in enumerate(self._shares) if share > 0))
        return self.versions[index]


def sticky_point(user_id: str) -> float:
    """A user's fixed point in [0, 1): the first 8 bytes of SHA-256 of the id, as a fraction of 2**64."""
    digest = hashlib.sha256(user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class VersionStats:
    """Per-version request outcomes and latencies, for ``GET /v1/ab``.

    A request counts once for the version that served it: ``errors`` are the ones that failed on the server
    side (5xx), ``rejected`` the ones refused as bad input (4xx). Latency percentiles are over the last
    ``window`` successful requests.

    Args:
        versions: the version names.
        window: how many recent latencies per version the percentiles use.
    """

    def __init__(self, versions: tuple[str, ...], window: int = 10_000):
        self._counts = {name: {"requests": 0, "errors": 0, "rejected": 0} for name in versions}
        self._latencies = {name: deque(maxlen=window) for name in versions}

    def record(self, version: str, status: int, seconds: float) -> None:
        """Count one answered request of ``version`` with HTTP ``status`` that took ``seconds``."""
        counts = self._counts[version]
        counts["requests"] += 1
        if status >= 500:
            counts["errors"] += 1
        elif status >= 400:
            counts["rejected"] += 1
        else:
            self._latencies[version].append(seconds)

    def summary(self) -> dict[str, dict]:
        """version -> requests, errors, rejected, latency_p50_s, latency_p95_s (None before any success)."""
        summary = {}
        for name, counts in self._counts.items():
            latencies = np.asarray(self._latencies[name], dtype=np.float64)
            p50, p95 = np.percentile(latencies, [50, 95]) if latencies.size else (None, None)
            summary[name] = {**counts, "latency_p50_s": None if p50 is None else round(float(p50), 4),
                             "latency_p95_s": None if p95 is None else round(float(p95), 4)}
        return summary
