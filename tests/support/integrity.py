"""Check what a run left behind, independently of bucket-sync: local trees and containers, byte for byte.

The fault and kill tests use these to state their invariants: every file under a final name is complete,
every committed blob's bytes match its Content-MD5, and after a clean re-run both sides are identical.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

PARTIAL_SUFFIX = ".bucket-sync-partial"
CHECKED = {"local files": 0, "blobs": 0}  # how much the session verified byte for byte (for the README)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def seeded_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def local_tree(root: Path | str) -> dict[str, bytes]:
    """Relative POSIX path -> content of every regular file below ``root`` (partial downloads included)."""
    root = Path(root)
    out: dict[str, bytes] = {}
    if not root.exists():
        return out
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            out[path.relative_to(root).as_posix()] = path.read_bytes()
            CHECKED["local files"] += 1
    return out


def final_files(tree: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in tree.items() if not k.endswith(PARTIAL_SUFFIX)}


def partial_files(tree: dict[str, bytes]) -> list[str]:
    return sorted(k for k in tree if k.endswith(PARTIAL_SUFFIX))


@dataclass
class RemoteState:
    blobs: dict[str, bytes] = field(default_factory=dict)  # name -> committed content
    bad_md5: list[str] = field(default_factory=list)  # names whose bytes do not match their Content-MD5
    no_md5: list[str] = field(default_factory=list)


def remote_state(container, prefix: str = "") -> RemoteState:
    """Every committed blob under ``prefix`` (account-key client), with its Content-MD5 checked."""
    state = RemoteState()
    for item in container.list_blobs(name_starts_with=prefix or None):
        # Content and MD5 from the same response: the listing may predate a write still landing.
        download = container.download_blob(item.name)
        data = download.readall()
        state.blobs[item.name] = data
        CHECKED["blobs"] += 1
        md5 = download.properties.content_settings.content_md5
        if not md5:
            state.no_md5.append(item.name)
        elif bytes(md5) != hashlib.md5(data).digest():
            state.bad_md5.append(item.name)
    return state


def new_container(azurite, stem: str = "faults") -> str:
    name = f"{stem}-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    return name


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def describe_diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    return f"missing={missing[:10]} extra={extra[:10]} wrong={wrong[:10]}"
