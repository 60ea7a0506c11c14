"""The A/B statistics on simulated experiments (no Ray): intervals cover, tests find planted differences and keep
their false-positive rates, the mSPRT stays valid under peeking where the z-test does not; the SQLite store's
counts and report; the canary's rules."""

from __future__ import annotations

import numpy as np
import pytest

from deployments.experiments import ExperimentLog, UnknownRequestError, experiment_report
from kgi.abtest import CanaryLimits, canary_breach, msprt, simulate_peeking, two_proportion_ztest, wilson_interval

RNG_SEED = 26


def test_wilson_interval_matches_a_worked_example_and_stays_in_range():
    low, high = wilson_interval(81, 263)  # Wilson (1927) style example: p = 0.308
    assert (round(low, 3), round(high, 3)) == (0.255, 0.366)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_ztest_matches_a_hand_computed_value():
    # 50/500 vs 100/500: pooled p = 0.15, se = sqrt(0.15 * 0.85 * 2 / 500) = 0.02258, z = 4.428.
    result = two_proportion_ztest(50, 500, 100, 500)
    assert result.difference == pytest.approx(0.1)
    assert result.p_value == pytest.approx(9.5e-6, rel=0.05)
    assert result.significant and result.interval[0] > 0


def test_both_tests_find_a_planted_difference_and_none_where_none_was_planted():
    rng = np.random.default_rng(RNG_SEED)
    simulations, n = 200, 1000
    found = {"ztest": 0, "msprt": 0}
    false = {"ztest": 0, "msprt": 0}
    for _ in range(simulations):
        base = rng.binomial(n, 0.10)
        for planted, counts in ((0.15, found), (0.10, false)):
            cand = rng.binomial(n, planted)
            counts["ztest"] += two_proportion_ztest(base, n, cand, n).significant
            counts["msprt"] += msprt(base, n, cand, n).significant
    # 10% vs 15% with 1000 per arm: the z-test's power is about 0.88; the mSPRT pays for peeking with less.
    assert found["ztest"] / simulations > 0.8 and found["msprt"] / simulations > 0.5
    # No planted difference: about 5% false positives for the z-test (sd 1.5%), fewer for the mSPRT.
    assert false["ztest"] / simulations < 0.1 and false["msprt"] / simulations < 0.05


def test_msprt_stays_valid_when_peeking_and_the_ztest_does_not():
    """Look after every 50 requests per version, stop at the first "significant": with no difference, the z-test's
    false-positive rate climbs well above 5%; the mSPRT's stays below it (Ville's inequality)."""
    null = simulate_peeking(0.2, 0.2, looks=40, per_look=50, runs=400, seed=RNG_SEED)
    assert null.ztest_any_look > 0.12 and null.ztest_last_look < 0.08
    assert null.msprt_any_look < 0.05
    planted = simulate_peeking(0.2, 0.3, looks=20, per_look=50, runs=100, seed=RNG_SEED)
    assert planted.msprt_any_look > 0.8 and planted.msprt_median_stop < 1000


def test_msprt_interval_covers_the_true_difference():
    rng = np.random.default_rng(RNG_SEED + 2)
    covered = 0
    for _ in range(300):
        base, cand = rng.binomial(400, 0.3), rng.binomial(400, 0.35)
        low, high = msprt(base, 400, cand, 400).interval
        covered += low <= 0.05 <= high
    assert covered / 300 >= 0.95


def test_tiny_samples_give_no_verdict_and_intervals_stay_in_range():
    assert two_proportion_ztest(1, 1, 0, 3).p_value < 0.05  # the approximation says so, but it does not hold
    assert not two_proportion_ztest(1, 1, 0, 3).significant
    for test in (two_proportion_ztest, msprt):
        low, high = test(1, 1, 0, 3).interval
        assert -1.0 <= low <= high <= 1.0


def test_empty_versions_give_no_verdict():
    for test in (two_proportion_ztest, msprt):
        assert test(0, 0, 5, 10).p_value == 1.0 and not test(3, 10, 0, 0).significant


def test_canary_rules():
    limits = CanaryLimits(max_error_rate=0.05, max_p95_s=2.0, min_requests=20)
    assert canary_breach(19, 19, 9.0, limits) is None  # too few to judge
    assert "error rate 10.0% (2/20)" in canary_breach(20, 2, 1.0, limits)
    assert "p95 latency 2.500 s" in canary_breach(40, 0, 2.5, limits)
    assert canary_breach(40, 2, 1.9, limits) is None


