"""Request and response bodies of the HTTP API (the fixed interface in ARCHITECTURE.md, extended)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

# Request bodies: a misspelt field ("profle") is a 422, never ignored.
_REQUEST = ConfigDict(extra="forbid")


def _a_json_number(value: Any) -> Any:
    # "5" or true for top_k is a client bug, never coerced into an answer the caller did not ask for; 5.0 is
    # an integer to JSON Schema (and so to the OpenAPI document), so it is taken.
    if isinstance(value, str | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


#: After an integer's bounds in its ``Annotated`` (so that the OpenAPI document gives them as minimum/maximum):
#: a JSON number, never a string or a boolean.
JsonNumber = BeforeValidator(_a_json_number)

ProfileName = Field(default=None, max_length=128, description="Profile name; the default profile when null")


Budget = Annotated[int, Field(ge=0, le=1_000_000), JsonNumber]
MaxTokens = Field(
    default=None,
    description=(
        "Budget of the schema text in estimated tokens (0: no limit); null → PROMPT_MAX_TOKENS for tables "
        "ranked for a user_request, no limit for the full schema or named tables"
    ),
)


class SchemaRequest(BaseModel):
    model_config = _REQUEST

    user_request: str | None = Field(
        default=None, max_length=20_000, description="The user's request; null → the full schema"
    )
    top_k: Annotated[int, Field(ge=1, le=200), JsonNumber] = Field(
        default=10, description="How many tables to return for a request"
    )
    profile: str | None = ProfileName
    tables: list[str] | None = Field(
        default=None, max_length=2_000, description="Explicit table names to include (overrides user_request)"
    )
    with_examples: StrictBool = Field(default=False, description="Include sample rows (CSV) per table")
    max_tokens: Budget | None = MaxTokens


ItemType = Literal["db_struct", "query_examples", "instructions", "sql_dialect"]
CacheStatus = Literal["hit", "miss", "stale", "bypass"]


class PromptItemMetadata(BaseModel):
    """Where an item came from. Which keys are set depends on the item type; others may be added."""

    model_config = ConfigDict(extra="allow")

    profile: str | None = None
    dialect: str | None = None
    # db_struct
    tables: list[str] | None = Field(default=None, description="db_struct: the tables shown, best first")
    schema_version: str | None = None
    cache: CacheStatus | None = Field(
        default=None, description="db_struct: how the schema snapshot was found"
    )
    stale_reason: str | None = None
    filtered: bool | None = Field(default=None, description="db_struct: only some tables are shown")
    total_tables: int | None = None
    scores: dict[str, float] | None = Field(default=None, description="relevance by table or example id")
    unknown_tables: list[str] | None = Field(default=None, description="asked for but not in the schema")
    degraded: bool | None = Field(default=None, description="keyword ranking stood in for the index")
    degraded_reason: str | None = None
    search_ms: float | None = None
    no_match: bool | None = None
    # query_examples
    retrieval: Literal["milvus", "keyword"] | None = None
    example_ids: list[str] | None = None
    stale_examples: list[str] | None = None
    stale_reasons: dict[str, str] | None = None
    total_examples: int | None = None
    # instructions
    count: int | None = None


class PromptItem(BaseModel):
    """One piece of context for the LLM: text to put in its prompt, with where it came from."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "db_struct",
                    "text": "Table orders: id INTEGER PK, customer_id INTEGER -> customers.id, ...",
                    "score": 0.82,
                    "metadata": {
                        "profile": "default",
                        "tables": ["orders", "customers"],
                        "schema_version": "7b4f5c0c91183090",
                        "cache": "hit",
                    },
                }
            ]
        }
    )

    type: ItemType
    text: str
    score: float | None = None
    metadata: PromptItemMetadata = Field(default_factory=PromptItemMetadata)


class TableSearchRequest(BaseModel):
    model_config = _REQUEST

    query: str = Field(min_length=1, max_length=20_000)
    top_k: Annotated[int, Field(ge=1, le=200), JsonNumber] = 10
    profile: str | None = ProfileName


