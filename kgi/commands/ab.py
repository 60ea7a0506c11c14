"""A/B experiments on a running service: start one, read its report, roll a candidate out as a canary.

Talks to the service's HTTP API only (no Ray needed here). Changing the experiment needs the admin token
(--token or $KGI_ADMIN_TOKEN); reading the report does not.

  kgi ab start default-vs-fast-2 --weights default=0.5,fast=0.5 [--shadow fast=0.1]   a new experiment
  kgi ab weights default=0.8,fast=0.2                      new weights for the running experiment
  kgi ab report [--experiment ID] [--baseline default] [--json]
  kgi ab rollout fast --steps 0.05,0.25,0.5,1 --interval 300 --max-error-rate 0.02 --max-p95 8
  kgi ab simulate 0.20 0.25 --looks 40 --per-look 50      plan one: how each test does when you peek

The report shows, per version, routed requests (drawn by the weights), requested ones (that named the version)
and shadow copies, errors, latency percentiles, each outcome's rate with a 95% interval, and per outcome the
candidate-minus-baseline difference with a fixed-sample z-test and an always-valid mSPRT p-value (kgi.abtest:
peek at the mSPRT as often as you like; read the z-test once, at the planned sample size).

rollout ramps the candidate's weight through --steps (the other versions keep their proportions), holds each step
for --interval seconds and until the candidate has served --min-requests, and rolls back to the weights it found
by itself when the candidate's server-error rate or p95 latency in the step breaches a limit; exit code 1 then.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from kgi.abtest import CanaryLimits, canary_breach, simulate_peeking
from kgi.cli import CommandError

HELP = "A/B experiments on a running service: start, weights, report, canary rollout"
ADMIN_TOKEN_ENV = "KGI_ADMIN_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default: %(default)s)")
    parser.add_argument("--token", default=None, help=f"admin token (default: ${ADMIN_TOKEN_ENV})")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start a new experiment (a new id reshuffles users)")
    start.add_argument("experiment", help="the experiment's id")
    start.add_argument("--weights", type=_pairs, required=True, help="VERSION=WEIGHT,... (others get 0)")
    start.add_argument("--shadow", type=_shadow, default=None, help="VERSION=SHARE: copy that share of the "
                                                                     "routed requests to VERSION too")
    weights = actions.add_parser("weights", help="new weights for the running experiment")
    weights.add_argument("weights", type=_pairs, help="VERSION=WEIGHT,... (others get 0)")
    report = actions.add_parser("report", help="per-version traffic, outcomes and significance")
    report.add_argument("--experiment", default=None, help="default: the running one")
    report.add_argument("--baseline", default=None, help="default: the first served version")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    rollout = actions.add_parser("rollout", help="ramp a candidate's weight, rolling back on a breach")
    rollout.add_argument("candidate", help="the version to roll out")
    rollout.add_argument("--steps", type=_shares, default=(0.05, 0.25, 0.5, 1.0),
                         help="its shares of the traffic, in order (default: 0.05,0.25,0.5,1)")
    rollout.add_argument("--interval", type=float, default=300.0, help="seconds each step holds (default: 300)")
    rollout.add_argument("--min-requests", type=int, default=50,
                         help="requests the candidate must serve in a step before it is judged (default: 50)")
    rollout.add_argument("--max-error-rate", type=float, default=0.02, help="default: 0.02 (2%% of 5xx)")
    rollout.add_argument("--max-p95", type=float, default=None, help="p95 latency limit, seconds (default: none)")
    rollout.add_argument("--poll", type=float, default=5.0, help="seconds between looks (default: 5)")
    simulate = actions.add_parser("simulate", help="simulated experiments: false positives and power when peeking")
    simulate.add_argument("base_rate", type=float, help="the baseline's outcome rate")
    simulate.add_argument("candidate_rate", type=float, help="the candidate's (equal: false-positive rates)")
    simulate.add_argument("--looks", type=int, default=40, help="looks at the result (default: 40)")
    simulate.add_argument("--per-look", type=int, default=50, help="requests per version between looks (default: 50)")
    simulate.add_argument("--runs", type=int, default=400, help="simulated experiments (default: 400)")
    simulate.add_argument("--seed", type=int, default=0)


def _pairs(text: str) -> dict[str, float]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            pairs[name] = float(value) if sep else float("nan")
        except ValueError:
            pairs[name] = float("nan")
        if not sep or pairs[name] != pairs[name]:
            raise argparse.ArgumentTypeError(f"{item!r}: expected VERSION=NUMBER")
    if not pairs:
        raise argparse.ArgumentTypeError("expected VERSION=NUMBER,...")
    return pairs


def _shadow(text: str) -> dict:
    (version, share), *rest = _pairs(text).items()
    if rest:
        raise argparse.ArgumentTypeError("one shadow version: VERSION=SHARE")
    return {"version": version, "share": share}


def _shares(text: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected shares like 0.05,0.25,1") from None
    if not shares or any(not 0 < share <= 1 for share in shares) or list(shares) != sorted(shares):
        raise argparse.ArgumentTypeError(f"{text!r}: shares must rise within (0, 1]")
    return shares


class Service:
    """The service's A/B endpoints over HTTP (``urllib``: no extra dependency)."""

    def __init__(self, url: str, token: str | None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None, admin: bool = False) -> dict:
        headers = {"Content-Type": "application/json"}
        if admin:
            if not self.token:
                raise CommandError(f"changing the experiment needs the admin token: --token or ${ADMIN_TOKEN_ENV}")
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text[:300]
            raise CommandError(f"{method} {path}: {exc.code}: {message}") from None
        except OSError as exc:
            raise CommandError(f"the service at {self.url} does not answer ({exc})") from None


