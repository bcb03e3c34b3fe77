"""The ``dbmeta`` command line: serve, schema, index, search, preflight, cache.

Where a command runs:

- ``--server URL`` (or ``DBMETA_URL``): every command is sent to that server.
- Otherwise, when a dbmeta server runs on the same local index (same DATA_DIR, or MILVUS_URI file: it
  publishes its address beside it, see ``ownership.py``), the command is sent to it. A Milvus Lite file is
  the server's while it runs, so this is how ``index`` and ``search`` work beside it, and ``cache stats``
  shows the server's cache. When the server reads another database for the profile than this command's
  settings name, ``index`` and ``search`` refuse (they would need the server's index), and ``schema`` and
  ``preflight`` run here, on the database the settings name.
- Otherwise the command runs in this process.

Answers go to stdout, messages to stderr, one line each, never a traceback (``DBMETA_DEBUG=1`` shows one).
Exit codes: 0 done; 1 answered, but not fully as asked (unsafe SQL, unknown tables, a degraded search,
examples not indexed, an include_schemas schema the database lacks); 2 could not do it (settings, database, index or server unavailable); 130 interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dbmeta_app import __version__
from dbmeta_app.config import Settings, get_settings
from dbmeta_app.errors import DbmetaError
from dbmeta_app.logging_setup import configure_logging, redact
from dbmeta_app.runtime import Runtime, open_runtime
from dbmeta_app.schema.printable import visible
from dbmeta_app.search.hits import family_note

app = typer.Typer(
    help="dbmeta: database context for LLM text-to-SQL.", no_args_is_help=True, pretty_exceptions_enable=False
)
cache_app = typer.Typer(help="Inspect or clear the cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
P = ParamSpec("P")

ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Profile name (default profile if omitted)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the answer as JSON")]

#: Exit codes (see the module doc).
EXIT_PARTIAL, EXIT_FAILED, EXIT_INTERRUPTED = 1, 2, 130


class HeldByServerError(DbmetaError):
    """The local index is held by a server that serves another database."""

    code = "index_held"
    status_code = 409


@dataclass
class CliOptions:
    server: str | None = None


# ---- running a command ---------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """One line for an expected failure that is not a DbmetaError."""
    from pymilvus import MilvusException
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, MilvusException):
        return f"Milvus: {getattr(exc, 'message', None) or exc}"
    if isinstance(exc, SQLAlchemyError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database: {first}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    return f"unexpected {type(exc).__name__}: {exc} (DBMETA_DEBUG=1 shows the traceback)"


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    console.print(f"[red]error[/red] {redact(message)}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def handled(command: Callable[P, None]) -> Callable[P, None]:
    """Turn every failure of a command into one line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except typer.Exit:
            raise
        except DbmetaError as exc:
            raise _fail(f"{exc.code}: {exc.detail}") from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get("DBMETA_DEBUG"):
                raise
            raise _fail(_describe(exc)) from None

    return run


