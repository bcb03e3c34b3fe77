"""Curated query examples and instructions: packs, fit check against the snapshot, ranking."""
