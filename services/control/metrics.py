"""Prometheus metrics of the control service (exported on ``CAMHUB_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REPORTS = Counter("camhub_control_reports_total", "MQTT reports received from printers")
BAD_REPORTS = Counter("camhub_control_bad_reports_total", "Reports kept out of the status (or repaired)", ["reason"])
COMMANDS = Counter("camhub_control_commands_total", "Device commands answered", ["outcome"])
REPORT_LATENCY = Histogram(
    "camhub_control_report_seconds",
    "Time to decode, merge and normalize one report",
    buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
)
REPORT_QUEUE = Histogram(
    "camhub_control_report_queue_seconds",
    "Time a report waits between paho's network thread and the event loop",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)
