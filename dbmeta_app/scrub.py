"""Remove logins, hosts, addresses, passwords and connection strings from text the service shows or logs.

One function, :func:`scrub`, used wherever a database's or a driver's message leaves the process: preflight
errors, introspection and sample-read failures, the HTTP error handler and every log line. A database
error is untrusted text that names the service's own login (``Access denied for user 'svc'@'10.0.0.5'``,
``password authentication failed for user "svc"``), the server it reached, or a DSN with its password.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Final

__all__ = ["is_setting_name", "scrub"]

_REDACTED: Final = "<redacted>"

_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # URLs and DSNs, credentials and host included: scheme://user:password@host:port/db?...
    (re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,30})://[^\s'\"<>()]+"), rf"\1://{_REDACTED}"),
    # MySQL/MariaDB logins: 'user'@'host', `user`@`host`, "user"@"host", user@host
    (re.compile(r"""(['`"])[^'`"\s]*\1@(['`"])[^'`"\s]*\2"""), rf"'{_REDACTED}'@'{_REDACTED}'"),
    (re.compile(r"(?<![\w.@-])[\w.$-]+@[\w.%-]+\.[\w.%-]*[\w%]"), f"{_REDACTED}@{_REDACTED}"),
    # libpq connection strings (key=value) and password-like assignments; a setting's name after the word
    # (``missing bearer token: ADMIN_TOKEN``) is not a value (see _assignment)
    (
        re.compile(
            r"(?i)\b(host|hostaddr|user|username|password|passwd|pwd|dbname|passfile|service|sslkey|"
            r"sslpassword|token|secret|api_key)(\s*[=:]\s*)(?!(?:YES|NO)\b)('[^']*'|\"[^\"]*\"|[^\s,;&)]+)"
        ),
        "",  # replaced by _assignment
    ),
    # PostgreSQL: role "x", user "x", database "x", server at "host", host name "x"
    (
        re.compile(r"(?i)\b(role|user|database|server at|host name|host)\s+\"[^\"]*\""),
        rf'\1 "{_REDACTED}"',
    ),
    # MySQL: user 'x', host 'x', server on 'host', database 'x'
    (
        re.compile(r"(?i)\b(user|host|server on|server host|database|to database)\s+'[^']*'"),
        rf"\1 '{_REDACTED}'",
    ),
)

_IPV4: Final = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
_IPV6: Final = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


def scrub(text: str) -> str:
    """Return `text` with logins, host names, IP addresses, passwords and DSNs replaced by placeholders."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement or _assignment, text)
    text = _IPV4.sub(_address, text)
    return _IPV6.sub(_address, text)


def _assignment(match: re.Match[str]) -> str:
    key, separator, value = match.group(1), match.group(2), match.group(3)
    if is_setting_name(value):
        return match.group(0)
    return f"{key}{separator}{_REDACTED}"


#: Names the service's messages use beside the settings' own (``Settings`` fields, upper-cased).
_OTHER_NAMES: Final = frozenset({"SECRETS_DIR", "DBMETA_DEBUG", "DBMETA_URL", "HF_HUB_OFFLINE"})


@lru_cache(maxsize=1)
def _setting_names() -> frozenset[str]:
    from dbmeta_app.config import Settings  # late: config is above this module

    return frozenset(name.upper() for name in Settings.model_fields) | _OTHER_NAMES


def is_setting_name(word: str) -> bool:
    """Whether ``word`` is exactly the name of one of the service's settings (``ADMIN_TOKEN``), upper-case.

    A message that names a setting (``missing bearer token: ADMIN_TOKEN``) shows a name, not a value:
    masking it would hide what the reader has to set.
    """
    return word in _setting_names()


def _address(match: re.Match[str]) -> str:
    candidate = match.group(0)
    # `x::int` casts and `12:30:00` times look like IPv6: only a real address that holds a digit counts.
    if ":" in candidate and (not any(ch.isdigit() for ch in candidate) or candidate.count(":") < 2):
        return candidate
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return candidate
    return "<address>"
