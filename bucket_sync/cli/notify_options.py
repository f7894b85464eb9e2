"""--notify-url and --notify-always, shared by watch and mirror (a new module: options.py is shared)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

from ..app.notify_url import NotifyTarget, parse_notify_url
from ..errors import UsageError


_F = TypeVar("_F", bound=Callable[..., Any])


def notify_options(f: _F) -> _F:
    f = click.option("--notify-always", is_flag=True,
                     help="With --notify-url: POST the summary after every run (watch: every batch that did "
                          "something), not only when something failed or was refused.")(f)
    f = click.option("--notify-url", metavar="URL",
                     help="POST the JSON summary (with a Slack/Teams \"text\") to this http(s) URL when a run "
                          "or a watch batch ends with failures or a safety-guard refusal; in the background, "
                          "retried with backoff. The URL is treated as a secret.")(f)
    return f


def make_notify_target(kw: dict[str, Any]) -> NotifyTarget | None:
    url, always = kw.pop("notify_url", None), kw.pop("notify_always", False)
    if not url:
        if always:
            raise UsageError("--notify-always needs --notify-url", hint="add --notify-url https://<your webhook>")
        return None
    return parse_notify_url(url, always=always)
