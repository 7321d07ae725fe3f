"""Decoder errors: one root, so callers can catch every decoding failure at once."""


class DecodeError(Exception):
    """Bytes could not be decoded; ``code`` is the stable reason code counted by ingest."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
