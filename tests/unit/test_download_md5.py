"""OrderedMd5: ranges written in pieces, in any order and from several threads, hash to the file's MD5."""

from __future__ import annotations

import hashlib
import os
import random
import threading

from bucket_sync.sync.download import OrderedMd5


def _write_range(fd: int, hasher: OrderedMd5, data: bytes, start: int, end: int, rng: random.Random) -> None:
    at = start
    while at < end:
        piece = memoryview(data)[at:min(end, at + rng.randint(1, 70_000))]
        os.pwrite(fd, piece, at)
        hasher.written(start, at, piece)
        at += len(piece)


def test_ranges_written_in_pieces_out_of_order_give_the_whole_file_md5(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 123)
    chunk = 256 * 1024
    for seed in range(5):
        path = tmp_path / f"f{seed}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            os.ftruncate(fd, len(data))
            hasher = OrderedMd5(fd, chunk)
            starts = list(range(0, len(data), chunk))
            random.Random(seed).shuffle(starts)
            threads = [threading.Thread(target=_write_range,
                                        args=(fd, hasher, data, s, min(s + chunk, len(data)), random.Random(s)))
                       for s in starts]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert hasher.hashed == len(data)
            assert hasher.digest() == hashlib.md5(data).digest()
        finally:
            os.close(fd)


def test_a_range_never_written_stops_the_hash_before_it(tmp_path):
    data = b"x" * 300
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, len(data))
        hasher = OrderedMd5(fd, 100)
        rng = random.Random(1)
        _write_range(fd, hasher, data, 200, 300, rng)
        _write_range(fd, hasher, data, 0, 100, rng)
        assert hasher.hashed == 100  # 100..200 never arrived: the digest must not be trusted
        os.pwrite(fd, data[100:150], 100)
        hasher.written(100, 100, data[100:150])  # half of it arrives: the hash follows, and stops there
        assert hasher.hashed == 150
    finally:
        os.close(fd)
