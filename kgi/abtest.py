"""Statistics of an A/B experiment: outcome rates with intervals, whether a difference is real, and canary checks.

Plain Python and numpy (no Ray): the service's report (``deployments.experiments``) and ``kgi ab`` use it.

Two tests of "is the candidate's outcome rate different from the baseline's", both on counts of requests that
ended in the outcome (``x`` of ``n`` routed requests per version):

* :func:`two_proportion_ztest`: the classic pooled two-proportion z-test. Valid when the sample size was fixed
  in advance and the result is read once; looking every hour and stopping at the first p < 0.05 makes false
  positives several times likelier than 5% (``tests/test_abtest.py`` measures it).
* :func:`msprt`: the mixture sequential probability ratio test (Johari, Pekelis and Walsh, "Always valid
  inference", 2017; the test behind Optimizely's stats engine) on the difference of the two rates, with a normal
  mixture of width ``tau`` over the true difference. Its p-value and confidence sequence are valid at every
  look, however often one peeks and whenever one stops (Ville's inequality on the likelihood-ratio martingale),
  at the price of wider intervals than the fixed-sample test. This is the one to watch during a live
  experiment; the z-test is for the experiment's planned end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) when ``trials`` is 0.

    Unlike the normal interval p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and is not empty at 0 or n successes.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 or n successes the exact bound is 0 or 1; floating point may miss it by an ulp.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class TestResult:
    """A test of the difference ``rate(candidate) - rate(baseline)``.

    Attributes:
        difference: the observed difference of the rates.
        interval: its 95% confidence interval (the z-test) or confidence sequence (mSPRT).
        p_value: two-sided; 1.0 when a version has no requests.
        significant: ``p_value < alpha``.
    """

    difference: float
    interval: tuple[float, float]
    p_value: float
    significant: bool


MIN_EXPECTED_COUNT = 5  # the z-test's normal approximation needs this many expected outcomes and non-outcomes


def two_proportion_ztest(x_base: int, n_base: int, x_cand: int, n_cand: int, alpha: float = 0.05) -> TestResult:
    """Pooled two-proportion z-test of equal rates: z = (p2 - p1) / sqrt(p(1-p)(1/n1 + 1/n2)), p pooled.

    The interval is the unpooled Wald interval of the difference. Read once, at a sample size fixed in advance.
    Never ``significant`` while a version expects fewer than ``MIN_EXPECTED_COUNT`` outcomes or non-outcomes at
    the pooled rate: the normal approximation does not hold there (one try-on with an outcome against three
    without gives p = 0.046).
    """
    if n_base <= 0 or n_cand <= 0:
        return TestResult(0.0, (-1.0, 1.0), 1.0, False)
    p_base, p_cand = x_base / n_base, x_cand / n_cand
    difference = p_cand - p_base
    pooled = (x_base + x_cand) / (n_base + n_cand)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_base + 1 / n_cand))
    p_value = 1.0 if se_pooled == 0 else min(1.0, 2 * _normal_sf(abs(difference) / se_pooled))
    se = math.sqrt(p_base * (1 - p_base) / n_base + p_cand * (1 - p_cand) / n_cand)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    enough = min(n_base, n_cand) * min(pooled, 1 - pooled) >= MIN_EXPECTED_COUNT
    return TestResult(difference, _rate_difference_interval(difference, z * se), p_value,
                      enough and p_value < alpha)


def _rate_difference_interval(difference: float, half_width: float) -> tuple[float, float]:
    """``difference +- half_width`` clipped to [-1, 1], where a difference of two rates lies."""
    return max(-1.0, difference - half_width), min(1.0, difference + half_width)


def msprt(x_base: int, n_base: int, x_cand: int, n_cand: int, alpha: float = 0.05, tau: float = 0.05) -> TestResult:
    """Mixture SPRT of equal rates, valid under continuous monitoring.

    With the observed difference d, its variance V = p1(1-p1)/n1 + p2(1-p2)/n2 and a N(0, tau^2) mixture over the
    true difference, the mixture likelihood ratio against "no difference" is

        Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

    The always-valid p-value is ``min(1, 1/Lambda)`` and the confidence sequence is the set of differences not
    rejected at ``alpha``: d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V))).
    ``tau`` is the size of difference the test is tuned to find soonest (0.05: five points of rate).
    The rates' variances use the observed rates, floored at one half-success so a version with 0 outcomes
    still has a finite variance.
    """
    if n_base <= 0 or n_cand <= 0:
        return TestResult(0.0, (-1.0, 1.0), 1.0, False)
    p_base, p_cand = x_base / n_base, x_cand / n_cand
    difference = p_cand - p_base
    variance = _floored_variance(x_base, n_base) + _floored_variance(x_cand, n_cand)
    tau2 = tau * tau
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + \
        tau2 * difference * difference / (2 * variance * (variance + tau2))
    p_value = min(1.0, math.exp(-log_ratio))
    half = math.sqrt(variance * (variance + tau2) / tau2 *
                     (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance)))
    return TestResult(difference, _rate_difference_interval(difference, half), p_value, p_value < alpha)


def _floored_variance(successes: int, trials: int) -> float:
    p = min(max(successes, 0.5), trials - 0.5) / trials if trials > 1 else 0.5
    return p * (1 - p) / trials


def latency_percentiles(seconds, quantiles=(50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` of a sequence of latencies (``None`` when it is empty)."""
    values = np.asarray(list(seconds), dtype=np.float64)
    if values.size == 0:
        return {f"p{q}": None for q in quantiles}
    return {f"p{q}": round(float(v), 4) for q, v in zip(quantiles, np.percentile(values, quantiles), strict=True)}


