"""camhub ingest service."""
