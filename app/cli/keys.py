"""`tectonite api-key`, `service-account` and `access-control`: issuing keys and granting roles.

Each command is one transaction: it calls `changes.announce(session, "auth")` before committing,
so every server process drops its cached credentials as soon as the change is committed.
A key is printed once, when it is created, and never again.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import orjson
from sqlalchemy.orm import Session

from app import changes
from app.cli.context import CliContext, pass_context
from auth import store
from auth.errors import AuthAdminError
from auth.keys import parse_duration
from auth.models import ROLES, ApiKey, RoleBinding, ServiceAccount
from auth.permissions import ADMIN_ROLE, WORKSPACE_ROLES

SAVE_KEY_WARNING = "Save this key - you will not be able to get it again."
KEY_NOT_FOUND = (
    "API key cannot be found. Ensure you have the correct API Key. "
    "The key's secret value is different from the key's ID."
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


# --------------------------------------------------------------------------- api-key


@click.group(name="api-key")
def api_key() -> None:
    """Create, list, delete and introspect API keys."""


@api_key.command(name="create")
@click.option("--description", required=True, help="What the key is for.")
@click.option("--workspace", "-w", help="Grant the role on this workspace only (default: all).")
@click.option(
    "--role",
    "-r",
    type=click.Choice(WORKSPACE_ROLES, case_sensitive=False),
    help="The key's role (default: consumer).",
)
@click.option("--admin", is_flag=True, help="Make the key an admin key (all workspaces).")
@click.option("--expires-in", help="Expire the key after this long, e.g. 30d, 12h, 45m.")
@pass_context
def create_api_key(
    ctx: CliContext,
    description: str,
    workspace: str | None,
    role: str | None,
    admin: bool,
    expires_in: str | None,
) -> None:
    """Create a key (with its own service account). Prints the key alone on stdout."""
    if admin and (workspace or role):
        raise click.UsageError("--admin is a cluster-wide role; remove --workspace and --role.")
    expires_at = _expiry(expires_in)
    with _transaction(ctx) as session:
        account = store.create_service_account(
            session, name=description, description=description, created_by=_created_by()
        )
        _, new_key = store.create_api_key(
            session,
            store.server_secret(session, ctx.settings.secret),
            service_account_id=account.id,
            description=description,
            created_by=_created_by(),
            expires_at=expires_at,
        )
        granted = ADMIN_ROLE if admin else (role or "consumer").lower()
        store.assign_role(session, account.id, granted, None if admin else workspace)
    click.echo(SAVE_KEY_WARNING, err=True)
    click.echo(new_key.key)


@api_key.command(name="list")
@json_option
@pass_context
def list_api_keys(ctx: CliContext, as_json: bool) -> None:
    """List keys, obscured (only their last four characters)."""
    with ctx.database.session() as session:
        keys = [_api_key_json(key) for key in store.list_api_keys(session)]
    _echo_listing(
        keys,
        as_json=as_json,
        empty="No API keys found",
        fields=lambda key: [
            ("API Key ID", key["id"]),
            ("Secret Key", key["obscured_key"]),
            ("Description", key["description"]),
            ("Created by", key["created_by"]),
            ("Created at", key["created_at"]),
            ("Expires at", key["expires_at"] or "never"),
            ("Last used at", key["last_used_at"] or "never"),
            ("Service Account ID", key["service_account_id"]),
        ],
    )


@api_key.command(name="delete")
@click.argument("key_id")
@pass_context
def delete_api_key(ctx: CliContext, key_id: str) -> None:
    """Delete (revoke) a key by its API Key ID; every server refuses it within a second."""
    with _transaction(ctx) as session:
        deleted = store.delete_api_key(session, key_id.strip())
    if not deleted:
        _fail(
            f"API key with ID {key_id} not found. "
            "Check `tectonite api-key list` to find the IDs of currently active API keys."
        )
    click.echo("Success")


@api_key.command(name="introspect")
@click.argument("key")
@json_option
@pass_context
def introspect_api_key(ctx: CliContext, key: str, as_json: bool) -> None:
    """Show which stored key a full key is (its ID, description, creator, whether active)."""
    with ctx.database.session() as session:
        found = store.find_api_key(session, _verification_secret(ctx, session), key)
        if found is None:
            _fail(KEY_NOT_FOUND)
        api_key_row, account = found
        expired = api_key_row.expires_at is not None and api_key_row.expires_at <= _now()
        info = {
            "api_key_id": api_key_row.id,
            "description": api_key_row.description,
            "created_by": api_key_row.created_by,
            "active": account.active and not expired,
        }
    if as_json:
        _echo_json(info)
        return
    _echo_fields(
        [
            ("API Key ID", info["api_key_id"]),
            ("Description", info["description"]),
            ("Created by", info["created_by"]),
            ("Active", info["active"]),
        ],
        width=16,
    )


# --------------------------------------------------------------------------- service-account


@click.group(name="service-account")
def service_account() -> None:
    """Create, list and delete service accounts."""


@service_account.command(name="create")
@click.option("--name", required=True, help="The account's name.")
@click.option("--description", default="", help="What the account is for.")
@json_option
@pass_context
def create_service_account(ctx: CliContext, name: str, description: str, as_json: bool) -> None:
    """Create a service account with one API key (no roles yet)."""
    with _transaction(ctx) as session:
        account = store.create_service_account(
            session, name=name, description=description, created_by=_created_by()
        )
        _, new_key = store.create_api_key(
            session,
            store.server_secret(session, ctx.settings.secret),
            service_account_id=account.id,
            description=description or name,
            created_by=_created_by(),
        )
    if as_json:
        _echo_json({"api_key": new_key.key, "id": account.id})
        return
    click.echo("Save this API Key - you will not be able to get it again.")
    click.echo(f"API Key:            {new_key.key}")
    click.echo(f"Service Account ID: {account.id}")
    click.echo(
        "Use `tectonite access-control assign-role` to assign roles to your new service account."
    )


@service_account.command(name="list")
@json_option
@pass_context
def list_service_accounts(ctx: CliContext, as_json: bool) -> None:
    """List service accounts."""
    with ctx.database.session() as session:
        accounts = [_account_json(account) for account in store.list_service_accounts(session)]
    _echo_listing(
        accounts,
        as_json=as_json,
        empty="No Service Accounts Found",
        fields=lambda account: [
            ("Name", account["name"]),
            ("ID", account["id"]),
            ("Description", account["description"]),
            ("Created By", account["createdBy"]),
            ("Active", account["active"]),
        ],
        width=15,
    )


@service_account.command(name="delete")
@click.argument("account_id")
@pass_context
def delete_service_account(ctx: CliContext, account_id: str) -> None:
    """Delete a service account with its keys and roles."""
    with _transaction(ctx) as session:
        deleted = store.delete_service_account(session, account_id.strip())
    if not deleted:
        _fail(f"Service account with ID {account_id} not found.")
    click.echo("Successfully deleted Service Account")


@service_account.command(name="deactivate")
@click.argument("account_id")
@pass_context
def deactivate_service_account(ctx: CliContext, account_id: str) -> None:
    """Refuse the account's keys until it is activated again."""
    _set_active(ctx, account_id, active=False)
    click.echo("Successfully deactivated Service Account")


