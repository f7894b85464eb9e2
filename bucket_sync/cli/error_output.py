"""How every command shows an error: ``error: <message>`` and, when there is one, ``  hint: <hint>`` on
stderr, both through the redactor (no signature, token or secret ever reaches the terminal)."""

from __future__ import annotations

import click

from ..redact import redact


def echo_error(message: str, hint: str | None = None) -> None:
    click.echo(f"error: {redact(message)}", err=True)
    if hint:
        click.echo(f"  hint: {redact(hint)}", err=True)
