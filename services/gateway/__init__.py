"""camhub gateway service."""
