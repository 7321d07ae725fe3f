"""Scale-out on one machine: two ``menara serve`` processes on one MQTT shared
subscription (``tower_feed = mqtt``) and one ``menara rules`` with two rule worker
processes, all real processes on a private broker with the project's limits.

The tower scenarios' fleet drives its trips through the broker, one fix a message, so
the broker deals each vehicle's fixes out to both ingest processes. Every fix must be
stored once, both ingest processes must have stored some, the rules must raise exactly
the scenarios' alerts (a vehicle whose fixes reached the rules out of order would raise
telemetry alerts too), and every change to a vehicle's alerts must come from the one
rule worker owning it: each alert NOTIFY carries the backend pid that sent it, and the
rule workers name their connections ``menara-rules k/n pid <pid>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulators.trip_sender import send_timeline
from tests.brokers import Broker
from tests.conftest import listeners_off_env
from tests.fresh import ROOT
from tests.polling import wait_for
from tests.ports import free_port
from tests.tower import scenario
from tests.tower.world import Fleet, build

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

START_S = 240.0  # cold processes: migrations, decoder and rule kernels, two spawned workers


class Proc:
    """A ``menara`` sub-command with its log in a file."""

    def __init__(self, name: str, command: str, env: dict[str, str], work: Path) -> None:
        self.name = name
        self.log = work / f"{name}.log"
        self.metrics_port = int(env["MENARA_METRICS_PORT"])
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "menara", command],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def logged(self, text: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
        return text in self.log.read_text()

    def counter(self, name: str) -> float:
        """The sum of a counter's samples on /metrics (``menara_<name>_total``)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == f"menara_{name}_total"
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"{self.name} ignored SIGTERM:\n{self.log.read_text()[-3000:]}"
            ) from None