@service_account.command(name="activate")
@click.argument("account_id")
@pass_context
def activate_service_account(ctx: CliContext, account_id: str) -> None:
    """Accept the account's keys again."""
    _set_active(ctx, account_id, active=True)
    click.echo("Successfully activated Service Account")


def _set_active(ctx: CliContext, account_id: str, *, active: bool) -> None:
    with _transaction(ctx) as session:
        found = store.set_service_account_active(session, account_id.strip(), active=active)
    if not found:
        _fail(f"Service account with ID {account_id} not found.")


# --------------------------------------------------------------------------- access-control


@click.group(name="access-control")
def access_control() -> None:
    """Grant and revoke roles of service accounts on workspaces."""


def _role_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--role", "-r", required=True, help=f"One of {', '.join(ROLES)}."),
            click.option("--service-account", "-s", "account_id", required=True),
            click.option("--workspace", "-w", help="The workspace the role applies to."),
            click.option("--all-workspaces", is_flag=True, help="Apply to every workspace."),
        ]
    ):
        command = option(command)
    return command


@access_control.command(name="assign-role")
@_role_options
@pass_context
def assign_role(
    ctx: CliContext, role: str, account_id: str, workspace: str | None, all_workspaces: bool
) -> None:
    """Grant a role on one workspace or all of them (admin: cluster-wide, no scope)."""
    role, scope = _role_and_scope(role, workspace, all_workspaces)
    with _transaction(ctx) as session:
        try:
            store.assign_role(session, account_id, role, scope)
        except AuthAdminError as exc:
            _fail(f"Failed to update role for [{account_id}]: {exc}")
    click.echo(f"Successfully updated role for [{account_id}]")


