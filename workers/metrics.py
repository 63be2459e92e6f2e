"""Prometheus metrics of the daemon, served with dramatiq's own on `metrics_port`.

dramatiq's Prometheus middleware runs the exposition server in the worker's main process and
aggregates every worker process's metrics through prometheus_client's multiprocess files; ours
are created after the worker process boots (when that directory is set) and land there too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any


class Metrics:
    """Per-source figures ops watch: freshness, size, quarantine, traffic, throttling, duration."""

    def __init__(self) -> None:
        import prometheus_client as prom

        labels = ["source"]
        self.last_success = prom.Gauge(
            "invoice_sync_last_success_timestamp_seconds",
            "When the last sync cycle of the source finished successfully (Unix time).",
            labels,
            multiprocess_mode="max",
        )
        self.mirrored = prom.Gauge(
            "invoice_sync_invoices_mirrored",
            "Live (not deleted) invoices in the mirror, as of the last finished cycle.",
            labels,
            multiprocess_mode="mostrecent",
        )
        self.quarantined = prom.Gauge(
            "invoice_sync_invoices_quarantined",
            "Records in quarantine (sync_errors not yet resolved), as of the last finished cycle.",
            labels,
            multiprocess_mode="mostrecent",
        )
        self.written = prom.Counter(
            "invoice_sync_invoices_written_total",
            "Invoices written (new or newer versions).",
            labels,
        )
        self.requests = prom.Counter(
            "invoice_sync_requests_total", "HTTP requests sent to the remote API.", labels
        )
        self.throttled = prom.Counter(
            "invoice_sync_rate_limited_total",
            "HTTP 429 answers received from the remote API.",
            labels,
        )
        self.cycle_duration = prom.Histogram(
            "invoice_sync_cycle_duration_seconds",
            "From the start of listing to the last batch written.",
            labels,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
        )

    def batch(self, source: str, *, requests: int, throttled: int, written: int) -> None:
        self.requests.labels(source).inc(requests)
        self.throttled.labels(source).inc(throttled)
        self.written.labels(source).inc(written)

    def run_finished(self, source: str, run: dict[str, Any], status: Callable[[], Any]) -> None:
        """`status` reads the source's counts (`Runs.status`: a count of its mirrored rows),
        asked only here, where a gauge shows them."""
        finished: dt.datetime = run["finished_at"]
        self.last_success.labels(source).set(finished.timestamp())
        self.cycle_duration.labels(source).observe((finished - run["started_at"]).total_seconds())
        counts = status()
        self.mirrored.labels(source).set(counts.mirrored)
        self.quarantined.labels(source).set(counts.quarantined)


class NoMetrics:
    """Stand-in when metrics are off (`metrics_port = 0`) or outside a worker."""

    def batch(self, source: str, *, requests: int, throttled: int, written: int) -> None:
        return None

    def run_finished(self, source: str, run: dict[str, Any], status: Callable[[], Any]) -> None:
        return None
