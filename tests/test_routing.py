"""A/B routing as plain objects: weighted splits, sticky salted users, explicit versions, shadows, experiments."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from deployments.errors import UnknownVersionError
from deployments.routing import REQUESTED, ROUTED, ExperimentSettings, VersionRouter, WeightsError, sticky_point

DRAWS = 2000
# Binomial standard deviation of a 0.7 share over DRAWS draws is about 0.010: 0.04 is four of them.
SHARE_TOLERANCE = 0.04
VERSIONS = ("default", "fast")


def router(weights: dict, experiment: str = "exp-1", seed: int | None = None, shadow: dict | None = None,
           versions: tuple[str, ...] = VERSIONS) -> VersionRouter:
    settings = ExperimentSettings(experiment=experiment, weights=weights, shadow=shadow)
    return VersionRouter(versions, settings, rng=random.Random(seed))


def shares(choices: list[str]) -> dict[str, float]:
    counts = Counter(choices)
    return {name: count / len(choices) for name, count in counts.items()}


def test_anonymous_draws_follow_the_weights():
    split = router({"default": 0.7, "fast": 0.3}, seed=1)
    choices = [split.choose() for _ in range(DRAWS)]
    assert {routing for _, routing in choices} == {ROUTED}
    observed = shares([version for version, _ in choices])
    assert abs(observed["default"] - 0.7) < SHARE_TOLERANCE
    assert abs(observed["fast"] - 0.3) < SHARE_TOLERANCE


def test_users_split_by_the_weights_and_stay_put():
    split = router({"default": 7, "fast": 3}, seed=2)  # unnormalised weights are fine
    users = [f"user-{i}" for i in range(DRAWS)]
    first = [split.choose(user_id=user)[0] for user in users]
    assert abs(shares(first)["default"] - 0.7) < SHARE_TOLERANCE
    # The same user gets the same version however often they come back, whatever the random source does,
    # and on every replica (a fresh router of the same experiment).
    split.rng = random.Random(99)
    assert [split.choose(user_id=user)[0] for user in users] == first
    assert [router({"default": 7, "fast": 3}).choose(user_id=user)[0] for user in users[:50]] == first[:50]


def test_a_new_experiment_reshuffles_users():
    users = [f"user-{i}" for i in range(DRAWS)]
    first = [router({"default": 1, "fast": 1}, "exp-1").choose(user_id=u)[0] for u in users]
    second = [router({"default": 1, "fast": 1}, "exp-2").choose(user_id=u)[0] for u in users]
    # Independent 50/50 splits agree for about half the users (sd about 0.011); unsalted they would all agree.
    agreement = np.mean([a == b for a, b in zip(first, second)])
    assert abs(agreement - 0.5) < SHARE_TOLERANCE
    assert sticky_point("alice", "exp-1") != sticky_point("alice", "exp-2")


def test_sticky_points_are_uniform_on_the_unit_interval():
    points = np.array([sticky_point(f"customer-{i}", "exp") for i in range(DRAWS)])
    assert ((points >= 0) & (points < 1)).all()
    # Each decile holds about a tenth (binomial sd about 0.0067).
    counts = np.histogram(points, bins=10, range=(0, 1))[0] / DRAWS
    assert np.abs(counts - 0.1).max() < 0.035
    assert sticky_point("alice", "exp") == sticky_point("alice", "exp") != sticky_point("bob", "exp")


def test_explicit_version_wins_is_counted_apart_and_unknown_versions_are_refused():
    split = router({"default": 1.0, "fast": 0.0})
    assert split.choose("fast", user_id="anyone") == ("fast", REQUESTED)  # even a weight-0 version, when asked
    with pytest.raises(UnknownVersionError, match="'slow' is not served") as refused:
        split.choose("slow")
    assert refused.value.status == 422 and refused.value.code == "unknown_version"


def test_zero_weight_versions_are_never_drawn():
    split = router({"a": 0.0, "b": 1.0, "c": 0.0}, seed=3, versions=("a", "b", "c"))
    assert {split.choose()[0] for _ in range(500)} == {"b"}
    assert {split.choose(user_id=str(i))[0] for i in range(500)} == {"b"}
    assert split.version_at(0.0) == "b"
    assert split.version_at(math.nextafter(1.0, 0.0)) == "b"


def test_intervals_are_laid_out_in_version_order():
    split = router({"a": 0.25, "b": 0.5, "c": 0.25}, versions=("a", "b", "c"))
    assert [split.version_at(p) for p in (0.0, 0.2499, 0.25, 0.7499, 0.75, 0.9999)] == ["a", "a", "b", "b", "c", "c"]


def test_no_weights_split_evenly_and_left_out_versions_get_none():
    assert VersionRouter(VERSIONS).weights == {"default": 0.5, "fast": 0.5}
    assert router({"fast": 3}).weights == {"default": 0.0, "fast": 1.0}


def test_shadow_copies_a_share_of_other_versions_requests():
    split = router({"default": 1, "fast": 0}, seed=5, shadow={"version": "fast", "share": 0.2})
    copies = [split.shadow_for("default") for _ in range(DRAWS)]
    assert abs(copies.count("fast") / DRAWS - 0.2) < SHARE_TOLERANCE and set(copies) == {"fast", None}
    assert {split.shadow_for("fast") for _ in range(100)} == {None}  # never a copy to itself
    assert {router({"default": 1}).shadow_for("default") for _ in range(100)} == {None}


SERVED = {"versions": {"default": {"path": "default"}, "fast": {"path": "default", "sampler": {"num_steps": 4}}}}


@pytest.mark.parametrize("settings, problem", [
    ({"weights": {"default": 1, "slow": 1}}, "unknown version"),
    ({"weights": {"default": -0.1, "fast": 1}}, "finite number >= 0"),
    ({"weights": {"default": float("nan"), "fast": 1}}, "finite number >= 0"),
    ({"weights": {"default": float("inf")}}, "finite number >= 0"),
    ({"weights": {"default": 0, "fast": 0}}, "positive weight"),
    ({"weights": {"default": "one"}}, "weights.default: Input should be a valid number"),
    ({"experiment": "no spaces", "weights": {"default": 1}}, "experiment: experiment: String should match"),
    ({"weights": {"default": 1}, "shadow": {"version": "slow", "share": 0.1}}, "'slow' is not served"),
    ({"weights": {"default": 1}, "shadow": {"version": "fast", "share": 1.5}}, "shadow.share"),
    ({"weights": {"default": 1}, "split": 3}, "split"),
    ({"versions": {}}, "at least one version"),
    ({"versions": {"a b": {"path": "default"}}}, "version name 'a b'"),
    ({"versions": {"v": {"path": "default", "weight": 1}}}, "weights moved"),
    ({"versions": {"v": {"registry": "s3://kgi-models"}}}, "registry and version go together"),
])
def test_bad_experiments_are_refused(settings, problem):
    with pytest.raises(WeightsError, match=problem) as refused:
        ExperimentSettings.parse({**SERVED, **settings})
    assert refused.value.status == 422 and refused.value.code == "invalid_weights"


def test_experiment_settings_round_trip_as_user_config():
    settings = ExperimentSettings.parse({**SERVED, "experiment": "e.2", "weights": {"fast": 2},
                                         "shadow": {"version": "default", "share": 0.05}})
    assert tuple(settings.versions) == VERSIONS and settings.versions["fast"].sampler.num_steps == 4
    assert ExperimentSettings.parse(settings.model_dump()) == settings


def test_a_router_needs_versions():
    with pytest.raises(WeightsError, match="at least one version"):
        VersionRouter(())
