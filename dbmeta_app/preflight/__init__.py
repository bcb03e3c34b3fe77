"""SQL safety and EXPLAIN building blocks for the preflight."""
