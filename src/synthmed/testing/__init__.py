"""Helpers that build tiny models and datasets for tests and smoke runs (no downloads)."""
