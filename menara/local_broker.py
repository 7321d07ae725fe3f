"""Menara's local broker: Mosquitto run from ``deploy/mosquitto.conf`` on this machine.

The production configuration queues a million QoS 1 messages per absent session;
Mosquitto's defaults (as Debian ships them) drop everything beyond 1,000, so a crash of
``menara serve`` under load loses fixes the broker already acknowledged. ``.ci/setup``
(``python -m menara.local_broker``), ``menara demo`` and the tests therefore run
Mosquitto with the production file, changed only where a local run must differ: the
listener on loopback at the chosen port, persistence in a local state directory, and
anonymous clients instead of the password file and ACL (nothing but this machine can
connect). Every queue limit stays as production has it.

Setup takes ``mqtt_port`` (1883) when nothing listens there; a broker already there is
left alone and probed (``ingest.broker_check``): one that drops queued messages is named
with what to do. The demo uses the configured broker when it keeps queued messages and
otherwise runs its own one on a free port for the length of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ingest.broker_check import BrokerCheckError, Verdict, probe
from menara import settings as settings_mod
from menara.settings import Settings

__all__ = [
    "PROJECT_CONF",
    "LocalBroker",
    "LocalBrokerError",
    "for_demo",
    "local_config",
    "main",
    "start_for_setup",
]

PROJECT_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto.conf"
# Setup's broker serves the whole machine (port 1883), so its state lives with the user,
# not in a checkout that may be a throwaway clone.
STATE_DIR = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / (
    "menara/broker"
)
# Debian's stock broker (what the package, the machine or an older setup started): a
# broker run from this file on mqtt_port drops queued fixes and is replaced by setup.
STOCK_CONF = Path("/etc/mosquitto/mosquitto.conf")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
LOOPBACK = ("127.0.0.1", "localhost")  # where the local broker listens


class LocalBrokerError(RuntimeError):
    """Menara's local broker could not be configured or started."""


def local_config(
    port: int, state_dir: Path, *, password_file: Path | None = None, acl_file: Path | None = None
) -> str:
    """``deploy/mosquitto.conf`` for this machine: loopback ``port``, persistence in
    ``state_dir`` (and its pid file), run as the current user (as root, Mosquitto would
    switch to user ``mosquitto``, who cannot write there). Anonymous clients (no password
    file, no ACL) unless ``password_file`` is given: then its users log in and
    ``acl_file`` applies, as in production (the tests of the production ACL)."""
    if not PROJECT_CONF.is_file():
        raise LocalBrokerError(f"{PROJECT_CONF} is missing: run from a Menara checkout")
    text = PROJECT_CONF.read_text()
    text = re.sub(r"(?m)^listener 1883\b.*$", f"listener {port} 127.0.0.1", text)
    text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {state_dir}/", text)
    if password_file is None:
        text = re.sub(r"(?m)^(password_file|acl_file) .*\n", "", text)
        text = re.sub(r"(?m)^allow_anonymous false$", "allow_anonymous true", text)
    else:
        text = re.sub(r"(?m)^password_file .*$", f"password_file {password_file}", text)
        text = re.sub(r"(?m)^acl_file .*$", f"acl_file {acl_file}", text)
    return text + f"\nuser {getpass.getuser()}\npid_file {state_dir}/mosquitto.pid\n"


def listening(host: str, port: int) -> bool:
    """Does something accept TCP connections on (host, port)?"""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


