"""Simulators: the Bambu printer and a synthetic camera (for tests, demos, users without hardware)."""
