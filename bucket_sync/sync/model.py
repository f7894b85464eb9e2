"""Typed records passed between the stages: scan/list -> diff -> plan -> transfer -> results."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class LocalFile:
    key: str  # relative POSIX path: the part of the blob name after the remote prefix
    path: str  # absolute local path
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class RemoteBlob:
    key: str  # relative to the remote prefix
    name: str  # full blob name in the container
    size: int
    mtime_ns: int  # from the `mtime` metadata when present, else Last-Modified
    md5: bytes | None
    etag: str | None = None
    mtime_from_metadata: bool = False
    pieces: str | None = None  # the ``sha256pieces`` metadata as stored, read only if downloaded (piece_digest.py)


Entry = LocalFile | RemoteBlob


@dataclass(frozen=True)
class BlobExtras:
    """What an upload writes besides the content, Content-MD5 and ``mtime``: --content-type (None: from
    the name, content_types.py) and --metadata KEY=VALUE entries."""

    content_type: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()


class Direction(Enum):
    """Which side is the source: a fact of the run (which side is scanned, which listed, where a file lands);
    the verbs are Action's."""

    UP = "up"  # local is the source, the container the destination
    DOWN = "down"

    @property
    def transfer(self) -> "Action":
        """What moves a file this way."""
        return Action.UPLOAD if self is Direction.UP else Action.DOWNLOAD


class Action(Enum):
    """What the plan decides for a key; a result reports one of RESULT_ACTIONS (the JSON ``op`` field
    carries its value: upload, download, delete)."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    DELETE = "delete"  # delete the destination entry (remote blob, or local file on a download mirror)
    COMPARE = "compare"  # sizes equal, mtimes differ: compare MD5, then transfer or only fix the mtime
    SKIP = "skip"
    REJECT = "reject"  # cannot be done safely (unsafe blob name, name clash): reported as failed


# What a result can report as done, failed, skipped or planned: a compare ends as a transfer or a skip of
# one, a rejected key as a failed transfer, so the three verbs are enough.
RESULT_ACTIONS = (Action.UPLOAD, Action.DOWNLOAD, Action.DELETE)


class Reason(Enum):
    NEW = "new"
    SIZE_CHANGED = "changed size"
    CONTENT_CHANGED = "changed content"
    MTIME_DIFFERS = "same size, different mtime"
    CHECKSUM = "checksum requested"
    OVERWRITE = "overwrite requested"
    EXTRA = "extra"
    UNCHANGED = "unchanged"
    UNSAFE_NAME = "unsafe name"
    NAME_CLASH = "name clash"
    NOT_A_REGULAR_FILE = "not a regular file"


@dataclass(frozen=True)
class PlannedAction:
    action: Action
    reason: Reason
    key: str
    source: Entry | None
    dest: Entry | None
    detail: str = ""

    @property
    def size(self) -> int:
        entry = self.source if self.action is not Action.DELETE else self.dest
        return entry.size if entry is not None else 0


class Status(Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    PLANNED = "planned"


@dataclass(frozen=True)
class TransferResult:
    op: Action  # one of RESULT_ACTIONS
    key: str  # the blob name
    bytes: int
    status: Status
    reason: Reason | None = None
    error: str | None = None
    exit_code: int = 0  # for failures: the exit code the error maps to (1, 3 or 4)
    bytes_sent: int = 0  # bytes that actually crossed the wire (resumed uploads send fewer)

    def __post_init__(self) -> None:
        if self.op not in RESULT_ACTIONS:
            raise ValueError(f"a result reports upload, download or delete, not {self.op.value}")
