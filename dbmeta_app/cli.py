"""The ``dbmeta`` command line: serve, schema, index, search, preflight, cache."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from dbmeta_app.config import get_settings
from dbmeta_app.errors import DbmetaError, UpstreamUnavailableError
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
            rt.settings,
            rt.cache,
            rt.profile(profile),
            tables=table or None,
            with_examples=samples,
            verify_database=True,  # a cached snapshot of a database that does not answer is "stale"
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
        if meta.get("stale_reason"):
            console.print(f"[yellow]stale:[/yellow] {meta['stale_reason']}")


@app.command()
def index(
    profile: ProfileOpt = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything into a new collection")] = False,
) -> None:
    """Build or refresh the table and example indexes of a profile (only what changed is embedded)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dbmeta_app.search.runtime import SearchRuntime

    async def work(rt: Runtime) -> Any:
        search = SearchRuntime(rt)
        rt.search = search
        await search.start(background=False)
        prt = rt.profile(profile)
        with Progress(
            TextColumn("[bold]indexing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(prt.name, total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            stats = await search.sync(prt, rebuild=rebuild, progress=progress, force=True)
        if stats is None:
            raise UpstreamUnavailableError(f"Milvus is unavailable: {search.milvus_error}")
        return stats, search.profiles[prt.name]

    stats, entry = _run(work)
    console.print(
        f"tables: added {stats.added} · updated {stats.updated} · removed {stats.removed}"
        f" · unchanged {stats.unchanged} · embedded {stats.embedded} texts · collection {stats.collection}"
    )
    if entry.examples_error:
        console.print(f"[yellow]examples not indexed: {entry.examples_error}")
    elif entry.last_examples_sync:
        ex = entry.last_examples_sync
        stale = ", ".join(ex["stale"]) or "none"
        console.print(
            f"examples: added {ex['added']} · updated {ex['updated']} · removed {ex['removed']}"
            f" · unchanged {ex['unchanged']} · embedded {ex['embedded']} · no longer fit the schema: {stale}"
        )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The user's request")],
    profile: ProfileOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=200)] = 10,
) -> None:
    """Show the tables a request needs, best first."""
    from dbmeta_app.search.runtime import SearchRuntime, search_tables

    async def work(rt: Runtime) -> Any:
        rt.search = SearchRuntime(rt)
        await rt.search.start(background=False)
        prt = rt.profile(profile)
        await rt.search.sync(prt)
        _, result = await search_tables(rt, prt, query, top_k)
        return result

    result = _run(work)
    for hit in result.hits:
        sys.stdout.write(f"{hit.score:.4f}  {hit.name}\n")
    if result.degraded:
        console.print(f"[yellow]degraded:[/yellow] {result.reason}")


@app.command()
def preflight(
    sql: Annotated[str, typer.Argument(help="One SQL query")],
    profile: ProfileOpt = None,
) -> None:
    """Check SQL with the read-only guard and EXPLAIN it (never runs it)."""
    import orjson

    from dbmeta_app.prompt_items.preflight import preflight as run_preflight

    async def work(rt: Runtime) -> Any:
        return orjson.loads(await run_preflight(rt.settings, rt.cache, rt.profile(profile), sql))

    answer = _run(work)
    sys.stdout.write(json.dumps(answer, indent=2, ensure_ascii=False, default=str) + "\n")
    if not answer["ok"]:
        raise typer.Exit(1)


@cache_app.command("stats")
def cache_stats() -> None:
    """Show where the cache serves from and whether Redis answers."""

    async def work(rt: Runtime) -> dict[str, Any]:
        ok = await rt.cache.ping()
        return {"redis_ok": ok, **rt.cache.stats_json()}

    sys.stdout.write(json.dumps(_run(work), indent=2) + "\n")


@cache_app.command("clear")
def cache_clear(profile: ProfileOpt = None) -> None:
    """Drop every cached value of a profile's scope (schema, explain, examples), like the admin endpoint."""

    async def work(rt: Runtime) -> dict[str, int]:
        return await rt.cache.drop_scope(rt.profile(profile).scope)

    dropped = _run(work)
    console.print("cleared " + ", ".join(f"{count} {kind}" for kind, count in dropped.items()))


def main() -> None:
    """Entry point of the console script."""
    # Models load from local files only; their download progress bars would be noise here.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    app()
