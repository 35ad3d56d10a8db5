"""Reusable test helpers (servers and data makers) shared by the test packages."""
