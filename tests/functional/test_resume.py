"""An interrupted upload of a large file resumes: the blocks staged before the failure are committed, not
sent again (CONTRACT.md, Guarantees); a file changed since starts over."""

from __future__ import annotations

import hashlib
import os

from bucket_sync.errors import TransientError
from bucket_sync.sync.diff import DiffPolicy
from bucket_sync.sync.model import Action, Direction, Status
from bucket_sync.sync.plan import plan
from bucket_sync.sync.scan import scan_tree

BLOCK = 1000
UP = DiffPolicy(Action.UPLOAD)


def upload(tmp_path, remote, engine):
    run, recorder, tally = engine(Direction.UP, remote, block_size=BLOCK)
    run.run(plan(scan_tree(str(tmp_path)), remote.list("p"), UP))
    return recorder, tally


def test_a_rerun_commits_the_blocks_staged_before_the_failure(tmp_path, tree, remote, engine):
    data = os.urandom(5 * BLOCK - 10)  # five blocks, the last one short
    tree(tmp_path, {"big.bin": data})
    remote.fail("stage_block", TransientError("connection to storage failed"), after=2)
    recorder, tally = upload(tmp_path, remote, engine)
    assert [r.status for r in recorder.results] == [Status.FAILED] and tally.summary("upload").exit_code == 1
    assert remote.names() == [] and len(remote.uncommitted_blocks("p/big.bin")) == 2

    remote.calls.clear()
    recorder, tally = upload(tmp_path, remote, engine)
    [done] = recorder.results
    assert done.status is Status.OK and done.bytes == len(data) and done.bytes_sent == len(data) - 2 * BLOCK
    assert remote.calls["stage_block"] == 3  # blocks 2, 3 and 4 only
    assert remote.content("p/big.bin") == data
    blob = remote.get("p/big.bin", "big.bin")
    assert blob.md5 == hashlib.md5(data).digest()  # the whole file's MD5, resumed or not
    assert remote.uncommitted_blocks("p/big.bin") == {}


def test_a_file_changed_since_the_interruption_starts_over(tmp_path, tree, remote, engine):
    tree(tmp_path, {"big.bin": os.urandom(4 * BLOCK)})
    remote.fail("stage_block", TransientError("connection to storage failed"), after=3)
    upload(tmp_path, remote, engine)
    assert len(remote.uncommitted_blocks("p/big.bin")) == 3

    changed = os.urandom(4 * BLOCK)
    tree(tmp_path, {"big.bin": changed}, mtime_ns=1_800_000_000 * 1_000_000_000)
    remote.calls.clear()
    recorder, _ = upload(tmp_path, remote, engine)
    assert [(r.status, r.bytes_sent) for r in recorder.results] == [(Status.OK, 4 * BLOCK)]
    assert remote.calls["stage_block"] == 4 and remote.content("p/big.bin") == changed
