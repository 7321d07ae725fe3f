"""paho's client with its hot path taken over: buffered reads, QoS 0/1 PUBLISH packets
parsed straight from the buffer, and a commit's PUBACKs in one write. The rest of MQTT
(connect, subscribe, keepalive, QoS 2, errors) stays paho's.
"""

from __future__ import annotations

import struct

import paho.mqtt.client as mqtt

__all__ = ["READ_BUFFER_BYTES", "BufferedClient", "Received"]

READ_BUFFER_BYTES = 256 * 1024
Received = tuple[str, bytes, int, int]  # topic, payload, packet id, QoS
_PUBACK = struct.Struct("!BBH")  # type, remaining length 2, packet id: reason 0 implied


class BufferedClient(mqtt.Client):
    """paho with buffered reads, its own PUBLISH parser and batched PUBACKs.

    paho 2.x reads each packet with three ``recv`` calls (type, length, body), each a
    syscall that also offers the GIL to the event loop; buffering measured +15-20 %
    messages/s. Then paho still spends ~40 us on each PUBLISH (an ``MQTTMessage``, v5
    ``Properties`` built and parsed, the topic matched against callbacks): ~70 % of this
    thread at 20k msg/s, capping ingest below a bare paho subscriber. ``read_publishes``
    parses QoS 0/1 PUBLISH packets straight from the buffer instead (~2 us each); anything
    else (CONNACK, SUBACK, PINGRESP, QoS 2, a malformed packet, one paho has begun) is
    left to paho's ``loop_read``. And ``ack(mid, 1)`` sends each 4-byte PUBACK with a
    syscall of its own (12 %); ``ack_all`` queues a whole commit's PUBACKs as one write.
    This overrides paho's private ``_sock_recv`` and reads its ``_in_packet`` state
    (paho-mqtt is pinned below 3); every MQTT test runs through it.
    """

    _rbuf = b""
    _rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_BUFFER_BYTES)  # BlockingIOError when empty
            if not data:
                return data  # end of stream: paho reports the connection lost
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start : self._rpos]

    def buffered(self) -> bool:
        """Bytes already read from the socket and not yet parsed (select won't see them)."""
        return self._rpos < len(self._rbuf)

    def drop_buffer(self) -> None:
        """Forget a lost connection's bytes before the next one starts."""
        self._rbuf, self._rpos = b"", 0

    def read_publishes(self, out: list[Received], limit: int) -> int:
        """Append whole QoS 0/1 PUBLISH packets from the buffer to ``out``, at most
        ``limit``; returns how many. Reads the socket when the buffer ends (or ends within
        a packet). Stops at the first packet paho must see, and leaves errors to paho.

        What paho's ``_handle_publish`` + ``on_message`` would deliver, minus the v5
        properties (skipped: ingest uses none, and sets no Topic Alias Maximum, so the
        broker sends no aliases). A topic that is not UTF-8 becomes "" (ingest rejects it).
        """
        if self._in_packet["command"] or self._sock is None:
            return 0  # paho is inside a packet: its bytes are partly consumed
        taken, more = self._parse(out, limit)
        if more and taken < limit and self._refill():
            n, _ = self._parse(out, limit - taken)
            taken += n
        if taken:
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()  # as paho's _packet_read
        return taken

    def _refill(self) -> bool:
        """One ``recv`` appended to the unparsed bytes; False if there was nothing (or
        the connection failed: paho's own read, next, sees that and reports it)."""
        try:
            data = super()._sock_recv(READ_BUFFER_BYTES)
        except OSError:  # BlockingIOError: nothing yet
            return False
        if not data:
            return False
        self._rbuf, self._rpos = self._rbuf[self._rpos :] + data, 0
        return True

    def _parse(self, out: list[Received], limit: int) -> tuple[int, bool]:
        """(messages appended, whether the buffer ran out: all of it, or within a packet)."""
        buf, pos, end = self._rbuf, self._rpos, len(self._rbuf)
        v5 = self._protocol == mqtt.MQTTv5
        taken = 0
        while taken < limit and pos < end:
            header = buf[pos]
            qos = (header >> 1) & 3
            if header & 0xF0 != mqtt.PUBLISH or qos > 1:
                break
            i, length = _varint(buf, pos + 1, end)
            stop = i + length
            if i < 0 or stop > end:
                self._rpos = pos
                return taken, True  # cut by the read (a malformed length: paho's to refuse)
            if i + 2 > stop:
                break  # malformed: paho refuses it and closes the connection
            p = i + 2 + ((buf[i] << 8) | buf[i + 1])
            topic = buf[i + 2 : p]
            if not topic and not v5:
                break
            mid = 0
            if qos:
                if p + 2 > stop:
                    break
                mid = (buf[p] << 8) | buf[p + 1]
                p += 2
            if v5:
                q, props = _varint(buf, p, stop)
                if q < 0:
                    break
                p = q + props  # the properties: skipped
            if p > stop:
                break
            try:
                name = topic.decode()
            except UnicodeDecodeError:  # brokers refuse these; ingest rejects ""
                name = ""
            out.append((name, buf[p:stop], mid, qos))
            taken += 1
            pos = stop
        self._rpos = pos
        return taken, pos >= end

    def ack_all(self, mids: list[int]) -> None:
        """PUBACK (success) each of ``mids``, all in one queued write."""
        if mids:
            packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
            self._packet_queue(mqtt.PUBACK, packet, 0, 0)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """MQTT variable byte integer at ``pos``: (position after it, value); (-1, 0) when it
    is cut off at ``end`` or longer than four bytes."""
    value = shift = 0
    while pos < end and shift < 28:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return pos, value
        shift += 7
    return -1, 0
