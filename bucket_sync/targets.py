"""Parse the REMOTE argument: ``itwin://``, ``reality-data://`` or a SAS container URL.

Everything here is pure: a bad id or URL is a usage error (exit 2) before any network call.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import unquote

from .errors import UsageError
from .sas import ContainerSas

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def require_guid(value: str, what: str) -> str:
    if not is_guid(value):
        raise UsageError(
            f"{what} {value!r} is not a GUID",
            hint=f"the {what} looks like 90b86d36-ca6f-4d9f-a795-e3118d2a0073; copy it from the iTwin Platform",
        )
    return value.lower()


def normalize_prefix(prefix: str) -> str:
    """'/a//b/' -> 'a/b'; '' means the container root. Backslashes are not separators here."""
    parts = [p for p in prefix.split("/") if p]
    for p in parts:
        if p in (".", ".."):
            raise UsageError(f"the remote prefix may not contain '.' or '..' segments: {prefix!r}",
                             hint="name the folder directly, e.g. itwin://<iTwinId>/photos/2024")
    return "/".join(parts)


@dataclass(frozen=True)
class ItwinBucketTarget:
    itwin_id: str
    prefix: str

    def describe(self) -> str:
        return f"itwin://{self.itwin_id}/{self.prefix}"


@dataclass(frozen=True)
class RealityDataTarget:
    reality_data_id: str
    prefix: str
    itwin_id: str | None = None

    def describe(self) -> str:
        return f"reality-data://{self.reality_data_id}/{self.prefix}"


@dataclass(frozen=True)
class SasUrlTarget:
    sas: ContainerSas
    prefix: str

    def describe(self) -> str:
        return f"{self.sas.container_url}/{self.prefix}".rstrip("/")


Remote = ItwinBucketTarget | RealityDataTarget | SasUrlTarget


# Named remotes (rclone's NAME:<prefix>): [remotes.NAME] in the config file, or BUCKET_SYNC_REMOTE_<NAME>_URL.
# A SAS URL kept there is out of the process list and the shell history. Names have two characters at
# least, so that a Windows drive letter (C:\photos) is never taken for one.
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]+):(?!//)(.*)$", re.S)
REMOTE_ENV_PREFIX = "BUCKET_SYNC_REMOTE_"
_named: dict[str, dict[str, str]] = {}


def set_named_remotes(config_remotes: Mapping[str, Mapping[str, str]], env: Mapping[str, str]) -> None:
    """Install the named remotes of this run (called once, by the CLI, from the config file and the
    environment; the environment wins, as everywhere)."""
    _named.clear()
    for name, table in config_remotes.items():
        _named[name.lower()] = dict(table)
    for key, value in env.items():
        if key.startswith(REMOTE_ENV_PREFIX) and key.endswith("_URL") and value:
            name = key[len(REMOTE_ENV_PREFIX):-len("_URL")].lower()
            if name:
                _named[name] = {"url": value}
                _named[name.replace("_", "-")] = {"url": value}


def _named_remote(text: str) -> tuple[str, dict[str, str], str] | None:
    m = _NAME.match(text)
    if not m:
        return None
    table = _named.get(m.group(1).lower())
    return (m.group(1), table, m.group(2)) if table is not None else None


def looks_remote(text: str) -> bool:
    lowered = text.lower()
    return lowered.startswith(("itwin://", "reality-data://", "https://", "http://")) or _named_remote(text) is not None


def parse_remote(text: str, *, itwin_id: str | None = None) -> Remote:
    """Parse a REMOTE argument. ``itwin_id`` is the ``--itwin`` option, used by reality-data targets."""
    named = _named_remote(text)
    if named is not None:
        return _parse_named(*named, itwin_id=itwin_id)
    lowered = text.lower()
    if lowered.startswith("itwin://"):
        ident, _, prefix = text[len("itwin://"):].partition("/")
        return ItwinBucketTarget(require_guid(ident, "iTwin id"), normalize_prefix(unquote(prefix)))
    if lowered.startswith("reality-data://"):
        ident, _, prefix = text[len("reality-data://"):].partition("/")
        itwin = require_guid(itwin_id, "iTwin id") if itwin_id else None
        return RealityDataTarget(require_guid(ident, "reality data id"), normalize_prefix(unquote(prefix)), itwin)
    if lowered.startswith(("https://", "http://")):
        return _parse_sas_url(text)
    raise UsageError(
        f"not a remote location: {text!r}",
        hint="use itwin://<iTwinId>/<prefix>, reality-data://<id>/<prefix> or a SAS container URL",
    )


def _parse_named(name: str, table: dict[str, str], prefix: str, *, itwin_id: str | None) -> Remote:
    """NAME:<prefix>: the remote the name stands for, with <prefix> under its own prefix."""
    try:
        if "url" in table:
            if not table["url"].lower().startswith(("https://", "http://", "itwin://", "reality-data://")):
                raise UsageError("not a container URL")
            base = parse_remote(table["url"], itwin_id=itwin_id)
        elif "reality-data" in table:
            base = parse_remote(f"reality-data://{table['reality-data']}", itwin_id=itwin_id or table.get("itwin"))
        else:
            base = parse_remote(f"itwin://{table['itwin']}")
    except UsageError as exc:
        raise UsageError(f"the remote {name!r} (config file [remotes.{name}] or {REMOTE_ENV_PREFIX}"
                         f"{name.upper().replace('-', '_')}_URL) is not usable: {exc.message}",
                         hint=exc.hint or "see README, \"Named remotes\"") from None
    extra = normalize_prefix(unquote(prefix))
    joined = "/".join(p for p in (base.prefix, extra) if p)
    return dataclasses.replace(base, prefix=joined)


def _parse_sas_url(text: str) -> SasUrlTarget:
    """A SAS URL names a container, optionally followed by a prefix: split after the container segment.

    Azure puts the container first in the path; Azurite and other path-style endpoints put the account
    first (``/devstoreaccount1/<container>``), recognised by a loopback or IP host.
    """
    sas = ContainerSas.from_url(text)
    scheme, _, rest = sas.container_url.partition("://")
    host, _, path = rest.partition("/")
    segments = [unquote(s) for s in path.split("/") if s]
    path_style = _is_path_style(host)
    container_index = 1 if path_style else 0
    if len(segments) <= container_index:
        raise UsageError(
            f"the URL names no container: {sas.redacted_url}",
            hint="give the container URL, e.g. https://<account>.blob.core.windows.net/<container>?<sas>",
        )
    base_path = "/".join(path.split("/")[: container_index + 1])
    prefix = normalize_prefix("/".join(segments[container_index + 1:]))
    container = ContainerSas(
        container_url=f"{scheme}://{host}/{base_path}",
        token=sas.token,
        expires_at=sas.expires_at,
        permissions=sas.permissions,
    )
    return SasUrlTarget(container, prefix)


def _is_path_style(host: str) -> bool:
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if hostname in ("localhost", "host.docker.internal"):
        return True
    return bool(re.match(r"^\d+\.\d+\.\d+\.\d+$", hostname) or hostname.startswith("["))


# What is documented about each kind of target's SAS: named when a command is refused for a permission.
BUCKET_LIMITS = "the documented Reality Modeling bucket SAS is sp=rw: read and write, no list (l), no delete (d)"


def access_labels(target: Remote) -> tuple[str, str]:
    """(origin, limits): how refusals name the SAS of ``target``, and what is documented about it."""
    if isinstance(target, ItwinBucketTarget):
        return f"the Reality Modeling bucket SAS of itwin://{target.itwin_id}", BUCKET_LIMITS
    if isinstance(target, RealityDataTarget):
        return f"the access the API gave for reality-data://{target.reality_data_id}", ""
    return "the SAS URL", ""
