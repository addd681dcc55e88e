"""The per-model report: its schema, reading and writing, and the provenance it records."""
