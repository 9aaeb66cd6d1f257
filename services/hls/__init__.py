"""camhub hls service."""
