"""The Grafana dashboard and the Prometheus alert rules of ``platform/`` query only metrics the service exports.

The files are checked for shape without a cluster; then the session's ``service`` (conftest.py) answers a few
try-ons, a refused one and a feedback, and Ray's metrics endpoint must list every metric name the dashboard's
and the rules' PromQL queries use.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "platform" / "grafana" / "kgi-serving.json"
ALERT_RULES = REPO / "platform" / "prometheus" / "kgi-alerts.yaml"
EXPORT_TIMEOUT_S = 90  # Ray's workers report their metrics to the node's agent every few seconds

# What PromQL (and Grafana's label_values) spell with identifiers that are not metric names.
PROMQL_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "limitk", "limit_ratio", "inf", "nan"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")  # [5m], [$__rate_interval], subqueries [1h:5m]
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NUMBERS = re.compile(r"(?<![\w:])\d[\w.]*")  # 0.95, 1e3, 5m
_IDENTIFIER = re.compile(r"(?<![\w:$])[A-Za-z_:][\w:]*")


def promql_metric_names(query: str) -> set[str]:
    """The metric names a PromQL query selects.

    Strings, label matchers, ranges and label lists go first; of the identifiers left, those followed by ``(``
    are functions and aggregations, and PromQL's keywords are not metrics either.
    """
    for pattern in (_STRINGS, _LABEL_MATCHERS, _RANGES, _LABEL_LISTS, _NUMBERS):
        query = pattern.sub(" ", query)
    return {match.group() for match in _IDENTIFIER.finditer(query)
            if match.group() not in PROMQL_KEYWORDS and not query[match.end():].lstrip().startswith("(")}


_LABEL_VALUES = re.compile(r"label_values\((.+),\s*\w+\)")  # Grafana's variable query: label_values(selector, label)


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every PromQL query of a Grafana dashboard: its panels' targets and its query variables' selectors."""
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            queries.append(_LABEL_VALUES.fullmatch(query).group(1))
    return queries


def alert_queries(rules: dict) -> list[str]:
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_promql_metric_names_are_read_out_of_queries():
    assert promql_metric_names(
        'histogram_quantile(0.95, sum by (version, le) (rate(a_bucket{x="y", v=~"$v"}[$__rate_interval])))'
    ) == {"a_bucket"}
    assert promql_metric_names(
        'sum by (v, kind) (rate(errors_total[5m])) / ignoring (kind) group_left sum by (v) (rate(requests_total[5m]))'
        " > 0.02 unless on (v) min(healthy offset 1h) == bool 0") == {"errors_total", "requests_total", "healthy"}
    assert dashboard_queries({"panels": [], "templating": {"list": [
        {"type": "query", "query": {"query": 'label_values(m_total{application="$application"}, version)'}}]}}) \
        == ['m_total{application="$application"}']
    assert promql_metric_names('count(x{job="by (y) sum(z)"})') == {"x"}


def test_dashboard_and_rules_are_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    graphs = [panel for panel in panels if panel["type"] != "row"]
    assert all(panel["targets"] and panel["title"] and panel["description"] for panel in graphs)
    queries = " ".join(dashboard_queries(dashboard))
    for shown in ("kgi_tryon_requests", "kgi_tryon_errors", "kgi_tryon_latency_s", "kgi_inpaint_batch_size",
                  "serve_deployment_queued_queries"):  # the per-version figures and the queues the issue asks for
        assert shown in queries
    rules = yaml.safe_load(ALERT_RULES.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len({rule["alert"] for rule in alerts}) == len(alerts)
    for rule in alerts:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "warning", "info") and rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def _exported_metric_names(port: int) -> set[str]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


@pytest.mark.slow
def test_every_metric_the_dashboard_and_rules_query_is_exported(service, vitonhd_sample):
    import ray

    test = vitonhd_sample / "test"
    files = {"person": ("person.jpg", (test / "image" / "00006_00.jpg").read_bytes()),
             "garment": ("garment.jpg", (test / "cloth" / "06396_00.jpg").read_bytes()),
             "parse": ("parse.png", (test / "image-parse-v3" / "00006_00.png").read_bytes()),
             "pose": ("pose.json", (test / "openpose_json" / "00006_00_keypoints.json").read_bytes())}
    answered = [httpx.post(f"{service}/v1/tryon", files=files, data={"version": version, "steps": "1"},
                           timeout=300) for version in ("default", "fast")]
    assert [r.status_code for r in answered] == [200, 200], [r.text[:200] for r in answered]
    refused = httpx.post(f"{service}/v1/tryon", files={**files, "person": ("notes.txt", b"not a photo")},
                         data={"version": "default"}, timeout=60)
    assert refused.status_code == 422  # counted as a client error of version "default"
    feedback = httpx.post(f"{service}/v1/feedback", json={"request_id": answered[0].headers["x-kgi-request-id"],
                                                          "event": "kept"}, timeout=60)
    assert feedback.status_code == 200, feedback.text

    queried = set()
    for query in [*dashboard_queries(json.loads(DASHBOARD.read_text())),
                  *alert_queries(yaml.safe_load(ALERT_RULES.read_text()))]:
        queried |= promql_metric_names(query)
    assert {"ray_kgi_tryon_requests_total", "ray_kgi_inpaint_batch_size_bucket"} <= queried
    (node,) = [node for node in ray.nodes() if node["Alive"]]
    deadline = time.monotonic() + EXPORT_TIMEOUT_S
    while missing := queried - _exported_metric_names(node["MetricsExportPort"]):
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard or the alert rules query metrics the service does not export: "
                        f"{sorted(missing)}")
        time.sleep(2)
