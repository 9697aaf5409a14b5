"""Reading an init directory (SPEC §12) into plain values, every problem with file and line.

    DIR/keys.yaml                      optional: - {description, role, workspace?, key?}
    DIR/<workspace>/features.yaml      the workspace's definitions (+ transform files beside it)
    DIR/<workspace>/workspace.yaml     optional: {live: false}
    DIR/<workspace>/data/<view>.<ext>  values (plain views) or events (aggregate views):
                                       .csv, .jsonl (.ndjson), .parquet

Every non-hidden sub-folder is a workspace and must hold a features.yaml: a typo in a folder
name fails start-up instead of silently serving nothing. Nothing here touches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.ingest.bulk import detect_format
from app.names import name_problem
from auth.keys import MalformedKey, parse_key
from auth.models import ROLES
from auth.permissions import ADMIN_ROLE

DEFINITIONS_FILE = "features.yaml"
WORKSPACE_FILE = "workspace.yaml"
KEYS_FILE = "keys.yaml"
DATA_FOLDER = "data"


class InitDirError(Exception):
    """The directory cannot be loaded; `messages` each name a file (and a line when known)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class DataFile:
    path: Path
    view: str
    file_format: str


@dataclass(frozen=True)
class WorkspaceDir:
    name: str
    path: Path
    live: bool
    data_files: tuple[DataFile, ...]

    @property
    def definitions(self) -> Path:
        return self.path / DEFINITIONS_FILE


@dataclass(frozen=True)
class KeyEntry:
    description: str
    role: str
    workspace: str | None
    key: str | None  # a fixed key value, checked against the key format
    line: int


@dataclass(frozen=True)
class InitDir:
    path: Path
    workspaces: tuple[WorkspaceDir, ...]
    keys: tuple[KeyEntry, ...]