def run(args: argparse.Namespace) -> int:
    service = Service(args.url, args.token or os.environ.get(ADMIN_TOKEN_ENV))
    if args.action == "start":
        applied = service.call("PUT", "/v1/ab/experiment", {"experiment": args.experiment, "weights": args.weights,
                                                            "shadow": args.shadow}, admin=True)
        print(f"experiment {applied['experiment']}: weights {_format_weights(applied['weights'])}"
              + (f", shadow {applied['shadow']}" if applied.get("shadow") else ""))
    elif args.action == "weights":
        applied = service.call("PUT", "/v1/ab/weights", {"weights": args.weights}, admin=True)
        print(f"experiment {applied['experiment']}: weights {_format_weights(applied['weights'])}")
    elif args.action == "simulate":
        if not (0 <= args.base_rate <= 1 and 0 <= args.candidate_rate <= 1) or min(args.looks, args.per_look,
                                                                                   args.runs) < 1:
            raise CommandError("rates must lie in [0, 1]; --looks, --per-look and --runs must be >= 1")
        result = simulate_peeking(args.base_rate, args.candidate_rate, args.looks, args.per_look, args.runs,
                                  seed=args.seed)
        print(f"{args.runs} experiments, {args.base_rate:.1%} vs {args.candidate_rate:.1%}, a look every "
              f"{args.per_look} requests per version up to {args.looks * args.per_look}:\n"
              f"  z-test, stop at the first p < 0.05: {result.ztest_any_look:.1%} declare a difference\n"
              f"  z-test, read once at the end:       {result.ztest_last_look:.1%}\n"
              f"  mSPRT, stop at the first p < 0.05:  {result.msprt_any_look:.1%}"
              + ("" if result.msprt_median_stop is None else
                 f" (median stop at {result.msprt_median_stop:.0f} per version)"))
    elif args.action == "report":
        query = urllib.parse.urlencode({key: value for key, value in (("experiment", args.experiment),
                                                                       ("baseline", args.baseline)) if value})
        report = service.call("GET", "/v1/ab/report" + (f"?{query}" if query else ""))
        print(json.dumps(report, indent=2) if args.json else format_report(report))
    else:
        return rollout(service, args.candidate, args.steps, args.interval, args.poll,
                       CanaryLimits(args.max_error_rate, args.max_p95, args.min_requests))
    return 0


def rollout(service: Service, candidate: str, steps: tuple[float, ...], interval_s: float, poll_s: float,
            limits: CanaryLimits) -> int:
    """Ramp ``candidate`` through ``steps``; 0 when it reached the last one, 1 when it was rolled back. Ctrl-C
    rolls back too (a ramp nobody watches any more goes back to where it started)."""
    original = service.call("GET", "/v1/ab")["weights"]
    try:
        return _ramp(service, candidate, original, steps, interval_s, poll_s, limits)
    except KeyboardInterrupt:
        service.call("PUT", "/v1/ab/weights", {"weights": original}, admin=True)
        print(f"interrupted: rolled back to {_format_weights(original)}", flush=True)
        raise


