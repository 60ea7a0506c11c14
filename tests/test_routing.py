"""A/B routing as plain objects: weighted splits, sticky users, explicit versions, weight changes, statistics."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from deployments.errors import UnknownVersionError
from deployments.routing import VersionRouter, VersionStats, WeightsError, sticky_point

DRAWS = 2000
# Binomial standard deviation of a 0.7 share over DRAWS draws is about 0.010: 0.04 is four of them.
SHARE_TOLERANCE = 0.04


def shares(choices: list[str]) -> dict[str, float]:
    counts = Counter(choices)
    return {name: count / len(choices) for name, count in counts.items()}


def test_anonymous_draws_follow_the_weights():
    router = VersionRouter({"default": 0.7, "fast": 0.3}, rng=random.Random(1))
    observed = shares([router.choose() for _ in range(DRAWS)])
    assert abs(observed["default"] - 0.7) < SHARE_TOLERANCE
    assert abs(observed["fast"] - 0.3) < SHARE_TOLERANCE


def test_users_split_by_the_weights_and_stay_put():
    router = VersionRouter({"default": 7, "fast": 3}, rng=random.Random(2))  # unnormalised weights are fine
    users = [f"user-{i}" for i in range(DRAWS)]
    first = [router.choose(user_id=user) for user in users]
    observed = shares(first)
    assert abs(observed["default"] - 0.7) < SHARE_TOLERANCE
    # The same user gets the same version however often they come back, whatever the random source does.
    router.rng = random.Random(99)
    assert [router.choose(user_id=user) for user in users] == first
    assert [VersionRouter({"default": 7, "fast": 3}).choose(user_id=user) for user in users[:50]] == first[:50]


def test_sticky_points_are_uniform_on_the_unit_interval():
    points = np.array([sticky_point(f"customer-{i}") for i in range(DRAWS)])
    assert ((points >= 0) & (points < 1)).all()
    # Each decile holds about a tenth (binomial sd about 0.0067).
    counts = np.histogram(points, bins=10, range=(0, 1))[0] / DRAWS
    assert np.abs(counts - 0.1).max() < 0.035
    assert sticky_point("alice") == sticky_point("alice") != sticky_point("bob")


def test_explicit_version_wins_and_unknown_versions_are_refused():
    router = VersionRouter({"default": 1.0, "fast": 0.0})
    assert router.choose("fast", user_id="anyone") == "fast"  # even a weight-0 version, when asked for
    with pytest.raises(UnknownVersionError, match="'slow' is not served") as refused:
        router.choose("slow")
    assert refused.value.status == 422 and refused.value.code == "unknown_version"


def test_zero_weight_versions_are_never_drawn():
    router = VersionRouter({"a": 0.0, "b": 1.0, "c": 0.0}, rng=random.Random(3))
    assert {router.choose() for _ in range(500)} == {"b"}
    assert {router.choose(user_id=str(i)) for i in range(500)} == {"b"}
    assert router.version_at(0.0) == "b"
    assert router.version_at(math.nextafter(1.0, 0.0)) == "b"


def test_intervals_are_laid_out_in_version_order():
    router = VersionRouter({"a": 0.25, "b": 0.5, "c": 0.25})
    assert [router.version_at(p) for p in (0.0, 0.2499, 0.25, 0.7499, 0.75, 0.9999)] == ["a", "a", "b", "b", "c", "c"]


def test_weight_changes_move_traffic_and_keep_users_sticky_in_between():
    router = VersionRouter({"default": 0.5, "fast": 0.5}, rng=random.Random(4))
    router.set_weights({"fast": 3})  # versions left out get 0
    assert router.weights == {"default": 0.0, "fast": 1.0}
    assert {router.choose(user_id=f"u{i}") for i in range(200)} == {"fast"}
    router.set_weights({"default": 0.7, "fast": 0.3})
    assert router.weights == pytest.approx({"default": 0.7, "fast": 0.3})
    users = [f"u{i}" for i in range(DRAWS)]
    assert abs(shares([router.choose(user_id=u) for u in users])["default"] - 0.7) < SHARE_TOLERANCE


@pytest.mark.parametrize("weights, problem", [
    ({"default": 1, "slow": 1}, "unknown version"),
    ({"default": -0.1, "fast": 1}, "finite number >= 0"),
    ({"default": float("nan"), "fast": 1}, "finite number >= 0"),
    ({"default": float("inf")}, "finite number >= 0"),
    ({"default": True}, "finite number >= 0"),
    ({"default": "1"}, "finite number >= 0"),
    ({"default": 0, "fast": 0}, "positive weight"),
    ({}, "positive weight"),
])
def test_bad_weights_are_refused_and_change_nothing(weights, problem):
    router = VersionRouter({"default": 0.6, "fast": 0.4})
    with pytest.raises(WeightsError, match=problem):
        router.set_weights(weights)
    assert router.weights == pytest.approx({"default": 0.6, "fast": 0.4})


def test_a_router_needs_versions():
    with pytest.raises(WeightsError, match="at least one version"):
        VersionRouter({})


def test_version_stats_count_outcomes_and_latency_percentiles():
    stats = VersionStats(("default", "fast"), window=100)
    latencies = [0.1 * (i + 1) for i in range(20)]
    for seconds in latencies:
        stats.record("default", 200, seconds)
    stats.record("default", 422, 0.01)
    stats.record("default", 503, 5.0)
    stats.record("fast", 500, 1.0)
    summary = stats.summary()
    assert {k: summary["default"][k] for k in ("requests", "errors", "rejected")} == \
        {"requests": 22, "errors": 1, "rejected": 1}
    # Percentiles are over successful requests only.
    assert summary["default"]["latency_p50_s"] == pytest.approx(np.percentile(latencies, 50), abs=1e-4)
    assert summary["default"]["latency_p95_s"] == pytest.approx(np.percentile(latencies, 95), abs=1e-4)
    assert summary["fast"] == {"requests": 1, "errors": 1, "rejected": 0, "latency_p50_s": None,
                               "latency_p95_s": None}


def test_version_stats_keep_a_bounded_window():
    stats = VersionStats(("v",), window=10)
    for seconds in [100.0] * 10 + [1.0] * 10:  # the slow ones fall out of the window
        stats.record("v", 200, seconds)
    assert stats.summary()["v"]["latency_p95_s"] == pytest.approx(1.0)
    assert stats.summary()["v"]["requests"] == 20