@access_control.command(name="unassign-role")
@_role_options
@pass_context
def unassign_role(
    ctx: CliContext, role: str, account_id: str, workspace: str | None, all_workspaces: bool
) -> None:
    """Take back a role given with assign-role (same options)."""
    role, scope = _role_and_scope(role, workspace, all_workspaces)
    with _transaction(ctx) as session:
        removed = store.unassign_role(session, account_id, role, scope)
    if not removed:
        where = "all workspaces" if scope is None else f"workspace {scope}"
        _fail(f"Failed to update role for [{account_id}]: no {role} role on {where}")
    click.echo(f"Successfully updated role for [{account_id}]")


@access_control.command(name="get-roles")
@click.option("--service-account", "-s", "account_id", required=True)
@json_option
@pass_context
def get_roles(ctx: CliContext, account_id: str, as_json: bool) -> None:
    """Show a service account's roles."""
    with ctx.database.session() as session:
        if store.get_service_account(session, account_id) is None:
            _fail(f"Service account with ID {account_id} not found.")
        bindings = [_binding_json(b) for b in store.list_role_bindings(session, account_id)]
    if as_json:
        _echo_json(bindings)
        return
    workspace_roles = [b for b in bindings if b["role"] != ADMIN_ROLE]
    instance_roles = [b for b in bindings if b["role"] == ADMIN_ROLE]
    click.echo("Workspace-Level Roles")
    if not workspace_roles:
        click.echo("  (none)")
    for binding in workspace_roles:
        where = "all workspaces" if binding["all_workspaces"] else binding["workspace"]
        click.echo(f"  {where:<30} {binding['role']}")
    click.echo("Instance-Level Roles")
    click.echo("  admin" if instance_roles else "  (none)")


def _role_and_scope(
    role: str, workspace: str | None, all_workspaces: bool
) -> tuple[str, str | None]:
    """Validate the role and its scope with Tecton's messages; (role, workspace or None)."""
    role = role.strip().lower()
    if role not in ROLES:
        _fail(f"Invalid role. Possible values are: {', '.join(ROLES)}")
    if role == ADMIN_ROLE:
        if workspace or all_workspaces:
            _fail(
                "'Admin' is a cluster-wide role. "
                "Please remove --workspace and --all-workspaces options"
            )
        return role, None
    if bool(workspace) == all_workspaces:
        _fail("Must specify either --workspace or --all-workspaces")
    return role, workspace or None


# --------------------------------------------------------------------------- helpers


@contextmanager
def _transaction(ctx: CliContext) -> Iterator[Session]:
    """One session and transaction; announces the auth change, then commits on success."""
    with ctx.database.session() as session:
        yield session
        changes.announce(session, changes.AUTH_TOPIC)
        session.commit()


def _verification_secret(ctx: CliContext, session: Session) -> bytes:
    if ctx.settings.secret:
        return ctx.settings.secret.encode()
    stored = store.load_server_secret(session)
    return stored.encode() if stored else b""


def _expiry(expires_in: str | None) -> datetime | None:
    if expires_in is None:
        return None
    try:
        return _now() + parse_duration(expires_in)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires-in") from None


def _created_by() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "tectonite-cli"


def _now() -> datetime:
    return datetime.now(UTC)


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    raise click.exceptions.Exit(1)


def _echo_json(obj: Any) -> None:
    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode())


def _echo_listing(
    rows: list[dict[str, Any]],
    *,
    as_json: bool,
    empty: str,
    fields: Callable[[dict[str, Any]], list[tuple[str, Any]]],
    width: int = 20,
) -> None:
    """A listing as JSON, or as blocks of `Label: value` lines separated by blank lines."""
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo(empty)
    for index, row in enumerate(rows):
        if index:
            click.echo()
        _echo_fields(fields(row), width=width)


def _echo_fields(fields: list[tuple[str, Any]], *, width: int = 20) -> None:
    for label, value in fields:
        click.echo(f"{label + ':':<{width}}{value}")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "obscured_key": key.obscured_key,
        "description": key.description,
        "created_by": key.created_by,
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at),
        "last_used_at": _iso(key.last_used_at),
        "service_account_id": key.service_account_id,
    }


def _account_json(account: ServiceAccount) -> dict[str, Any]:
    return {
        "name": account.name,
        "id": account.id,
        "description": account.description,
        "active": account.active,
        "createdBy": account.created_by,
    }


def _binding_json(binding: RoleBinding) -> dict[str, Any]:
    return {
        "role": binding.role,
        "workspace": binding.workspace,
        "all_workspaces": binding.workspace is None,
    }
