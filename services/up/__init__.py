"""``camhub up``: the whole stack on one machine (see :mod:`services.up.supervisor`)."""
