"""Logins, hosts, addresses, passwords and DSNs never survive in text the service shows or logs."""

from __future__ import annotations

import io
import logging

import pytest

from dbmeta_app.logging_setup import configure_logging
from dbmeta_app.scrub import scrub

SECRETS = ("svc", "hunter2", "10.0.0.5", "db.internal", "fe80::1", "2001:db8::7")


@pytest.mark.parametrize(
    "text",
    [
        "(1045, \"Access denied for user 'svc'@'10.0.0.5' (using password: YES)\")",
        "SELECT command denied to user 'svc'@'10.0.0.5' for table 'orders'",
        "Access denied for user `svc`@`db.internal` to database 'sales'",
        'connection to server at "db.internal" (10.0.0.5), port 5432 failed: FATAL:  password authentication '
        'failed for user "svc"',
        'connection to server at "db.internal" (fe80::1), port 5432 failed',
        'role "svc" does not exist',
        'could not translate host name "db.internal" to address: Name or service not known',
        "could not connect: postgresql://svc:hunter2@db.internal:5432/sales?sslmode=require",
        "host=db.internal port=5432 user=svc password=hunter2 dbname=sales",
        "Can't connect to MySQL server on 'db.internal' ([Errno 111] Connection refused)",
        "Host '10.0.0.5' is not allowed to connect to this MariaDB server",
        "mysql+pymysql://svc:hunter2@10.0.0.5/sales",
        "reached 2001:db8::7 as svc@db.internal",
    ],
)
def test_logins_hosts_addresses_and_passwords_are_removed(text: str) -> None:
    cleaned = scrub(text)
    for secret in SECRETS:
        assert secret not in cleaned, (secret, cleaned)


@pytest.mark.parametrize(
    "text",
    [
        'column "amout" does not exist',
        'relation "sales.orders" does not exist',
        "Unknown column 'amout' in 'field list'",
        "Table 'test.orders' doesn't exist",
        'syntax error at or near "x::int"',
        'invalid input syntax for type time: "12:30:00"',
        "operator does not exist: text = integer (hint: No operator matches the given name)",
        "statement timed out: planning took 5123 ms, over the 5000 ms limit",
        "Access denied for user '<redacted>'@'<redacted>' (using password: YES)",
    ],
)
def test_the_rest_of_a_database_error_is_kept(text: str) -> None:
    assert scrub(text) == text


def test_tracebacks_in_the_log_are_scrubbed_in_both_formats() -> None:
    for fmt in ("text", "json"):
        configure_logging("INFO", fmt)
        handler = next(h for h in logging.getLogger().handlers if getattr(h, "_dbmeta", False))
        assert isinstance(handler, logging.StreamHandler)
        stream = io.StringIO()
        old = handler.setStream(stream)
        try:
            try:
                raise RuntimeError(
                    "Access denied for user 'svc'@'10.0.0.5' via postgresql://svc:hunter2@db/x"
                )
            except RuntimeError:
                logging.getLogger("dbmeta_app.test").exception("boom")
        finally:
            handler.setStream(old)
            configure_logging("INFO", "text")
        output = stream.getvalue()
        assert "boom" in output and "RuntimeError" in output
        for secret in ("svc", "10.0.0.5", "hunter2"):
            assert secret not in output, (fmt, output)


@pytest.mark.parametrize(
    "text",
    [
        "missing bearer token: ADMIN_TOKEN, or the local token the dbmeta CLI reads beside the index",
        "Invalid settings: ADMIN_TOKEN: Value error, refusing a placeholder token",
        "password: REDIS_PASSWORD is read from SECRETS_DIR",
    ],
)
def test_the_names_of_settings_are_kept(text: str) -> None:
    assert scrub(text) == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("token: 3f9a0c1d2e", "3f9a0c1d2e"),
        ("password=hunter2 user=svc", "hunter2"),
        ("api_key: ABC_DEF_123x", "ABC_DEF_123x"),
    ],
)
def test_values_beside_secret_words_are_still_removed(text: str, secret: str) -> None:
    assert secret not in scrub(text), scrub(text)
