"""OrderedMd5: ranges completing in any order (and from several threads) hash to the file's MD5."""

from __future__ import annotations

import hashlib
import os
import random
import threading

from bucket_sync.sync.download import OrderedMd5


def test_out_of_order_completion_gives_the_whole_file_md5(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "f"
    path.write_bytes(data)
    chunk = 256 * 1024
    ranges = [(o, min(chunk, len(data) - o)) for o in range(0, len(data), chunk)]
    random.Random(7).shuffle(ranges)
    fd = os.open(path, os.O_RDONLY)
    try:
        hasher = OrderedMd5(fd)
        threads = [threading.Thread(target=hasher.completed, args=r) for r in ranges]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert hasher.hashed == len(data)
        assert hasher.digest() == hashlib.md5(data).digest()
    finally:
        os.close(fd)


def test_a_missing_range_stops_the_hash_before_it(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 300)
    fd = os.open(path, os.O_RDONLY)
    try:
        hasher = OrderedMd5(fd)
        hasher.completed(200, 100)
        hasher.completed(0, 100)
        assert hasher.hashed == 100  # 100..200 never completed: the digest must not be trusted
    finally:
        os.close(fd)
