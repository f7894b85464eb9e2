"""check: what a target's SAS allows, measured: ``sp=``, one harmless probe per permission, the verdict for
each command (from the same rules the commands follow, sync/access.py), and the expiry.

The first thing to run against a new tenant, and what a user pastes into a bug report: it prints no
secret (the container address has no query string).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import BucketSyncError
from ..redact import redact
from ..sas import SasSource, permission_name
from ..sync.access import DELETE, LIST, READ, WRITE, Access, CommandVerdict, command_verdicts
from ..storage.container import Storage
from ..targets import ItwinBucketTarget, RealityDataTarget, Remote, access_labels
from ..timefmt import rfc3339

if TYPE_CHECKING:
    from .context import Globals

LETTERS = (LIST, READ, WRITE, DELETE)


@dataclass(frozen=True)
class SasReport:
    role: str  # "bucket", "SAS URL", "read access", "write access"
    permissions: str | None  # sp= as given ('' when absent); None when the SAS could not be had
    expires: datetime | None
    error: str | None = None  # why it could not be had (e.g. the API refused write access)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        left = (self.expires - now).total_seconds() if self.expires else None
        return {"role": self.role, "permissions": self.permissions, "error": self.error,
                "expires": rfc3339(self.expires) if self.expires else None,
                "seconds_left": round(left) if left is not None else None}


@dataclass(frozen=True)
class ProbeReport:
    permission: str  # l, r, w, d
    via: str  # which SAS was probed (its role)
    in_sp: bool | None  # None: the SAS names no permissions (no sp=)
    granted: bool | None  # what storage said; None when its answer said neither
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"permission": self.permission, "name": permission_name(self.permission), "via": self.via,
                "in_sp": self.in_sp, "granted": self.granted, "detail": self.detail}


@dataclass(frozen=True)
class CheckReport:
    target: str
    container: str
    sas: tuple[SasReport, ...]
    probes: tuple[ProbeReport, ...]
    commands: tuple[CommandVerdict, ...]

    @property
    def exit_code(self) -> int:
        """0 when storage answered every probe one way or the other; 1 when some answer said neither."""
        return 0 if all(p.granted is not None for p in self.probes) else 1

    def as_event(self) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        return {"event": "check", "target": self.target, "container": self.container,
                "sas": [s.as_dict(now) for s in self.sas], "probes": [p.as_dict() for p in self.probes],
                "commands": [{"command": c.command, "works": c.works, "how": c.how} for c in self.commands],
                "exit_code": self.exit_code}


def check_sources(g: Globals, target: Remote) -> dict[str, SasSource]:
    """What `check` resolves: a reality data's read access and write access, each on its own (either may be
    refused by the API: reported); else the one SAS. ``g``: the run's Globals."""
    if isinstance(target, RealityDataTarget):
        return {"read access": g.sas_source(target, write=False), "write access": g.sas_source(target, write=True)}
    return {"bucket" if isinstance(target, ItwinBucketTarget) else "SAS URL": g.sas_source(target, write=True)}


def check_remote(target: Remote, sources: dict[str, SasSource]) -> CheckReport:
    """``sources``: role -> SAS source; for a reality data "read access" and "write access" (either may
    fail to resolve: reported, not raised, unless neither can be had), else one."""
    origin, limits = access_labels(target)
    reports: list[SasReport] = []
    usable: dict[str, SasSource] = {}
    first_error: BucketSyncError | None = None
    for role, source in sources.items():
        try:
            sas = source.current()
        except BucketSyncError as exc:
            first_error = first_error or exc
            reports.append(SasReport(role, None, None, redact(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""))))
            continue
        usable[role] = source
        reports.append(SasReport(role, sas.permissions, sas.expires_at))
    if not usable:
        assert first_error is not None
        raise first_error
    reads_role = "read access" if "read access" in usable else next(iter(usable))
    writes_role = "write access" if isinstance(target, RealityDataTarget) else reads_role
    probes: list[ProbeReport] = []
    accesses: dict[str, Access] = {}
    for role in dict.fromkeys((reads_role, writes_role)):
        letters = LETTERS if reads_role == writes_role else ((LIST, READ) if role == reads_role else (WRITE, DELETE))
        if role not in usable:
            accesses[role] = Access(frozenset(), origin=origin, limits=limits)  # could not be had: grants nothing
            continue
        storage = Storage(usable[role], concurrency=1, retry_attempts=2, origin=origin, limits=limits)
        try:
            sp = usable[role].current().permissions
            granted, denied = set(), set()
            for letter in letters:
                answer, detail = storage.probe(letter)
                probes.append(ProbeReport(letter, role, (letter in sp) if sp else None, answer, detail))
                # Storage's answer wins; where it said neither, sp= is all there is to go by.
                if answer or (answer is None and (not sp or letter in sp)):
                    granted.add(letter)
                else:
                    denied.add(letter)
            accesses[role] = Access(frozenset(granted), frozenset(denied), origin, limits)
        finally:
            storage.close()
    container = usable[reads_role if reads_role in usable else next(iter(usable))].current().container_url
    return CheckReport(target.describe(), container, tuple(reports), tuple(probes),
                       tuple(command_verdicts(accesses[reads_role], accesses[writes_role])))


def format_report(report: CheckReport) -> list[str]:
    now = datetime.now(timezone.utc)
    lines = [f"target:    {report.target}", f"container: {report.container}"]
    for sas in report.sas:
        if sas.permissions is None:
            lines.append(f"{sas.role}: not available: {sas.error}")
            continue
        expiry = "no expiry (no se=)"
        if sas.expires:
            left = (sas.expires - now).total_seconds()
            expiry = (f"expires {sas.expires:%Y-%m-%d %H:%M:%S} UTC (in {_duration(left)})" if left > 0
                      else f"EXPIRED at {sas.expires:%Y-%m-%d %H:%M:%S} UTC")
        lines.append(f"{sas.role}: sp={sas.permissions or '(none given)'}, {expiry}")
    lines.append("permissions (sp= / what storage answered a harmless probe):")
    for p in report.probes:
        in_sp = "not in sp=" if p.in_sp is False else ("in sp=" if p.in_sp else "sp= unknown")
        verdict = {True: "granted", False: "REFUSED", None: "unknown"}[p.granted]
        lines.append(f"  {permission_name(p.permission):12} {verdict:8} {in_sp:11} via {p.via}: {p.detail}")
    lines.append("commands:")
    width = max(len(c.command) for c in report.commands)
    for c in report.commands:
        lines.append(f"  {'ok' if c.works else 'no':3} {c.command:{width}}  {c.how}")
    return lines


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 120:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


__all__ = ["CheckReport", "check_remote", "format_report"]
