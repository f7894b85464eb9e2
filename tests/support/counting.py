"""A callable that returns a fixed value and counts its calls (``.calls``): for factories and loaders."""

from __future__ import annotations


def returning(value):
    calls: list[int] = []

    def call():
        calls.append(1)
        return value

    call.calls = calls
    return call
