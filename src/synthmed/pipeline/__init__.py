"""End-to-end pipelines built from the library's stages (the offline demo)."""
