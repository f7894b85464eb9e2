"""Where the engine's work runs: an executor factory, injected (s3transfer's way), so tests can run a whole
plan single-threaded and deterministic, and the real runs get bounded thread pools.

A factory is called as ``factory(workers, name)`` once per pool (files, blocks) and per run; the engine
shuts each executor down (``with``) when the run ends.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Callable, ParamSpec, TypeVar

ExecutorFactory = Callable[[int, str], Executor]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def thread_pools(workers: int, name: str) -> Executor:
    """The default: ``workers`` threads named after the pool."""
    return ThreadPoolExecutor(workers, thread_name_prefix=name)


class InlineExecutor(Executor):
    """Runs each task when it is submitted, in the submitting thread, and hands back a finished future.

    Nothing runs in parallel: a file's blocks go one after another and the files in plan order. Ctrl+C
    (and SystemExit) propagate at once instead of being stored in the future, as they would in a pool's
    worker, where the main thread sees them instead."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        future.set_running_or_notify_cancel()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - stored in the future, as a pool's worker does; Ctrl+C is not caught
            future.set_exception(exc)
        else:
            future.set_result(value)
        return future


def inline(_workers: int, _name: str) -> Executor:
    """The single-threaded factory (tests, debugging)."""
    return InlineExecutor()


__all__ = ["ExecutorFactory", "InlineExecutor", "inline", "thread_pools"]
