"""The production stack's own conventions, checked without Docker.

``check-jsonschema`` (in .ci/run) proves docker-compose.yml is a valid compose file; these
tests prove it is the stack README "Deployment" describes: every mounted file exists, every
port a service opens is published (or scraped, for metrics), every path a config names lies
in its image where the image documents it, images are pinned, every service has a
healthcheck, the image runs as a non-root user, and the broker refuses anonymous clients and
confines each device to its own topics (a real Mosquitto started from the production config).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from ruamel.yaml import YAML

from menara import settings as menara_settings
from menara.service import PORT_SETTINGS, UDP_PORTS
from tests.brokers import PROJECT_CONF, Broker
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "deploy" / "mosquitto" / "entrypoint.sh"

# Paths each image documents (on its Docker Hub page / Dockerfile) as existing for
# configuration and data; a container path outside them would be a directory the service
# never reads or writes, as /var/lib/mosquitto once was in eclipse-mosquitto.
IMAGE_PATHS = {
    "timescale/timescaledb": ("/var/lib/postgresql/data",),
    "eclipse-mosquitto": ("/mosquitto/config", "/mosquitto/data", "/mosquitto/log"),
    "prom/prometheus": ("/etc/prometheus", "/prometheus"),
    "grafana/grafana-oss": ("/etc/grafana", "/var/lib/grafana"),
}
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*$")


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def menara_services() -> dict[str, dict[str, Any]]:
    """The services running the project's image (built from the Dockerfile)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def serving() -> list[str]:
    """The Menara services running ``menara serve``: the ones with device listeners."""
    return [n for n, s in menara_services().items() if s["command"] == ["menara", "serve"]]


def interpolate(value: object) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?error}`` with no variable set (secrets
    required with ``?`` read as a placeholder)."""

    def one(m: re.Match[str]) -> str:
        return "placeholder-secret" if m["op"] and "?" in m["op"] else m["default"] or ""

    text = re.sub(r"\$\{(?P<var>\w+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}", one, str(value))
    return text.replace("$$", "$")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", "", (ROOT / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines()]
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1])
        for ln in lines
        if ln and not ln.startswith("#")
    ]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args in dockerfile():
        for part in shlex.split(args) if instr == "ENV" else ():
            key, _, value = part.partition("=")
            env[key] = value
    return env


def effective(name: str) -> menara_settings.Settings:
    """A Menara service's settings: the image's ENV, then its compose environment."""
    env = {**image_env()}
    env.update({k: interpolate(v) for k, v in services()[name]["environment"].items()})
    return menara_settings.load(environ=env)


def mounts(svc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(source, container path) of a service's volumes (short syntax)."""
    for spec in svc.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        yield source, target


def published(svc: dict[str, Any]) -> set[str]:
    """``<container port>/<proto>`` published on the same host port."""
    out = set()
    for spec in svc.get("ports", []):
        body, _, proto = str(spec).partition("/")
        host, container = body.rsplit(":", 2)[-2:]
        assert host == container, f"{spec}: devices are told the container port"
        out.add(f"{container}/{proto or 'tcp'}")
    return out


def under(path: str, roots: Iterable[str]) -> bool:
    return any(PurePosixPath(path).is_relative_to(root) for root in roots)


def mosquitto_conf() -> dict[str, list[str]]:
    conf: dict[str, list[str]] = {}
    for line in PROJECT_CONF.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf.setdefault(key, []).append(value.strip())
    return conf


def test_every_bind_mounted_file_exists() -> None:
    for name, svc in services().items():
        for source, target in mounts(svc):
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} (-> {target}) is missing"
        targets = {t for _, t in mounts(svc)}
        for arg in svc.get("entrypoint", []):
            if arg.endswith(".sh"):
                assert arg in targets, f"{name}: entrypoint {arg} is not mounted"


