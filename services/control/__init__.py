"""camhub control service."""
