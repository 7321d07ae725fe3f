"""A PostgreSQL query for panels: the one dataquery the foundation SDK does not ship.

It implements the SDK's dataquery variant and builder protocol, so panels take it through
their ordinary ``.with_target(...)`` like any other query.
"""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "menara-pg"
DATASOURCE = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

Format = Literal["table", "time_series"]


class SqlQuery(cogvariants.Dataquery):
    """Raw SQL in code mode, as Grafana's PostgreSQL query editor saves it."""

    ref_id: str
    raw_sql: str
    format_val: Format

    def __init__(self, ref_id: str = "A", raw_sql: str = "", format_val: Format = "table") -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "editorMode": "code",
            "format": self.format_val,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class Sql(cogbuilder.Builder[SqlQuery]):
    """Builder for :class:`SqlQuery`: ``Sql(text).ref_id("B").time_series()``."""

    _internal: SqlQuery

    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlQuery(raw_sql=raw_sql.strip())

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def time_series(self) -> Self:
        """Grafana turns long rows (time, metric, value) into one series per metric."""
        self._internal.format_val = "time_series"
        return self
