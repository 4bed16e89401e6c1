"""The lake: layout, storage (local/S3), atomic writer, offset ledger, metadata, reader."""