class LocalBroker:
    """A Mosquitto process from ``local_config``; ``stop``/``start`` keep port and state."""

    def __init__(self, state_dir: Path, port: int, *, config: str | None = None) -> None:
        """``config`` replaces ``local_config`` (tests run other configurations)."""
        self.host, self.port = "127.0.0.1", port
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.state_dir / "mosquitto.conf"
        self.conf.write_text(config if config is not None else local_config(port, self.state_dir))
        self.log = self.state_dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, detach: bool = False) -> None:
        """Start Mosquitto and wait until it listens; ``detach`` leaves it running after
        this process exits (setup), otherwise ``stop`` ends it."""
        mosquitto = shutil.which("mosquitto")
        if mosquitto is None:
            raise LocalBrokerError("mosquitto is not installed (apt-get install mosquitto)")
        proc = None
        if detach:  # through sh, so that it is nobody's child here once sh exits
            script = '"$0" -c "$1" </dev/null >>"$2" 2>&1 &'
            subprocess.run(["sh", "-c", script, mosquitto, self.conf, self.log], check=True)
        else:
            with self.log.open("ab") as out:
                proc = subprocess.Popen(
                    [mosquitto, "-c", str(self.conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
        self._proc = proc
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(self.host, self.port):
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise LocalBrokerError(f"mosquitto did not start on port {self.port}: {tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves sessions and queued messages, then exits."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def _check(cfg: Settings) -> Verdict | str:
    """The broker check's verdict, or why it could not tell."""
    try:
        return probe(
            cfg.mqtt_host, cfg.mqtt_port, username=cfg.mqtt_username, password=cfg.mqtt_password
        )
    except BrokerCheckError as exc:
        return str(exc)


@contextlib.contextmanager
def for_demo(cfg: Settings, say: Callable[[str], None] = print) -> Iterator[Settings]:
    """The demo's settings: the configured broker when it keeps queued messages, else
    (dropping or unreachable, with mosquitto installed) a local broker of its own on a
    free port, stopped when the demo ends."""
    if cfg.mqtt_port <= 0:
        yield cfg
        return
    where = f"{cfg.mqtt_host}:{cfg.mqtt_port}"
    found = _check(cfg)
    if isinstance(found, Verdict) and not found.dropped:
        say(f"MQTT broker {where}: keeps messages queued while ingest is away")
        yield cfg
        return
    why = (
        f"drops messages queued while ingest is away (kept {found.kept} of {found.sent})"
        if isinstance(found, Verdict)
        else f"cannot be checked ({found})"
    )
    if shutil.which("mosquitto") is None:
        say(f"MQTT broker {where} {why}; mosquitto is not installed to run Menara's own")
        yield cfg
        return
    with tempfile.TemporaryDirectory(prefix="menara-demo-broker-") as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        broker = LocalBroker(Path(tmp), port)
        try:
            broker.start()
        except LocalBrokerError as exc:
            say(f"MQTT broker {where} {why}; Menara's own did not start: {exc}")
            yield cfg
            return
        say(
            f"MQTT broker {where} {why}: the demo runs Menara's local broker"
            f" (deploy/mosquitto.conf) on 127.0.0.1:{port}"
        )
        try:
            yield cfg.replace(mqtt_host=broker.host, mqtt_port=port)
        finally:
            broker.stop()


def start_for_setup(
    cfg: Settings,
    state_dir: Path,
    say: Callable[[str], None] = print,
    *,
    stock: Path = STOCK_CONF,
) -> int:
    """``.ci/setup``: run Menara's local broker on ``mqtt_port``; the exit status.

    A broker already there that keeps queued messages is used. One that drops them is
    replaced when it is Mosquitto run from Debian's ``stock`` file (SIGTERM: it saves its
    sessions to its own persistence file first); any other is left alone and named with
    what to do.
    """
    port = cfg.mqtt_port
    if port <= 0 or cfg.mqtt_host not in LOOPBACK:
        say(f"MQTT broker: {cfg.mqtt_host}:{port} is not on this machine; nothing to start")
        return 0
    found = _check(cfg.replace(mqtt_host="127.0.0.1")) if listening("127.0.0.1", port) else None
    if found is not None and _dropping(found) and _stop_stock(port, stock, say):
        found = None
    if found is None:
        broker = LocalBroker(state_dir, port)
        try:
            broker.start(detach=True)
        except LocalBrokerError as exc:
            say(f"MQTT broker: {exc}")
            return 1
        say(f"started Menara's local broker on 127.0.0.1:{port} (config {broker.conf})")
        return 0
    if not _dropping(found):
        say(f"MQTT broker on 127.0.0.1:{port} keeps queued messages: using it")
        return 0
    why = (
        f"drops messages queued for an absent subscriber (kept {found.kept} of {found.sent})"
        if isinstance(found, Verdict)
        else f"could not be checked ({found})"
    )
    say(
        f"WARNING: another broker on 127.0.0.1:{port} {why}. It was left alone; stop it"
        " (e.g. `sudo systemctl stop mosquitto`, or end the mosquitto an older setup"
        " started) and run .ci/setup again to get Menara's local broker there. Until then"
        " `menara serve` warns at start and `menara demo` runs a broker of its own."
    )
    return 0


def _dropping(found: Verdict | str) -> bool:
    return not isinstance(found, Verdict) or found.dropped > 0


def _stop_stock(port: int, stock: Path, say: Callable[[str], None]) -> bool:
    """SIGTERM the Mosquitto run from ``stock`` that listens on ``port``; True once the
    port is free. False (nothing done) when the listener is another program or config,
    or cannot be seen (another user's process, without root)."""
    pids = [p for p in _listener_pids(port) if _runs_stock(p, stock)]
    if not pids:
        return False
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while listening("127.0.0.1", port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    say(
        f"stopped Mosquitto with Debian's defaults ({stock}) on 127.0.0.1:{port}: it drops"
        " queued fixes"
    )
    return True


def _listener_pids(port: int) -> list[int]:
    """Processes with a TCP socket listening on ``port`` (read from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    pids: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return pids


def _runs_stock(pid: int, stock: Path) -> bool:
    """Is ``pid`` Mosquitto started with ``-c stock``?"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return Path(argv[0]).name == "mosquitto" and any(
        a == "-c" and b == str(stock) for a, b in itertools.pairwise(argv)
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m menara.local_broker``: what ``.ci/setup`` runs."""
    parser = argparse.ArgumentParser(
        prog="python -m menara.local_broker",
        description="Start Menara's local broker (deploy/mosquitto.conf) on mqtt_port.",
    )
    parser.add_argument("--dir", type=Path, default=STATE_DIR, help="state directory")
    args = parser.parse_args(argv)
    try:
        cfg = settings_mod.load()
    except settings_mod.SettingsError as exc:
        print(f"menara.local_broker: {exc}", file=sys.stderr)
        return 2
    return start_for_setup(cfg, args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