def _ramp(service: Service, candidate: str, original: dict[str, float], steps: tuple[float, ...],
          interval_s: float, poll_s: float, limits: CanaryLimits) -> int:
    if candidate not in original:
        raise CommandError(f"{candidate!r} is not served; served versions are {list(original)}")
    others = {name: weight for name, weight in original.items() if name != candidate}
    others_total = sum(others.values())
    if others_total <= 0 and steps[0] < 1:
        raise CommandError("the other versions have no weight to give: set their weights first")
    for share in steps:
        weights = {candidate: share, **{name: (1 - share) * w / others_total for name, w in others.items()}} \
            if others_total > 0 else {candidate: 1.0}
        applied = service.call("PUT", "/v1/ab/weights", {"weights": weights}, admin=True)
        since = applied["applied_at"]
        print(f"{candidate} at {share:.0%} of the traffic (experiment {applied['experiment']})", flush=True)
        start = time.monotonic()
        while True:
            time.sleep(poll_s)
            query = urllib.parse.urlencode({"since": since, "experiment": applied["experiment"]})
            report = service.call("GET", f"/v1/ab/report?{query}")
            routed = report["versions"][candidate]["routed"] or {"requests": 0, "errors": 0, "latency_s": {}}
            p95 = routed["latency_s"].get("p95")
            breach = canary_breach(routed["requests"], routed["errors"], p95, limits)
            if breach is not None:
                service.call("PUT", "/v1/ab/weights", {"weights": original}, admin=True)
                print(f"rolled back to {_format_weights(original)}: {candidate}'s {breach}", flush=True)
                return 1
            waited = time.monotonic() - start
            if waited >= interval_s and routed["requests"] >= limits.min_requests:
                print(f"  {routed['requests']} requests, {routed['errors']} errors, p95 "
                      f"{'-' if p95 is None else f'{p95:.3f} s'}: within limits", flush=True)
                break
            if waited >= 10 * interval_s:
                service.call("PUT", "/v1/ab/weights", {"weights": original}, admin=True)
                print(f"rolled back to {_format_weights(original)}: {candidate} served only {routed['requests']} "
                      f"requests in {waited:.0f} s, fewer than the {limits.min_requests} needed to judge it",
                      flush=True)
                return 1
    print(f"{candidate} rolled out to {steps[-1]:.0%}", flush=True)
    return 0


def _format_weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{name} {weight:.0%}" for name, weight in weights.items())


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def format_report(report: dict) -> str:
    """The report as a table (``--json`` gives everything)."""
    lines = [f"experiment {report['experiment']}" + (f"   weights {_format_weights(report['weights'])}"
                                                      if report.get("weights") else "")]
    lines.append(f"{'version':<16}{'routing':<11}{'requests':>9}{'errors':>8}{'rejected':>9}"
                 f"{'p50 s':>9}{'p95 s':>9}{'p99 s':>9}")
    for version, entry in report["versions"].items():
        for routing in ("routed", "requested", "shadow"):
            stats = entry.get(routing)
            if not stats:
                continue
            latency = stats["latency_s"]
            lines.append(f"{version:<16}{routing:<11}{stats['requests']:>9}{stats['errors']:>8}{stats['rejected']:>9}"
                         + "".join(f"{'-' if latency.get(q) is None else format(latency[q], '.3f'):>9}"
                                   for q in ("p50", "p95", "p99")))
    events = sorted({event for entry in report["versions"].values() for event in entry["outcomes"]})
    for event in events:
        lines.append(f"\noutcome {event!r} (rate over routed answered requests, 95% Wilson interval)")
        for version, entry in report["versions"].items():
            outcome = entry["outcomes"][event]
            low, high = outcome["interval"]
            lines.append(f"  {version:<16}{outcome['count']:>7} / {outcome['trials']:<7}{_rate(outcome['rate']):>8}"
                         f"  [{low:.1%}, {high:.1%}]")
        for version, test in report["tests"].get(event, {}).items():
            z, m = test["ztest"], test["msprt"]
            lines.append(f"  {version} - {report['baseline']}: {z['difference']:+.1%}   z-test p={z['p_value']:.4f}"
                         f"{' (significant)' if z['significant'] else ''}   mSPRT p={m['p_value']:.4f}"
                         f"{' (significant)' if m['significant'] else ''}, always-valid interval "
                         f"[{m['interval'][0]:+.1%}, {m['interval'][1]:+.1%}]")
    return "\n".join(lines)