def test_container_paths_exist_in_their_images() -> None:
    made = [
        path
        for instr, args in dockerfile()
        if instr == "RUN" and "mkdir -p" in args
        for path in re.findall(r"mkdir -p ([^&]+)", args)[0].split()
    ]
    for name, svc in services().items():
        roots = tuple(made) if "build" in svc else IMAGE_PATHS[svc["image"].split(":")[0]]
        for _, target in mounts(svc):
            assert under(target, roots), f"{name}: {target} is not under {roots}"
    for name in serving():  # the API stores ePOD images under file_dir: keep them
        cfg = effective(name)
        volumes = {t for s, t in mounts(services()[name]) if not s.startswith((".", "/"))}
        assert cfg.api_port == 0 or cfg.file_dir in volumes, f"{name}: file_dir not on a volume"


def test_mosquitto_config_names_paths_of_its_image_and_no_anonymous_access() -> None:
    conf = mosquitto_conf()
    broker = services()["mosquitto"]
    volumes = {t for s, t in mounts(broker) if not s.startswith((".", "/"))}
    bound = {t for s, t in mounts(broker) if s.startswith((".", "/"))}
    assert conf["allow_anonymous"] == ["false"]
    assert "allow_anonymous true" not in PROJECT_CONF.read_text()
    # What must survive a restart lies on a named volume.
    for key in ("persistence_location", "password_file"):
        (path,) = conf[key]
        assert under(path, volumes), f"{key} {path} is not on a volume: {volumes}"
    (acl,) = conf["acl_file"]
    assert acl in bound, f"acl_file {acl} is not mounted"
    assert "/mosquitto/config/mosquitto.conf" in bound
    script = ENTRYPOINT.read_text()
    assert f"passwd={conf['password_file'][0]}\n" in script
    assert "-c /mosquitto/config/mosquitto.conf" in script
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def test_every_listener_is_published_by_the_replica_that_listens() -> None:
    listening: dict[str, list[str]] = {s: [] for s in PORT_SETTINGS}
    for name in serving():
        cfg = effective(name)
        ports = published(services()[name])
        for setting in PORT_SETTINGS:
            port = int(getattr(cfg, setting))
            if port > 0:
                proto = "udp" if setting in UDP_PORTS.values() else "tcp"
                assert f"{port}/{proto}" in ports, f"{name} listens on {setting} unpublished"
                listening[setting].append(name)
    assert all(listening.values()), f"nobody listens: {listening}"
    host_ports = [p for svc in services().values() for p in published(svc)]
    assert len(host_ports) == len(set(host_ports)), "two services publish one host port"
    assert "3000/tcp" in published(services()["grafana"])
    assert "9090/tcp" in published(services()["prometheus"])


def test_replicas_share_one_subscription_and_hand_rounds_to_the_rule_host() -> None:
    names = menara_services()
    ingest = serving()
    assert len(ingest) == 2
    configs = {n: effective(n) for n in names}
    assert all(configs[n].mqtt_shared_group for n in ingest)
    assert len({configs[n].mqtt_shared_group for n in ingest}) == 1
    (rules,) = [n for n, s in names.items() if s["command"] == ["menara", "rules"]]
    assert "deploy" not in names[rules], "run exactly one rule host"
    assert configs[rules].tower_processes >= 2
    ids = [configs[rules].rules_client_id]
    ids += [
        i
        for n in ingest
        for i in (configs[n].mqtt_client_id, f"{configs[n].mqtt_client_id}-rounds")
    ]
    assert len(set(ids)) == len(ids), f"MQTT client ids collide: {ids}"
    for name, cfg in configs.items():
        assert cfg.tower_feed == "mqtt", name
        assert cfg.mqtt_host in services() and cfg.mqtt_username, name
        assert f"{cfg.mqtt_port}/tcp" in published(services()[cfg.mqtt_host])
        assert "@timescaledb:5432/" in cfg.db_dsn and cfg.timescale == "on", name


def acl_allows(user: str, access: str, topic: str) -> bool:
    """Mosquitto's acl_file rules (deploy/mosquitto/acl): the user's own ``topic`` lines,
    then every ``pattern`` with ``%u`` as the user name."""
    rules: list[tuple[str, str]] = []
    owner = None
    for line in (ROOT / "deploy" / "mosquitto" / "acl").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            owner = words[1]
        elif words[0] == "topic" and owner == user:
            rules.append((words[1], words[2]))
        elif words[0] == "pattern":
            rules.append((words[1], words[2].replace("%u", user)))
    return any(
        a in (access, "readwrite") and mqtt.topic_matches_sub(sub, topic) for a, sub in rules
    )