def _settings() -> Settings:
    settings = get_settings()
    # Answers and one-line messages are the CLI's output; library logs (and their tracebacks) are not.
    level = settings.log_level if settings.log_level == "DEBUG" else "ERROR"
    configure_logging(level)
    if level != "DEBUG":
        for noisy in ("pymilvus", "milvus_lite", "grpc"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    return settings


def _run(work: Callable[[Runtime], Awaitable[T]], *, search: bool = False) -> T:
    """Open the runtime (with table search: ``search``), run one coroutine with it, close it."""
    settings = _settings()

    async def main() -> T:
        async with open_runtime(settings, search=search) as runtime:
            return await work(runtime)

    return asyncio.run(main())


def _out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# ---- finding the server --------------------------------------------------------------------------


@dataclass
class Target:
    """A server the command is sent to."""

    url: str
    token: str | None
    pid: int | None
    served: dict[str, str] | None  # what it serves (auto-detected), None when named explicitly

    def client(self) -> Any:
        from dbmeta_app.client import DbmetaClient

        return DbmetaClient(self.url, token=self.token)

    def describe(self) -> str:
        return f"the dbmeta server at {self.url}" + (f" (pid {self.pid})" if self.pid else "")


def _find_server(ctx: typer.Context) -> Target | None:
    """The server named by --server / DBMETA_URL, or the one running on this local index, else None."""
    options: CliOptions = ctx.find_object(CliOptions) or CliOptions()
    if options.server:  # --server, or DBMETA_URL exported
        try:
            settings: Settings | None = get_settings()
        except DbmetaError:
            settings = None  # local settings are not needed to talk to a server
        return _named_server(options.server, settings)
    settings = _settings()
    if settings.dbmeta_url:  # DBMETA_URL in .env
        return _named_server(settings.dbmeta_url, settings)
    return _local_server(settings)


def _named_server(url: str, settings: Settings | None) -> Target:
    """A server named by the user; requests carry ADMIN_TOKEN, the local token when it is ours, else API_TOKEN.

    (ADMIN_TOKEN and the local token are accepted wherever API_TOKEN is, and index requests need one of them.)
    """
    url = url.rstrip("/")
    token = os.environ.get("ADMIN_TOKEN") or os.environ.get("API_TOKEN")
    if settings is not None:
        if settings.admin_token is not None:
            token = settings.admin_token.get_secret_value()
        elif (local := _local_server(settings)) is not None and local.url == url:
            token = local.token
        elif settings.api_token is not None:
            token = settings.api_token.get_secret_value()
    return Target(url, token, None, None)


def _local_server(settings: Settings) -> Target | None:
    import httpx

    from dbmeta_app.api.announce import ANCHOR_HEADER, anchor_digest
    from dbmeta_app.ownership import Anchor, anchor_path

    anchor = Anchor(anchor_path(settings))
    record = anchor.owner()
    if record is None or record.kind != "server" or not record.url:
        return None
    try:  # the owner is alive (it holds the lock); its address must answer as this index's server
        answer = httpx.get(f"{record.url}/healthz", timeout=3.0, trust_env=False)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200 or answer.headers.get(ANCHOR_HEADER) != anchor_digest(anchor.path):
        return None
    return Target(record.url, record.token, record.pid, record.served)


def _serves_same_database(target: Target, settings: Settings, profile: str | None) -> bool:
    """Tell whether the server reads the database this command's settings name for the profile."""
    from dbmeta_app.ownership import served_identity

    if target.served is None:
        return True  # named explicitly: the caller chose it
    mine = settings.profile(profile)
    return target.served.get(mine.name) == served_identity(mine)


def _server_for_index(ctx: typer.Context, profile: str | None) -> Target | None:
    """The server to send index/search to; refuse when the server's index is for another database."""
    target = _find_server(ctx)
    if target is None or target.served is None:
        return target
    settings = _settings()
    if not _serves_same_database(target, settings, profile):
        from dbmeta_app.ownership import anchor_path

        name = settings.profile(profile).name
        what = "another database as" if name in target.served else "no"
        raise HeldByServerError(
            f"the index {anchor_path(settings)} is held by {target.describe()}, which serves {what} profile "
            f"{name!r}: send the command there with --server, stop that server, or use another DATA_DIR"
        )
    return target


def _server_for_reads(ctx: typer.Context, profile: str | None) -> Target | None:
    """The server to send schema/preflight to, or None to run them here (on this command's database)."""
    target = _find_server(ctx)
    if target is None or target.served is None:
        return target
    return target if _serves_same_database(target, _settings(), profile) else None


def _note(target: Target) -> None:
    console.print(f"[dim]answered by {target.describe()}[/dim]", highlight=False)


# ---- commands ------------------------------------------------------------------------------------


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"dbmeta {__version__}\n")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="DBMETA_URL",
            help="Send commands to this dbmeta server (default: the server on this DATA_DIR, if one runs)",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """dbmeta: database context for LLM text-to-SQL."""
    ctx.obj = CliOptions(server=server)


