"""The planner's choice from a SAS's permissions (sync/access.py): what each command does, or refuses
before anything changes, for the permission sets seen in the field."""

from __future__ import annotations

import pytest

from bucket_sync.errors import ExitCode, PermissionDeniedError
from bucket_sync.sync.access import (Access, Comparison, combined, command_verdicts, delete_approach, download_approach,
                                     upload_approach)

BUCKET = dict(origin="the Reality Modeling bucket SAS of itwin://x",
              limits="the documented Reality Modeling bucket SAS is sp=rw: read and write, no list (l), no delete (d)")

# sp -> (upload compares by, mirror up with deletes allowed, folder download allowed)
CASES = {
    "rw": (Comparison.LOOKUP, False, False),
    "r": (None, False, False),  # cannot write at all
    "w": (None, False, False),  # write only: refused without --overwrite
    "rl": (None, False, True),
    "rwl": (Comparison.LISTING, False, True),
    "racwd": (Comparison.LOOKUP, False, False),
    "racwdl": (Comparison.LISTING, True, True),
}


@pytest.mark.parametrize("sp", sorted(CASES))
def test_upload_choice(sp):
    access = Access.from_sp(sp, **BUCKET)
    compares, _, _ = CASES[sp]
    if compares is None:
        with pytest.raises(PermissionDeniedError) as info:
            upload_approach(access, deletes=False, overwrite=False)
        assert info.value.exit_code == ExitCode.AUTH
        assert "nothing was changed" in info.value.message
    else:
        approach = upload_approach(access, deletes=False, overwrite=False)
        assert approach.comparison is compares
        # Said once per run when there is no listing; nothing to say on the fast path.
        assert (approach.notice is not None) == (compares is Comparison.LOOKUP)


@pytest.mark.parametrize("sp", sorted(CASES))
def test_mirror_with_deletes_needs_list_and_delete(sp):
    access = Access.from_sp(sp, **BUCKET)
    _, deletes_ok, _ = CASES[sp]
    if deletes_ok:
        assert upload_approach(access, deletes=True, overwrite=False, what="mirror").comparison is Comparison.LISTING
        return
    with pytest.raises(PermissionDeniedError) as info:
        upload_approach(access, deletes=True, overwrite=False, what="mirror")
    if "w" in sp:  # writable: the refusal is about the deletes, and names the ways out
        assert "delete (d)" in info.value.message or "list (l)" in info.value.message
        assert "--no-delete" in info.value.hint and "reality-data://" in info.value.hint
        assert "sp=rw" in info.value.message  # the documented limit is named


@pytest.mark.parametrize("sp", sorted(CASES))
def test_download_choice(sp):
    access = Access.from_sp(sp)
    _, _, folder_ok = CASES[sp]
    if "r" in sp:
        assert download_approach(access, by_name=True, mirror=False).comparison is Comparison.LOOKUP
    else:
        with pytest.raises(PermissionDeniedError):
            download_approach(access, by_name=True, mirror=False)
    if folder_ok:
        assert download_approach(access, by_name=False, mirror=True).comparison is Comparison.LISTING
    else:
        with pytest.raises(PermissionDeniedError) as info:
            download_approach(access, by_name=False, mirror=False)
        if "r" in sp:
            assert "--files-from" in info.value.hint  # how to fetch by name instead


def test_write_only_uploads_everything_with_overwrite_only():
    access = Access.from_sp("w")
    with pytest.raises(PermissionDeniedError) as info:
        upload_approach(access, deletes=False, overwrite=False)
    assert "--overwrite" in info.value.hint
    assert upload_approach(access, deletes=False, overwrite=True).comparison is Comparison.NONE


@pytest.mark.parametrize("sp, recursive, ok", [("rw", False, False), ("rwd", False, True), ("rwd", True, False),
                                               ("rwdl", True, True), ("racwd", False, True)])
def test_rm_choice(sp, recursive, ok):
    access = Access.from_sp(sp)
    if ok:
        delete_approach(access, recursive=recursive)
    else:
        with pytest.raises(PermissionDeniedError):
            delete_approach(access, recursive=recursive)


def test_unknown_permissions_are_assumed_until_storage_refuses():
    access = Access.from_sp("")  # no sp=, e.g. a stored access policy
    assert upload_approach(access, deletes=True, overwrite=False).comparison is Comparison.LISTING
    refused = access.learned("l")
    assert upload_approach(refused, deletes=False, overwrite=False).comparison is Comparison.LOOKUP
    with pytest.raises(PermissionDeniedError) as info:
        upload_approach(refused, deletes=True, overwrite=False)
    assert "refused by storage" in info.value.message


def test_storage_refusal_wins_over_sp():
    access = Access.from_sp("racwdl").learned("d")
    assert not access.allows("d")
    with pytest.raises(PermissionDeniedError):
        upload_approach(access, deletes=True, overwrite=False)


def test_reality_data_reads_and_writes_combine():
    reads, writes = Access.from_sp("rl"), Access.from_sp("racwd")
    both = combined(reads, writes)
    assert both.allows("l") and both.allows("r") and both.allows("w") and both.allows("d")
    assert upload_approach(both, deletes=True, overwrite=False).comparison is Comparison.LISTING
    # Write access's own l does not count for listing: only read access lists.
    assert not combined(Access.from_sp("r"), Access.from_sp("racwdl")).allows("l")


def test_check_verdicts_follow_the_same_rules():
    verdicts = {v.command: v for v in command_verdicts(Access.from_sp("rw", **BUCKET), Access.from_sp("rw", **BUCKET))}
    assert verdicts["upload"].works and "file by file" in verdicts["upload"].how
    assert verdicts["mirror LOCAL REMOTE --no-delete"].works
    assert not verdicts["mirror LOCAL REMOTE"].works
    assert not verdicts["watch --delete"].works and verdicts["watch"].works
    assert verdicts["download REMOTE/<name>, --files-from"].works
    assert not verdicts["download REMOTE (a folder)"].works
    assert not verdicts["rm REMOTE/<name>"].works
    full = {v.command: v for v in command_verdicts(Access.from_sp("racwdl"), Access.from_sp("racwdl"))}
    assert all(v.works for v in full.values())
    assert "listing" in full["upload"].how
