"""The `bucket-sync` command: the group, and the one place errors become exit codes and messages."""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..app import interrupt, render
from ..app.render import with_time
from ..app.run_log import RESULTS_LOGGER
from ..config import load_config
from ..errors import BucketSyncError, ExitCode
from ..redact import redact
from ..targets import set_named_remotes
from .error_output import echo_error

if TYPE_CHECKING:
    from ..platform.credentials import TokenProvider

log = logging.getLogger("bucket_sync")

# command -> (module in this package, attribute), in the order --help lists them.
COMMANDS = {
    "upload": ("transfer_cmds", "upload"), "download": ("transfer_cmds", "download"),
    "mirror": ("mirror_cmd", "mirror"), "ls": ("remote_cmds", "ls"), "rm": ("remote_cmds", "rm"),
    "url": ("remote_cmds", "url"), "check": ("check_cmd", "check"), "auth": ("auth_cmds", "auth"),
    "reality-data": ("reality_data_cmds", "reality_data"), "watch": ("watch_cmd", "watch"),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs. A cron job's no-op mirror would otherwise
    pay, every few minutes, for importing the watcher (watchdog), the sign-in flow and the rest."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        command = with_env_vars(getattr(importlib.import_module(f".{module}", __package__), attribute))
        # What the imports made (~21,000 objects: functions, classes, constants) lives as long as the process.
        # Frozen, the collector no longer walks it in each full collection, nor in the interpreter's exit,
        # where those walks were ~20 ms of CPU of a no-op run. What the run makes is collected as before;
        # the price is that garbage cycles left by the imports themselves (a few) are never freed.
        gc.freeze()
        return command


ENV_PREFIX = "BUCKET_SYNC_"
# Options whose variable is another's (the platform's own names, or the config file's, read before click).
_OWN_ENV = {"config_path"}


def with_env_vars(command: click.Command) -> click.Command:
    """Every option of ``command`` (and of its subcommands) can also come from ``BUCKET_SYNC_<OPTION>``,
    shown in --help: cron jobs, containers and CI set options through the environment. Written once here
    instead of on each of some eighty options. Precedence stays click's: command line > environment >
    config file > default."""
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name not in _OWN_ENV \
                and not getattr(param, "_bucket_sync_env", False):
            if param.envvar is None:
                long_name = max(param.opts, key=len).lstrip("-")
                param.envvar = ENV_PREFIX + long_name.upper().replace("-", "_")
            param.show_envvar = True
            param._bucket_sync_env = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_env_vars(sub)
    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="bucket-sync")
def cli() -> None:
    """Keep local folders in sync with Bentley iTwin Platform storage.

    REMOTE is itwin://<iTwinId>/<prefix> (the iTwin's Reality Modeling bucket),
    reality-data://<realityDataId>/<prefix>, or a SAS container URL.
    """



def _peek_option(args: list[str], name: str) -> str | None:
    """The value of ``name`` anywhere on the line (``--name V`` or ``--name=V``). --config and --job must
    be read before click parses anything, because they decide the option defaults click will use."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _command_name(args: list[str]) -> str:
    for arg in args:
        if not arg.startswith("-"):
            return arg
    return "bucket-sync"


def report_error(exc: BucketSyncError, *, json_mode: bool, command: str) -> None:
    message = redact(exc.message)
    hint = redact(exc.hint) if exc.hint else None
    echo_error(message, hint)
    # The log file (--log-file) keeps the error too; the console has just shown it.
    logging.getLogger(RESULTS_LOGGER).error("error: %s%s", message, f" (hint: {hint})" if hint else "")
    if json_mode:
        obj = {"event": "summary", "op": command, "uploaded": 0, "downloaded": 0, "deleted": 0, "skipped": 0,
               "failed": 0, "bytes": 0, "seconds": 0.0, "exit_code": int(exc.exit_code), "error": message}
        click.echo(json.dumps(with_time(obj)))


def report_interrupted(*, json_mode: bool, command: str) -> int:
    click.echo("interrupted", err=True)
    if json_mode:
        obj = {"event": "summary", "op": command, "uploaded": 0, "downloaded": 0, "deleted": 0, "skipped": 0,
               "failed": 0, "bytes": 0, "seconds": 0.0, "exit_code": interrupt.INTERRUPTED, "error": "interrupted"}
        click.echo(json.dumps(with_time(obj)))
    return interrupt.INTERRUPTED


def main(argv: list[str] | None = None) -> None:
    # Before anything can print: a cp1252 console or pipe (Windows) escapes what it cannot show instead of
    # raising UnicodeEncodeError from the first name outside its code page.
    render.make_console_safe()
    interrupt.route_ctrl_break()
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args
    command = _command_name(args)
    try:
        config = load_config(_peek_option(args, "--config"), os.environ)
        # `json = true` in the config (top level, the command's section or a job) means JSON output too.
        json_mode = json_mode or bool(config.default_map().get(command, {}).get("json"))
        job = _peek_option(args, "--job")
        if job and job in config.jobs:
            json_mode = json_mode or bool(config.jobs[job].get("json"))
        set_named_remotes(config.remotes, os.environ)
        if config.exposes_secrets():
            click.echo(f"warning: {config.path} holds a secret (a SAS URL or client secret) and other users can "
                       f"read it; run: chmod 600 {config.path}", err=True)
        obj: dict[str, Any] = {"config": config}
        _install_login_loader(obj)
        gc.freeze()  # as LazyGroup.get_command does: this module's imports, for the commands click answers alone
        code = cli.main(args=args, prog_name="bucket-sync", standalone_mode=False,
                        default_map=config.default_map(), obj=obj)
        code = code if isinstance(code, int) else 0
    except click.ClickException as exc:
        exc.show()
        code = ExitCode.USAGE
    except click.exceptions.Abort:  # click's own Ctrl+C (at a prompt)
        code = report_interrupted(json_mode=json_mode, command=command)
    except BucketSyncError as exc:
        report_error(exc, json_mode=json_mode, command=command)
        code = exc.exit_code
    except KeyboardInterrupt:  # before a run had its summary to print (resolving, signing in, ls...)
        code = report_interrupted(json_mode=json_mode, command=command)
    except Exception as exc:  # a bug: say so plainly, never a raw traceback (it could carry a URL)
        echo_error(f"unexpected {type(exc).__name__}: {redact(exc)}", "run again with -vv for details, and report it")
        log.debug("traceback", exc_info=True)
        code = ExitCode.FAILED
    if int(code) == interrupt.INTERRUPTED:
        interrupt.exit_at_next_interrupt()
    sys.exit(int(code))


def _install_login_loader(obj: dict[str, Any]) -> None:
    """The cached `auth login` session, read only when credentials are needed (importing the login
    store pulls in the HTTP client, which a run with a SAS URL never uses)."""

    def load_cached_login() -> TokenProvider | None:
        from ..platform.login_store import load_cached_login as load

        return load()

    obj["cached_login_loader"] = load_cached_login
