"""CLI twins of `/_emulator`: `clock`, `reset`, `fault`, `requests`, `explain`.

They work on the database directly (also with `TECTONITE_EMULATOR_API=off`); their changes
reach running servers through the change feed when they commit.
"""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

from app.changes import ChangeFeed
from app.cli.context import CliContext, pass_context
from app.emulator.clock import (
    ClockState,
    change_clock,
    read_clock,
)
from app.emulator.explain import explain as explain_request
from app.emulator.faults import add_rule, clear_rules, list_rules
from app.emulator.journal import clear_journal, entries_after, read_journal
from app.emulator.reset import ALL, VALUES, UnknownWorkspace, reset
from app.emulator.schemas import load_clock_change, load_fault_rule, load_journal_query
from app.errors import ApiError
from app.serving.cache import ServingState
from app.serving.model import resolve_service
from app.serving.params import features_request
from app.store import open_store


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _fail(exc: ApiError) -> click.ClickException:
    return click.ClickException(exc.message)


# --------------------------------------------------------------------------- clock


@click.group()
def clock() -> None:
    """Show or move the emulated clock (the "now" of ttl expiry, caches and aggregation windows)."""


def _print_clock(state: ClockState, as_json: bool = False) -> None:
    described = state.describe()
    if as_json:
        click.echo(_json(described))
        return
    mode = "frozen" if described["frozen"] else "running"
    click.echo(f"{described['now']} ({mode}, offset {described['offsetSeconds']} s from real time)")


@clock.command("show")
@click.option("--json", "as_json", is_flag=True, help='Print {"now", "frozen", "offsetSeconds"}.')
@pass_context
def clock_show(ctx: CliContext, as_json: bool) -> None:
    """Print the emulated time."""
    with ctx.database.read() as connection:
        _print_clock(read_clock(connection), as_json)


def _change(ctx: CliContext, body: dict[str, Any]) -> None:
    try:
        change = load_clock_change(body)
    except ApiError as exc:
        raise _fail(exc) from None
    with ctx.database.session() as session:
        state = change_clock(session, change.action, change.at, change.seconds)
        session.commit()
    _print_clock(state)


@clock.command("freeze")
@click.argument("time")
@pass_context
def clock_freeze(ctx: CliContext, time: str) -> None:
    """Stop the clock at TIME (RFC 3339, e.g. 2026-01-01T00:00:00Z)."""
    _change(ctx, {"freezeAt": time})


@clock.command("advance")
@click.argument("duration")
@pass_context
def clock_advance(ctx: CliContext, duration: str) -> None:
    """Move emulated time forward by DURATION (90s, 15m, 2h, 1d), frozen or running."""
    _change(ctx, {"advance": duration})


@clock.command("resume")
@pass_context
def clock_resume(ctx: CliContext) -> None:
    """Let a frozen clock run on from where it stands."""
    _change(ctx, {"resume": True})


@clock.command("reset")
@pass_context
def clock_reset(ctx: CliContext) -> None:
    """Back to real time."""
    _change(ctx, {"reset": True})


# --------------------------------------------------------------------------- reset


@click.command("reset")
@click.option("--workspace", "-w", help="Only this workspace (default: every workspace).")
@click.option("--all", "everything", is_flag=True, help="Also delete definitions and workspaces.")
@click.option("--yes", "-y", is_flag=True, help="Required: confirms the deletion.")
@pass_context
def reset_command(ctx: CliContext, workspace: str | None, everything: bool, yes: bool) -> None:
    """Delete stored feature values (and caches); with --all, everything but keys and roles."""
    scope = ALL if everything else VALUES
    if not yes:
        raise click.UsageError("reset deletes data; pass --yes to confirm.")
    with ctx.database.session() as session:
        try:
            result = reset(session, scope=scope, workspace=workspace)
        except UnknownWorkspace:
            raise click.ClickException(f'Workspace "{workspace}" not found.') from None
        session.commit()
    where = f'workspace "{workspace}"' if workspace else "every workspace"
    click.echo(
        f"Reset {scope} of {where}: {result.values_deleted} stored rows deleted"
        + (f", {result.workspaces_deleted} workspaces deleted." if everything else ".")
    )


