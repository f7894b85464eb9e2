"""Watch mode's remote look-ups: the blobs a batch of changed or deleted paths is compared with.

A few keys are looked up one request each (concurrently); many are answered by one listing of their
common folder, which costs one request per 5,000 blobs instead of one per key.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

from ..sync.keys import join_blob_name, key_from_blob_name
from ..sync.model import RemoteBlob
from ..storage.container import Storage

LOOKUP_ONE_BY_ONE = 32  # up to this many keys: one request each; more: one listing of their common folder


def _rekey(prefix: str, blobs: Iterable[RemoteBlob]) -> list[RemoteBlob]:
    out = []
    for b in blobs:
        key = key_from_blob_name(prefix, b.name)
        if key:
            out.append(dataclasses.replace(b, key=key))
    return out


def common_folder(keys: list[str]) -> str:
    parents = [k.rsplit("/", 1)[0] if "/" in k else "" for k in keys]
    if any(p == "" for p in parents):
        return ""
    return os.path.commonpath(parents).replace(os.sep, "/")


def lookup_remote(storage: Storage, prefix: str, keys: list[str], *, can_list: bool = True) -> list[RemoteBlob]:
    """The remote side of ``keys``, sorted by key (what the diff walks against the local files): looked up
    one by one (concurrently) when they are few or the SAS cannot list, else one listing of their folder."""
    wanted = set(keys)
    if len(keys) <= LOOKUP_ONE_BY_ONE or not can_list:
        blobs = list(storage.look_up_each(prefix, keys))
    else:
        folder = common_folder(keys)
        listed = _rekey(prefix, storage.list(join_blob_name(prefix, folder) if folder else prefix))
        blobs = [b for b in listed if b.key in wanted]
    return sorted({b.key: b for b in blobs}.values(), key=lambda b: b.key)


def remote_under(storage: Storage, prefix: str, gone: list[tuple[str, bool]]) -> list[RemoteBlob]:
    """Blobs at each gone key, and under it when it was a folder (a whole folder deleted or moved away)."""
    keys = [k for k, _ in gone]
    wanted = set(keys)
    blobs: list[RemoteBlob] = []
    if len(gone) <= LOOKUP_ONE_BY_ONE:
        for key, _was_dir in gone:
            blob = storage.get(join_blob_name(prefix, key), key)
            if blob is not None:
                blobs.append(blob)
            # Listed even when the event did not say "folder": a missed hint must not leave blobs behind.
            blobs.extend(_rekey(prefix, storage.list(join_blob_name(prefix, key))))
    else:
        folder = common_folder(keys)
        for b in _rekey(prefix, storage.list(join_blob_name(prefix, folder) if folder else prefix)):
            parts = b.key.split("/")
            if any("/".join(parts[:i]) in wanted for i in range(1, len(parts) + 1)):
                blobs.append(b)
    return sorted({b.key: b for b in blobs}.values(), key=lambda b: b.key)