@app.command()
@handled
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
) -> None:
    """Run the HTTP service (uvicorn); with a Milvus Lite index, one worker holds it for all."""
    import uvicorn

    get_settings()  # invalid settings: one line naming the variable, before the server starts
    try:
        uvicorn.run("dbmeta_app.main:app", host=host, port=port, workers=workers)
    except SystemExit:
        # What only the runtime finds (the model, a profile's curated files) stopped start-up: the server
        # said it in one line; exit as for a bad variable, not with uvicorn's start-up failure status.
        served = sys.modules.get("dbmeta_app.main")
        code = getattr(getattr(served, "app", None), "startup_exit_code", None)
        if code is not None:
            raise typer.Exit(code) from None
        raise


@app.command("mcp")
@handled
def mcp_stdio() -> None:
    """Serve the MCP tools over stdio (Claude Desktop, Cursor, VS Code, the Inspector); logs go to stderr."""
    from dbmeta_app.api.mcp_server import create_mcp_server

    settings = get_settings()
    # stdout carries the protocol: every log line goes to stderr (configure_logging's stream handler)
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        # the same start-up as the HTTP service (index owner, builder, drift watcher), minus HTTP
        async with open_runtime(settings, serve=True) as runtime:
            await create_mcp_server(lambda: runtime).run_stdio_async()

    try:
        asyncio.run(main())
    except* BrokenPipeError:
        # the client closed its end of our stdout: nothing can be answered any more, and that is its choice
        logging.getLogger(__name__).info("MCP stdio: the client stopped reading (stdout closed); exiting")


@app.command()
@handled
def schema(
    ctx: typer.Context,
    profile: ProfileOpt = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Only these tables (repeatable)")
    ] = None,
    samples: Annotated[bool, typer.Option(help="Include sample rows")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the prompt item as JSON")] = False,
) -> None:
    """Print the schema prompt text of a profile; unknown tables are named and exit 1."""
    target = _server_for_reads(ctx, profile)
    schema_warnings: list[str]
    if target is not None:
        with target.client() as client:
            item = client.schema(profile, table or None, samples)
            try:  # the server's schema-name warnings, when it reports them (a server of another version may not)
                checks = client.ready().get("checks") or {}
            except DbmetaError:
                checks = {}
        served = (checks.get("schemas") or {}).get(item["metadata"]["profile"]) or {}
        schema_warnings = served.get("warnings") or []
        _note(target)
    else:
        from dbmeta_app.items.db_struct import get_schema_prompt_item

        async def work(rt: Runtime) -> tuple[dict[str, Any], list[str]]:
            prt = rt.profile(profile)
            answer = await get_schema_prompt_item(
                rt.settings,
                rt.cache,
                prt,
                tables=table or None,
                with_examples=samples,
                verify_database=True,  # a cached snapshot of a database that does not answer is "stale"
            )
            return answer, await anyio.to_thread.run_sync(
                prt.schema_names.report, prt.profile, prt.engine
            ) or []

        item, schema_warnings = _run(work)
    meta = item["metadata"]
    for warning in schema_warnings:
        console.print(
            f"[yellow]warning[/yellow] profile {escape(repr(meta['profile']))}: {escape(visible(warning))}",
            highlight=False,
        )
    unknown = meta.get("unknown_tables") or []
    if as_json:
        _out(item)
    elif meta["tables"]:
        # the renderer escapes the database's control characters; a server of another version may not have
        sys.stdout.write("\n".join(visible(line) for line in item["text"].split("\n")) + "\n")
        console.print(
            f"[dim]{len(meta['tables'])} tables · version {meta['schema_version']} · cache {meta['cache']}[/dim]"
        )
        if meta.get("stale_reason"):
            console.print(f"[yellow]stale:[/yellow] {escape(visible(meta['stale_reason']))}", highlight=False)
    if meta.get("unsampled_tables"):
        console.print(
            "[yellow]sample rows not read[/yellow] (why, per table: metadata.unsampled_tables): "
            + escape(visible(", ".join(meta["unsampled_tables"]))),
            highlight=False,
        )
    if unknown:
        console.print(
            f"[yellow]unknown tables[/yellow] (not in profile {escape(repr(meta['profile']))}): "
            + escape(visible(", ".join(unknown))),
            highlight=False,
        )
        raise typer.Exit(EXIT_PARTIAL)
    if any(warning.startswith("include_schemas") for warning in schema_warnings):
        raise typer.Exit(EXIT_PARTIAL)  # a schema asked for is not served