# --------------------------------------------------------------------------- faults


@click.group()
def fault() -> None:
    """Fault rules: make matching requests wait and/or fail like Tecton does."""


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{option} takes KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


@fault.command("add")
@click.option(
    "--endpoint",
    "-e",
    default="*",
    show_default=True,
    help="get-features, get-features-batch, metadata, query-features, ingest or *.",
)
@click.option("--workspace", "-w", help="Only requests for this workspace.")
@click.option("--service", "-s", help="Only requests for this feature service.")
@click.option(
    "--join-key",
    "join_keys",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only requests with this join-key value (repeatable).",
)
@click.option("--status", type=int, help="Answer 429, 500, 503 or 504 as Tecton does.")
@click.option("--delay-ms", type=int, help="Wait this long first.")
@click.option("--times", type=int, help="Hit only this many requests, then remove the rule.")
@click.option("--probability", type=float, help="Hit each matching request with this chance.")
@click.option("--seed", type=int, help="Make the probability's hits reproducible.")
@pass_context
def fault_add(ctx: CliContext, endpoint: str, workspace: str | None, service: str | None,
              join_keys: tuple[str, ...], status: int | None, delay_ms: int | None,
              times: int | None, probability: float | None, seed: int | None) -> None:  # fmt: skip
    """Add a rule; prints its id."""
    body: dict[str, Any] = {
        "endpoint": endpoint,
        "workspace": workspace,
        "featureService": service,
        "joinKeys": _pairs(join_keys, "--join-key") or None,
        "status": status,
        "delayMs": delay_ms,
        "times": times,
        "probability": probability,
        "seed": seed,
    }
    try:
        spec = load_fault_rule({k: v for k, v in body.items() if v is not None})
    except ApiError as exc:
        raise _fail(exc) from None
    with ctx.database.session() as session:
        rule_id = add_rule(session, spec)
        session.commit()
    click.echo(rule_id)


@fault.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_context
def fault_list(ctx: CliContext, as_json: bool) -> None:
    """List the rules, oldest first."""
    with ctx.database.session() as session:
        rules = [r.to_json() for r in list_rules(session)]
    if as_json:
        click.echo(_json(rules))
        return
    if not rules:
        click.echo("No fault rules.")
    for rule in rules:
        rest = " ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in rule.items() if k != "id")
        click.echo(f"{rule['id']}: {rest}")


@fault.command("clear")
@click.argument("rule_id", required=False, type=int)
@pass_context
def fault_clear(ctx: CliContext, rule_id: int | None) -> None:
    """Remove rule RULE_ID, or every rule."""
    with ctx.database.session() as session:
        removed = clear_rules(session, rule_id)
        if rule_id is not None and not removed:
            raise click.ClickException(f"Fault rule {rule_id} not found.")
        session.commit()
    click.echo(f"Removed {removed} fault rule(s).")


# --------------------------------------------------------------------------- journal


def _entry_line(entry: dict[str, Any]) -> str:
    where = "/".join(p for p in (entry["workspace"], entry["featureService"]) if p)
    error = f"  {entry['error']}" if entry["error"] else ""
    return (
        f"{entry['time']}  {entry['status']}  {entry['method']} {entry['path']}"
        f"  {entry['endpoint'] or '-'} {where or '-'}  {entry['durationMs']} ms{error}"
    )


