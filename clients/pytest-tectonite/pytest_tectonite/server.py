"""A Tectonite server for a test session: started through the `tectonite` command, or one
that already runs; and thin helpers over its HTTP API and `/_emulator` controls.

Nothing here imports Tectonite itself: the server is a subprocess (or a URL), so it may live
in another virtualenv (pipx) than the tests.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

READY_LINE = "is serving the Tecton API at "
START_TIMEOUT_S = 180.0
COMMAND_TIMEOUT_S = 300.0


class EmulatorError(RuntimeError):
    """The server answered an error, could not start, or a command failed."""


def find_command(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """`TECTONITE_COMMAND` (split like a shell would) or `tectonite` on PATH, else None."""
    environ = os.environ if environ is None else environ
    configured = environ.get("TECTONITE_COMMAND")
    if configured:
        return shlex.split(configured)
    found = shutil.which("tectonite", path=environ.get("PATH"))
    return [found] if found else None


@dataclass
class Tectonite:
    """The session's server: its URL, an admin key, and helpers for keys, clients and data."""

    url: str
    admin_key: str
    command: list[str] | None = None  # how to run `tectonite …` against the same database
    env: dict[str, str] = field(default_factory=dict)
    init_dir: Path | None = None
    workspace: str | None = None  # the default workspace of `client()` and `key()`
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _keys: dict[tuple[str, str | None], str] = field(default_factory=dict)
    _http: httpx.Client | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=30)
        return self._http

    def run(self, *args: str) -> str:
        """Run `tectonite ARGS` against the server's database; its stdout, or EmulatorError."""
        if self.command is None:
            raise EmulatorError(
                "this needs the `tectonite` command: put it on PATH or set TECTONITE_COMMAND "
                "(with TECTONITE_URL, also the DATABASE_URL the server uses)"
            )
        result = subprocess.run(
            [*self.command, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise EmulatorError(
                f"`tectonite {' '.join(args)}` failed ({result.returncode}):\n{result.stderr}"
            )
        return result.stdout

    def emulator(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Call `/_emulator/<path>` with the admin key; the decoded JSON answer."""
        response = self.http.request(
            method,
            f"/_emulator/{path}",
            json=body,
            params={k: v for k, v in params.items() if v is not None} or None,
            headers={"Authorization": f"Tecton-key {self.admin_key}"},
        )
        if response.status_code >= 400:
            raise EmulatorError(
                f"{method} /_emulator/{path} answered {response.status_code}: {response.text}"
            )
        return response.json() if response.content else None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    # ------------------------------------------------------------------ keys and clients

    def key(self, role: str = "consumer", workspace: str | None = None) -> str:
        """A key with `role` on `workspace` (None: all workspaces), made once per session."""
        role = role.lower()
        if role == "admin":
            return self.admin_key
        cache_key = (role, workspace)
        if cache_key not in self._keys:
            args = ["api-key", "create", "--description", f"pytest-tectonite {role}"]
            args += ["--role", role] + (["--workspace", workspace] if workspace else [])
            self._keys[cache_key] = self.run(*args).strip().splitlines()[-1]
        return self._keys[cache_key]

    def client(self, workspace: str | None = None, *, api_key: str | None = None) -> Any:
        """A `tecton_client.TectonClient` on this server (consumer key unless given one)."""
        from tecton_client import TectonClient

        workspace = workspace or self.workspace
        return TectonClient(
            self.url,
            api_key or self.key("consumer", workspace),
            default_workspace_name=workspace,
        )

    # ------------------------------------------------------------------ data

    def ingest(
        self,
        source: str,
        records: list[dict[str, Any]],
        *,
        workspace: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Records through the Stream Ingest API (`POST /ingest`) with an editor key."""
        workspace = workspace or self.workspace
        if workspace is None:
            raise EmulatorError("ingest needs a workspace (or the tectonite_workspace option)")
        response = self.http.post(
            "/ingest",
            json={
                "workspace_name": workspace,
                "dry_run": dry_run,
                "records": {source: [{"record": r} for r in records]},
            },
            headers={"Authorization": f"Tecton-key {self.key('editor', workspace)}"},
        )
        body: dict[str, Any] = response.json()
        if response.status_code >= 400:
            raise EmulatorError(f"ingest answered {response.status_code}: {body}")
        return body

    def ingest_file(
        self, feature_view: str, path: str | Path, *, workspace: str | None = None
    ) -> str:
        """Bulk-load a CSV, JSON Lines or Parquet file (`tectonite ingest`); its summary."""
        workspace = workspace or self.workspace
        if workspace is None:
            raise EmulatorError("ingest_file needs a workspace")
        args = ["ingest", "--workspace", workspace, "--feature-view", feature_view, str(path)]
        return self.run(*args).strip()

    def reset(self, *, reload: bool = True) -> None:
        """Back to the init directory's state: definitions, values, faults, journal, clock.

        Keys survive. Without the `tectonite` command only values are reset (the definitions
        cannot be re-imported over HTTP)."""
        can_reload = reload and self.init_dir is not None and self.command is not None
        self.emulator("POST", "reset", {"scope": "all" if can_reload else "values"})
        self.faults.clear()
        self.journal.clear()
        self.clock.reset()
        if can_reload:
            self.run("import", str(self.init_dir))

    @property
    def clock(self) -> Clock:
        return Clock(self)

    @property
    def faults(self) -> Faults:
        return Faults(self)

    @property
    def journal(self) -> Journal:
        return Journal(self)


@dataclass(frozen=True)
class Clock:
    """The emulated clock (`/_emulator/clock`)."""

    server: Tectonite

    def show(self) -> dict[str, Any]:
        result: dict[str, Any] = self.server.emulator("GET", "clock")
        return result

    def freeze(self, at: str) -> dict[str, Any]:
        """Freeze at an RFC 3339 time, e.g. `2026-01-01T00:00:00Z`."""
        result: dict[str, Any] = self.server.emulator("POST", "clock", {"freezeAt": at})
        return result

    def advance(self, by: str | float) -> dict[str, Any]:
        """Move forward by a duration (`90m`, `1d`) or a number of seconds."""
        body = {"advanceSeconds": by} if isinstance(by, int | float) else {"advance": by}
        result: dict[str, Any] = self.server.emulator("POST", "clock", body)
        return result

    def resume(self) -> dict[str, Any]:
        result: dict[str, Any] = self.server.emulator("POST", "clock", {"resume": True})
        return result

    def reset(self) -> dict[str, Any]:
        result: dict[str, Any] = self.server.emulator("POST", "clock", {"reset": True})
        return result


@dataclass(frozen=True)
class Faults:
    """Fault rules (`/_emulator/faults`)."""

    server: Tectonite

    def add(self, **rule: Any) -> Any:
        """Add a rule, e.g. `add(endpoint="get-features", status=503, times=1)`; its id."""
        return self.server.emulator("POST", "faults", rule)["id"]

    def list(self) -> list[dict[str, Any]]:
        answer = self.server.emulator("GET", "faults")
        return answer["faults"] if isinstance(answer, dict) else answer  # type: ignore[no-any-return]

    def clear(self, rule_id: Any = None) -> None:
        self.server.emulator("DELETE", "faults" if rule_id is None else f"faults/{rule_id}")


@dataclass(frozen=True)
class Journal:
    """The request journal (`/_emulator/requests`), newest first."""

    server: Tectonite

    def entries(self, **filters: Any) -> list[dict[str, Any]]:
        """Filters: limit, endpoint, workspace, featureService (or feature_service), status."""
        if "feature_service" in filters:
            filters["featureService"] = filters.pop("feature_service")
        answer = self.server.emulator("GET", "requests", **filters)
        return answer["requests"] if isinstance(answer, dict) else answer  # type: ignore[no-any-return]

    def clear(self) -> None:
        self.server.emulator("DELETE", "requests")


def start(
    command: list[str],
    *,
    init_dir: Path | None,
    data_dir: Path,
    env: Mapping[str, str],
    extra_args: list[str],
    workspace: str | None,
) -> Tectonite:
    """Start `tectonite serve` on a free port and wait until it is ready (/readyz)."""
    server_env = {"PYTHONUNBUFFERED": "1", **env}
    if "DATABASE_URL" not in server_env:
        server_env["TECTONITE_DATA_DIR"] = str(data_dir)
    server_env.pop("TECTONITE_INIT_DIR", None)
    args = [*command, "serve", "--port", "0", *extra_args]
    if init_dir is not None:
        args += ["--init", str(init_dir)]
    process = subprocess.Popen(
        args,
        env={**os.environ, **server_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def pump() -> None:
        for line in process.stdout or ():
            output.append(line)
            if READY_LINE in line and "url" not in found:
                found["url"] = line.rsplit(" at ", 1)[1].strip().removesuffix("/api")
                ready.set()
        ready.set()  # the process ended

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(START_TIMEOUT_S)
    if "url" not in found:
        process.kill()
        process.wait(timeout=30)
        raise EmulatorError("tectonite serve did not start:\n" + "".join(output))
    url = found["url"]
    server = Tectonite(
        url=url,
        admin_key="",
        command=command,
        env=dict(server_env),
        init_dir=init_dir,
        workspace=workspace,
        process=process,
        output=output,
    )
    try:
        _wait_ready(url)
        server.admin_key = (
            server.run("api-key", "create", "--admin", "--description", "pytest-tectonite admin")
            .strip()
            .splitlines()[-1]
        )
    except BaseException:
        server.close()
        raise
    return server


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=5) as http:
        while True:
            try:
                if http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise EmulatorError(f"{url}/readyz did not answer 200 in time")
            time.sleep(0.1)  # polling a condition with a deadline, not synchronising by sleep


def connect(environ: Mapping[str, str], init_dir: Path | None, workspace: str | None) -> Tectonite:
    """A server that already runs: TECTONITE_URL and TECTONITE_ADMIN_KEY."""
    url = environ["TECTONITE_URL"].rstrip("/")
    admin_key = environ.get("TECTONITE_ADMIN_KEY", "")
    _wait_ready(url)
    return Tectonite(
        url=url,
        admin_key=admin_key,
        command=find_command(environ),
        env={},
        init_dir=init_dir,
        workspace=workspace,
    )
