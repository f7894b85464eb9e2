"""`bucket-sync rm REMOTE [--recursive] [--dry-run]` through the real command, on an iTwin bucket."""

from __future__ import annotations

import pytest

NAMES = ("old/a.txt", "old/sub/b.txt", "old-sibling.txt", "older/c.txt", "keep.txt")


@pytest.fixture
def filled(listing_itwin, bucket_container):
    container = bucket_container(listing_itwin)
    for name in NAMES:
        container.upload_blob(name, name.encode())
    return listing_itwin, container


def names(container) -> list[str]:
    return sorted(b.name for b in container.list_blobs())


def test_rm_deletes_one_blob(cli, filled):
    itwin, container = filled
    result = cli("rm", f"itwin://{itwin}/old/a.txt", "--json")
    assert result.returncode == 0, result
    assert result.transfers(op="delete", status="ok", key="old/a.txt")
    assert result.summary["deleted"] == 1 and result.summary["exit_code"] == 0
    assert names(container) == sorted(set(NAMES) - {"old/a.txt"})


def test_rm_recursive_deletes_the_folder_and_nothing_that_only_shares_its_letters(cli, filled):
    itwin, container = filled
    result = cli("rm", f"itwin://{itwin}/old/", "--recursive")
    assert result.returncode == 0, result
    assert names(container) == ["keep.txt", "old-sibling.txt", "older/c.txt"]
    assert "deleted 2" in result.stdout


def test_rm_dry_run_lists_what_would_go_and_deletes_nothing(cli, filled):
    itwin, container = filled
    result = cli("rm", f"itwin://{itwin}/old", "--recursive", "--dry-run")
    assert result.returncode == 0, result
    assert "would delete old/a.txt" in result.stdout and "would delete old/sub/b.txt" in result.stdout
    assert names(container) == sorted(NAMES)
    as_json = cli("rm", f"itwin://{itwin}/old", "--recursive", "--dry-run", "--json")
    assert sorted(e["key"] for e in as_json.transfers(op="delete", status="planned")) == ["old/a.txt", "old/sub/b.txt"]
    assert as_json.summary["deleted"] == 0 and names(container) == sorted(NAMES)


def test_rm_of_a_folder_without_recursive_is_refused_with_a_hint(cli, filled):
    itwin, container = filled
    result = cli("rm", f"itwin://{itwin}/old")
    assert result.returncode == 4, result
    assert "no blob named 'old'" in result.stderr and "--recursive" in result.stderr
    assert names(container) == sorted(NAMES)


def test_rm_of_the_whole_container_needs_recursive(cli, filled):
    itwin, container = filled
    refused = cli("rm", f"itwin://{itwin}/")
    assert refused.returncode == 2, refused
    assert "--recursive" in refused.stderr and names(container) == sorted(NAMES)
    everything = cli("rm", f"itwin://{itwin}/", "--recursive")
    assert everything.returncode == 0, everything
    assert names(container) == []


def test_rm_without_delete_permission_names_it(cli, emulator, filled):
    itwin, container = filled
    emulator.configure_itwin(itwin, permissions="rwl")  # the documented example grants only rw(l)
    result = cli("rm", f"itwin://{itwin}/keep.txt")
    assert result.returncode == 3, result
    assert "delete (d)" in result.stderr
    assert "keep.txt" in names(container)


def test_rm_recursive_without_list_permission_names_it(cli, emulator, filled):
    itwin, container = filled
    emulator.configure_itwin(itwin, permissions="rwd")
    result = cli("rm", f"itwin://{itwin}/old", "--recursive")
    assert result.returncode == 3, result
    assert "list (l)" in result.stderr
    assert names(container) == sorted(NAMES)
