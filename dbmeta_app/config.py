"""Settings (environment) and profiles (one database each), validated once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dbmeta_app.curated import yaml_problem
from dbmeta_app.errors import ConfigError
from dbmeta_app.redis_url import RedisUrlError, parse_redis_url

SAMPLE_PROFILE_DB = "sample_warehouse.db"
SAMPLE_CLICKHOUSE_DIR = "sample_clickhouse"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PLACEHOLDER_TOKENS = {"changeme", "change-me", "secret", "token", "admin", "replace_me", "replace-me"}
#: The shortest bearer token taken (openssl rand -hex 32 gives 64).
_MIN_TOKEN_CHARS = 16
#: Host headers the MCP endpoint accepts by default: loopback names, any port.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SECRETS_DIR_ENV = "SECRETS_DIR"
_IDENTITY = re.compile(r"[A-Za-z0-9._/-]{1,64}")
#: Settings that name a file or directory: an empty value means unset (never '.').
_PATH_SETTINGS = ("profiles_file", "examples_dir", "instructions_file", "secrets_dir", "data_dir")


def normalize_database_url(url: str) -> str:
    """Pick the installed driver for a bare dialect URL (postgresql:// → psycopg 3, mysql:// → PyMySQL)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must look like dialect://… (e.g. postgresql://user@host/db or sqlite:///file.db)")
    mapped = {
        "postgres": "postgresql+psycopg",
        "postgresql": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
        "mariadb": "mariadb+pymysql",
    }.get(scheme.lower(), scheme)
    normalized = f"{mapped}://{rest}"
    try:
        make_url(normalized)
    except (ValueError, ArgumentError) as exc:  # ValueError: a port that is not a number
        reason = "its port is not a number" if isinstance(exc, ValueError) else "it cannot be parsed"
        raise ValueError(f"is not a database URL: {reason} (dialect://user@host:port/database)") from None
    return normalized


def mysql_database(url: str) -> str | None:
    """The database a MySQL/MariaDB URL names (None for other dialects or when it names none)."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        return None
    return parsed.database or None


# One part of a routine name: a plain name, or a double-quoted one ("" is a quote inside it).
_NAME_PART = r'(?:"(?:[^"]|"")+"|[^".\s]+)'
_ROUTINE_ENTRY = re.compile(rf"^({_NAME_PART})\.({_NAME_PART})$")


def parse_routine_entry(entry: str) -> tuple[str, str]:
    """Split an allow-list entry ``schema.name`` / ``schema.*`` (parts may be double-quoted) into its parts."""
    match = _ROUTINE_ENTRY.match(entry.strip())
    if match is None:
        raise ValueError(
            f"{entry!r} is not schema.name or schema.* (double-quote a part that holds a dot or spaces)"
        )

    def unquote(part: str) -> str:
        return part[1:-1].replace('""', '"') if part.startswith('"') else part

    return unquote(match.group(1)), unquote(match.group(2))


def check_profile_name(value: str) -> str:
    """A profile name as the service accepts it (a ValueError naming the rule otherwise)."""
    if not _PROFILE_NAME.match(value):
        raise ValueError("profile names are 1-63 characters of letters, digits, '_', '-', '.'")
    return value


class PreflightLimits(BaseModel):
    """What a profile lets the service ask of its database (preflight EXPLAINs and sample reads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_ms: int = Field(default=5000, ge=100, le=120_000)
    max_estimated_rows: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)
    #: Routines (functions, aggregates; operators and casts through their functions) a preflight may reach
    #: besides the built-ins known to be free of side effects: ``schema.name`` or ``schema.*``
    #: (MySQL/MariaDB loadable UDFs: ``udf.name``). See docs/SECURITY.md.
    allow_functions: tuple[str, ...] = ()
    #: Refuse preflight and sample rows while the profile's database role can do more than read.
    require_least_privilege: bool = False

    @field_validator("allow_functions")
    @classmethod
    def _allow_functions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            parse_routine_entry(entry)
        return tuple(dict.fromkeys(entry.strip() for entry in value))

    # the complexity budget, measured on the parse tree before anything reaches the database
    max_nodes: int = Field(default=100_000, ge=1, le=10_000_000)
    max_relations: int = Field(default=2_000, ge=1, le=1_000_000)
    max_depth: int = Field(default=5_000, ge=1, le=10_000)
    max_query_depth: int = Field(default=64, ge=1, le=1_000)
    max_from_items: int = Field(default=100, ge=1, le=10_000)
    max_constant_bytes: int = Field(default=16_000_000, ge=1_000, le=1_000_000_000)
    # answers: a larger plan is cut to fit (plan_truncated)
    max_plan_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    # concurrency: EXPLAINs and sample reads at once, how many more may wait, and for how long
    concurrency: int = Field(default=3, ge=1, le=64)
    queue: int = Field(default=100, ge=0, le=10_000)
    queue_wait_ms: int = Field(default=1_000, ge=0, le=60_000)
    # views whose rows may be sampled (schema.view, or the bare name); base tables always may
    sample_views: tuple[str, ...] = ()


class Profile(BaseModel):
    """One database the service describes, with its curated files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    database_url: SecretStr
    include_schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    descriptions_file: Path | None = None
    examples_file: Path | None = None
    instructions_file: Path | None = None
    data_examples: int | None = Field(default=None, ge=0, le=50)
    preflight: PreflightLimits = PreflightLimits()
    sample: bool = False  # the bundled sample warehouse, materialised under DATA_DIR on first use

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_profile_name(value)

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        return SecretStr(normalize_database_url(value.get_secret_value()))

    @model_validator(mode="after")
    def _own_database(self) -> Profile:
        # A MySQL/MariaDB server holds many databases, and its login may read several: the profile describes
        # the one its URL names unless include_schemas says otherwise (PostgreSQL's URL names the only one).
        database = mysql_database(self.database_url.get_secret_value())
        if database and not self.include_schemas:
            object.__setattr__(self, "include_schemas", (database,))
        return self

    @property
    def dialect(self) -> str:
        scheme = self.database_url.get_secret_value().split("://", 1)[0]
        return scheme.split("+", 1)[0]


class Settings(BaseSettings):
    """Environment settings; names are the operators' env variables (no prefix)."""

    # An empty variable (exported or in .env) is unset: the setting keeps its default (CLIENT= is "default",
    # not "", which would change every cache scope; REDIS_PORT= is 6379, not a start-up error).
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    # identity: part of every cache key
    client: str = "default"
    env: str = "local"
    default_profile: str = "default"

    # databases
    database_url: SecretStr | None = None
    profiles_file: Path | None = None
    # the bundled sample served when no DATABASE_URL or PROFILES_FILE is set: SQLite, or ClickHouse in chDB
    sample_warehouse: Literal["sqlite", "clickhouse"] = "sqlite"
    data_examples: int = Field(default=0, ge=0, le=50)
    # curated prompt material shared by profiles (each profile may add its own files)
    examples_dir: Path | None = None
    instructions_file: Path | None = None

    # redis
    redis_cache_enabled: bool = True
    redis_url: SecretStr | None = None
    redis_host: str = "localhost"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: SecretStr | None = None
    redis_sentinel_password: SecretStr | None = None  # the sentinels' own, with a redis+sentinel:// REDIS_URL
    redis_db: int = Field(default=0, ge=0, le=15)
    redis_socket_timeout: float = Field(default=0.25, gt=0, le=30)
    redis_connect_timeout: float = Field(default=0.25, gt=0, le=30)
    # one connection is held by the L1 invalidation listener, so at least two
    redis_max_connections: int = Field(default=50, ge=2, le=10_000)
    # a larger value is not written to Redis (kept in the in-process tier when it fits there)
    redis_max_value_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    memory_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # search
    data_dir: Path = Path(".data")
    milvus_uri: str | None = None  # default: <DATA_DIR>/milvus.db (Milvus Lite)
    milvus_token: SecretStr | None = None
    embedding_model: str = "all-MiniLM-L6-v2"
    index_on_startup: bool = True
    # milvus: hybrid semantic retrieval; keyword: in-process BM25 only (no model, no Milvus)
    search_backend: Literal["milvus", "keyword"] = "milvus"
    search_fusion: Literal["rrf", "weighted"] = "weighted"
    # an index of at most this many rows (tables + columns + schemas) keeps its vectors in process too:
    # dense scoring is a matrix product and only BM25 goes to Milvus; 0 = always search in Milvus
    search_mirror_max_rows: int = Field(default=250_000, ge=0, le=10_000_000)

    # prompt budget: estimated tokens of a schema rendered for a request (top-k tables); 0 = no limit
    prompt_max_tokens: int = Field(default=4000, ge=0, le=1_000_000)

    # schema cache: time to live of a full snapshot (seconds); refreshed ahead at 80 % of it
    schema_cache_ttl: float = Field(default=3600.0, ge=0.1, le=7 * 86_400)

    # schema drift: how often (seconds) each profile's fingerprint is compared with its cached snapshot; 0 = never
    schema_check_interval: float = Field(default=60.0, ge=0, le=86_400)

    # service
    admin_token: SecretStr | None = None
    # optional bearer token for /v1 (admin routes aside: ADMIN_TOKEN) and /mcp; health and metrics stay open
    api_token: SecretStr | None = None
    # DNS-rebinding protection of /mcp: Host and Origin values accepted ("*" = any); loopback by default
    mcp_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = tuple(
        f"{host}{port}" for host in LOOPBACK_HOSTS for port in ("", ":*")
    )
    # null → http(s)://<each allowed host>
    mcp_allowed_origins: Annotated[tuple[str, ...] | None, NoDecode] = None
    # a directory of files named like the settings (ADMIN_TOKEN, REDIS_PASSWORD, …), e.g. a mounted Secret;
    # read from the environment only (see load_settings); environment variables win over files
    secrets_dir: Path | None = None
    # the CLI: send commands to this dbmeta server (default: the server running on the same DATA_DIR)
    dbmeta_url: str | None = None
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    _profiles: dict[str, Profile] = PrivateAttr(default_factory=dict)

    @field_validator("client", "env")
    @classmethod
    def _identity(cls, value: str) -> str:
        # part of the Redis connection's name (no spaces or control characters there) and of every cache key
        if not _IDENTITY.fullmatch(value):
            raise ValueError(
                "must be 1 to 64 letters, digits and . _ / - (it names the Redis connection and scopes every cache key)"
            )
        return value

    @field_validator("data_examples", mode="before")
    @classmethod
    def _data_examples(cls, value: Any) -> Any:
        # the seed used a boolean flag; true means a few rows per table
        if isinstance(value, str) and value.strip().lower() in {"true", "yes", "on"}:
            return 3
        if isinstance(value, str) and value.strip().lower() in {"false", "no", "off", ""}:
            return 0
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(normalize_database_url(value.get_secret_value().strip()))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parse_redis_url(value.get_secret_value())
        except RedisUrlError as exc:
            raise ValueError(exc.reason) from None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("redis_sentinel_password")
    @classmethod
    def _redis_sentinel_password(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("admin_token", "api_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if token.lower() in _PLACEHOLDER_TOKENS or token.lower().startswith("replace_me"):
            raise ValueError("refusing a placeholder token; generate one (openssl rand -hex 32)")
        if len(token) < _MIN_TOKEN_CHARS:
            raise ValueError(
                f"a token must have at least {_MIN_TOKEN_CHARS} characters (one of a few falls to guessing); "
                "generate one (openssl rand -hex 32)"
            )
        return SecretStr(token)

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            if not value.strip():
                if info.field_name == "mcp_allowed_hosts":
                    raise ValueError("must name at least one host (or * for any)")
                return None
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator(*_PATH_SETTINGS, mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        # An empty value (INSTRUCTIONS_FILE: "" in a manifest) means unset, as it does for a URL or a token;
        # Path("") would be '.', the working directory.
        if isinstance(value, str | Path) and not str(value).strip():
            default = cls.model_fields[info.field_name or ""].default
            return default
        return value

    @field_validator("default_profile")
    @classmethod
    def _default_profile(cls, value: str) -> str:
        # said here, under DEFAULT_PROFILE, not by the Profile it names (whose field is "name")
        return check_profile_name(value)

    @field_validator("examples_dir", "instructions_file")
    @classmethod
    def _exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        directory = info.field_name == "examples_dir"
        if value is not None and not (value.is_dir() if directory else value.is_file()):
            raise ValueError(
                f"{str(value)!r} is not a directory" if directory else f"{str(value)!r} does not exist"
            )
        return value

    @field_validator("milvus_uri")
    @classmethod
    def _milvus_uri(cls, value: str | None) -> str | None:
        # the same rule the search applies (search/milvus_index.resolve_uri): said at start-up, not per request
        if (
            value
            and not value.startswith(("http://", "https://", "tcp://", "unix:"))
            and not value.endswith(".db")
        ):
            raise ValueError(
                "must be an http(s):// address of a Milvus server or a *.db file path (Milvus Lite)"
            )
        return value

    @field_validator("mcp_allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...] | None) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one host (or * for any)")
        return value

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Origins /mcp accepts: MCP_ALLOWED_ORIGINS, else http(s):// and each allowed host."""
        if self.mcp_allowed_origins is not None:
            return self.mcp_allowed_origins
        return tuple(f"{scheme}://{host}" for host in self.mcp_allowed_hosts for scheme in ("http", "https"))

    @model_validator(mode="after")
    def _profiles_resolve(self) -> Settings:
        self._profiles = _load_profiles(self)
        if (
            self.default_profile not in self._profiles
            and "default_profile" not in self.model_fields_set
            and len(self._profiles) == 1
        ):
            # a profiles file of one profile serves it: an unset DEFAULT_PROFILE is no mistake to refuse
            self.default_profile = next(iter(self._profiles))
        if self.default_profile not in self._profiles:
            raise ValueError(
                f"DEFAULT_PROFILE {self.default_profile!r} is not a configured profile "
                f"(configured: {', '.join(sorted(self._profiles))})"
            )
        return self

    @property
    def profiles(self) -> dict[str, Profile]:
        return self._profiles

    def profile(self, name: str | None) -> Profile:
        """Return the named profile (the default when None) or raise UnknownProfileError."""
        from dbmeta_app.errors import UnknownProfileError

        key = name or self.default_profile
        try:
            return self._profiles[key]
        except KeyError:
            raise UnknownProfileError(key, list(self._profiles)) from None


def sample_file(name: str) -> Path:
    return Path(str(files("dbmeta_app.sample").joinpath(name)))


def _load_profiles(settings: Settings) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    if settings.profiles_file is not None:
        profiles.update(_read_profiles_file(settings.profiles_file, settings))
    if settings.database_url is not None:
        profiles.setdefault(
            settings.default_profile,
            Profile(name=settings.default_profile, database_url=settings.database_url),
        )
    if not profiles and settings.sample_warehouse == "clickhouse":
        # chDB: ClickHouse in process, its data in a directory; comments in the DDL describe the tables
        sample_dir = (settings.data_dir / SAMPLE_CLICKHOUSE_DIR).resolve()
        profiles[settings.default_profile] = Profile(
            name=settings.default_profile, database_url=SecretStr(f"chdb:///{sample_dir}"), sample=True
        )
    if not profiles:
        sample_db = (settings.data_dir / SAMPLE_PROFILE_DB).resolve()
        profiles[settings.default_profile] = Profile(
            name=settings.default_profile,
            database_url=SecretStr(f"sqlite:///{sample_db}"),
            descriptions_file=sample_file("descriptions.yml"),
            examples_file=sample_file("examples.yml"),
            instructions_file=sample_file("instructions.yml"),
            sample=True,
        )
    return profiles


def _expand_env(
    value: str, where: str, secrets_dir: Path | None = None, dotenv: Mapping[str, str | None] | None = None
) -> str:
    """Replace each ``${VAR}`` as the settings are read: the environment variable, else the ``.env`` file's
    (``dotenv``), else the file VAR in SECRETS_DIR."""

    def sub(match: re.Match[str]) -> str:
        var = match.group(1)
        if var in os.environ:
            return os.environ[var]
        from_file = (dotenv or {}).get(var)
        if from_file is not None:
            return from_file
        secret = secrets_dir / var if secrets_dir is not None else None
        if secret is not None and secret.is_file():
            return secret.read_text(encoding="utf-8").strip()
        raise ValueError(
            f"{where} refers to ${{{var}}}, which is not set (exported, in .env or in SECRETS_DIR)"
        )

    return _ENV_REF.sub(sub, value)


def _read_profiles_file(path: Path, settings: Settings) -> dict[str, Profile]:
    if not path.is_file():
        raise ValueError(f"PROFILES_FILE {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"PROFILES_FILE {str(path)!r} is not valid YAML{yaml_problem(exc)}") from None
    entries = raw.get("profiles") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"PROFILES_FILE {str(path)!r} must have a non-empty 'profiles:' mapping")
    base = path.parent
    dotenv = _dotenv_values(settings)
    out: dict[str, Profile] = {}
    for name, body in entries.items():
        where = f"PROFILES_FILE {str(path)!r}, profile {name!r}"
        if not isinstance(body, dict):
            raise ValueError(f"{where}: must be a mapping")
        data = dict(body)
        if "database_url" not in data:
            raise ValueError(f"{where}: database_url is required")
        data["database_url"] = _expand_env(str(data["database_url"]), where, settings.secrets_dir, dotenv)
        for key in ("descriptions_file", "examples_file", "instructions_file"):
            if data.get(key):
                p = Path(str(data[key]))
                data[key] = p if p.is_absolute() else base / p
                if not data[key].is_file():
                    raise ValueError(f"{where}: {key} {str(data[key])!r} does not exist")
        data.setdefault("data_examples", None)
        try:
            out[str(name)] = Profile(name=str(name), **data)
        except ValidationError as exc:
            raise ValueError(f"{where}: {_first_errors(exc)}") from None
    return out


def _dotenv_values(settings: Settings) -> dict[str, str | None]:
    """The variables of the ``.env`` file(s) the settings were read from (relative to the working directory)."""
    env_files = settings.model_config.get("env_file")
    if env_files is None:
        return {}
    paths = [env_files] if isinstance(env_files, str | Path) else list(env_files)
    values: dict[str, str | None] = {}
    for entry in paths:  # a later file wins, as pydantic-settings reads them
        path = Path(entry).expanduser()
        if path.is_file():
            values.update(dotenv_values(path, encoding=settings.model_config.get("env_file_encoding")))
    return values


def _first_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class _SecretsLocation(BaseSettings):
    """SECRETS_DIR alone (environment or .env): where the other settings' files are, read before them."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    secrets_dir: Path | None = None

    @field_validator("secrets_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment (plus overrides), naming the bad variable on failure."""
    secrets_dir = overrides.pop("_secrets_dir", None) or _SecretsLocation().secrets_dir
    if secrets_dir is not None and not Path(secrets_dir).is_dir():
        raise ConfigError(f"Invalid settings: {SECRETS_DIR_ENV}: {str(secrets_dir)!r} is not a directory")
    if secrets_dir is not None:
        overrides.setdefault("secrets_dir", secrets_dir)
    try:
        return Settings(_secrets_dir=secrets_dir, **overrides)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            var = ".".join(str(x) for x in err["loc"]).upper() or "settings"
            value = err.get("input")
            shown = (
                ""
                if var.endswith(("PASSWORD", "TOKEN", "URL")) or isinstance(value, dict)
                else f" (got {value!r})"
            )
            messages.append(f"{var}: {err['msg']}{shown}")
        raise ConfigError("Invalid settings: " + "; ".join(messages)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process settings (read once)."""
    return load_settings()
