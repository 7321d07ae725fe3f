"""Ingest errors: one root for everything the ingest service raises."""


class IngestError(Exception):
    """Root of ingest errors."""


class StorageError(IngestError):
    """The database refused or lost a batch; the batch was not acknowledged."""
