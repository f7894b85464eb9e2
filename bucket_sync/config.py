"""The TOML config file: where it is, what keys it may hold, and how it becomes option defaults.

Keys mirror the long options (``concurrency``, ``api-url``, ``max-delete`` ...; ``_`` and ``-`` both
work). Top-level keys apply to every command, a ``[upload]`` / ``[mirror]`` ... section to one command,
``[auth]`` holds ``client-id`` / ``client-secret``, and ``[jobs.<name>]`` names a mirror job
(``source``, ``destination`` and any mirror option). Precedence is click's own: command line >
environment > config (click's default_map) > defaults.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

APP = "bucket-sync"

# Option keys a config file may set, and their types (validated so a typo is an error, not ignored).
OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "api-url": str, "ims-url": str, "concurrency": int, "block-size": (str, int), "exclude": list,
    "include": list, "checksum": bool, "bwlimit": (str, int), "overwrite": bool, "follow-symlinks": bool, "json": bool,
    "quiet": bool, "verbose": (int, bool), "dry-run": bool, "no-delete": bool, "max-delete": (str, int),
    "force": bool, "wait-lock": (int, float), "delete": bool, "debounce": (int, float),
    "rescan": (int, float), "polling": bool, "itwin": str, "max-retry-wait": (int, float),
    "redirect-port": int, "recursive": bool, "long": bool,
}
COMMANDS = ("upload", "download", "mirror", "watch", "ls", "rm", "url")
GROUP_COMMANDS = {"auth": ("login", "status", "logout"), "reality-data": ("move",)}
AUTH_KEYS = {"client-id", "client-secret", "scope", "redirect-port", "login-client-id", "cache-sas"}
JOB_KEYS = {"source", "destination"}


def user_config_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / APP


def user_state_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / APP


@dataclass(frozen=True)
class Config:
    path: Path | None
    common: Mapping[str, Any] = field(default_factory=dict)
    commands: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    auth: Mapping[str, Any] = field(default_factory=dict)
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def default_map(self) -> dict[str, dict[str, Any]]:
        """click's default_map: per command, its options' defaults from the file (param names use '_')."""
        out: dict[str, dict[str, Any]] = {}
        for command in COMMANDS:
            merged = {**self.common, **self.commands.get(command, {})}
            out[command] = {k.replace("-", "_"): v for k, v in merged.items()}
        # Subcommands of groups have no section of their own, but top-level keys (api-url, json...) apply.
        common = {k.replace("-", "_"): v for k, v in self.common.items()}
        for group, subcommands in GROUP_COMMANDS.items():
            out[group] = {sub: dict(common) for sub in subcommands}
        return out


def find_config_path(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """(path, required): an explicit or $BUCKET_SYNC_CONFIG path must exist; the user default may not."""
    if explicit:
        return Path(explicit).expanduser(), True
    if env.get("BUCKET_SYNC_CONFIG"):
        return Path(env["BUCKET_SYNC_CONFIG"]).expanduser(), True
    return user_config_dir() / "config.toml", False


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    path, required = find_config_path(explicit, env)
    if path is None or not path.exists():
        if required:
            raise ConfigError(f"config file not found: {path}", hint="check --config or BUCKET_SYNC_CONFIG")
        return Config(path=None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", hint="see config.example.toml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(data, path)


def _norm(key: str) -> str:
    return key.replace("_", "-")


def _check_options(section: str, table: Mapping[str, Any], path: Path | None, extra: set[str] = frozenset()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = _norm(raw_key)
        if key in extra:
            out[key] = value
            continue
        expected = OPTION_TYPES.get(key)
        if expected is None:
            raise ConfigError(f"{path}: unknown key {raw_key!r} in {section}", hint="see config.example.toml for every key")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: {section}.{raw_key} has the wrong type ({type(value).__name__})")
        if key in ("exclude", "include"):
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: {section}.{raw_key} must be a list of strings")
            value = tuple(value)
        out[key] = value
    return out


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    common: dict[str, Any] = {}
    commands: dict[str, dict[str, Any]] = {}
    auth: dict[str, Any] = {}
    jobs: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "auth":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [auth] must be a table")
            for k in value:
                if _norm(k) not in AUTH_KEYS:
                    raise ConfigError(f"{path}: unknown key {k!r} in [auth]", hint=f"known: {', '.join(sorted(AUTH_KEYS))}")
            auth = {_norm(k): v for k, v in value.items()}
        elif key == "jobs":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [jobs] must hold [jobs.<name>] tables")
            for name, job in value.items():
                if not isinstance(job, dict):
                    raise ConfigError(f"{path}: [jobs.{name}] must be a table")
                checked = _check_options(f"[jobs.{name}]", job, path, extra=JOB_KEYS)
                for required in ("source", "destination"):
                    if not isinstance(checked.get(required), str):
                        raise ConfigError(f"{path}: [jobs.{name}] needs a {required} string")
                jobs[name] = checked
        elif key in COMMANDS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table")
            commands[key] = _check_options(f"[{key}]", value, path)
        elif isinstance(value, dict):
            raise ConfigError(f"{path}: unknown section [{key}]", hint="sections: auth, jobs.<name>, " + ", ".join(COMMANDS))
        else:
            common.update(_check_options("the top level", {key: value}, path))
    return Config(path=path, common=common, commands=commands, auth=auth, jobs=jobs)