class _Bar:
    """The index progress bar: shown once there is something to embed, advanced per model batch."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.progress: Progress | None = None
        self.task: Any = None
        self.moved = False

    def update(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]embedding {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done, total=total)
        self.moved = True

    def close(self, *, done: bool = True) -> None:
        if self.progress is not None:
            self.progress.stop()
        elif done and not self.moved:
            console.print(f"[dim]{self.label}: nothing to embed[/dim]", highlight=False)


def _print_report(report: dict[str, Any]) -> bool:
    """Print what an index build did; tell whether everything was indexed."""
    tables = report.get("tables")
    if tables is None:
        console.print("tables: up to date")
    else:
        console.print(
            f"tables: added {tables['added']} · updated {tables['updated']} · removed {tables['removed']}"
            f" · unchanged {tables['unchanged']} · embedded {tables['embedded']} texts"
            f" · collection {tables.get('collection')}",
            highlight=False,
        )
    if report.get("examples_error"):
        console.print(f"[yellow]examples not indexed:[/yellow] {report['examples_error']}", highlight=False)
        return False
    ex = report.get("examples")
    if ex:
        stale = ", ".join(ex["stale"]) or "none"
        console.print(
            f"examples: added {ex['added']} · updated {ex['updated']} · removed {ex['removed']}"
            f" · unchanged {ex['unchanged']} · embedded {ex['embedded']} · no longer fit the schema: {stale}",
            highlight=False,
        )
    return True


@app.command()
@handled
def index(
    ctx: typer.Context,
    profile: ProfileOpt = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything into a new collection")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Build or refresh the table and example indexes of a profile (only what changed is embedded)."""
    target = _server_for_index(ctx, profile)
    if target is not None:
        name = profile or (_settings().default_profile if target.served is not None else None)
        report = _index_remote(target, name, rebuild)
    else:
        report = _index_local(profile, rebuild)
    complete = True if as_json else _print_report(report)
    if as_json:
        _out(report)
        complete = not report.get("examples_error")
    if not complete:
        raise typer.Exit(EXIT_PARTIAL)


def _index_remote(target: Target, profile: str | None, rebuild: bool) -> dict[str, Any]:
    from dbmeta_app.client import ServerError

    console.print(f"[dim]indexing on {target.describe()}[/dim]", highlight=False)
    report: dict[str, Any] | None = None
    bar: _Bar | None = None
    with target.client() as client:
        events: Iterator[dict[str, Any]] = client.index(profile, rebuild)
        for event in events:
            kind = event.get("event")
            if kind == "start":
                bar = _Bar(str(event.get("profile")))
            elif kind == "progress" and bar is not None:
                bar.update(int(event["done"]), int(event["total"]))
            elif kind == "done":
                if bar is not None:
                    bar.close()
                report = event["report"]
            elif kind == "error":
                if bar is not None:
                    bar.close(done=False)
                raise ServerError(str(event.get("error")), str(event.get("detail")), 503)
    if report is None:
        raise ServerError("incomplete", f"{target.describe()} ended the index answer early", 502)
    return report


def _index_local(profile: str | None, rebuild: bool) -> dict[str, Any]:
    async def work(rt: Runtime) -> dict[str, Any]:
        prt = rt.profile(profile)
        search = rt.search
        assert search is not None  # opened with search=True
        bar = _Bar(prt.name)
        try:
            report = await search.index_profile(prt, rebuild=rebuild, progress=bar.update)
        except BaseException:
            bar.close(done=False)
            raise
        bar.close()
        return report

    return _run(work, search=True)


