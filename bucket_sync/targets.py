"""Parse the REMOTE argument: ``itwin://``, ``reality-data://`` or a SAS container URL.

Everything here is pure: a bad id or URL is a usage error (exit 2) before any network call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


def looks_remote(text: str) -> bool:
    lowered = text.lower()
    return lowered.startswith(("itwin://", "reality-data://", "https://", "http://"))


def parse_remote(text: str, *, itwin_id: str | None = None) -> Remote:
    """Parse a REMOTE argument. ``itwin_id`` is the ``--itwin`` option, used by reality-data targets."""
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
