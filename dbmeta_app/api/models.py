"""Request and response bodies of the HTTP API (the fixed interface in ARCHITECTURE.md, extended)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ProfileName = Field(default=None, max_length=128, description="Profile name; the default profile when null")


class SchemaRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_request: str | None = Field(
        default=None, max_length=20_000, description="The user's request; null → the full schema"
    )
    top_k: int = Field(default=10, ge=1, le=200, description="How many tables to return for a request")
    profile: str | None = ProfileName
    tables: list[str] | None = Field(
        default=None, max_length=2_000, description="Explicit table names to include (overrides user_request)"
    )
    with_examples: bool = Field(default=False, description="Include sample rows (CSV) per table")


class PromptItem(BaseModel):
    type: str
    text: str
    score: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TableSearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=20_000)
    top_k: int = Field(default=10, ge=1, le=200)
    profile: str | None = ProfileName


class TableHitModel(BaseModel):
    name: str
    score: float
    # a date-sharded family: its pattern key and the shards the request resolves to (name is one of them,
    # else the newest shard)
    family: str | None = None
    shards: list[str] | None = None


class TableSearchResponse(BaseModel):
    profile: str
    tables: list[TableHitModel]
    degraded: bool = False


class ErrorBody(BaseModel):
    error: str
    detail: Any


class HealthBody(BaseModel):
    status: Literal["ok"]


class ReadyBody(BaseModel):
    ready: bool
    degraded: bool = Field(description="some search answers would fall back to keyword ranking")
    checks: dict[str, Any]
    pid: int = Field(description="the process that answered (one of the workers)")


class PreflightRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

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
    plan: Any = None
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


ItemType = Literal["db_struct", "query_examples", "instructions", "sql_dialect"]


class PromptItemsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_request: str | None = Field(default=None, max_length=20_000)
    profile: str | None = ProfileName
    items: list[ItemType] = Field(
        default_factory=lambda: list(get_args(ItemType)),
        min_length=1,
        description="Item types, in answer order",
    )
    schema_top_k: int = Field(default=10, ge=1, le=200)
    examples_top_k: int = Field(default=3, ge=0, le=50)


class PromptItemsResponse(BaseModel):
    prompt_items: list[PromptItem]
    schema_version: str
    profile: str
