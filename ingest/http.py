"""HTTP device intake (OsmAnd / Traccar Client): one request, one decode, one commit, one answer.

A phone sends each position as its own GET or POST (any path, as Traccar's OsmAnd port)
and the HTTP status is its ack: 200 only once the writer has committed the batch, so
whatever a phone was told is stored survives a crash, and whatever it was not told it
sends again. The database stores a resent fix once, so a replay is simply 200 again.

The frame handed to the decoder is the body when it is JSON (first non-space byte ``{``),
else the raw query string when there is one (as Traccar: the URI's parameters win), else
the body (a form). Answers, in plain text so phones can log them:

- 200: stored (or already stored); with several positions, at least one was stored.
- 400: nothing usable (``<code>: <detail>`` of the first reject); kept as a dead letter.
- 403: the device is refused: unknown (``unknown_devices=reject``) or disabled, registered
  for another protocol (``wrong_protocol``), or it has a secret and the request does not
  carry it as the ``key`` query parameter (``bad_secret``); ``to_batch`` keeps the dead
  letter. The ``key`` parameter is taken out of the request before it is decoded or
  kept, so a secret is never stored, not even in a dead letter.
- 400 ``future_fix``: every position is more than ``future_fix_s`` ahead of its receipt.
- 413: body over ``max_body_bytes``; counted, not kept (nothing to learn from a flood).
- 503: the writer failed, the intake is stopping, or the commit did not come within
  ``commit_timeout_s`` (the database is down or stuck); the phone retries later. A fix
  answered 503 may still be committed afterwards: its resend is then stored once.

Connections are accepted within the limits of the TCP device listeners (``ingest.limits``):
one beyond them is closed before a request is read.

Each request waits for its own commit, so a slow database pushes back on phones through
their open requests (``open_connections``); the commit timeout bounds how long, so
requests do not pile up while the database is away. Stopping waits only for requests
whose data was handed to the writer (they are owed an answer after commit), not for
clients still sending a body: those own nothing yet, and get 503 if they ever finish.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Protocol
from urllib.parse import unquote_plus

from aiohttp import web

from decoders import Codec, Decoded
from decoders.model import Session
from ingest import priority
from ingest.counters import Counters
from ingest.devices import DeviceRegistry
from ingest.intake import FUTURE_FIX, decode_safely, to_batch
from ingest.limits import NO_LIMITS, Acceptor, FdBudget, Limits
from ingest.model import Batch, peer_name

log = logging.getLogger(__name__)

TRANSPORT = "http"
_REASON_CHARS = 200  # a reason line a phone's log can show
KEY_PARAM = "key"  # the query parameter holding a device's secret
BAD_SECRET = "bad_secret"  # reject code: the device has a secret, the request not that one
COMMIT_TIMEOUT_S = 10.0  # under Traccar Client's 15 s request timeout: the phone hears 503
SHUTDOWN_GRACE_S = 1.0  # at exit, left to requests still reading a body (owed nothing)


class CommitSink(Protocol):
    """The writer as the intake needs it: ``put`` (back-pressuring) and ``drain`` (wait until
    everything put so far is committed; raises once the writer has failed)."""

    async def put(self, batch: Batch) -> None: ...

    async def drain(self) -> None: ...


class HttpListener:
    """An aiohttp server for one HTTP device protocol; async context manager.

    ``port=0`` binds a free port, readable as ``.port`` once entered.
    """

    def __init__(
        self,
        *,
        codec: Codec,
        host: str,
        port: int,
        max_body_bytes: int,
        writer: CommitSink,
        registry: DeviceRegistry,
        counters: Counters,
        commit_timeout_s: float = COMMIT_TIMEOUT_S,
        limits: Limits = NO_LIMITS,
        fds: FdBudget | None = None,
    ) -> None:
        self.codec = codec
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.commit_timeout_s = commit_timeout_s
        self._writer = writer
        self._registry = registry
        self._counters = counters
        self._reading = True
        self._inflight = 0  # requests in the handler, reading a body included
        self._owed = 0  # requests whose data went to the writer, not yet answered
        self._idle = asyncio.Event()  # no request is owed an answer
        self._idle.set()
        self._failed = asyncio.Event()
        self._failure: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._acceptor = Acceptor(
            self._handler, limits=limits, fds=fds, counters=counters, what=(TRANSPORT, codec.NAME)
        )

    @property
    def open_connections(self) -> int:
        """Requests being served (reading a body, waiting for their commit, or answering)."""
        return self._inflight

    async def __aenter__(self) -> HttpListener:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("GET", "/{path:.*}", self._handle)
        app.router.add_route("POST", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        self.port = await self._acceptor.start(self.host, self.port, backlog=4096)
        return self

    def _handler(self) -> asyncio.Protocol:
        """aiohttp's protocol for one connection the acceptor admitted."""
        assert self._runner is not None and self._runner.server is not None
        return self._runner.server()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_reading()
        if self._runner is not None:
            await self._runner.cleanup()

    async def stop_reading(self) -> None:
        """Stop listening and answer new requests 503; return once no request is owed an
        answer after its commit (those still sending a body are not waited for).

        The first step of a clean shutdown: every phone that was told 200 is committed.
        """
        self._reading = False
        self._acceptor.close()
        await self._idle.wait()

    async def wait(self) -> None:
        """Block while the intake works; raise the writer failure that stopped it."""
        await self._failed.wait()
        assert self._failure is not None
        raise self._failure

    # -- requests ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._accepting():
            return self._unavailable()
        self._inflight += 1
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                self._counters.inc("rejects", protocol=self.codec.NAME, code="body_too_large")
                return self._answer(413, f"body over {self.max_body_bytes} bytes", close=True)
            if not self._accepting():  # stopped while the body arrived: nothing taken yet
                return self._unavailable()
            self._owed += 1
            self._idle.clear()
            try:
                return await self._serve(request, body)
            finally:
                self._owed -= 1
                if self._owed == 0:
                    self._idle.set()
        finally:
            self._inflight -= 1

    def _accepting(self) -> bool:
        return self._reading and self._failure is None

    def _unavailable(self) -> web.Response:
        return self._answer(503, "not accepting data now, retry later", close=True)

    async def _serve(self, request: web.Request, body: bytes) -> web.Response:
        frame, key = _frame(request, body)
        status, text, close = await self._process(frame, _peer(request), key)
        if status == 200 and request.transport is not None:  # a device's: served first now
            priority.promote(request.transport)
        return self._answer(status, text, close=close)

    async def submit(self, frame: bytes, peer: str) -> tuple[int, str]:
        """Store one request's data that reached Menara another way (the driver page posts
        its phone's positions to the API): the same decode, identity rules, commit and
        answer a phone gets here, as (HTTP status, reason); the API authenticated the sender,
        so no device secret is asked for."""
        if not self._accepting():
            return 503, "not accepting data now, retry later"
        self._owed += 1
        self._idle.clear()
        try:
            status, text, _ = await self._process(frame, peer, None, trusted=True)
        finally:
            self._owed -= 1
            if self._owed == 0:
                self._idle.set()
        self._count("http_responses", status=str(status))
        return status, text[:_REASON_CHARS]

    async def _process(
        self, frame: bytes, peer: str, key: str | None, *, trusted: bool = False
    ) -> tuple[int, str, bool]:
        """(status, reason, close the connection) for one request's data; ``key`` is the
        request's secret, not asked for when ``trusted``."""
        self._count("bytes_in", len(frame))
        if not frame.strip():
            self._count("empty_requests")
            return 400, "empty request: send id, lat, lon and timestamp", False
        self._count("frames_in")
        decoded = self._decode(frame, peer)
        device_id = decoded.device_id or ""
        refuse = None
        if not trusted and not self._registry.secret_matches(device_id, key):
            refuse = (BAD_SECRET, f"{'no' if key is None else 'a wrong'} {KEY_PARAM} parameter")
        batch = to_batch(
            decoded,
            device_id=device_id,
            transport=TRANSPORT,
            protocol=self.codec.NAME,
            peer=peer,
            registry=self._registry,
            counters=self._counters,
            raw=frame,
            refuse=refuse,
        )
        if batch.rows:
            try:
                async with asyncio.timeout(self.commit_timeout_s):
                    await self._writer.put(batch)
                    await self._writer.drain()  # commits go in order: ours is in by now
            except TimeoutError:  # put/drain only wait: cancelling them takes nothing back
                self._count("http_commit_timeouts")
                return 503, "storage is slow, retry later", True
            except Exception as exc:
                self._fail(exc)
                return 503, "storage unavailable, retry later", True
        if len(batch.fixes):
            return 200, "", False
        if len(decoded.fixes):  # all refused: the last dead letter says why
            why = batch.dead_letters[-1]
            if why.code == "unknown_device":
                return 403, f"unknown device {device_id}", False
            return 400 if why.code == FUTURE_FIX else 403, f"{why.code}: {why.detail}", False
        if decoded.rejects:
            first = decoded.rejects[0]
            return 400, f"{first.code}: {first.detail}", False
        return 400, "no position in request", False

    def _decode(self, frame: bytes, peer: str) -> Decoded:
        """Decode one request with a fresh session: HTTP carries no connection identity."""
        return decode_safely(
            lambda: self.codec.decode_frames([frame], session=Session()),
            (frame,),
            Session(),
            f"http {peer} {self.codec.NAME}",
        )

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            log.error("http %s: the writer failed, answering 503: %s", self.codec.NAME, exc)
            self._failure = exc
            self._failed.set()

    def _answer(self, status: int, text: str, *, close: bool = False) -> web.Response:
        self._count("http_responses", status=str(status))
        response = web.Response(status=status, text=text[:_REASON_CHARS])
        if close or not self._reading:
            response.force_close()
        return response

    def _count(self, name: str, n: int = 1, **labels: str) -> None:
        self._counters.inc(name, n, transport=TRANSPORT, protocol=self.codec.NAME, **labels)


def _frame(request: web.Request, body: bytes) -> tuple[bytes, str | None]:
    """(frame, secret): the JSON body, else the raw query string, else the (form) body,
    without the ``key`` parameter, and that parameter's value (from the URL with JSON)."""
    query = request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")
    if body.lstrip()[:1] == b"{":
        return body, _take_key(query)[1]
    return _take_key(query or body)


def _take_key(form: bytes) -> tuple[bytes, str | None]:
    """``form`` without its ``key`` parameters, and the last one's value (None: none).

    Split as the decoder's ``parse_qsl`` splits (``&``, a leading ``/?`` or URL kept
    apart), so what is left decodes as before, minus the secret.
    """
    head, sep, tail = form.partition(b"?")
    if not sep or b"=" in head or b"&" in head:
        head, sep, tail = b"", b"", form
    key: str | None = None
    kept = []
    for part in tail.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_plus(name.decode("utf-8", "replace")) == KEY_PARAM:
            key = unquote_plus(value.decode("utf-8", "replace"))
        else:
            kept.append(part)
    return (head + sep + b"&".join(kept) if key is not None else form), key


def _peer(request: web.Request) -> str:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        return peer_name(peername)
    return str(request.remote or "?")
