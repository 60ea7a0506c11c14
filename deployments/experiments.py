"""The experiment's memory: every request's assignment and outcome, in one store all Ingress replicas share.

::

    Ingress replicas --record / feedback / report / apply--> ExperimentStore (1 replica) --> SQLite file
                                                             +--PUT /api/serve/applications/--> Serve controller

:class:`ExperimentLog` is the plain SQLite store (no Ray): a ``requests`` table (request id, experiment, version,
how it was routed, user, status, latency) and an ``outcomes`` table (request id, event, value), plus the history
of experiment settings. :class:`ExperimentStore` is its one-replica Serve deployment; the file lives where the
replica runs (on a cluster, the head node: ``ray_actor_options`` in the config pins it there), so it survives
replica and application restarts, and one writer means no file locking across nodes.

Why SQLite behind one replica, not Ray's own storage or a database server: assignments and outcomes are a few
hundred bytes per request, written once and read by the report as a group-by; SQLite in WAL mode took about
10,000 single-row assignments and 11,000 outcomes a second on the shared 2-core machine (``ExperimentLog`` alone,
load average 10), keeps them in one file an operator can copy or query with ``sqlite3``, and needs nothing else
running. Ray's internal key-value store is private API and lives in the GCS
(lost with the head unless Redis backs it); a database server is one more service to run. Past one store replica's
capacity (far beyond what GPU try-on throughput produces), the same two tables move to Postgres.

:class:`ServeConfigWriter` changes the running experiment the way ``serve deploy`` does: it reads the cluster's
live Serve config from the dashboard's REST API (``GET /api/serve/applications/``), replaces the Ingress
deployment's ``user_config`` and puts the whole config back (``PUT``), then waits until every replica runs it.
Serve sees a change of ``user_config`` only (a lightweight update): it calls ``reconfigure`` on every Ingress
replica, restarts none, and gives later replicas the new value; no other deployment changes. Ray 2.60 has no
public Python API for this; the REST API is the public interface (``serve deploy`` uses it) and needs the
dashboard (``RAY_DASHBOARD_ADDRESS``, default ``http://127.0.0.1:8265``, the head node's) and, where Ray's token
authentication is on, Ray's token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from ray import serve

from deployments.errors import RequestError
from deployments.routing import REQUESTED, ROUTED, SHADOW, ExperimentSettings
from kgi.abtest import latency_percentiles, msprt, two_proportion_ztest, wilson_interval

logger = logging.getLogger("ray.serve")

DASHBOARD_ADDRESS_ENV = "RAY_DASHBOARD_ADDRESS"
DEFAULT_DASHBOARD_ADDRESS = "http://127.0.0.1:8265"
INGRESS_DEPLOYMENT = "Ingress"
LATENCY_WINDOW = 100_000  # the newest successful requests per version and routing that percentiles use

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, version TEXT NOT NULL, routing TEXT NOT NULL,
    user_id TEXT, status INTEGER NOT NULL, latency_s REAL NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_by_experiment ON requests (experiment, version, routing, time);
CREATE TABLE IF NOT EXISTS outcomes (
    request_id TEXT NOT NULL, event TEXT NOT NULL, value REAL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS outcomes_by_request ON outcomes (request_id, event);
CREATE TABLE IF NOT EXISTS settings (time REAL NOT NULL, experiment TEXT NOT NULL, settings TEXT NOT NULL);
"""


class UnknownRequestError(RequestError):
    """Feedback for a request id the store has no assignment for."""

    status = 404
    code = "unknown_request"


class ConfigWriteError(RequestError):
    """The experiment could not be written through Serve (no dashboard, refused, not deployed from a config)."""

    status = 503
    code = "config_unavailable"