@dataclass(frozen=True)
class CanaryLimits:
    """When a canary is rolled back: its server-error rate above ``max_error_rate`` or its p95 latency above
    ``max_p95_s``, judged once it has served ``min_requests`` in the current step (fewer say nothing)."""

    max_error_rate: float = 0.05
    max_p95_s: float | None = None
    min_requests: int = 20


def canary_breach(requests: int, errors: int, p95_s: float | None, limits: CanaryLimits) -> str | None:
    """Why a canary must be rolled back, or ``None`` while it is within ``limits``.

    Args:
        requests: the canary's requests in the window judged (server errors included).
        errors: those that failed on the server side (5xx).
        p95_s: the p95 latency of its successful requests in the window, if any.
    """
    if requests < limits.min_requests:
        return None
    rate = errors / requests
    if rate > limits.max_error_rate:
        return f"error rate {rate:.1%} ({errors}/{requests}) above {limits.max_error_rate:.1%}"
    if limits.max_p95_s is not None and p95_s is not None and p95_s > limits.max_p95_s:
        return f"p95 latency {p95_s:.3f} s above {limits.max_p95_s:.3f} s"
    return None


@dataclass(frozen=True)
class PeekingResult:
    """What :func:`simulate_peeking` found: the share of runs each test declared a difference in.

    Attributes:
        ztest_any_look: the z-test, stopping at the first look with p < alpha.
        ztest_last_look: the z-test read once, at the last look (its planned sample size).
        msprt_any_look: the mSPRT, stopping at the first look with p < alpha.
        msprt_median_stop: the median requests per version at which the mSPRT stopped (``None`` if it never did).
    """

    ztest_any_look: float
    ztest_last_look: float
    msprt_any_look: float
    msprt_median_stop: float | None


def simulate_peeking(base_rate: float, candidate_rate: float, looks: int = 40, per_look: int = 50, runs: int = 400,
                     alpha: float = 0.05, seed: int = 0) -> PeekingResult:
    """Simulate ``runs`` experiments that look at the result after every ``per_look`` requests per version.

    With equal rates the shares are false-positive rates (the z-test's climbs with every look, the mSPRT's stays
    under ``alpha``); with different rates they are the power each way of reading has.
    """
    rng = np.random.default_rng(seed)
    base = rng.binomial(per_look, base_rate, size=(runs, looks)).cumsum(axis=1)  # (runs, looks) successes so far
    cand = rng.binomial(per_look, candidate_rate, size=(runs, looks)).cumsum(axis=1)
    trials = per_look * np.arange(1, looks + 1)
    z_any = z_last = m_any = 0
    stops = []
    for run in range(runs):
        z_any += any(two_proportion_ztest(base[run, k], trials[k], cand[run, k], trials[k], alpha).significant
                     for k in range(looks))
        z_last += two_proportion_ztest(base[run, -1], trials[-1], cand[run, -1], trials[-1], alpha).significant
        stop = next((trials[k] for k in range(looks)
                     if msprt(base[run, k], trials[k], cand[run, k], trials[k], alpha).significant), None)
        if stop is not None:
            m_any += 1
            stops.append(stop)
    return PeekingResult(z_any / runs, z_last / runs, m_any / runs, float(np.median(stops)) if stops else None)
