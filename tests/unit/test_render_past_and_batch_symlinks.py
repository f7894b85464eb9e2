"""Two small bugs the renovation read found: the -v line rewrote "seed 1.jpg" as "sed 1.jpg", and a watch
batch judged a followed symlink as changed (it looked at the link, the rest of watch at its target)."""

from __future__ import annotations

import io
import os

from bucket_sync.app.render import HumanRenderer
from bucket_sync.app.watch_batch import BatchWatch
from bucket_sync.app.watch_queue import Sig
from bucket_sync.sync.listener import Listener
from bucket_sync.sync.model import RESULT_ACTIONS, Status, TransferResult


def test_verbose_lines_keep_the_file_name_as_it_is():
    err = io.StringIO()
    renderer = HumanRenderer(verbose=1, progress=False, out=io.StringIO(), err=err)
    for op in RESULT_ACTIONS:
        renderer.on_result(TransferResult(op, "p/seed 1.jpg", 3, Status.OK))
    assert err.getvalue().splitlines() == ["uploaded p/seed 1.jpg", "downloaded p/seed 1.jpg", "deleted p/seed 1.jpg"]


def test_a_followed_symlink_is_not_taken_for_a_changed_file(tmp_path):
    target = tmp_path / "real.jpg"
    target.write_bytes(b"photo")
    link = tmp_path / "link.jpg"
    os.symlink(target, link)
    judged = Sig.of(str(link), follow_symlinks=True)  # as watch judged it ready
    followed = BatchWatch("", Listener(), outage_after=4, expected={"link.jpg": (str(link), judged)}, follow_symlinks=True)
    assert not followed._changed_since("link.jpg")
    target.write_bytes(b"photo, edited")
    assert followed._changed_since("link.jpg")  # a real change still counts
