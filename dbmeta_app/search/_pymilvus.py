"""pymilvus, imported without letting it read this service's ``MILVUS_URI``.

pymilvus reads ``MILVUS_URI`` from the environment when it is imported (after loading a ``.env`` file it
finds with python-dotenv) and parses it as the address of its default connection. The service's
``MILVUS_URI`` may be a Milvus Lite file path (``/var/lib/dbmeta/milvus.db``, as the local k8s overlay sets),
which fails that parse, and with it the import: ``ConnectionConfigException: Illegal uri``, at start-up of
the server and the CLI alike. The service never uses pymilvus' default connection (each client gets its URI
explicitly, ``milvus_index.connect``), so while pymilvus is imported the variable reads as empty, pymilvus'
own "not set", and it is restored at once: the settings, and any process started later, see it unchanged.

pymilvus also configures its loggers with their own handlers and formats; they are handed back to the
service's logging (one format, JSON when asked, secrets masked, its levels).
"""

from __future__ import annotations

import logging
import os

_OWN_VARIABLES = ("MILVUS_URI",)

_saved = {name: os.environ.get(name) for name in _OWN_VARIABLES}
try:
    for _name in _OWN_VARIABLES:
        os.environ[_name] = ""
    from pymilvus import (
        AnnSearchRequest,
        DataType,
        Function,
        FunctionType,
        MilvusClient,
        MilvusException,
        RRFRanker,
        WeightedRanker,
    )
finally:
    for _name, _value in _saved.items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value

for _logger in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
    logging.getLogger(_logger).handlers.clear()
    logging.getLogger(_logger).propagate = True
    logging.getLogger(_logger).setLevel(logging.NOTSET)

__all__ = [
    "AnnSearchRequest",
    "DataType",
    "Function",
    "FunctionType",
    "MilvusClient",
    "MilvusException",
    "RRFRanker",
    "WeightedRanker",
]
