"""Settings load from TOML and environment, environment wins, bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from menara import settings


def test_defaults_need_no_file_or_env() -> None:
    s = settings.load(environ={})
    assert s.t55_port == 5005
    assert s.unknown_devices == "reject"


def test_env_overrides_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "menara.toml"
    cfg.write_text('t55_port = 6001\nlog_level = "DEBUG"\n')
    s = settings.load(cfg, environ={"MENARA_T55_PORT": "6002"})
    assert (s.t55_port, s.log_level) == (6002, "DEBUG")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MENARA_T55_PORT": "many"}, "expected int"),
        ({"MENARA_UNKNOWN_DEVICES": "maybe"}, "not one of"),
        ({"MENARA_MQTT_QOS": "2"}, "not one of 0, 1"),
        ({"MENARA_CONFIG": "/nonexistent/menara.toml"}, "not found"),
    ],
)
def test_bad_values_are_refused_with_a_hint(env: dict[str, str], message: str) -> None:
    with pytest.raises(settings.SettingsError, match=message):
        settings.load(environ=env)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "menara.toml"
    cfg.write_text("t55_prot = 1\n")
    with pytest.raises(settings.SettingsError, match="unknown setting 't55_prot'"):
        settings.load(cfg, environ={})
