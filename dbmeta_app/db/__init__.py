"""Database access: engines, the read-only session, the bound on concurrent reads (docs/ARCHITECTURE.md)."""