def simulated_experiment(log: ExperimentLog, experiment: str, rates: dict[str, float], per_version: int,
                         event: str) -> dict[str, int]:
    """``per_version`` routed requests per version, exactly ``rate * per_version`` of which get ``event``; plus
    requests that named a version and shadow copies, which must not count in the rates. Returns the outcomes."""
    rows, planted = [], {}
    for version, rate in rates.items():
        ids = [f"{experiment}-{version}-{i}" for i in range(per_version)]
        rows += [{"id": i, "experiment": experiment, "version": version, "routing": "routed", "status": 200,
                  "latency_s": 0.5 + (k % 10) / 10} for k, i in enumerate(ids)]
        rows += [{"id": f"{i}-named", "experiment": experiment, "version": version, "routing": "requested",
                  "status": 200, "latency_s": 1.0} for i in ids[:7]]
        rows += [{"id": f"{i}-shadow", "experiment": experiment, "version": version, "routing": "shadow",
                  "status": 500, "latency_s": 3.0} for i in ids[:3]]
        planted[version] = round(rate * per_version)
        log.record_requests(rows)
        for i in ids[:planted[version]]:
            log.record_outcome(i, event)
        rows = []
    for version in rates:  # outcomes of named requests are kept but stay out of the rates
        log.record_outcome(f"{experiment}-{version}-0-named", event)
    return planted


def test_store_counts_and_report_of_a_simulated_experiment(tmp_path):
    log = ExperimentLog(tmp_path / "ab.sqlite")
    planted = simulated_experiment(log, "sim", {"default": 0.10, "fast": 0.20}, 500, "added_to_cart")
    report = experiment_report(log, "sim", ("default", "fast"))
    for version in ("default", "fast"):
        entry = report["versions"][version]
        assert entry["routed"]["requests"] == 500 and entry["requested"]["requests"] == 7
        assert entry["shadow"] == {"requests": 3, "errors": 3, "rejected": 0,
                                   "latency_s": {"p50": None, "p95": None, "p99": None}}
        assert entry["routed"]["latency_s"]["p50"] == pytest.approx(0.95)
        outcome = entry["outcomes"]["added_to_cart"]
        assert (outcome["count"], outcome["trials"]) == (planted[version], 500)
    test = report["tests"]["added_to_cart"]["fast"]
    assert test["ztest"]["significant"] and test["msprt"]["significant"]
    # The store outlives its process: a new connection to the same file sees the same counts.
    again = experiment_report(ExperimentLog(tmp_path / "ab.sqlite"), "sim", ("default", "fast"))
    assert again["versions"] == report["versions"]
    with pytest.raises(UnknownRequestError, match="'nope'"):
        log.record_outcome("nope", "added_to_cart")
    with pytest.raises(UnknownRequestError):
        log.record_outcome("sim-default-0-shadow", "added_to_cart")  # shadow answers were never shown


def test_report_without_a_planted_difference_finds_none(tmp_path):
    log = ExperimentLog(tmp_path / "ab.sqlite")
    simulated_experiment(log, "null", {"default": 0.15, "fast": 0.15}, 500, "kept")
    test = experiment_report(log, "null", ("default", "fast"))["tests"]["kept"]["fast"]
    assert test["ztest"]["p_value"] > 0.5 and not test["ztest"]["significant"] and not test["msprt"]["significant"]


def test_kgi_ab_refuses_bad_arguments_and_says_when_the_service_is_away(capsys, monkeypatch):
    from kgi.cli import main

    monkeypatch.delenv("KGI_ADMIN_TOKEN", raising=False)
    with pytest.raises(SystemExit):
        main(["ab", "rollout", "fast", "--steps", "0.5,0.2"])  # shares must rise
    assert "shares must rise" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ab", "weights", "default=lots"])
    assert "expected VERSION=NUMBER" in capsys.readouterr().err
    assert main(["ab", "--url", "http://127.0.0.1:9", "report"]) == 2
    assert "does not answer" in capsys.readouterr().err
    assert main(["ab", "--url", "http://127.0.0.1:9", "weights", "default=1"]) == 2  # no token: said before HTTP
    assert "admin token" in capsys.readouterr().err


def test_experiment_writes_without_a_dashboard_say_how_to_get_one():
    from deployments.experiments import ConfigWriteError, ServeConfigWriter

    with pytest.raises(ConfigWriteError, match="not reachable at http://127.0.0.1:9.*RAY_DASHBOARD_ADDRESS") as failed:
        ServeConfigWriter("kgi", address="http://127.0.0.1:9").write({"user_config": {"weights": {"default": 1}}})
    assert failed.value.status == 503 and failed.value.code == "config_unavailable"
