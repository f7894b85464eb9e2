"""Property-based tests (hypothesis) for the one path <-> blob name mapping and the download guard.

- No generated blob name ever maps to a path outside the destination folder: it is either refused
  (UnsafeBlobNameError) or lands strictly inside it, and maps back to the same name.
- Every local relative path made of ordinary segments round-trips: path -> key -> blob name -> key -> path.
- Names that differ only in case are caught before a case-insensitive destination merges them.
"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bucket_sync.errors import UnsafeBlobNameError
from bucket_sync.sync.diff import DiffPolicy, diff
from bucket_sync.sync.engine import Engine
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.listener import Listener, Tally
from bucket_sync.sync.keys import (
    MAX_BLOB_NAME,
    CaseClashGuard,
    check_key,
    is_case_insensitive_dir,
    join_blob_name,
    key_from_blob_name,
    key_from_local,
    local_path_for,
)
from bucket_sync.sync.model import Action, Direction, LocalFile, Reason, RemoteBlob

ROOT = "/srv/dest"
PROFILE = settings(max_examples=200, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])

# Segments as hostile as names get: dots, separators of both kinds, NUL, drive letters, unicode.
hostile_segment = st.one_of(
    st.sampled_from(["..", ".", "", "...", "C:", "c:", "\\", "..\\..", "\x00", "~", "con", " ", "..."]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
hostile_name = st.one_of(
    st.lists(hostile_segment, min_size=1, max_size=8).map("/".join),
    st.lists(hostile_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=40),
)
# What a local filesystem hands the scan: no '/', no NUL, not '.' or '..'; backslashes excluded because
# the contract refuses them on download (they are separators on Windows).
ordinary_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="/\\\x00"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", "..") and not (len(s) >= 2 and s[1] == ":"))


@PROFILE
@given(hostile_name)
@example("../evil")
@example("a/../../evil")
@example("/etc/passwd")
@example("a\\..\\..\\evil")
@example("ok/\x00/x")
@example("C:/Windows/evil")
@example("x" * (MAX_BLOB_NAME + 1))
def test_no_blob_name_lands_outside_the_destination(name):
    try:
        path = local_path_for(ROOT, name)
    except UnsafeBlobNameError:
        return
    assert os.path.commonpath([ROOT, path]) == ROOT and path != ROOT
    rel = os.path.relpath(path, ROOT)
    assert rel.split(os.sep)[0] != ".." and not os.path.isabs(rel)
    assert key_from_local(rel) == name, "an accepted name must be exactly the path it is written to"


@PROFILE
@given(st.lists(ordinary_segment, min_size=1, max_size=6), st.sampled_from(["", "pre", "a/b/c"]))
def test_every_ordinary_local_path_round_trips(segments, prefix):
    rel = os.path.join(*segments)
    key = key_from_local(rel)
    assert key == "/".join(segments)
    if len(key) > MAX_BLOB_NAME:
        with pytest.raises(UnsafeBlobNameError):
            check_key(key)
        return
    name = join_blob_name(prefix, key)
    assert key_from_blob_name(prefix, name) == key
    assert local_path_for(ROOT, key) == os.path.join(ROOT, *segments)


@PROFILE
@given(st.text(max_size=30), st.text(max_size=30))
def test_blob_names_outside_the_prefix_are_never_mapped(prefix_seg, name):
    prefix = "p" + prefix_seg.replace("/", "")
    key = key_from_blob_name(prefix, name)
    if key is not None:
        assert name == f"{prefix}/{key}"


@pytest.mark.parametrize("name, why", [
    ("../evil.txt", "'..'"),
    ("a/../../evil.txt", "'..'"),
    ("/abs.txt", "absolute"),
    ("back\\slash.txt", "backslash"),
    ("nul\x00.txt", "NUL"),
    ("x" * 1025, "longer than 1024"),
    ("a//b", "empty"),
    ("C:/evil", "drive letter"),
])
def test_the_guard_names_the_reason(name, why):
    with pytest.raises(UnsafeBlobNameError, match=why.replace("'", ".")):
        local_path_for(ROOT, name)


@PROFILE
@given(st.lists(hostile_name, min_size=1, max_size=12, unique=True))
def test_diff_rejects_every_unsafe_remote_name_before_planning(names):
    blobs = sorted((RemoteBlob(key=n, name=n, size=1, mtime_ns=0, md5=None) for n in names), key=lambda b: b.key)
    for action in diff(blobs, [], DiffPolicy(transfer=Action.DOWNLOAD)):
        try:
            local_path_for(ROOT, action.key)
            safe = True
        except UnsafeBlobNameError:
            safe = False
        assert (action.action is Action.DOWNLOAD) == safe, (action.key, action.action)
        if not safe:
            assert action.action is Action.REJECT and action.reason is Reason.UNSAFE_NAME


# -- names that differ only in case --------------------------------------------------------------------

@given(st.lists(ordinary_segment, min_size=1, max_size=30))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_case_clash_guard_flags_every_later_key_that_folds_like_an_earlier_one(keys):
    guard = CaseClashGuard()
    seen: dict[str, str] = {}
    for key in dict.fromkeys(keys):  # distinct keys, in order
        other = guard.clash(key)
        folded = key.casefold()
        matches = [k for f, k in seen.items() if f == folded]
        if other is None:
            assert not matches or matches == [key]
            seen.setdefault(folded, key)
        else:
            assert other != key and other.casefold() == folded


class _Nothing(Listener):
    pass


def plan_download(keys: list[str], case_insensitive: bool, monkeypatch, tmp_path, local: list[str] = (),
                  mirror: bool = False):
    engine = Engine(storage=None, direction=Direction.DOWN, prefix="", local_root=str(tmp_path),  # type: ignore[arg-type]
                    settings=TransferSettings(), listener=_Nothing(), tally=Tally(), stop=threading.Event())
    blobs = sorted((RemoteBlob(key=k, name=k, size=3, mtime_ns=0, md5=None) for k in keys), key=lambda b: b.key)
    files = sorted((LocalFile(key=k, path=str(tmp_path / k), size=3, mtime_ns=0) for k in local), key=lambda f: f.key)
    return engine.plan(blobs, files, DiffPolicy(transfer=Action.DOWNLOAD, delete_extras=mirror,
                                                case_insensitive=case_insensitive))


@pytest.mark.parametrize("remote, local", [("README.md", "readme.md"), ("readme.md", "README.md")])
def test_mirror_never_deletes_the_case_twin_of_a_downloaded_file(monkeypatch, tmp_path, remote, local):
    # On a case-insensitive destination the local 'readme.md' IS the file 'README.md' is written to:
    # deleting it as an extra would delete the download.
    plan = plan_download([remote, "other.txt"], True, monkeypatch, tmp_path, local=[local, "gone.txt"], mirror=True)
    assert [d.key for d in plan.deletes] == ["gone.txt"]
    assert remote in [a.key for a in plan.work]
    sensitive = plan_download([remote], False, monkeypatch, tmp_path, local=[local], mirror=True)
    assert [d.key for d in sensitive.deletes] == [local]


def test_case_clash_on_a_case_insensitive_destination_is_rejected_and_reported(monkeypatch, tmp_path):
    plan = plan_download(["README.md", "docs/a.txt", "readme.md", "Docs/A.txt"], True, monkeypatch, tmp_path)
    assert sorted(a.key for a in plan.work) == ["Docs/A.txt", "README.md"]
    rejected = {a.key: a for a in plan.rejected}
    assert sorted(rejected) == ["docs/a.txt", "readme.md"]
    assert all(a.reason is Reason.NAME_CLASH for a in rejected.values())
    assert "'README.md'" in rejected["readme.md"].detail and "case-insensitive" in rejected["readme.md"].detail


def test_names_differing_in_case_both_download_on_a_case_sensitive_destination(monkeypatch, tmp_path):
    plan = plan_download(["README.md", "readme.md"], False, monkeypatch, tmp_path)
    assert sorted(a.key for a in plan.work) == ["README.md", "readme.md"] and not plan.rejected


def test_case_probe_reads_the_real_destination(tmp_path):
    # Linux tmp folders are case-sensitive; the probe must say so and leave nothing behind.
    assert is_case_insensitive_dir(str(tmp_path / "not" / "yet" / "there")) is (os.path.normcase("A") == "a")
    assert os.listdir(tmp_path) == []
