"""Logging configured once: request ids on every line, text or JSON, secrets kept out of the output."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect

from dbmeta_app.scrub import is_setting_name, scrub

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

#: ``password=x``, ``token: x``, ``ADMIN_TOKEN=x``, quoted or not: the word (and the name it ends) and the value.
_ASSIGNMENT = re.compile(
    r"(?i)(?P<name>[A-Za-z0-9_]*?(?:password|passwd|token|secret))(?P<sep>\s*[=:]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&]+)"
)
#: An HTTP bearer credential (``Authorization: Bearer x``); ``bearer token`` and ``Bearer realm=`` are words.
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!(?:token|tokens|realm|error|scope)\b)[A-Za-z0-9\-._~+/]+=*")
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


#: The first words of the messages that follow a setting's name in a configuration error (pydantic's and ours).
_MESSAGE_WORDS = frozenset(
    {
        "Value",
        "Input",
        "Field",
        "String",
        "Extra",
        "Invalid",
        "must",
        "should",
        "is",
        "not",
        "refusing",
        "expected",
    }
)


def _mask_assignment(match: re.Match[str]) -> str:
    """Mask the value after a secret's word, unless the text names a setting rather than giving its value.

    Two forms are names, not values: a setting's name after the word (``missing bearer token: ADMIN_TOKEN``),
    and ``NAME: message``, an upper-case setting's name as the label of a message about it (``ADMIN_TOKEN:
    Value error, ...``, the form of every configuration error) when what follows is a word such messages start
    with (:data:`_MESSAGE_WORDS`); any other word there is taken for a value and masked (``REDIS_PASSWORD: hunter``).
    """
    name, sep, value = match.group("name"), match.group("sep"), match.group("value")
    if is_setting_name(value):
        return match.group(0)
    if sep.strip() == ":" and is_setting_name(name) and value in _MESSAGE_WORDS:
        return match.group(0)
    return f"{name}{sep}***"


def redact(text: str) -> str:
    """Mask the values of passwords and tokens in a message (never the names of the settings that hold them)."""
    text = _DSN_PASSWORD.sub(r"\1***@", text)
    text = _ASSIGNMENT.sub(_mask_assignment, text)
    return _BEARER.sub(r"\1***", text)


class ContextFilter(logging.Filter):
    """Add the current request id to every record and mask secrets in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.CRITICAL and record.name.partition(".")[0] in QUIET_LOGGERS:
            return False
        record.request_id = request_id.get()
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class ClientLeftFilter(logging.Filter):
    """Drop a library's error record for a client that hung up mid-request (the edge middleware says it once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ClientDisconnect))


#: Libraries that log a client's hang-up mid-request as an error of their own, with its traceback.
CLIENT_LEFT_LOGGERS = ("mcp.server.streamable_http",)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, request_id, message (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)

    def formatException(self, ei: Any) -> str:
        return _scrub_traceback(super().formatException(ei))


class TextFormatter(logging.Formatter):
    """The text format, with tracebacks scrubbed like the JSON format's."""

    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have cached the record's traceback text unscrubbed: format it afresh.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei: Any) -> str:
        return _scrub_traceback(super().formatException(ei))


def _scrub_traceback(text: str) -> str:
    # A driver's exception text names the login, host and address it used, and may hold a DSN.
    return scrub(redact(text))


#: The service's own loggers: they log at LOG_LEVEL. Every other logger (third-party libraries) logs at
#: WARNING and above only: their INFO lines (faiss trying AVX512 and AVX2 builds before the one that loads,
#: connection chatter) read like failures to an operator. The runbook's lines (``Schema cache HIT/MISS``) are
#: the service's own and stay at INFO.
OWN_LOGGERS = ("dbmeta_app",)
#: uvicorn's lines (start-up, access log) keep the levels uvicorn's own options give them; with
#: LOG_FORMAT=json they go through the same handler, so that every line is one JSON object.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
#: Libraries whose failures reach the service as exceptions it reports itself (once per breaker transition):
#: their own ERROR lines repeat each failed call with a full traceback (pymilvus: ~6,000 lines in a 20 s
#: Milvus outage; urllib3 retry lines under clickhouse-connect, naming host and port), so only their
#: CRITICAL lines are kept. A handler filter, not only a level: clickhouse-connect resets urllib3's level
#: when it is imported, after logging is configured.
QUIET_LOGGERS = ("pymilvus", "urllib3")


def configure_logging(level: str, fmt: str = "text") -> None:
    """Configure the root logger once (idempotent): our loggers at ``level``, third parties at WARNING+."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_dbmeta", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._dbmeta = True  # type: ignore[attr-defined]
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    wanted = logging.getLevelName(level)
    root.setLevel(max(logging.WARNING, wanted))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(wanted)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in CLIENT_LEFT_LOGGERS:
        library = logging.getLogger(name)
        if not any(isinstance(f, ClientLeftFilter) for f in library.filters):
            library.addFilter(ClientLeftFilter())
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if fmt == "json" and server_logger.handlers:
            server_logger.handlers.clear()  # uvicorn's own plain-text handlers
            server_logger.propagate = True