@click.group(invoke_without_command=True)
@click.option("--limit", "-n", default=100, show_default=True, help="How many entries.")
@click.option("--endpoint", "-e", help="Only this endpoint (get-features, ingest, …).")
@click.option("--workspace", "-w", help="Only this workspace.")
@click.option("--service", "-s", help="Only this feature service.")
@click.option("--status", type=int, help="Only this HTTP status.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="JSON (with --follow: one object a line).")
@click.pass_context
def requests(click_ctx: click.Context, limit: int, endpoint: str | None,
             workspace: str | None, service: str | None, status: int | None, follow: bool,
             as_json: bool) -> None:  # fmt: skip
    """The request journal, newest first (with --follow: oldest first, as they arrive)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: CliContext = click_ctx.obj
    args = {"limit": limit, "endpoint": endpoint, "workspace": workspace,
            "featureService": service, "status": status}  # fmt: skip
    try:
        query = load_journal_query({k: str(v) for k, v in args.items() if v is not None})
    except ApiError as exc:
        raise _fail(exc) from None
    with ctx.database.session() as session:
        entries = read_journal(session, query, ctx.settings.journal_size)
    if not follow:
        if as_json:
            click.echo(_json(entries))
        for entry in [] if as_json else reversed(entries):
            click.echo(_entry_line(entry))
        return
    last_id = 0
    for entry in reversed(entries):
        click.echo(orjson.dumps(entry).decode() if as_json else _entry_line(entry))
        last_id = max(last_id, entry["id"])
    try:
        while True:
            time.sleep(0.5)
            with ctx.database.session() as session:
                new = entries_after(session, last_id)
            for entry in new:
                if _wanted(entry, query.endpoint, query.workspace, query.feature_service, status):
                    click.echo(orjson.dumps(entry).decode() if as_json else _entry_line(entry))
                last_id = entry["id"]
    except KeyboardInterrupt:
        return


def _wanted(entry: dict[str, Any], *filters: Any) -> bool:
    keys = ("endpoint", "workspace", "featureService", "status")
    return all(f is None or entry[k] == f for k, f in zip(keys, filters, strict=True))


@requests.command("clear")
@pass_context
def requests_clear(ctx: CliContext) -> None:
    """Empty the journal."""
    with ctx.database.session() as session:
        removed = clear_journal(session)
        session.commit()
    click.echo(f"Removed {removed} journal entries.")


# --------------------------------------------------------------------------- explain


def _context_value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@click.command()
@click.option("--workspace", "-w", required=True, help="The workspace.")
@click.option("--service", "-s", required=True, help="The feature service.")
@click.option(
    "--join-key",
    "join_keys",
    multiple=True,
    metavar="KEY=VALUE",
    help="A join-key value (repeatable).",
)
@click.option(
    "--context",
    "contexts",
    multiple=True,
    metavar="KEY=VALUE",
    help="A request-context value, JSON or text (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@pass_context
def explain(ctx: CliContext, workspace: str, service: str, join_keys: tuple[str, ...],
            contexts: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Why each feature of a get-features request has its value and status now."""
    context = {k: _context_value(v) for k, v in _pairs(contexts, "--context").items()}
    body = {"params": {"workspaceName": workspace, "featureServiceName": service,
                       "joinKeyMap": _pairs(join_keys, "--join-key"),
                       "requestContextMap": context}}  # fmt: skip
    with ctx.database.session() as session:
        try:
            parsed = features_request(body, batch=False)
            resolved = resolve_service(session, workspace, service)
            if resolved is None or not resolved.servable:
                raise click.ClickException(
                    f'Feature service "{service}" is not served by workspace "{workspace}".'
                )
            with ctx.database.read() as connection:
                clock_state = read_clock(connection)
            store = open_store(ctx.database, ctx.settings, use_replicas=False)
            try:
                serving = ServingState.create(ChangeFeed())  # compiles transforms; no cache
                result = explain_request(resolved, parsed, clock_state, store, serving, None)
            finally:
                store.close()
        except ApiError as exc:
            raise _fail(exc) from None
    if as_json:
        click.echo(_json(result))
        return
    click.echo(f"now {result['now']}{' (frozen)' if result['frozen'] else ''}")
    for item in result["features"]:
        value = orjson.dumps(item["value"]).decode()
        click.echo(f"{item['name']} = {value}  {item['status']}: {item['reason']}")
