"""Realtime transforms run on a small pool of threads, never on the request thread.

A transform is the administrator's code: it may raise anything or never return. The request
thread hands the request's transform work to the pool as one job and waits for it until the
request's deadline (`app.deadline`); past it the request answers 504 `Timed out` (code 4), as
Tecton's serving backend does after 2 s, and the job is abandoned. Other requests never wait on
the pool, so a runaway transform cannot hold up views without transforms, metadata or probes.

Threads cannot be killed. An abandoned job is asked to stop: `TransformTimedOut` is raised in
its thread at its next Python instruction, which ends loops and slow pure-Python code at once
and frees the thread. Only the user's own code is interrupted so (jobs mark it with
`user_code()`): an exception raised at an arbitrary point of Tectonite's code could leave a lock
held, so there a job stops at its next call into user code instead. A transform that ignores
the request (it catches everything, or waits in C code such as `time.sleep`) keeps its thread
until it returns; the pool starts other threads in its place, up to `max_threads` in all, and
once every thread is held by such a job, realtime requests answer 504 at once until one
returns. Idle threads end after `idle_seconds`.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.errors import DeadlineExceeded

T = TypeVar("T")

IDLE_SECONDS = 10.0

_WAITING, _RUNNING, _FINISHED, _CANCELLED = range(4)


class TransformTimedOut(BaseException):
    """Raised inside a job that ran past its request's deadline, to make it stop."""


@dataclass(eq=False, slots=True)
class _Job(Generic[T]):
    call: Callable[[], T]
    # Held from creation until the job finishes: waiting for it is one C-level acquire (the
    # pool's hand-offs use only such primitives, the cheapest Python has).
    done: threading.Lock
    state: int = _WAITING
    thread_id: int = 0
    abandoned: bool = False
    in_user_code: bool = False
    result: T | None = None
    error: BaseException | None = None


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Have `exception` raised in the thread at its next instruction (None: no longer)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


def _withdraw_stop(job: _Job[Any]) -> None:
    """A stop request for an abandoned job that has not fired yet must not fire later, in code
    that is not the user's."""
    if job.abandoned:
        _raise_in(job.thread_id, None)


class TransformPool:
    """Runs jobs on up to `max_threads` threads, each waited for until a deadline."""

    def __init__(self, max_threads: int, *, idle_seconds: float = IDLE_SECONDS) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        self._queued = 0  # jobs put and not yet taken (cancelled ones included)
        self._threads = 0
        self._idle = 0  # threads waiting for a job
        self._stuck = 0  # abandoned jobs still running
        self._local = threading.local()  # .job: the job a pool thread runs

    @property
    def threads(self) -> int:
        """Threads alive now (idle, busy or stuck)."""
        return self._threads

    @property
    def stuck(self) -> int:
        """Threads held by jobs that ran past their deadline and have not returned."""
        return self._stuck

    def run(self, call: Callable[[], T], deadline: float | None) -> T:
        """`call()`'s result or exception, or DeadlineExceeded (504) at `deadline`
        (`time.monotonic()` scale; None: no limit)."""
        done = threading.Lock()
        done.acquire()
        job: _Job[T] = _Job(call, done)
        with self._lock:
            if self._stuck >= self.max_threads:
                raise DeadlineExceeded("Timed out")
            self._queued += 1
            spawn = self._queued > self._idle and self._threads < self.max_threads
            if spawn:
                self._threads += 1
        self._queue.put(job)
        if spawn:
            try:
                threading.Thread(
                    target=self._serve, name="tectonite-transform", daemon=True
                ).start()
            except RuntimeError:  # no thread to be had: the job waits for a busy one
                with self._lock:
                    self._threads -= 1
        timeout = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not job.done.acquire(timeout=timeout):
            with self._lock:
                if job.state == _WAITING:
                    job.state = _CANCELLED  # the thread that takes it skips it
                    raise DeadlineExceeded("Timed out")
                if job.state == _RUNNING:
                    job.abandoned = True
                    self._stuck += 1
                    if job.in_user_code:
                        _raise_in(job.thread_id, TransformTimedOut)
                    raise DeadlineExceeded("Timed out")
            # Finished just now: its answer still counts.
        if job.error is not None:
            if isinstance(job.error, Exception):
                raise job.error
            # Jobs turn what user code raises into answers; nothing else raises the others.
            raise DeadlineExceeded("Timed out") from job.error  # pragma: no cover
        return job.result  # type: ignore[return-value]  # set when there is no error

    @contextmanager
    def user_code(self) -> Iterator[None]:
        """Around a call into the user's code (a transform, or its file's top level): the only
        code a stop request interrupts. An abandoned job stops here instead of calling more."""
        job: _Job[Any] | None = getattr(self._local, "job", None)
        if job is None:  # not on a pool thread (explain, the CLI)
            yield
            return
        with self._lock:
            if job.abandoned:
                raise TransformTimedOut()
            job.in_user_code = True
        try:
            yield
        finally:
            with self._lock:
                job.in_user_code = False
                _withdraw_stop(job)

    # ------------------------------------------------------------------ pool threads

    def _serve(self) -> None:
        me = threading.get_ident()
        while True:
            job: _Job[Any] | None = None
            try:
                job = self._next(me)
                if job is None:
                    return
                self._local.job = job
                try:
                    job.result = job.call()
                except BaseException as exc:  # the caller's answer, whatever it is
                    job.error = exc
                finally:
                    self._local.job = None
                    self._finish(job)
            except TransformTimedOut:
                # Raised a moment too late (after the job returned): the job was abandoned, so
                # nothing waits for it; only the bookkeeping may be left to do.
                if job is not None:
                    self._finish(job)

    def _next(self, me: int) -> _Job[Any] | None:
        """The next job, marked running on this thread; None once idle for `idle_seconds`."""
        while True:
            with self._lock:
                self._idle += 1
            try:
                job = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._queued == 0:
                        self._threads -= 1
                        return None
                continue  # a job was put just now: take it
            with self._lock:
                self._idle -= 1
                self._queued -= 1
                if job.state == _CANCELLED:
                    continue
                job.state = _RUNNING
                job.thread_id = me
                return job

    def _finish(self, job: _Job[Any]) -> None:
        """Mark `job` finished; idempotent. A stop request raised in this thread after the job
        returned is withdrawn first, so it can never hit the next job."""
        with self._lock:
            _withdraw_stop(job)
            if job.state != _RUNNING:
                return
            job.state = _FINISHED
            if job.abandoned:
                self._stuck -= 1
        job.done.release()
