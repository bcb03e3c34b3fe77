"""Remove logins, hosts, addresses, passwords and connection strings from text the service shows or logs.

One function, :func:`scrub`, used wherever a database's or a driver's message leaves the process: preflight
errors, introspection and sample-read failures, the HTTP error handler and every log line. A database
error is untrusted text that names the service's own login (``Access denied for user 'svc'@'10.0.0.5'``,
``password authentication failed for user "svc"``), the server it reached, or a DSN with its password.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

__all__ = ["scrub"]

_REDACTED: Final = "<redacted>"

_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # URLs and DSNs, credentials and host included: scheme://user:password@host:port/db?...
    (re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,30})://[^\s'\"<>()]+"), rf"\1://{_REDACTED}"),
    # MySQL/MariaDB logins: 'user'@'host', `user`@`host`, "user"@"host", user@host
    (re.compile(r"""(['`"])[^'`"\s]*\1@(['`"])[^'`"\s]*\2"""), rf"'{_REDACTED}'@'{_REDACTED}'"),
    (re.compile(r"(?<![\w.@-])[\w.$-]+@[\w.%-]+\.[\w.%-]*[\w%]"), f"{_REDACTED}@{_REDACTED}"),
    # libpq connection strings (key=value) and password-like assignments
    (
        re.compile(
            r"(?i)\b(host|hostaddr|user|username|password|passwd|pwd|dbname|passfile|service|sslkey|"
            r"sslpassword|token|secret|api_key)(\s*[=:]\s*)(?!(?:YES|NO)\b)('[^']*'|\"[^\"]*\"|[^\s,;&)]+)"
        ),
        rf"\1\2{_REDACTED}",
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
        text = pattern.sub(replacement, text)
    text = _IPV4.sub(_address, text)
    return _IPV6.sub(_address, text)


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
