"""What a container SAS allows, and what each command may therefore do: decided before anything changes.

The only documented Reality Modeling bucket SAS is ``sp=rw``: read and write, no list, no delete. Real
buckets may grant more (Bentley's own SDK lists and deletes through them), so nothing here assumes either
world: the permissions come from ``sp=`` and from storage's answers (a 403 ``AuthorizationPermissionMismatch``
is a missing permission, and is remembered), and each command picks how to work from them:

- with list (l): compare through a listing (the fast path, as before);
- without list but with read (r): look each local file up by name (HEAD), file by file;
- with neither: nothing can be compared; an upload then needs ``--overwrite``;
- deletes need delete (d) and list (l: extras are found by listing), and are refused at the start.

Pure: no I/O. The functions raise PermissionDeniedError (exit 3) with the limit and the ways out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

from ..errors import NotFoundError, PermissionDeniedError
from ..sas import describe_missing, permission_name

LIST, READ, WRITE, DELETE = "l", "r", "w", "d"

# Said once per run when a command compares file by file.
NO_LISTING_NOTICE = "the SAS allows no listing (no l permission): comparing file by file (one look-up per file)"


@dataclass(frozen=True)
class Access:
    """The permissions of a container's SAS. ``granted`` is None when the SAS names none (no ``sp=``, e.g.
    a stored access policy): then everything is assumed until storage refuses it. ``denied`` holds what
    storage refused (AuthorizationPermissionMismatch), whatever ``sp=`` said. ``origin`` names the SAS in
    messages (e.g. "the Reality Modeling bucket SAS"); ``limits`` says what is documented about it."""

    granted: frozenset[str] | None
    denied: frozenset[str] = frozenset()
    origin: str = "the SAS"
    limits: str = ""

    @classmethod
    def from_sp(cls, sp: str, *, origin: str = "the SAS", limits: str = "") -> "Access":
        return cls(frozenset(sp) if sp else None, origin=origin, limits=limits)

    def allows(self, letter: str) -> bool:
        if letter in self.denied:
            return False
        return self.granted is None or letter in self.granted

    def learned(self, letter: str) -> "Access":
        return Access(self.granted, self.denied | {letter}, self.origin, self.limits)

    def missing(self, letters: str) -> str:
        return "".join(c for c in letters if not self.allows(c))

    def shown(self) -> str:
        """'sp=rw' as a user sees it in the URL (plus what storage refused)."""
        base = "sp=" + "".join(sorted(self.granted, key="racwdl".find)) if self.granted is not None else "no sp= (unknown)"
        return base + (f", refused by storage: {describe_missing(''.join(sorted(self.denied)))}" if self.denied else "")


class Comparison(Enum):
    LISTING = "listing"  # list the prefix, diff two sorted streams
    LOOKUP = "file by file"  # HEAD each source file's name
    NONE = "none"  # nothing can be read: every file is transferred (--overwrite)


@dataclass(frozen=True)
class Approach:
    comparison: Comparison
    notice: str | None = None  # said once, on stderr and as a JSON event


def _refuse(access: Access, what: str, letters: str, hint: str,
            outcome: str = "nothing was changed") -> PermissionDeniedError:
    lacking = access.missing(letters)
    limits = f" ({access.limits})" if access.limits else ""
    names = [permission_name(c) for c in lacking]
    needed = f"the {names[0]} permission" if len(names) == 1 else f"the {', '.join(names[:-1])} and {names[-1]} permissions"
    return PermissionDeniedError(
        f"{what} needs {needed}, which {access.origin} does not grant "
        f"[{access.shown()}]{limits}" + (f"; {outcome}" if outcome else ""),
        hint=hint,
    )


# Ways out, written once: every refusal of a delete names them.
NO_DELETE_WAYS_OUT = ("use --no-delete to copy without deleting, or use a target whose SAS can list and delete: "
                      "a reality data (reality-data://<id>), or a SAS URL that grants l and d; "
                      "`bucket-sync check REMOTE` shows what a SAS allows")
WATCH_DELETE_WAYS_OUT = NO_DELETE_WAYS_OUT.replace("use --no-delete to copy without deleting",
                                                   "run watch without --delete (local deletions then stay in the bucket)")
BY_NAME_WAYS_OUT = ("download files by name instead: `bucket-sync download REMOTE/<name> DEST`, or several with "
                    "--files-from FILE (one name per line); `bucket-sync check REMOTE` shows what the SAS allows")


def no_blob_and_no_listing(name: str, access: Access, *, as_what: str) -> NotFoundError:
    """A name that is no blob, on a SAS that cannot list: it may be a folder, but that cannot be seen."""
    return NotFoundError(f"no blob named {name!r}, and {access.origin} allows no listing, so it cannot be "
                         f"{as_what} as a folder", hint=BY_NAME_WAYS_OUT)


def names_nothing(name: str, *, lead: str) -> NotFoundError:
    """A name that is neither a blob nor a folder with blobs in it (exit 4, never a silent success)."""
    return NotFoundError(f"{lead}: no blob named {name!r} and no blobs under {name}/",
                         hint="check the name (`bucket-sync ls` its folder); names are case-sensitive")


def upload_approach(access: Access, *, deletes: bool, overwrite: bool, what: str = "the upload") -> Approach:
    """How an upload (upload, mirror up, watch) compares, or PermissionDeniedError before anything is sent.

    ``deletes``: remote extras will be deleted (mirror without --no-delete, watch --delete)."""
    if not access.allows(WRITE):
        raise _refuse(access, what, WRITE, "use a target whose SAS can write; `bucket-sync check REMOTE` shows what it allows")
    if deletes and (not access.allows(DELETE) or not access.allows(LIST)):
        raise _refuse(access, f"{what} with deletes (removing remote files the source does not have)", DELETE + LIST,
                      WATCH_DELETE_WAYS_OUT if what == "watch" else NO_DELETE_WAYS_OUT)
    if access.allows(LIST):
        return Approach(Comparison.LISTING)
    if access.allows(READ):
        return Approach(Comparison.LOOKUP, NO_LISTING_NOTICE)
    if overwrite:
        return Approach(Comparison.NONE, "the SAS allows neither listing nor reading: every file is uploaded (--overwrite)")
    raise _refuse(access, f"comparing with what is already there ({what})", LIST + READ,
                  "pass --overwrite to upload every file without comparing (existing blobs are replaced)")


def download_approach(access: Access, *, by_name: bool, mirror: bool, what: str | None = None) -> Approach:
    """How a download compares: by name needs read; a folder (or a mirror) needs a listing too. ``what``
    names another reader (ls), for which nothing would have been written anyway."""
    outcome = "" if what else "nothing was downloaded"
    if not access.allows(READ):
        raise _refuse(access, what or "downloading", READ, "use a SAS (or read access) that grants read", outcome)
    if by_name:
        return Approach(Comparison.LOOKUP)
    if not access.allows(LIST):
        what = what or ("mirroring a remote folder" if mirror else "downloading a whole folder")
        raise _refuse(access, f"{what} (finding its files)", LIST, BY_NAME_WAYS_OUT, outcome)
    return Approach(Comparison.LISTING)


def delete_approach(access: Access, *, recursive: bool) -> None:
    """rm: one blob needs delete; a prefix needs list too. Refused before anything is deleted."""
    letters = DELETE + (LIST if recursive else "")
    if access.missing(letters):
        raise _refuse(access, "rm" + (" --recursive" if recursive else ""), letters,
                      "delete through a SAS that grants d (and l for --recursive): a reality data's write access, "
                      "or a SAS URL; `bucket-sync check REMOTE` shows what a SAS allows")


@dataclass(frozen=True)
class CommandVerdict:
    command: str
    works: bool
    how: str  # how it works, or why not


_HOW = {Comparison.LISTING: "compares through a listing", Comparison.LOOKUP: "compares file by file (no listing)",
        Comparison.NONE: "uploads every file (nothing can be compared)"}


def combined(reads: Access, writes: Access) -> Access:
    """The access of a run that lists and reads through ``reads`` and writes and deletes through ``writes``
    (a reality data's read and write access; for a bucket both are the same SAS)."""
    if reads is writes:
        return reads
    granted = None if reads.granted is None and writes.granted is None else frozenset(
        {c for c in (reads.granted or "") if c in (LIST, READ)} | {c for c in (writes.granted or "") if c in (WRITE, DELETE)})
    denied = frozenset({c for c in reads.denied if c in (LIST, READ)} | {c for c in writes.denied if c in (WRITE, DELETE)})
    return Access(granted, denied, writes.origin, writes.limits)


def command_verdicts(reads: Access, writes: Access) -> list[CommandVerdict]:
    """What each command can do with these permissions (for `check`): the planner's own rules, asked once
    per command, so `check` cannot disagree with what a run will do."""
    both = combined(reads, writes)
    checks: list[tuple[str, Callable[[], Approach | None], str | None]] = [
        ("upload", lambda: upload_approach(both, deletes=False, overwrite=False), None),
        ("upload --overwrite", lambda: upload_approach(both, deletes=False, overwrite=True),
         "uploads every file (no comparison needed)"),
        ("mirror LOCAL REMOTE --no-delete", lambda: upload_approach(both, deletes=False, overwrite=False, what="mirror"), None),
        ("mirror LOCAL REMOTE", lambda: upload_approach(both, deletes=True, overwrite=False, what="mirror"),
         "uploads and deletes remote extras"),
        ("watch", lambda: upload_approach(both, deletes=False, overwrite=False, what="watch"), None),
        ("watch --delete", lambda: upload_approach(both, deletes=True, overwrite=False, what="watch"),
         "uploads and propagates local deletions"),
        ("download REMOTE/<name>, --files-from", lambda: download_approach(reads, by_name=True, mirror=False),
         "downloads files by name"),
        ("download REMOTE (a folder)", lambda: download_approach(reads, by_name=False, mirror=False), None),
        ("mirror REMOTE LOCAL", lambda: download_approach(reads, by_name=False, mirror=True), None),
        ("ls REMOTE (a folder)", lambda: download_approach(reads, by_name=False, mirror=False, what="listing a folder"),
         "lists"),
        ("ls REMOTE/<name>", lambda: download_approach(reads, by_name=True, mirror=False, what="showing a blob"),
         "shows one blob by name"),
        ("rm REMOTE/<name>", lambda: delete_approach(both, recursive=False), "deletes one blob"),
        ("rm --recursive", lambda: delete_approach(both, recursive=True), "deletes everything under a prefix"),
    ]
    verdicts = []
    for command, decide, ok_text in checks:
        try:
            approach = decide()
        except PermissionDeniedError as exc:
            verdicts.append(CommandVerdict(command, False, exc.message.split(" [")[0]))
            continue
        if not ok_text:
            assert approach is not None  # rm's checks decide no approach, and carry their own text
            ok_text = _HOW[approach.comparison]
        verdicts.append(CommandVerdict(command, True, ok_text))
    return verdicts


__all__ = ["Access", "Approach", "Comparison", "CommandVerdict", "command_verdicts", "delete_approach",
           "download_approach", "upload_approach", "combined", "NO_LISTING_NOTICE", "NO_DELETE_WAYS_OUT", "BY_NAME_WAYS_OUT"]
