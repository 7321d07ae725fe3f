"""Named counters and histograms per stage, each declared once here with its help text.

Counters are bumped from the event loop and from the MQTT client thread, so a lock
guards them; reads take a snapshot. ``ingest.metrics`` exports them as
``menara_<name>_total``: a name here never ends in ``_total`` itself.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

__all__ = ["HELP", "HISTOGRAMS", "Counters", "Histogram"]

LabelSet = tuple[tuple[str, str], ...]

# Every name passed to ``Counters.inc`` -> the one line /metrics shows as its HELP
# (tests/ingest/test_metrics.py fails on a counted name missing here).
HELP: dict[str, str] = {
    "bytes_in": "Bytes read from devices, by transport and protocol.",
    "frames_in": "Frames (messages, datagrams, requests) framed and decoded.",
    "frames_ignored": "Frames decoded that carry no fix (heartbeats, status, logins).",
    "fixes_in": "Fixes decoded from admitted devices and handed to the writer.",
    "rejects": "Input refused and kept as dead letters, by protocol and reason code.",
    "connections_opened": "Device connections accepted.",
    "connections_closed": "Device connections closed (by either side).",
    "framing_lost": "Connections hung up because a frame boundary could not be found.",
    "refused_devices": "Connections refused: device unknown (unknown_devices=reject) or disabled.",
    "dropped_after_writer_failure": "Batches dropped unacknowledged because the writer failed.",
    "reads_paused": "Times a device's reads were paused because the writer was full.",
    "idle_closed": "Connections closed after tcp_idle_timeout_s without data.",
    "slow_frames_closed": "Connections closed for a frame trickling in over the idle timeout.",
    "connections_refused": "Connections closed on accept: over a limit, by protocol and reason.",
    "accept_errors": "Failed accept() calls (out of descriptors: accepting pauses 1 s).",
    "bad_frames_closed": "Connections closed after tcp_max_bad_frames rejects in a row.",
    "udp_dropped": "Datagrams dropped unacknowledged because the UDP queue was full.",
    "udp_ignored_while_stopping": "Datagrams left unacknowledged while the service stopped.",
    "empty_requests": "HTTP requests with an empty body (answered 400).",
    "http_responses": "HTTP intake responses, by status code.",
    "http_commit_timeouts": "HTTP requests answered 503 after http_commit_timeout_s.",
    "mqtt_messages_in": "MQTT messages received, by QoS.",
    "mqtt_acks_sent": "MQTT PUBACKs sent, each after its message was committed.",
    "mqtt_reconnects": "Times the MQTT client connected again after losing the broker.",
    "mqtt_broker_probe_dropped": "Of the start-up broker check's 1,200 queued QoS 1 messages,"
    " those the broker dropped (not 0: it loses fixes while ingest is away).",
    "rows_written": "Fixes inserted into positions, by transport.",
    "rows_merged": "Resent fixes merged into the stored row (new attributes), by transport.",
    "rows_duplicate": "Resent fixes already stored and skipped, by transport.",
    "dead_letters_written": "Dead letters inserted into dead_letters.",
    "dead_letters_dropped": "Dead letters counted but not stored: over a cap, by reason.",
    "dead_letters_truncated": "Dead letters stored with raw cut to dead_letter_max_bytes.",
    "batches_committed": "Transport batches committed (one device's fixes and dead letters).",
    "writer_errors": "Failed write transactions, by kind (data refused or connection lost).",
    "writer_retries": "Write transactions retried after a lost connection.",
    "writer_callback_errors": "Acknowledgement or hand-on callbacks that raised.",
    # tower_feed = mqtt (menara.rules_feed in serve, menara.rules_cmd in `menara rules`)
    "rules_rounds_published": "Committed rounds published on rules_topic for `menara rules`.",
    "rules_messages_published": "Messages those rounds took (cut below the broker's size limit).",
    "rules_rounds_lost": "Rounds the broker refused or left unacknowledged at exit (no rules).",
    "rules_messages_in": "Round messages received on rules_topic.",
    "rules_messages_refused": "Messages on rules_topic that are not readable rounds (dropped).",
    "rules_messages_released": "Round messages handed to the rule workers after their hold.",
    "rules_fixes_released": "Fixes handed to the rule workers.",
    "rules_fixes_reordered": "Fixes handed on early to join a newer fix of their vehicle.",
}

# Histograms -> (help, bucket upper bounds). Rows per write transaction: a 1-2-5 series
# up to twice the default writer_batch_rows (5000). A quiet fleet commits a few rows
# every writer_batch_delay_ms; a loaded one fills writer_batch_rows: where the mass
# sits tells which, and whether a larger batch would help.
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "writer_batch_rows": (
        "Rows (fixes and dead letters) per committed write transaction.",
        (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
    ),
}


@dataclass(slots=True)
class Histogram:
    """Observations counted per bucket (``counts[i]`` for ``bounds[i-1] < v <= bounds[i]``,
    the last for above every bound), with their sum: what Prometheus needs."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.sum)


class Counters:
    """Monotonic counters keyed by (name, labels), and histograms by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, LabelSet], int] = {}
        self._histograms = {name: Histogram(b) for name, (_, b) in HISTOGRAMS.items()}

    def inc(self, name: str, n: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + n

    def observe(self, name: str, value: float) -> None:
        """Count ``value`` into histogram ``name`` (declared in ``HISTOGRAMS``)."""
        with self._lock:
            self._histograms[name].observe(value)

    def get(self, name: str, **labels: str) -> int:
        """Sum of ``name`` over all label sets that include ``labels``."""
        want = set(labels.items())
        with self._lock:
            return sum(v for (n, ls), v in self._values.items() if n == name and want <= set(ls))

    def snapshot(self) -> dict[tuple[str, LabelSet], int]:
        with self._lock:
            return dict(self._values)

    def histograms(self) -> dict[str, Histogram]:
        """A copy of every histogram, by name."""
        with self._lock:
            return {name: h.copy() for name, h in self._histograms.items()}
