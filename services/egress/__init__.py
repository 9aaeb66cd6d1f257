"""camhub egress service."""
