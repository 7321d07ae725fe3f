"""The exported provisioning: dashboard JSON that Grafana can load, files that never rot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashboards.provisioning import DatasourceOptions, dashboards, datasource, provider, render
from menara.cli import main
from tests.dashboards.panels import panels

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "grafana" / "provisioning"
PANEL_TYPES = {"geomap", "table", "stat", "timeseries", "barchart", "piechart"}
DOCS = dashboards()


def test_the_four_dashboards_have_stable_uids() -> None:
    assert [(d["uid"], d["title"]) for d in DOCS] == [
        ("menara-live-map", "Live map"),
        ("menara-alerts", "Alerts"),
        ("menara-delivery-performance", "Delivery performance"),
        ("menara-fleet-health", "Fleet health"),
    ]
    (live,) = [d for d in DOCS if d["uid"] == "menara-live-map"]
    assert live["refresh"] == "5s"


@pytest.mark.parametrize("doc", DOCS, ids=[str(d["uid"]) for d in DOCS])
def test_dashboard_json_is_what_grafana_loads(doc: dict[str, Any]) -> None:
    assert 8 <= len(doc["uid"]) <= 40 and doc["title"]
    ids = [p["id"] for p in panels(doc)]
    assert ids == list(range(1, len(ids) + 1))
    for p in panels(doc):
        where = f"{doc['uid']} / {p.get('title')}"
        assert p["type"] in PANEL_TYPES, where
        assert p["title"], where
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, where
        assert p["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "menara-pg"}
        assert isinstance(p["options"], dict), where
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs), where
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], where
            assert t["editorMode"] == "code" and t["rawQuery"] is True, where
            assert t["format"] in ("table", "time_series"), where
            sql = t["rawSql"]
            assert sql.lstrip().upper().startswith("SELECT"), where
            # every panel follows the depot and vehicle pickers
            assert "$depot" in sql and "$vehicle" in sql, where
            # Grafana's macro arguments end at the first ')': no calls inside a macro
            for args in re.findall(r"\$__\w+\(([^)]*)\)", sql):
                assert "(" not in args, f"{where}: nested call in macro ({args})"
        if p["type"] == "geomap":
            for layer in p["options"]["layers"]:
                assert layer["location"]["mode"] == "coords"
                assert layer["location"]["latitude"] and layer["location"]["longitude"]
                assert layer["filterData"] == {
                    "id": "byRefId",
                    "options": layer["filterData"]["options"],
                }
                assert layer["filterData"]["options"] in refs, where


@pytest.mark.parametrize("doc", DOCS, ids=[str(d["uid"]) for d in DOCS])
def test_depot_and_vehicle_variables(doc: dict[str, Any]) -> None:
    listed = doc["templating"]["list"]
    assert [v["name"] for v in listed] == ["depot", "vehicle"]
    for v in listed:
        assert v["type"] == "query" and v["includeAll"] is True and v["multi"] is False
        assert v["allValue"] == "NULL" and v["current"]["value"] == "$__all"
        assert v["datasource"]["uid"] == "menara-pg"
    assert "$depot" in listed[1]["query"], "vehicles follow the chosen depot"


def test_committed_provisioning_equals_a_fresh_export() -> None:
    fresh = render(DatasourceOptions())
    on_disk = {
        str(p.relative_to(COMMITTED)): p.read_text(encoding="utf-8")
        for p in COMMITTED.rglob("*")
        if p.is_file()
    }
    assert sorted(on_disk) == sorted(fresh), (
        "run: menara dashboards export deploy/grafana/provisioning"
    )
    stale = [name for name in fresh if fresh[name] != on_disk[name]]
    assert stale == [], "run: menara dashboards export deploy/grafana/provisioning"


def test_yaml_files_say_what_grafana_needs() -> None:
    yaml = pytest.importorskip("ruamel.yaml")
    files = render(DatasourceOptions(host="db.example:6432", database="fleet"))
    ds_doc = yaml.YAML(typ="safe").load(files["datasources/menara.yaml"])
    assert ds_doc["apiVersion"] == 1
    (ds,) = ds_doc["datasources"]
    assert ds == datasource(DatasourceOptions(host="db.example:6432", database="fleet"))
    assert ds["url"] == "db.example:6432" and ds["jsonData"]["database"] == "fleet"
    assert ds["jsonData"]["timescaledb"] is True and ds["jsonData"]["sslmode"] == "disable"
    assert ds["secureJsonData"] == {"password": "$MENARA_DB_PASSWORD"}
    prov_doc = yaml.YAML(typ="safe").load(files["dashboards/menara.yaml"])
    (prov,) = prov_doc["providers"]
    assert prov == provider()
    assert prov["folder"] == "Menara" and prov["folderUid"] == "menara"
    assert prov["options"]["path"] == "/etc/grafana/provisioning/dashboards/menara"


def test_export_command_is_idempotent_and_drops_stale_dashboards(tmp_path: Path) -> None:
    stale = tmp_path / "dashboards" / "menara" / "menara-old.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert main(["dashboards", "export", str(tmp_path), "--db-host", "pg:5432"]) == 0
    first = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert not stale.exists()
    assert len(first) == 2 + len(DOCS)
    assert b'url: "pg:5432"' in first[tmp_path / "datasources" / "menara.yaml"]
    assert main(["dashboards", "export", str(tmp_path), "--db-host", "pg:5432"]) == 0
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == first
