"""Realtime transforms: loaded from the user's file at apply time, run from the database later.

`apply` stores the whole source file and the function name, so every server process can run the
transform without the definitions file. A `TransformCache` (one per app) compiles a stored
source once and keeps it by the hash of its text (its version).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import types
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.lru import LruDict

Transform = Callable[..., Any]


class TransformError(Exception):
    """The transform file or function cannot be loaded, or its signature does not fit."""


@dataclass(frozen=True)
class LoadedTransform:
    function: Transform
    source: str


def describe_exception(exc: BaseException) -> str:
    """`<ExceptionType>: <message>`, Tecton's form; user code's `__str__` may itself raise."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # whatever it raises, the type name still says enough
        return name
    return f"{name}: {text}" if text else name


def transform_version(source: str, function: str) -> str:
    return hashlib.sha256(f"{function}\0{source}".encode()).hexdigest()[:16]


def _compile(source: str, function: str, filename: str) -> Transform:
    module = types.ModuleType(f"tectonite_transform_{transform_version(source, function)}")
    module.__file__ = filename
    try:
        code = compile(source, filename, "exec")
        exec(code, module.__dict__)  # noqa: S102 (running the administrator's applied code is the feature)
    except SyntaxError as exc:
        raise TransformError(
            f"cannot load {filename}: SyntaxError: {exc.msg} (line {exc.lineno})"
        ) from None
    except BaseException as exc:  # user code at import time may raise anything, even SystemExit
        raise TransformError(f"cannot load {filename}: {describe_exception(exc)}") from None
    target = module.__dict__.get(function)
    if not callable(target):
        raise TransformError(f"{filename} has no function {function!r}")
    transform: Transform = target
    return transform


def check_signature(function: Transform, source_count: int, label: str) -> None:
    """The function must take one positional argument per source, in order."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    required = [p for p in positional if p.default is p.empty]
    if has_varargs and len(required) <= source_count:
        return
    if not len(required) <= source_count <= len(positional):
        names = ", ".join(p.name for p in positional) or "no parameters"
        raise TransformError(
            f"{label} takes {len(positional)} argument(s) ({names}) but the view has "
            f"{source_count} source(s); it must take one argument per source, in order"
        )


def load_transform(path: Path, function: str, source_count: int) -> LoadedTransform:
    """Load `function` from the file at `path` and check it against the view's sources."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TransformError(f"cannot read transform file {path}: {exc.strerror}") from None
    compiled = _compile(source, function, str(path))
    check_signature(compiled, source_count, f"{path.name}:{function}")
    return LoadedTransform(compiled, source)


# Compiled transforms kept per app; more (many re-applied versions) drop the least recently used.
MAX_COMPILED_TRANSFORMS = 1024


class TransformCache:
    """Stored transforms compiled once per version (the hash of their text); one per app.

    Compiling runs the file's top-level code, which may take any time: it happens outside the
    lock, so one slow file never holds up another (two threads may compile the same version at
    once; the first stored wins)."""

    def __init__(self, max_entries: int = MAX_COMPILED_TRANSFORMS) -> None:
        self._compiled: LruDict[str, Transform] = LruDict(max_entries)
        self._lock = threading.Lock()

    def compiled(
        self,
        source: str,
        function: str,
        label: str,
        user_code: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> Transform:
        """The stored transform, compiled on first use; `user_code()` is entered around running
        the file's top level (the caller's guard for user code)."""
        version = transform_version(source, function)
        with self._lock:
            compiled = self._compiled.get(version)
            if compiled is not None:
                self._compiled.touch(version)
                return compiled
        with user_code():
            compiled = _compile(source, function, f"<transform of {label}>")
        with self._lock:
            stored = self._compiled.get(version)
            if stored is not None:
                return stored
            self._compiled[version] = compiled
        return compiled

    def __len__(self) -> int:
        return len(self._compiled)
