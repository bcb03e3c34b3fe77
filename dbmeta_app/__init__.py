"""dbmeta: database context for LLM text-to-SQL orchestrators."""

__version__ = "0.1.0"
