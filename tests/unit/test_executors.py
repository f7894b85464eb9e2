"""The engine's executors: the inline one runs each task at submit, in order, in the caller's thread."""

from __future__ import annotations

import threading

import pytest

from bucket_sync.sync.executors import inline, thread_pools


def test_inline_runs_tasks_in_submit_order_in_the_calling_thread():
    ran = []
    with inline(8, "file") as pool:
        futures = [pool.submit(lambda i=i: ran.append((i, threading.get_ident())) or i) for i in range(3)]
        assert all(f.done() for f in futures)  # finished before submit returned
    assert [f.result() for f in futures] == [0, 1, 2]
    assert ran == [(i, threading.get_ident()) for i in range(3)]


def test_inline_keeps_an_error_in_its_future_as_a_pool_would():
    def boom():
        raise ValueError("bad block")

    future = inline(1, "block").submit(boom)
    assert isinstance(future.exception(), ValueError)


def test_inline_lets_ctrl_c_through_at_once():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        inline(1, "file").submit(interrupted)


def test_the_default_pools_name_their_threads():
    with thread_pools(2, "file") as pool:
        assert pool.submit(lambda: threading.current_thread().name).result().startswith("file")
