"""The scan-ahead thread: same items in the same order, bounded, errors reach the consumer."""

from __future__ import annotations

import threading

import pytest

from bucket_sync.sync.prefetch import prefetch


def test_items_arrive_in_order():
    assert list(prefetch(range(10_000), maxsize=7)) == list(range(10_000))


def test_producer_error_is_raised_in_the_consumer():
    def items():
        yield 1
        raise PermissionError("cannot read folder")

    it = prefetch(items())
    assert next(it) == 1
    with pytest.raises(PermissionError, match="cannot read folder"):
        next(it)


def test_producer_never_runs_more_than_maxsize_ahead():
    produced = []
    gate = threading.Event()

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    it = prefetch(items(), maxsize=5)
    gate.wait(0.3)  # give the producer time to run ahead as far as it can
    assert len(produced) <= 5 + 1  # the queue, plus the one item waiting to be put
    assert next(it) == 0
    it.close()  # an abandoned stream stops its producer
