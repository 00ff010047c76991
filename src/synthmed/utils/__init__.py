"""Small shared helpers (provenance, hashing, logging)."""