def test_two_ingest_processes_and_two_rule_workers(
    own_broker: Broker, clean_db: str, tmp_path: Path
) -> None:
    departure = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=100)
    fleet = build(clean_db, scenario.specs(departure))
    fixes = scenario.timeline(fleet)
    per_device = Counter(f.device_id for f in fixes)
    run = uuid.uuid4().hex[:8]
    prefix = f"scale-{run}/v1"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MENARA_")}
    base.update(
        listeners_off_env(),
        MENARA_DB_DSN=clean_db,
        MENARA_TCP_HOST="127.0.0.1",
        MENARA_MQTT_HOST=own_broker.host,
        MENARA_MQTT_PORT=str(own_broker.port),
        MENARA_MQTT_TOPIC_PREFIX=prefix,
        MENARA_MQTT_SHARED_GROUP=f"ingest-{run}",
        MENARA_TOWER_FEED="mqtt",
        MENARA_RULES_TOPIC=f"scale-{run}/tower/rounds",
        MENARA_RULES_CLIENT_ID=f"rules-{run}",
        MENARA_SMTP_PORT="0",
        MENARA_TOWER_CLOCK="fleet",
        MENARA_STALE_FIX_S="7200",
        MENARA_UNKNOWN_DEVICES="reject",
    )
    ingest = [
        Proc(
            f"ingest-{i}",
            "serve",
            {
                **base,
                "MENARA_MQTT_CLIENT_ID": f"ingest-{i}-{run}",
                "MENARA_METRICS_PORT": str(free_port()),
                # the first one also listens for T55 devices, as in docker-compose.yml
                "MENARA_T55_PORT": str(free_port() if i == 1 else 0),
            },
            tmp_path,
        )
        for i in (1, 2)
    ]
    rules = Proc(
        "rules",
        "rules",
        {**base, "MENARA_TOWER_PROCESSES": "2", "MENARA_METRICS_PORT": str(free_port())},
        tmp_path,
    )
    try:
        with psycopg.connect(clean_db, autocommit=True) as listen:
            listen.execute("LISTEN menara_alerts")
            for p in ingest:
                wait_for(partial(p.logged, "mqtt subscribed at"), f"{p.name} up", START_S)
            wait_for(lambda: rules.logged("rules: reading rounds from"), "rules up", START_S)

            # Paced as devices send (the day 1,200 times faster, about 900 fixes/s): a
            # burst at once would queue at the broker, and the replicas draining their
            # halves at different speeds would hand a vehicle's fixes on further apart
            # than rules_reorder_ms (README: Rule workers).
            sending = send_timeline(
                fixes, transport="mqtt", port=own_broker.port, topic_prefix=prefix, speedup=1200
            )
            stats = asyncio.run(sending)
            assert len(stats.sent) == len(fixes)

            wait_for(lambda: _stored(clean_db) == len(fixes), "every fix stored", 120)
            wait_for(
                lambda: rules.counter("tower_fixes_evaluated") >= len(fixes),
                "every fix evaluated",
                120,
            )
            wait_for(lambda: _alerts(clean_db, fleet) == scenario.EXPECTED, "the alerts", 60)
            written = [p.counter("rows_written") for p in ingest]
            assert rules.counter("tower_fixes_evaluated") == len(fixes)
            assert rules.counter("tower_errors") == 0
            assert all(p.counter("tower_fixes_evaluated") == 0 for p in ingest)  # no rules
            workers: dict[int, str] = dict(
                listen.execute(
                    "SELECT pid, application_name FROM pg_stat_activity"
                    " WHERE application_name LIKE 'menara-rules %'"
                ).fetchall()
            )
            notes = [(n.pid, json.loads(n.payload)) for n in listen.notifies(timeout=1.0)]
        codes = [p.stop() for p in (*ingest, rules)]
    finally:
        for p in (*ingest, rules):
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
    assert codes == [0, 0, 0]

    # Every fix stored once, and both ingest processes took part.
    assert sum(written) == len(fixes)
    assert all(n > 0 for n in written), written
    with psycopg.connect(clean_db) as conn:
        stored: dict[str, int] = dict(
            conn.execute("SELECT device_id, count(*) FROM positions GROUP BY 1").fetchall()
        )
        alerts = conn.execute("SELECT id, vehicle_id FROM alerts").fetchall()
    assert stored == dict(per_device)

    # Exactly the scenarios' alerts (one row per incident: checked by _alerts), each
    # vehicle's from the one worker owning it, and both workers had some.
    assert len(alerts) == sum(len(v) for v in scenario.EXPECTED.values())
    by_rules = [(pid, n) for pid, n in notes if n["event"] in ("open", "update", "clear")]
    assert {n["id"] for _, n in by_rules if n["event"] == "open"} == {a[0] for a in alerts}
    owners: dict[int, set[str]] = {}
    for pid, n in by_rules:
        assert pid in workers, f"alert {n['id']} changed by a backend not of a rule worker"
        owners.setdefault(n["vehicle_id"], set()).add(workers[pid])
    for vehicle, names in owners.items():
        assert len(names) == 1, f"vehicle {vehicle} changed by {names}"
        assert next(iter(names)).startswith(f"menara-rules {vehicle % 2}/2 pid ")
    assert len({name for names in owners.values() for name in names}) == 2


def _stored(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
    return 0 if row is None else int(row[0])


def _alerts(dsn: str, fleet: Fleet) -> dict[str, set[tuple[str, str]]]:
    """(type, key) per plate, as ``scenario.EXPECTED`` says them; a duplicate incident
    would show as a row more than the set holds."""
    keys = scenario.stop_keys(fleet)
    plates = {b.vehicle_id: plate for plate, b in fleet.trips.items()}
    got: dict[str, set[tuple[str, str]]] = {plate: set() for plate in scenario.FAULTS}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT type, dedupe_key, vehicle_id FROM alerts").fetchall()
    for kind, dedupe, vehicle in rows:
        key = dedupe.split(":", 3)[3]
        got[plates[vehicle]].add((kind, keys.get(key, key)))
    return got
