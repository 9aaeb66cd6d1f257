"""Shared ground of every camhub service: settings, ids and subjects, codecs, the bus.

Nothing in here knows about media or devices beyond the contracts in ``docs/bus.md``.
"""