class TableHitModel(BaseModel):
    name: str
    score: float
    # a date-sharded family: its pattern key and the shards the request resolves to (name is one of them,
    # else the newest shard)
    family: str | None = None
    shards: list[str] | None = None


class TableSearchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "profile": "default",
                    "tables": [{"name": "orders", "score": 1.14}, {"name": "order_items", "score": 1.12}],
                    "degraded": False,
                }
            ]
        }
    )

    profile: str
    tables: list[TableHitModel] = Field(description="best first")
    degraded: bool = Field(default=False, description="keyword ranking stood in for the index")
    lexical: Literal["server", "process"] = Field(
        default="process",
        description="where BM25 was ranked: Milvus' full-text search, or in process (always when degraded)",
    )
    dense: Literal["milvus", "process"] | None = Field(
        default=None,
        description="where the dense half was searched; null when degraded (keyword ranking only)",
    )
    reason: str | None = Field(default=None, description="why the answer is degraded")


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="where: body, then the field path")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable code and a message (422: the list of problems)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "unknown_profile", "detail": "unknown profile 'x'"}]}
    )

    error: str = Field(description="a stable code: invalid_request, unknown_profile, unauthorized, ...")
    detail: str | list[ValidationProblem] = Field(description="what went wrong (422: one entry a problem)")


class HealthBody(BaseModel):
    status: Literal["ok"]


class ReadyBody(BaseModel):
    ready: bool
    degraded: bool = Field(description="some search answers would fall back to keyword ranking")
    checks: dict[str, Any]
    pid: int = Field(description="the process that answered (one of the workers)")


class PreflightRequest(BaseModel):
    model_config = _REQUEST

    # No length cap here: an over-long query is a verdict (ok: false), not a malformed request.
    sql: str = Field(description="One SQL query written by the LLM")
    profile: str | None = ProfileName


class PreflightErrorKind(StrEnum):
    """Why a preflight answer is not ok."""

    unsafe = "unsafe"  # refused by the guard: not one read-only query, or it reaches what it must not
    sql = "sql"  # invalid SQL: a syntax error (from the guard too), an unknown table or column
    limit = "limit"  # over a limit: the complexity budget, the query's length, estimated rows or cost
    timeout = "timeout"  # the statement (planning included) ran out of time or waited on a lock
    busy = "busy"  # the profile's EXPLAINs are at their concurrency bound: retry after Retry-After


class PreflightResponse(BaseModel):
    """Every preflight answer has every one of these keys, whatever the outcome (null where not applicable)."""

    ok: bool
    error: str | None = None
    error_kind: PreflightErrorKind | None = Field(default=None, description="null when ok")
    position: int | None = Field(default=None, description="character offset the parser reported")
    plan: dict[str, Any] | list[Any] | str | None = Field(
        default=None,
        description="the database's EXPLAIN plan, as it gives it (JSON where it can); null without one",
    )
    plan_truncated: bool | None = Field(
        default=None,
        description="true when the plan was cut to the profile's max_plan_bytes; null without a plan",
    )
    estimated_rows: int | None = None
    estimated_cost: float | None = None
    warnings: list[str] = Field(default_factory=list)
    suggestion: str | None = None
    cached: bool = False
    profile: str
    dialect: str
    schema_version: str | None = Field(
        default=None,
        description="the profile's schema version; null on a refusal before any schema is loaded",
    )


class PromptItemsRequest(BaseModel):
    model_config = _REQUEST

    user_request: str | None = Field(default=None, max_length=20_000)
    profile: str | None = ProfileName
    items: list[ItemType] = Field(
        default_factory=lambda: list(get_args(ItemType)),
        min_length=1,
        description="Item types, in answer order",
    )
    schema_top_k: Annotated[int, Field(ge=1, le=200), JsonNumber] = Field(
        default=10,
        validation_alias=AliasChoices("schema_top_k", "top_k"),
        description="How many tables the schema item holds (``top_k`` is taken too, as the schema route names it)",
    )
    examples_top_k: Annotated[int, Field(ge=0, le=50), JsonNumber] = 3
    max_tokens: Budget | None = MaxTokens
    with_examples: StrictBool = Field(
        default=False, description="Include sample rows (CSV) per table in the schema item"
    )


