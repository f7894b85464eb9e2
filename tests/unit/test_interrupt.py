"""Ctrl+C and Ctrl+Break (app/interrupt.py): a run that is interrupted says 130 and stops its work; Ctrl+Break
does what Ctrl+C does, including in watch, whose own handler it reaches."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from bucket_sync.app import interrupt
from bucket_sync.errors import AuthError, ExitCode
from bucket_sync.sync.listener import Tally
from bucket_sync.sync.model import Action, Status, TransferResult


def test_an_interrupted_run_stops_its_work_and_says_130():
    stop, tally = threading.Event(), Tally()
    tally.on_result(TransferResult(Action.UPLOAD, "a", 1, Status.FAILED, exit_code=1))
    tally.set_fatal(AuthError("SAS expired"))
    with interrupt.interruptible(stop, tally):
        raise KeyboardInterrupt
    assert stop.is_set() and tally.exit_code == ExitCode.INTERRUPTED == 130  # 130 wins over 3 and 1
    assert tally.summary("upload").exit_code == 130


def test_other_errors_pass_through():
    stop, tally = threading.Event(), Tally()
    with pytest.raises(AuthError):
        with interrupt.interruptible(stop, tally):
            raise AuthError("no")
    assert not stop.is_set() and not tally.interrupted


@pytest.fixture
def fake_sigbreak(monkeypatch):
    """Windows' SIGBREAK, played by SIGUSR1 (Linux and macOS have no SIGBREAK)."""
    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("needs SIGUSR1 to stand in for SIGBREAK")
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}
    yield signal.SIGUSR1
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_ctrl_break_reaches_whatever_handles_ctrl_c(fake_sigbreak):
    heard = []
    signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))  # e.g. watch's own handler
    interrupt.route_ctrl_break()
    os.kill(os.getpid(), fake_sigbreak)
    assert heard == [signal.SIGINT]


def test_ctrl_break_is_a_keyboard_interrupt_where_ctrl_c_is_one(fake_sigbreak):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt.route_ctrl_break()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), fake_sigbreak)
        for _ in range(100):  # the handler runs between bytecodes of the main thread
            pass


def test_without_sigbreak_nothing_is_installed(monkeypatch):
    monkeypatch.delattr(signal, "SIGBREAK", raising=False)
    before = signal.getsignal(signal.SIGINT)
    interrupt.route_ctrl_break()
    assert signal.getsignal(signal.SIGINT) is before