class ExperimentLog:
    """Assignments and outcomes in one SQLite file (created with its folder when missing).

    Args:
        path: the database file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commits, never the file
        self.db.executescript(SCHEMA)

    def record_requests(self, rows: Iterable[dict]) -> None:
        """Store answered requests: dicts of ``id, experiment, version, routing, user_id, status, latency_s, time``."""
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO requests VALUES (:id, :experiment, :version, :routing, :user_id, :status, "
            ":latency_s, :time)", [{"user_id": None, "time": time.time(), **row} for row in rows])
        self.db.execute("COMMIT")

    def record_outcome(self, request_id: str, event: str, value: float | None = None) -> dict:
        """Store an outcome of a request; returns its assignment (experiment, version, routing).

        Raises ``UnknownRequestError`` for an id the store has never seen (or a shadow copy's).
        """
        row = self.db.execute("SELECT experiment, version, routing FROM requests WHERE id = ? AND routing != ?",
                              (request_id, SHADOW)).fetchone()
        if row is None:
            raise UnknownRequestError(f"request_id: {request_id!r} is not a try-on this service answered")
        self.db.execute("INSERT INTO outcomes VALUES (?, ?, ?, ?)", (request_id, event, value, time.time()))
        return dict(zip(("experiment", "version", "routing"), row, strict=True))

    def record_settings(self, settings: ExperimentSettings) -> None:
        self.db.execute("INSERT INTO settings VALUES (?, ?, ?)",
                        (time.time(), settings.experiment, settings.model_dump_json()))

    def experiments(self) -> list[dict]:
        """Every experiment with requests or settings: id, first and last time seen."""
        rows = self.db.execute(
            "SELECT experiment, MIN(time), MAX(time) FROM (SELECT experiment, time FROM requests UNION ALL "
            "SELECT experiment, time FROM settings) GROUP BY experiment ORDER BY MIN(time)").fetchall()
        return [{"experiment": e, "first": first, "last": last} for e, first, last in rows]

    def traffic(self, experiment: str, since: float = 0.0) -> dict[str, dict[str, dict]]:
        """version -> routing -> requests, errors (5xx), rejected (4xx), latency_s percentiles of the successes."""
        counts = self.db.execute(
            "SELECT version, routing, COUNT(*), SUM(status >= 500), SUM(status >= 400 AND status < 500) "
            "FROM requests WHERE experiment = ? AND time >= ? GROUP BY version, routing",
            (experiment, since)).fetchall()
        traffic: dict[str, dict[str, dict]] = {}
        for version, routing, requests, errors, rejected in counts:
            latencies = self.db.execute(
                "SELECT latency_s FROM requests WHERE experiment = ? AND version = ? AND routing = ? AND time >= ? "
                "AND status < 400 ORDER BY time DESC LIMIT ?",
                (experiment, version, routing, since, LATENCY_WINDOW)).fetchall()
            traffic.setdefault(version, {})[routing] = {
                "requests": requests, "errors": errors, "rejected": rejected,
                "latency_s": latency_percentiles(row[0] for row in latencies)}
        return traffic

    def outcomes(self, experiment: str, since: float = 0.0) -> dict[str, dict[str, dict]]:
        """event -> version -> successes (routed answered requests with the event), trials, value_mean."""
        trials = dict(self.db.execute(
            "SELECT version, COUNT(*) FROM requests WHERE experiment = ? AND routing = ? AND status < 400 "
            "AND time >= ? GROUP BY version", (experiment, ROUTED, since)).fetchall())
        rows = self.db.execute(
            "SELECT o.event, r.version, COUNT(DISTINCT o.request_id), AVG(o.value) FROM outcomes o "
            "JOIN requests r ON r.id = o.request_id WHERE r.experiment = ? AND r.routing = ? AND r.status < 400 "
            "AND r.time >= ? GROUP BY o.event, r.version", (experiment, ROUTED, since)).fetchall()
        outcomes: dict[str, dict[str, dict]] = {}
        for event, version, successes, value_mean in rows:
            outcomes.setdefault(event, {})[version] = {"successes": successes, "value_mean": value_mean}
        for by_version in outcomes.values():
            for version, n in trials.items():
                by_version.setdefault(version, {"successes": 0, "value_mean": None})["trials"] = n
        return outcomes


def experiment_report(log: ExperimentLog, experiment: str, versions: tuple[str, ...], baseline: str | None = None,
                      since: float = 0.0, alpha: float = 0.05) -> dict:
    """The report of one experiment (``GET /v1/ab/report``, ``kgi ab report``).

    Per version: its traffic by routing (``routed`` by the weights, ``requested`` by name, ``shadow`` copies),
    each with requests, errors, rejected and latency percentiles; per outcome event, the rate over its routed
    answered requests with a 95% Wilson interval. Per event and candidate version, the difference of its rate from
    ``baseline``'s (default: the first served version) with the two-proportion z-test and the mSPRT
    (``kgi.abtest``). Only routed requests enter rates and tests: requests that named a version chose it.
    """
    baseline = baseline or versions[0]
    traffic = log.traffic(experiment, since)
    outcomes = log.outcomes(experiment, since)
    report_versions = {}
    for version in versions:
        entry = {routing: traffic.get(version, {}).get(routing) for routing in (ROUTED, REQUESTED, SHADOW)}
        entry["outcomes"] = {}
        for event, by_version in outcomes.items():
            counts = by_version.get(version, {"successes": 0, "trials": 0, "value_mean": None})
            successes, trials = counts["successes"], counts.get("trials", 0)
            entry["outcomes"][event] = {
                "count": successes, "trials": trials, "rate": successes / trials if trials else None,
                "interval": wilson_interval(successes, trials), "value_mean": counts["value_mean"]}
        report_versions[version] = entry
    tests = {}
    for event in outcomes:
        base = report_versions[baseline]["outcomes"][event]
        for version in versions:
            if version == baseline:
                continue
            cand = report_versions[version]["outcomes"][event]
            args = (base["count"], base["trials"], cand["count"], cand["trials"])
            tests.setdefault(event, {})[version] = {
                "ztest": vars(two_proportion_ztest(*args, alpha=alpha)), "msprt": vars(msprt(*args, alpha=alpha))}
    return {"experiment": experiment, "baseline": baseline, "since": since, "alpha": alpha,
            "versions": report_versions, "tests": tests}


class ServeConfigWriter:
    """Changes one deployment's options in the live Serve config, through the dashboard's REST API.

    Args:
        app_name: the Serve application.
        deployment: the deployment whose options change.
        address: the dashboard's HTTP address; default ``$RAY_DASHBOARD_ADDRESS`` or ``http://127.0.0.1:8265``.
    """

    def __init__(self, app_name: str, deployment: str = INGRESS_DEPLOYMENT, address: str | None = None):
        self.app_name = app_name
        self.deployment = deployment
        self.address = (address or os.environ.get(DASHBOARD_ADDRESS_ENV) or DEFAULT_DASHBOARD_ADDRESS).rstrip("/")

    def options(self) -> dict:
        """The deployment's entry in the live config (``{"name": ...}`` alone when the config sets nothing)."""
        details = self._request("GET")
        config = ((details.get("applications") or {}).get(self.app_name) or {}).get("deployed_app_config") or {}
        entry = next((d for d in config.get("deployments", []) if d.get("name") == self.deployment), None)
        return dict(entry or {"name": self.deployment})

    def write(self, changes: dict, timeout_s: float = 60.0) -> None:
        """Set the deployment's options in ``changes`` (``None`` removes one, so the code's value applies) and
        wait until every replica runs them. Raises ``ConfigWriteError`` saying why it could not."""
        details = self._request("GET")
        applications, entry = [], None
        for name, app in (details.get("applications") or {}).items():
            config = app.get("deployed_app_config")
            if config is None:
                raise ConfigWriteError(f"application {name!r} was not deployed from a config file (serve run of "
                                       "Python code): its config cannot be rewritten")
            if name == self.app_name:
                deployments = config.setdefault("deployments", [])
                entry = next((d for d in deployments if d.get("name") == self.deployment), None)
                if entry is None:
                    entry = {"name": self.deployment}
                    deployments.append(entry)
                entry.update(changes)
                for key in [key for key, value in entry.items() if value is None]:
                    del entry[key]
            applications.append(config)
        if entry is None:
            raise ConfigWriteError(f"application {self.app_name!r} is not in the cluster's Serve config")
        body = {key: details[key] for key in ("proxy_location", "http_options", "grpc_options", "target_capacity")
                if details.get(key) is not None}
        self._request("PUT", {**body, "applications": applications})
        self._wait_applied(entry.get("user_config"), timeout_s)

    def _wait_applied(self, user_config: dict | None, timeout_s: float) -> None:
        """Wait until Serve has reconfigured every replica of the deployment: it reports ``user_config`` and is
        HEALTHY again (a config update turns it UPDATING until all replicas run it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            app = (self._request("GET").get("applications") or {}).get(self.app_name) or {}
            details = (app.get("deployments") or {}).get(self.deployment) or {}
            if details.get("deployment_config", {}).get("user_config") == user_config \
                    and details.get("status") == "HEALTHY":
                return
            if time.monotonic() > deadline:
                raise ConfigWriteError(f"Serve accepted the new {self.deployment} config but its replicas did not "
                                       f"all apply it within {timeout_s:.0f} s (status {details.get('status')})")
            time.sleep(0.2)

    def _request(self, method: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        token = ray_auth_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.address}/api/serve/applications/", method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise ConfigWriteError(f"Serve's REST API at {self.address} refused the {method} ({exc.code}): "
                                   f"{exc.read().decode()[:300]}") from None
        except OSError as exc:
            raise ConfigWriteError(f"Serve's REST API is not reachable at {self.address} ({exc}); run the Ray "
                                   f"dashboard and set {DASHBOARD_ADDRESS_ENV}") from None
        return json.loads(text) if text else {}


def ray_auth_token() -> str | None:
    """Ray's cluster token where token authentication is on: ``$RAY_AUTH_TOKEN``, the file
    ``$RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token`` (where Ray looks for it); ``None`` when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.is_file() else None


@serve.deployment(ray_actor_options={"num_cpus": 0.05}, num_replicas=1, max_ongoing_requests=256)
class ExperimentStore:
    """The one writer of the experiment's store and of its settings (a thin shell over :class:`ExperimentLog`).

    Args:
        path: the SQLite file on the replica's node.
    """

    def __init__(self, path: str):
        self.log = ExperimentLog(path)
        self.writer = ServeConfigWriter(serve.get_replica_context().app_name)
        self.lock = asyncio.Lock()  # one settings change at a time: each rewrites the whole config

    def record(self, rows: list[dict]) -> None:
        self.log.record_requests(rows)

    def feedback(self, request_id: str, event: str, value: float | None) -> dict:
        return self.log.record_outcome(request_id, event, value)

    def report(self, experiment: str, versions: tuple[str, ...], baseline: str | None, since: float) -> dict:
        """:func:`experiment_report` of the served ``versions`` (in routing order)."""
        if baseline is not None and baseline not in versions:
            raise RequestError(f"baseline: {baseline!r} is not served; served versions are {list(versions)}")
        return experiment_report(self.log, experiment, tuple(versions), baseline, since)

    def traffic(self, experiment: str) -> dict:
        return self.log.traffic(experiment)

    def experiments(self) -> list[dict]:
        return self.log.experiments()

    async def apply(self, settings: dict) -> dict:
        """Validate experiment settings (with the served versions) and write them through Serve as the Ingress's
        ``user_config``."""
        parsed = ExperimentSettings.parse(settings)
        async with self.lock:
            await asyncio.to_thread(self.writer.write, {"user_config": parsed.model_dump()})
            self.log.record_settings(parsed)
        logger.info("experiment settings written through Serve: %s", parsed.model_dump_json())
        return parsed.model_dump()