def test_broker_acl_fits_the_settings() -> None:
    cfg = effective("ingest-1")
    service, device = cfg.mqtt_username, "van-7"
    own = f"{cfg.mqtt_topic_prefix}/{device}/json"
    assert acl_allows(service, "read", own) and acl_allows(device, "write", own)
    assert acl_allows(service, "write", cfg.rules_topic)
    assert acl_allows(service, "read", cfg.rules_topic)
    assert not acl_allows(device, "write", f"{cfg.mqtt_topic_prefix}/van-8/json")
    for user in sorted({device, *cfg.rules_topic.split("/")} - {service}):
        assert not acl_allows(user, "write", cfg.rules_topic), user
        assert not acl_allows(user, "read", own), user


def test_menara_environment_names_only_known_settings() -> None:
    known = {f"MENARA_{n.upper()}" for n, *_ in menara_settings.describe()}
    for name in menara_services():
        env = services()[name]["environment"]
        unknown = {k for k in env if k.startswith("MENARA_")} - known
        assert not unknown, f"{name}: no such settings {sorted(unknown)}"
    assert {k for k in image_env() if k.startswith("MENARA_")} <= known


def test_prometheus_scrapes_every_menara_service() -> None:
    prom = load_yaml(ROOT / "deploy" / "prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "menara"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{n}:{effective(n).metrics_port}" for n in menara_services()}
    assert targets == expected


def test_listeners_reach_beyond_loopback_and_metrics_stay_inside_the_stack() -> None:
    wildcard = ("0.0.0.0", "::", "")
    for name in menara_services():
        cfg, ports = effective(name), published(services()[name])
        # Prometheus runs in its own container: loopback metrics would be unreachable.
        assert cfg.metrics_host in wildcard, f"{name}: metrics_host {cfg.metrics_host}"
        assert f"{cfg.metrics_port}/tcp" not in ports, f"{name} publishes its metrics"
    for name in serving():
        cfg = effective(name)
        assert cfg.tcp_host in wildcard and cfg.api_host in wildcard, name


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        image = str(svc["image"])
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"
        if "build" not in svc:
            assert PINNED.match(image), f"{name}: {image} is not a pinned version"
    for instr, args in dockerfile():
        if instr == "FROM":
            assert PINNED.match(args.split()[0]), f"FROM {args} is not a pinned version"


def test_every_service_has_a_healthcheck_and_dependents_wait_for_it() -> None:
    # Built services have the Dockerfile's HEALTHCHECK (the metrics port's /healthz).
    (image_check,) = [args for instr, args in dockerfile() if instr == "HEALTHCHECK"]
    assert f"{menara_settings.Settings().metrics_port}" in image_check
    assert "/healthz" in image_check
    for name, svc in services().items():
        check = svc.get("healthcheck", {})
        assert not check.get("disable") and check.get("test") != ["NONE"], name
        assert check.get("test") or "build" in svc, f"{name} has no healthcheck"
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services() and cond["condition"] == "service_healthy", (name, dep)


