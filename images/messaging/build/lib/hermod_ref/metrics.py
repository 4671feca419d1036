"""Prometheus metrics, shared by all worker processes.

prometheus_client's multiprocess mode: each worker writes its own mmap files in
PROMETHEUS_MULTIPROC_DIR (set by server.py before this module is imported) and a
scrape on any worker sums them, so the figures are those of the whole instance.
Callback backlog gauges come from the database at scrape time: they are cluster-wide.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LIFECYCLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

ACCEPTED = Counter("hermod_commands_accepted_total", "Commands accepted", ["type"])
REJECTED = Counter("hermod_commands_rejected_total", "Commands refused", ["reason"])
RESPONSES = Counter("hermod_device_responses_total", "Device responses by outcome", ["outcome"])
EXPIRED = Counter("hermod_commands_expired_total", "Commands that timed out (timeout callback queued)")
DELIVERED = Counter("hermod_callbacks_delivered_total", "Callbacks delivered (2xx)", ["type"])
ATTEMPT_FAILED = Counter("hermod_callback_attempts_failed_total", "Callback attempts that failed and will be retried")
FAILED = Counter("hermod_callbacks_failed_total", "Callbacks given up after max-age")
ACCEPT_LATENCY = Histogram("hermod_command_accept_seconds", "Time to accept a command",
                           buckets=LATENCY_BUCKETS)
DELIVERY_LATENCY = Histogram("hermod_callback_delivery_seconds", "Duration of one callback HTTP attempt",
                             buckets=LATENCY_BUCKETS)
LIFECYCLE = Histogram("hermod_callback_age_seconds", "Callback queued -> delivered",
                      buckets=LIFECYCLE_BUCKETS)


def exposition(gauges: dict[str, int] | None) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest()
    if gauges:
        lines = []
        for name, (value, help_text) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        text += ("\n".join(lines) + "\n").encode()
    return text
