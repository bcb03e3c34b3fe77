"""The error hierarchy. Domain code raises these; the API maps each to one HTTP status once.

DbmetaError
 ├── ConfigError            bad setting or curated file: stops start-up         503 if a file breaks later
 ├── UnknownProfileError    the request names a profile that does not exist    404
 ├── UnsupportedMediaTypeError  a request body that is not JSON              415
 ├── UpstreamUnavailableError  the database (or another dependency) is down    503
 └── BusyError              the profile's database work is at its bound        503 + Retry-After
"""

from __future__ import annotations


class DbmetaError(Exception):
    """Base class: carries a stable machine code and the HTTP status it maps to."""

    code = "internal_error"
    status_code = 500
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigError(DbmetaError):
    """A setting or a file the operator wrote is wrong: found at start-up, it stops the process in one line.

    A curated file edited into a bad state while the service runs is read again when used: the answers that
    need it are a 503 naming it (a configuration to fix, not a server fault) until it is fixed.
    """

    code = "config_error"
    status_code = 503


class UnknownProfileError(DbmetaError):
    code = "unknown_profile"
    status_code = 404

    def __init__(self, profile: str, known: list[str]) -> None:
        shown = ", ".join(sorted(known)) or "none"
        super().__init__(f"Unknown profile {profile!r}; configured profiles: {shown}")
        self.profile = profile


class UnsupportedMediaTypeError(DbmetaError):
    code = "unsupported_media_type"
    status_code = 415


class UpstreamUnavailableError(DbmetaError):
    code = "upstream_unavailable"
    status_code = 503


class BusyError(DbmetaError):
    """The profile already runs as much database work as it allows (sample reads); retry shortly."""

    code = "busy"
    status_code = 503

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}
