"""Compile the decoders' numba kernels before the first device connects.

numba compiles a kernel on its first call and keeps the machine code in its cache
(``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the source). With an empty cache (a new
install, an upgrade, a container whose cache lives in ``/tmp``) the first packet of a
protocol would otherwise hold the event loop for seconds while every other device
waits. ``warm_up`` runs the protocols' own test vectors (``decoders/vectors``, shipped
as package data) through ``split_frames``/``decode_frames``, the very calls ingest
makes, so the types the kernels see are the ones live traffic brings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from importlib import resources

from decoders import PROTOCOLS
from decoders.errors import DecodeError
from decoders.model import Session

__all__ = ["warm_up"]


def warm_up(names: Iterable[str]) -> float:
    """Decode every vector of the named protocols (keys of ``PROTOCOLS``); seconds taken.
    Fast (milliseconds) once the cache holds the kernels."""
    start = time.perf_counter()
    for name in dict.fromkeys(names):
        codec = PROTOCOLS[name]
        text = resources.files("decoders").joinpath("vectors", f"{_file(name)}.json").read_text()
        for vec in json.loads(text):
            msg = vec["message"]
            raw = bytes.fromhex(msg) if vec["encoding"] == "hex" else str(msg).encode()
            try:
                frames, _ = codec.split_frames(raw)
            except DecodeError:
                continue  # a vector of lost framing: nothing reaches a kernel
            codec.decode_frames(frames, session=Session(**vec.get("session", {})))
    return time.perf_counter() - start


def _file(name: str) -> str:
    return name.replace("-", "_")
