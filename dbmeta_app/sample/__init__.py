"""Bundled sample warehouse: SQL script, curated descriptions, examples and instructions."""
