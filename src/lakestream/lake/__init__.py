"""The lake: layout, storage (local/S3), Delta tables, metadata, reader."""
