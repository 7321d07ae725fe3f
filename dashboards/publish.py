"""Push the dashboards to a running Grafana over its HTTP API (``grafana-client``).

Idempotent: the folder, the data source and every dashboard have fixed uids, so a second
run updates what the first created (dashboards with ``overwrite``) and never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from dashboards.provisioning import (
    FOLDER_TITLE,
    FOLDER_UID,
    DatasourceOptions,
    dashboards,
    datasource,
)
from dashboards.query import DATASOURCE_UID


class PublishError(Exception):
    """Grafana could not be reached or refused the request; the message says what to do."""


class _Folders(Protocol):
    def get_folder(self, uid: str) -> dict[str, Any]: ...
    def create_folder(self, title: str, uid: str | None = None) -> dict[str, Any]: ...


class _Datasources(Protocol):
    def get_datasource_by_uid(self, uid: str) -> dict[str, Any]: ...
    def create_datasource(self, datasource: dict[str, object]) -> dict[str, Any]: ...
    def update_datasource_by_uid(self, uid: str, datasource: dict[str, object]) -> Any: ...


class _Dashboards(Protocol):
    def update_dashboard(self, dashboard: dict[str, object]) -> dict[str, Any]: ...


class _Session(Protocol):
    def close(self) -> None: ...


class _Client(Protocol):
    s: _Session  # the HTTP session; grafana-client has no close() of its own


class _Grafana(Protocol):
    client: _Client
    folder: _Folders
    datasource: _Datasources
    dashboard: _Dashboards


def _missing(call: Callable[[], object]) -> bool:
    """True when Grafana answers 404 (the object does not exist yet)."""
    try:
        call()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return True
        raise
    return False


def publish(
    url: str, token: str, opts: DatasourceOptions, say: Callable[[str], None] = print
) -> None:
    """Create or update the Menara folder, data source and dashboards at ``url``.

    ``opts.password`` is sent as the data source password when set; left empty, an existing
    data source keeps the password Grafana already has.
    """
    # grafana-client appends "api" to the URL's path as is: give it a trailing slash
    base = url.rstrip("/") + "/"
    api = cast(_Grafana, GrafanaApi.from_url(base, credential=token, timeout=10.0))
    try:
        _publish(api, opts, say)
    except GrafanaUnauthorizedError as exc:
        raise PublishError(
            f"Grafana at {url} refused the token (401): create a service account token with"
            " the Admin role (Administration → Users and access → Service accounts) and pass"
            " it with --token"
        ) from exc
    except GrafanaClientError as exc:
        hint = " (the token needs the Admin role)" if exc.status_code == 403 else ""
        raise PublishError(f"Grafana at {url} refused the request{hint}: {exc}") from exc
    except GrafanaException as exc:
        if exc.status_code:
            raise PublishError(f"Grafana at {url} failed ({exc}); see Grafana's log") from exc
        raise PublishError(
            f"cannot reach Grafana at {url} ({exc}); check --url and that Grafana is running"
        ) from exc
    except OSError as exc:  # connection refused, name not found: not wrapped by grafana-client
        raise PublishError(
            f"cannot reach Grafana at {url} ({exc}); check --url and that Grafana is running"
        ) from exc
    finally:
        api.client.s.close()


def _publish(api: _Grafana, opts: DatasourceOptions, say: Callable[[str], None]) -> None:
    """Folder first (dashboards go into it), then the data source they query, then them."""
    if _missing(lambda: api.folder.get_folder(FOLDER_UID)):
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        say(f"folder {FOLDER_TITLE!r} (uid {FOLDER_UID}): created")
    else:
        say(f"folder {FOLDER_TITLE!r} (uid {FOLDER_UID}): exists")
    ds = datasource(opts)
    if not opts.password:
        del ds["secureJsonData"]
    if _missing(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID)):
        api.datasource.create_datasource(ds)
        say(f"data source {ds['name']!r} (uid {DATASOURCE_UID}): created")
    else:
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
        say(f"data source {ds['name']!r} (uid {DATASOURCE_UID}): updated")
    for doc in dashboards():
        res = api.dashboard.update_dashboard(
            {
                "dashboard": {**doc, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "menara dashboards publish",
            }
        )
        say(f"dashboard {doc['title']!r} (uid {doc['uid']}): version {res.get('version')}")