@app.command()
@handled
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="The user's request")],
    profile: ProfileOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=200)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show the tables a request needs, best first; a degraded answer says why and exits 1."""
    target = _server_for_index(ctx, profile)
    if target is not None:
        with target.client() as client:
            answer = client.search(query, top_k, profile)
        _note(target)
    else:
        answer = _search_local(query, profile, top_k)
    if as_json:
        _out(answer)
    else:
        for hit in answer["tables"]:
            note = family_note(hit)
            sys.stdout.write(
                f"{hit['score']:.4f}  {visible(hit['name'])}" + (f"  ({note})" if note else "") + "\n"
            )
    if answer.get("degraded"):
        console.print(
            f"[yellow]degraded[/yellow] (keyword ranking, not the index): {answer.get('reason')}",
            highlight=False,
        )
        raise typer.Exit(EXIT_PARTIAL)


def _search_local(query: str, profile: str | None, top_k: int) -> dict[str, Any]:
    from dbmeta_app.search.runtime import search_tables

    async def work(rt: Runtime) -> dict[str, Any]:
        prt = rt.profile(profile)
        if rt.search is not None:
            try:
                await rt.search.sync(prt)
            except DbmetaError:
                pass  # the search below answers degraded, with the reason
            except Exception as exc:  # noqa: BLE001 - likewise: reported as the degraded reason
                entry = rt.search.profiles.get(prt.name)
                if entry is not None:
                    entry.error = entry.error or f"{type(exc).__name__}: {exc}"[:300]
        _, result = await search_tables(rt, prt, query, top_k)
        answer: dict[str, Any] = result.answer(prt.name)
        return answer

    return _run(work, search=_settings().search_backend == "milvus")


@app.command()
@handled
def preflight(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SQL query")],
    profile: ProfileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON (it always is)")] = False,
) -> None:
    """Check SQL with the read-only guard and EXPLAIN it (never runs it); exit 1 when it is refused."""
    target = _server_for_reads(ctx, profile)
    if target is not None:
        with target.client() as client:
            answer = client.preflight(sql, profile)
        _note(target)
    else:
        import orjson

        from dbmeta_app.items.preflight import preflight as run_preflight

        async def work(rt: Runtime) -> Any:
            return orjson.loads(await run_preflight(rt.settings, rt.cache, rt.profile(profile), sql))

        answer = _run(work)
    _out(answer)
    if not answer["ok"]:
        raise typer.Exit(EXIT_PARTIAL)


@cache_app.command("stats")
@handled
def cache_stats(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stats as JSON (they always are)")
    ] = False,
) -> None:
    """Show the cache of the server on this DATA_DIR (or --server); without one, this command's own."""
    target = _find_server(ctx)
    if target is not None:
        with target.client() as client:
            stats = client.cache_stats()
        _out(stats)
        _note(target)
        return

    async def work(rt: Runtime) -> dict[str, Any]:
        ok = await rt.cache.ping()
        return {"redis_ok": ok, **rt.cache.stats_json()}

    _out(_run(work))
    console.print(
        "[yellow]no server runs on this DATA_DIR:[/yellow] these are this command's own counters "
        "(pass --server URL or set DBMETA_URL to read a server's)",
        highlight=False,
    )


@cache_app.command("clear")
@handled
def cache_clear(ctx: typer.Context, profile: ProfileOpt = None) -> None:
    """Drop every cached value of a profile's scope (schema, explain, examples), like the admin endpoint.

    Sent to the server on this DATA_DIR (or --server) when it serves the same database: its in-process
    cache is where most of the values live.
    """
    target = _server_for_reads(ctx, profile)
    if target is not None:
        # like index: a named server's own settings decide its profiles (these may not even load here)
        name = profile or (_settings().default_profile if target.served is not None else None)
        with target.client() as client:
            answer = client.clear_cache(name)
        dropped: dict[str, int] = {}
        for label, count in answer.get("dropped", {}).items():
            kind = label.split("/", 1)[-1]
            dropped[kind] = dropped.get(kind, 0) + int(count)
        console.print("cleared " + ", ".join(f"{count} {kind}" for kind, count in dropped.items()))
        _note(target)
        return

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
    # gRPC's C core (under pymilvus) writes its own log lines to stderr, outside Python's logging.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    app()


if __name__ == "__main__":
    main()