class PromptItemsResponse(BaseModel):
    prompt_items: list[PromptItem]
    schema_version: str
    profile: str


# ---- browsing (MCP tools list_schemas / list_tables) -------------------------------------------------


class SchemaInfo(BaseModel):
    name: str = Field(description='the schema name ("" where the database has none, e.g. SQLite)')
    tables: int
    views: int


class SchemaList(BaseModel):
    profile: str
    dialect: str
    schema_version: str
    schemas: list[SchemaInfo]


class TableSummary(BaseModel):
    name: str = Field(description="schema.table, or the bare name without schemas")
    kind: str = Field(description="table, view or materialized_view")
    columns: int
    description: str | None = None


class TableList(BaseModel):
    profile: str
    schema_version: str
    detail_level: Literal["names", "summary", "full"]
    total: int = Field(description="tables that matched (before limit)")
    truncated: bool
    tables: list[str] | list[TableSummary] = Field(description="names, or summaries (summary, full)")
    text: str | None = Field(default=None, description="full: the schema text of the tables")


class ToolError(BaseModel):
    """The structured content of an MCP tool error (isError: true)."""

    error: str
    detail: Any


# ---- operations: cache statistics and admin answers ---------------------------------------------------


class CacheKindStats(BaseModel):
    hits: int = Field(description="Redis hits")
    memory_hits: int = Field(description="in-process (L1) hits")
    misses: int
    errors: int = Field(description="Redis errors, served from memory or the source instead")
    refreshes: int = Field(description="background refreshes ahead of expiry")
    too_large: int = Field(description="values over REDIS_MAX_VALUE_BYTES, kept out of Redis")
    hit_ratio: float | None = Field(description="null before any lookup")


class BreakerStats(BaseModel):
    state: Literal["closed", "half_open", "open"]
    consecutive_failures: int
    cooldown_s: float
    times_opened: int


class CacheStats(BaseModel):
    """This replica's cache."""

    backend: Literal["redis", "memory", "memory-fallback"] = Field(
        description="memory: Redis is off; memory-fallback: Redis is on but failing"
    )
    redis_enabled: bool
    l1_coherent: bool = Field(description="the in-process tier hears other replicas' invalidations")
    breaker: BreakerStats
    memory_entries: int
    memory_bytes: int
    kinds: dict[str, CacheKindStats] = Field(description="by kind: schema, explain, examples, embedding, ...")


class InvalidateResponse(BaseModel):
    dropped: dict[str, int] = Field(description='values dropped, by "profile/kind"')


class WarmedProfile(BaseModel):
    cache: CacheStatus
    schema_version: str
    tables: int


class WarmResponse(BaseModel):
    profiles: dict[str, WarmedProfile]


class DriftCheck(BaseModel):
    model_config = ConfigDict(extra="allow")

    profile: str
    status: Literal["not_cached", "unchanged", "changed"]
    schema_version: str | None = None


class SchemaCheckResponse(BaseModel):
    profiles: list[DriftCheck]


class IndexEvent(BaseModel):
    """One line of the index answer (NDJSON): start, progress, done (with the report) or error (the last)."""

    event: Literal["start", "progress", "done", "error"]
    profile: str
    done: int | None = Field(default=None, description="progress: texts embedded so far")
    total: int | None = Field(default=None, description="progress: texts to embed")
    report: dict[str, Any] | None = Field(default=None, description="done: what the sync changed")
    error: str | None = Field(default=None, description="error: its code")
    detail: str | None = Field(default=None, description="error: what went wrong")
