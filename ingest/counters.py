"""Named counters per stage, exported as Prometheus text.

Counters are bumped from the event loop and from the MQTT client thread, so a lock
guards them; reads take a snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

LabelSet = tuple[tuple[str, str], ...]


class Counters:
    """Monotonic counters keyed by (name, labels); ``menara_`` prefix on export."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, LabelSet], int] = {}

    def inc(self, name: str, n: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + n

    def get(self, name: str, **labels: str) -> int:
        """Sum of ``name`` over all label sets that include ``labels``."""
        want = set(labels.items())
        with self._lock:
            return sum(v for (n, ls), v in self._values.items() if n == name and want <= set(ls))

    def snapshot(self) -> dict[tuple[str, LabelSet], int]:
        with self._lock:
            return dict(self._values)

    def prometheus(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in sorted(self.snapshot().items()):
            metric = f"menara_{name}_total"
            if metric not in seen:
                seen.add(metric)
                lines.append(f"# TYPE {metric} counter")
            lines.append(f"{metric}{_labels(labels)} {value}")
        return "\n".join(lines) + "\n"


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
