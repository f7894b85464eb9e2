"""The TOML config file: where it is, what keys it may hold, and how it becomes option defaults.

Keys mirror the long options (``concurrency``, ``api-url``, ``max-delete`` ...; ``_`` and ``-`` both
work). Top-level keys apply to every command, a ``[upload]`` / ``[mirror]`` ... section to one command,
``[auth]`` holds ``client-id`` / ``client-secret``, and ``[jobs.<name>]`` names a mirror job
(``source``, ``destination`` and any mirror option). Precedence is click's own: command line >
environment > config (click's default_map) > defaults.

Also where bucket-sync's own folders are (platformdirs; on Linux the XDG ones, as before): the config
folder, the state folder (``BUCKET_SYNC_STATE_DIR`` overrides it) and the cache folder
(``BUCKET_SYNC_CACHE_DIR``); :func:`ensure_private_dir` creates one or says which variable to set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Mapping

from .errors import ConfigError, UsageError

APP = "bucket-sync"

# Option keys a config file may set, and their types (validated so a typo is an error, not ignored).
OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "api-url": str, "ims-url": str, "concurrency": int, "block-size": (str, int), "exclude": list,
    "include": list, "checksum": bool, "bwlimit": (str, int), "overwrite": bool, "follow-symlinks": bool, "json": bool,
    "quiet": bool, "verbose": (int, bool), "dry-run": bool, "no-delete": bool, "max-delete": (str, int),
    "force": bool, "wait-lock": (int, float), "delete": bool, "debounce": (int, float),
    "rescan": (int, float), "polling": bool, "itwin": str, "max-retry-wait": (int, float),
    "redirect-port": int, "recursive": bool, "long": bool,
    # Filters, output and what uploads write.
    "ignore-case": bool, "min-size": (str, int), "max-size": (str, int), "min-age": (str, int), "max-age": (str, int),
    "stats": (int, float), "log-file": str, "content-type": str, "metadata": list,
    "modify-window": (str, int, float), "shard": str, "shard-by": str,
    # watch as a service, and alerts (watch and mirror).
    "metrics": str, "behind-after": (int, float), "notify-url": str, "notify-always": bool,
}
COMMANDS = ("upload", "download", "mirror", "watch", "ls", "rm", "url")
GROUP_COMMANDS = {"auth": ("login", "status", "logout"), "reality-data": ("move",)}
AUTH_KEYS = {"client-id", "client-secret", "scope", "redirect-port", "login-client-id", "cache-sas"}
JOB_KEYS = {"source", "destination"}
# [remotes.NAME]: exactly one of url / itwin / reality-data (a reality data may name its iTwin too).
REMOTE_KEYS = {"url", "itwin", "reality-data"}


# Environment variables that move bucket-sync's own folders (a container mounts a volume there, a read-only
# $HOME points them elsewhere). The config *file* has its own: BUCKET_SYNC_CONFIG.
STATE_DIR_ENV = "BUCKET_SYNC_STATE_DIR"
CACHE_DIR_ENV = "BUCKET_SYNC_CACHE_DIR"


def user_config_dir() -> Path:
    """Where ``config.toml`` lives by default (platformdirs' user config dir).

    Linux and other XDG systems: ``$XDG_CONFIG_HOME/bucket-sync`` (``~/.config/bucket-sync``); macOS:
    ``~/Library/Application Support/bucket-sync``; Windows: ``%APPDATA%\\bucket-sync``. ``--config`` or
    ``BUCKET_SYNC_CONFIG`` name another file.
    """
    import platformdirs  # a few ms: only when a folder is needed

    return Path(platformdirs.user_config_dir(APP, appauthor=False, roaming=True))


def user_state_dir() -> Path:
    """What bucket-sync keeps between runs: the saved sign-in, the cached SAS URLs, the pair locks.

    ``$BUCKET_SYNC_STATE_DIR`` when set (a container's volume, or any writable folder when ``$HOME`` is
    not), else platformdirs' user state dir: ``$XDG_STATE_HOME/bucket-sync`` (``~/.local/state/bucket-sync``)
    on Linux, ``~/Library/Application Support/bucket-sync`` on macOS, ``%LOCALAPPDATA%\\bucket-sync`` on
    Windows. It holds a refresh token: it is created with mode 0700 (:func:`ensure_private_dir`).
    """
    override = os.environ.get(STATE_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir(APP, appauthor=False))


def user_cache_dir() -> Path:
    """What may be lost at any time and only costs speed: the listing (blob metadata) cache.

    ``$BUCKET_SYNC_CACHE_DIR`` when set, else platformdirs' user cache dir: ``$XDG_CACHE_HOME/bucket-sync``
    (``~/.cache/bucket-sync``) on Linux, ``~/Library/Caches/bucket-sync`` on macOS,
    ``%LOCALAPPDATA%\\bucket-sync\\Cache`` on Windows.
    """
    override = os.environ.get(CACHE_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def ensure_private_dir(path: Path | str, *, env_var: str = STATE_DIR_ENV) -> Path:
    """Create ``path`` (and its parents) if needed, the folder itself with mode 0700, and check that it can
    be written to; UsageError (exit 2) naming ``env_var`` otherwise (an unwritable or missing ``$HOME`` in a
    container, a read-only volume), instead of a crash deep inside a run."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.is_dir():
            raise NotADirectoryError(20, "not a folder", str(path))
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable", str(path))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"cannot use the folder {path}: {reason}",
            hint=f"set {env_var} to a writable folder",
        ) from None
    return path