def read_init_dir(path: Path) -> InitDir:
    """The directory's workspaces and keys; InitDirError lists every problem found."""
    errors: list[str] = []
    if not path.is_dir():
        raise InitDirError([f"{path}: not a directory"])
    workspaces = []
    for child in sorted(path.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        workspace = _workspace(child, errors)
        if workspace is not None:
            workspaces.append(workspace)
    keys_path = path / KEYS_FILE
    keys = _keys(keys_path, errors) if keys_path.exists() else []
    if errors:
        raise InitDirError(errors)
    return InitDir(path, tuple(workspaces), tuple(keys))


def _workspace(folder: Path, errors: list[str]) -> WorkspaceDir | None:
    problem = name_problem(folder.name)
    if problem is not None:
        errors.append(f"{folder}: a workspace folder's name {problem}")
        return None
    if not (folder / DEFINITIONS_FILE).is_file():
        errors.append(
            f"{folder}: every workspace folder needs a {DEFINITIONS_FILE} (hidden folders, "
            "starting with a dot, are skipped)"
        )
        return None
    live = True
    settings_path = folder / WORKSPACE_FILE
    if settings_path.exists():
        document, lines = _yaml(settings_path, errors)
        if document is not None:
            if not isinstance(document, dict):
                errors.append(f"{settings_path}:1: expected a mapping such as `live: false`")
            else:
                for key, value in document.items():
                    line = lines.get(key, 1)
                    if key != "live":
                        errors.append(f"{settings_path}:{line}: unknown setting {key!r}")
                    elif not isinstance(value, bool):
                        errors.append(f"{settings_path}:{line}: `live` must be true or false")
                    else:
                        live = value
    data_files = []
    data_folder = folder / DATA_FOLDER
    if data_folder.is_dir():
        seen: dict[str, Path] = {}
        for file in sorted(data_folder.iterdir()):
            if file.name.startswith(".") or not file.is_file():
                continue
            file_format = detect_format(file)
            if file_format is None:
                errors.append(
                    f"{file}: unknown data file type; name it <feature view>.csv, .jsonl or "
                    ".parquet"
                )
                continue
            if file.stem in seen:
                errors.append(f"{file}: {seen[file.stem].name} holds data for this view already")
                continue
            seen[file.stem] = file
            data_files.append(DataFile(file, file.stem, file_format))
    return WorkspaceDir(folder.name, folder, live, tuple(data_files))


def _yaml(path: Path, errors: list[str]) -> tuple[Any, dict[Any, int]]:
    """The document and, for a top-level mapping, each key's line (1-based)."""
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        errors.append(f"{path}: cannot read: {exc.strerror}")
        return None, {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        errors.append(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
        return None, {}
    lines: dict[Any, int] = {}
    if isinstance(node, yaml.MappingNode):
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    elif isinstance(node, yaml.SequenceNode):
        lines = {index: item.start_mark.line + 1 for index, item in enumerate(node.value)}
    return document, lines


_KEY_FIELDS = {"description", "role", "workspace", "key"}


def _keys(path: Path, errors: list[str]) -> list[KeyEntry]:
    document, lines = _yaml(path, errors)
    if document is None:
        return []
    if not isinstance(document, list):
        errors.append(f"{path}:1: expected a list of {{description, role, workspace?, key?}}")
        return []
    entries: list[KeyEntry] = []
    descriptions: dict[str, int] = {}
    key_ids: dict[str, int] = {}
    for index, item in enumerate(document):
        line = lines.get(index, 1)
        where = f"{path}:{line}"
        if not isinstance(item, dict):
            errors.append(f"{where}: each entry must be a mapping {{description, role, ...}}")
            continue
        unknown = sorted(set(map(str, item)) - _KEY_FIELDS)
        if unknown:
            errors.append(f"{where}: unknown field(s) {', '.join(unknown)}")
        description, role = item.get("description"), item.get("role")
        workspace, key = item.get("workspace"), item.get("key")
        if not isinstance(description, str) or not description.strip():
            errors.append(f"{where}: `description` is required (it identifies the key)")
            continue
        if description in descriptions:
            errors.append(f"{where}: description {description!r} is used on line "
                          f"{descriptions[description]} already")  # fmt: skip
            continue
        descriptions[description] = line
        if not isinstance(role, str) or role.lower() not in ROLES:
            errors.append(f"{where}: `role` must be one of {', '.join(ROLES)}")
            continue
        role = role.lower()
        if workspace is not None and not isinstance(workspace, str):
            errors.append(f"{where}: `workspace` must be a workspace name")
            continue
        if role == ADMIN_ROLE and workspace is not None:
            errors.append(f"{where}: admin is a cluster-wide role; remove `workspace`")
            continue
        if key is not None:
            if not isinstance(key, str):
                errors.append(f"{where}: `key` must be a string")
                continue
            try:
                parsed = parse_key(key)
            except MalformedKey as exc:
                errors.append(
                    f"{where}: `key` is not a valid Tectonite API key ({exc}); keys read "
                    "tecto_<32 hex id>_<43 base62 secret><6 base62 checksum> — create one "
                    "with `tectonite api-key create` and copy it"
                )
                continue
            if parsed.key_id in key_ids:
                errors.append(
                    f"{where}: the key's id is used by the key on line {key_ids[parsed.key_id]}"
                )
                continue
            key_ids[parsed.key_id] = line
        entries.append(KeyEntry(description, role, workspace, key, line))
    return entries


_OBJECT = re.compile(
    r"^(?P<file>.+?): (?P<kind>entity|push source|feature view|realtime feature view|"
    r"feature service) '(?P<name>[^']+)': "
)
_SECTIONS = {
    "entity": "entities",
    "push source": "push_sources",
    "feature view": "feature_views",
    "realtime feature view": "realtime_feature_views",
    "feature service": "feature_services",
}


def with_lines(path: Path, messages: list[str]) -> list[str]:
    """Definition errors (`<file>: <kind> '<name>': …`) with the object's line after the file."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return messages
    lines: dict[tuple[str, str], int] = {}
    if isinstance(node, yaml.MappingNode):
        for section_key, section in node.value:
            if not isinstance(section, yaml.SequenceNode):
                continue
            for item in section.value:
                if not isinstance(item, yaml.MappingNode):
                    continue
                for key, value in item.value:
                    if key.value == "name" and isinstance(value, yaml.ScalarNode):
                        lines[(section_key.value, value.value)] = item.start_mark.line + 1
    out = []
    for message in messages:
        match = _OBJECT.match(message)
        line = lines.get((_SECTIONS[match["kind"]], match["name"])) if match else None
        if match and line is not None:
            message = f"{match['file']}:{line}:{message[len(match['file']) + 1 :]}"
        out.append(message)
    return out
