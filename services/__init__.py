"""camhub: a self-hosted hub for live camera video and the devices behind the cameras."""

__version__ = "0.1.0"