@dataclass(frozen=True)
class Config:
    path: Path | None
    common: Mapping[str, Any] = field(default_factory=dict)
    commands: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    auth: Mapping[str, Any] = field(default_factory=dict)
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    remotes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # [remotes.NAME] tables

    def exposes_secrets(self) -> bool:
        """Whether the file holds a SAS URL (or a client secret) and other users may read it (POSIX)."""
        # A webhook URL is a password too: whoever has it can post to the channel.
        notify = [self.common.get("notify-url")] + [c.get("notify-url") for c in self.commands.values()] + \
                 [j.get("notify-url") for j in self.jobs.values()]
        holds = (any("sig=" in r.get("url", "") for r in self.remotes.values()) or bool(self.auth.get("client-secret"))
                 or any(notify))
        if not holds or self.path is None or os.name != "posix":
            return False
        try:
            return bool(self.path.stat().st_mode & 0o077)
        except OSError:
            return False

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
    import tomllib  # here: most runs have no config file, and its parser is a few ms of regexes to compile

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", hint="see config.example.toml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(data, path)


def _norm(key: str) -> str:
    return key.replace("_", "-")


def _check_options(section: str, table: Mapping[str, Any], path: Path | None, extra: AbstractSet[str] = frozenset()) -> dict[str, Any]:
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
            assert isinstance(value, list)  # OPTION_TYPES, checked above
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
    remotes: dict[str, dict[str, str]] = {}
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
        elif key == "remotes":
            remotes = _check_remotes(value, path)
        elif key in COMMANDS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table")
            commands[key] = _check_options(f"[{key}]", value, path)
        elif isinstance(value, dict):
            raise ConfigError(f"{path}: unknown section [{key}]",
                              hint="sections: auth, jobs.<name>, remotes.<name>, " + ", ".join(COMMANDS))
        else:
            common.update(_check_options("the top level", {key: value}, path))
    return Config(path=path, common=common, commands=commands, auth=auth, jobs=jobs, remotes=remotes)


def _check_remotes(value: Any, path: Path | None) -> dict[str, dict[str, str]]:
    """[remotes.NAME] tables: the name's rule and the remote's own checks are targets.py's (when used)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [remotes] must hold [remotes.<name>] tables")
    remotes: dict[str, dict[str, str]] = {}
    for name, table in value.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [remotes.{name}] must be a table")
        keys = {_norm(k): v for k, v in table.items()}
        unknown = set(keys) - REMOTE_KEYS
        if unknown:
            raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} in [remotes.{name}]",
                              hint="a remote has url = \"<SAS container URL>\", or itwin = \"<iTwinId>\", or "
                                   "reality-data = \"<id>\" (with an optional itwin)")
        if not all(isinstance(v, str) for v in keys.values()):
            raise ConfigError(f"{path}: [remotes.{name}] values must be strings")
        kinds: list[str] = [k for k in ("url", "reality-data") if k in keys] or (["itwin"] if "itwin" in keys else [])
        if len(kinds) != 1 or ("url" in keys and len(keys) > 1):
            raise ConfigError(f"{path}: [remotes.{name}] needs exactly one of url, itwin or reality-data",
                              hint="e.g. [remotes.site] url = \"https://<account>.blob.core.windows.net/<container>?<sas>\"")
        remotes[name] = keys
    return remotes
