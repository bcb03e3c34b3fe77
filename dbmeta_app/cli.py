"""The ``dbmeta`` command line: serve, schema, cache (more subcommands join as capabilities land)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from dbmeta_app.config import get_settings
from dbmeta_app.errors import DbmetaError
from dbmeta_app.logging_setup import configure_logging
from dbmeta_app.runtime import Runtime, open_runtime

app = typer.Typer(help="dbmeta: database context for LLM text-to-SQL.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
console = Console(stderr=True)
T = TypeVar("T")

ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Profile name (default profile if omitted)")
]


def _run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the runtime, run one coroutine with it, close it; print DbmetaErrors cleanly."""

    async def main() -> T:
        settings = get_settings()
        configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
        runtime = open_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except DbmetaError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc.detail}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
) -> None:
    """Run the HTTP service (uvicorn)."""
    import uvicorn

    uvicorn.run("dbmeta_app.main:app", host=host, port=port, workers=workers)


@app.command()
def schema(
    profile: ProfileOpt = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Only these tables (repeatable)")
    ] = None,
    samples: Annotated[bool, typer.Option(help="Include sample rows")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the prompt item as JSON")] = False,
) -> None:
    """Print the schema prompt text of a profile (from the cache when warm)."""
    from dbmeta_app.prompt_items.db_struct import get_schema_prompt_item

    async def work(rt: Runtime) -> dict[str, Any]:
        return await get_schema_prompt_item(
            rt.settings, rt.cache, rt.profile(profile), tables=table or None, with_examples=samples
        )

    item = _run(work)
    if as_json:
        sys.stdout.write(json.dumps(item, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(item["text"] + "\n")
        meta = item["metadata"]
        console.print(
            f"[dim]{len(meta['tables'])} tables · version {meta['schema_version']} · cache {meta['cache']}[/dim]"
        )


@cache_app.command("stats")
def cache_stats() -> None:
    """Show where the cache serves from and whether Redis answers."""

    async def work(rt: Runtime) -> dict[str, Any]:
        ok = await rt.cache.ping()
        return {"redis_ok": ok, **rt.cache.stats_json()}

    sys.stdout.write(json.dumps(_run(work), indent=2) + "\n")


@cache_app.command("clear")
def cache_clear(profile: ProfileOpt = None) -> None:
    """Drop the cached full schema of a profile (both samples variants)."""
    from dbmeta_app.prompt_items.db_struct import schema_cache_key

    async def work(rt: Runtime) -> int:
        prt = rt.profile(profile)
        keys = [schema_cache_key(rt.settings, prt, flag) for flag in (False, True)]
        await rt.cache.delete(*keys)
        return len(keys)

    count = _run(work)
    console.print(f"cleared {count} schema keys")


def main() -> None:
    """Entry point of the console script."""
    app()
