"""Prometheus metrics at /metrics, from the server's own state at each scrape.

Per database (label `db`): whether its protector runs, its restarts, the capture lag the protector
measures (seen to durable, p50 and p99 of its last 10,000 transactions), the last captured and the
last durable transaction and when the last durable commit was, seconds since the last full backup
and since the last recovery point, whether the repository can be written, the repository's size,
the log bytes capture has written to it, and the last restore drill: when the last one that passed
ended, and whether the last one passed. Jobs: their durations by kind and outcome. Errors:
the protector errors seen, by kind, since the server started. docs/alerts.md has Prometheus alert
rules on them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .jobs import Job
from .status import database_status

if TYPE_CHECKING:
    from .service import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Databases(service))
        self.jobs = Histogram("cps_job_duration_seconds", "Duration of finished jobs",
                              ["kind", "state"], registry=self.registry,
                              buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 7200))

    def job_finished(self, job: Job) -> None:
        if job.started_at is not None and job.ended_at is not None:
            self.jobs.labels(job.kind, job.state).observe(job.ended_at - job.started_at)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Databases(Collector):
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        gauges = {
            "up": GaugeMetricFamily("cps_protector_up", "1 while the protector is capturing",
                                    labels=["db"]),
            "lag_p50": GaugeMetricFamily("cps_capture_lag_p50_seconds",
                                         "Median seconds from seen to durable", labels=["db"]),
            "lag_p99": GaugeMetricFamily("cps_capture_lag_p99_seconds",
                                         "99th percentile seconds from seen to durable",
                                         labels=["db"]),
            "txn": GaugeMetricFamily("cps_last_durable_transaction", "Last durable transaction",
                                     labels=["db"]),
            "synced": GaugeMetricFamily("cps_durable_through_timestamp_seconds",
                                        "Every commit before this time is durable",
                                        labels=["db"]),
            "full": GaugeMetricFamily("cps_seconds_since_last_full_backup",
                                      "Seconds since the last full backup", labels=["db"]),
            "point": GaugeMetricFamily("cps_seconds_since_last_recovery_point",
                                       "Seconds since the last recovery point", labels=["db"]),
            "writable": GaugeMetricFamily("cps_repository_writable",
                                          "0 while the repository cannot be written",
                                          labels=["db"]),
            "bytes": GaugeMetricFamily("cps_repository_bytes", "Size of the repository",
                                       labels=["db"]),
            "drill_passed": GaugeMetricFamily("cps_drill_last_success_timestamp_seconds",
                                              "When the last restore drill that passed ended",
                                              labels=["db"]),
            "drill_result": GaugeMetricFamily("cps_drill_last_result",
                                              "1 when the last restore drill passed, 0 when it "
                                              "failed", labels=["db"]),
            "upload_lag": GaugeMetricFamily("cps_upload_lag_seconds", "Seconds the oldest file "
                                            "waiting in the upload spool has waited (0: none)",
                                            labels=["db"]),
            "upload_waiting": GaugeMetricFamily("cps_upload_waiting_bytes", "Bytes waiting in "
                                                "the upload spool for the bucket", labels=["db"]),
        }
        restarts = CounterMetricFamily("cps_protector_restarts", "Protector restarts",
                                       labels=["db"])
        errors = CounterMetricFamily("cps_errors", "Protector errors seen, by kind",
                                     labels=["db", "kind"])
        captured = CounterMetricFamily("cps_captured_bytes", "Log bytes written to the repository "
                                       "(segments, as stored)", labels=["db"])
        now = time.time()
        for db_id in self.service.children:
            status = database_status(self.service, db_id)
            _set(gauges, db_id, status, now)
            restarts.add_metric([db_id], status["protection"]["restarts"])
            captured.add_metric([db_id], status["durable"]["captured_bytes"])
            for kind, count in status["error_counts"].items():
                errors.add_metric([db_id, kind], count)
        yield from gauges.values()
        yield restarts
        yield errors
        yield captured


def _set(gauges: dict[str, GaugeMetricFamily], db_id: str, status: dict[str, object],
         now: float) -> None:
    protection = status["protection"]
    assert isinstance(protection, dict)
    gauges["up"].add_metric([db_id], 1.0 if protection["ready"] else 0.0)
    gauges["writable"].add_metric([db_id], 0.0 if protection["outage"] else 1.0)
    lag = status["capture_lag"]
    if isinstance(lag, dict):
        for key in ("p50", "p99"):
            if lag.get(f"{key}_seconds") is not None:
                gauges[f"lag_{key}"].add_metric([db_id], float(lag[f"{key}_seconds"]))
    durable = status["durable"]
    if isinstance(durable, dict):
        if durable.get("txn") is not None:
            gauges["txn"].add_metric([db_id], float(durable["txn"]))
        if durable.get("through"):
            gauges["synced"].add_metric([db_id], float(durable["through"]) / 1000)
    for key, name in (("full", "last_full"), ("point", "last_recovery_point")):
        last = status[name]
        if isinstance(last, dict) and last.get("time"):
            gauges[key].add_metric([db_id], now - float(last["time"]))
    drill, passed = status["last_drill"], status["last_passed_drill"]
    if isinstance(drill, dict):
        gauges["drill_result"].add_metric([db_id], 1.0 if drill["passed"] else 0.0)
    if isinstance(passed, dict):
        gauges["drill_passed"].add_metric([db_id], float(passed["time"]))
    upload = status["upload"]
    if isinstance(upload, dict):
        gauges["upload_lag"].add_metric([db_id], float(upload["lag_seconds"] or 0.0))
        gauges["upload_waiting"].add_metric([db_id], float(upload["waiting_bytes"]))
    if isinstance(status["repository_bytes"], int):
        gauges["bytes"].add_metric([db_id], float(status["repository_bytes"]))