def test_dockerfile_copies_every_package_and_runs_as_a_non_root_user() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = {args.split()[0] for instr, args in dockerfile() if instr == "COPY"}
    assert packages <= copied, f"not copied: {packages - copied}"
    users = [args for instr, args in dockerfile() if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    allowed = {
        ln[1:] for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.startswith("!")
    }
    assert copied <= allowed, f".dockerignore leaves out {copied - allowed}"


def test_grafana_is_provisioned_with_the_timescaledb_datasource() -> None:
    grafana = services()["grafana"]
    (source,) = [s for s, t in mounts(grafana) if t == "/etc/grafana/provisioning"]
    provisioning = ROOT / source
    sources = [
        ds
        for f in sorted((provisioning / "datasources").glob("*.y*ml"))
        for ds in load_yaml(f)["datasources"]
    ]
    (pg,) = [ds for ds in sources if "postgres" in ds["type"]]
    host, port = pg["url"].split(":")
    db = services()[host]
    assert port == "5432" and pg["jsonData"]["timescaledb"] is True
    assert pg["jsonData"]["database"] == db["environment"]["POSTGRES_DB"]
    assert pg["user"] == db["environment"].get("POSTGRES_USER", "postgres")
    (var,) = re.findall(r"\$\{?(\w+)\}?", pg["secureJsonData"]["password"])
    assert var in grafana["environment"]
    providers = [
        p
        for f in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for p in load_yaml(f)["providers"]
    ]
    assert providers
    for provider in providers:
        path = PurePosixPath(provider["options"]["path"])
        host_dir = provisioning / path.relative_to("/etc/grafana/provisioning")
        assert list(host_dir.glob("*.json")), f"no dashboards in {host_dir}"


@dataclasses.dataclass
class Answers:
    """What the broker answered one client (callbacks fill it; it holds no client, so the
    client is freed, sockets closed, as soon as its ``Peer`` is)."""

    connack: ReasonCode | None = None
    acks: dict[int, ReasonCode] = dataclasses.field(default_factory=dict)
    granted: dict[int, list[ReasonCode]] = dataclasses.field(default_factory=dict)
    messages: list[str] = dataclasses.field(default_factory=list)

    def on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if self.connack is None:
            self.connack = rc


class Peer:
    """A paho MQTT 5 client of ``broker`` logged in as ``user`` (anonymous when None)."""

    def __init__(self, broker: Broker, user: str | None, password: str = "") -> None:
        got = self.answers = Answers()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if user is not None:
            c.username_pw_set(user, password)
        c.on_connect = got.on_connect
        c.on_publish = lambda _c, _u, mid, rc, _p: got.acks.__setitem__(mid, rc)
        c.on_subscribe = lambda _c, _u, mid, rcs, _p: got.granted.__setitem__(mid, rcs)
        c.on_message = lambda _c, _u, msg: got.messages.append(msg.topic)
        self.client = c
        c.connect(broker.host, broker.port)
        c.loop_start()
        wait_for(lambda: got.connack is not None, "CONNACK", timeout_s=10)

    def publish(self, topic: str) -> ReasonCode:
        mid = self.client.publish(topic, b'{"lat": 0}', qos=1).mid
        wait_for(lambda: mid in self.answers.acks, f"PUBACK of {topic}", timeout_s=10)
        return self.answers.acks[mid]

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        wait_for(lambda: mid in self.answers.granted, f"SUBACK of {topic}", timeout_s=10)
        return self.answers.granted[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.mqtt
def test_production_broker_refuses_anonymous_and_confines_devices(tmp_path: Path) -> None:
    # The password file made the entrypoint's way: an empty file, then users added in place.
    passwd = tmp_path / "passwd"
    passwd.touch()
    for name, secret in (("menara", "service-secret"), ("van-7", "van-secret")):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, secret], check=True)
    broker = Broker(tmp_path, password_file=passwd)
    broker.start()
    peers: list[Peer] = []
    try:
        for user, secret in ((None, ""), ("van-7", "wrong"), ("intruder", "x")):
            peer = Peer(broker, user, secret)
            peers.append(peer)
            refused = peer.answers.connack
            assert refused is not None and refused.is_failure, (user, refused)
        ingest = Peer(broker, "menara", "service-secret")
        van = Peer(broker, "van-7", "van-secret")
        peers += [ingest, van]
        assert ingest.subscribe("$share/ingest/menara/v1/#").value == 1  # granted QoS 1
        assert van.publish("menara/v1/van-8/json").is_failure  # not its own id
        assert van.publish("menara/tower/rounds").is_failure  # not the rule feed
        assert not van.publish("menara/v1/van-7/json").is_failure
        got = ingest.answers.messages
        wait_for(lambda: bool(got), "the van's fix at ingest", timeout_s=10)
        assert got == ["menara/v1/van-7/json"]
    finally:
        for peer in peers:
            peer.close()
        broker.stop()
