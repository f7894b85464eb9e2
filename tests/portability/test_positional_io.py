"""README.md, "Windows, macOS and Linux": positional writes and reads without os.pwrite / os.pread (Windows has
neither), checked by taking them away here, with many threads writing interleaved ranges of one file at once."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bucket_sync.sync import positional


@pytest.fixture(params=["native", "fallback"])
def mode(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.delattr(os, "pwrite", raising=False)
        monkeypatch.delattr(os, "pread", raising=False)
        monkeypatch.delattr(os, "preadv", raising=False)
        assert not hasattr(os, "pwrite") and not hasattr(os, "pread")
    elif not hasattr(os, "pwrite"):
        pytest.skip("this platform has no os.pwrite")
    return request.param


def _open(path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | positional.BINARY, 0o644)


def write_all(fd: int, data: bytes, offset: int, piece: int) -> None:
    """As download.py does: a range arrives in pieces, each written (and re-tried on a short count)."""
    view = memoryview(data)
    while view:
        written = positional.pwrite(fd, view[:piece], offset)
        view, offset = view[written:], offset + written


def read_all(fd: int, n: int, offset: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = positional.pread(fd, n - len(out), offset + len(out))
        if not data:
            break
        out += data
    return bytes(out)


def test_threads_writing_interleaved_ranges_of_one_file(tmp_path, mode):
    rng = random.Random(13)
    size, block = 3 * 1024 * 1024 + 17, 64 * 1024
    content = rng.randbytes(size).replace(b"\r", b"\n")  # newlines aplenty: text mode would show
    ranges = [(o, min(block, size - o)) for o in range(0, size, block)]
    rng.shuffle(ranges)
    path = tmp_path / "file.bin"
    fd = _open(path)
    try:
        os.ftruncate(fd, size)
        start = threading.Barrier(8)

        def worker(mine: list[tuple[int, int]]) -> None:
            start.wait()
            for offset, length in mine:
                # small pieces, so the threads' seeks and writes interleave as much as they can
                write_all(fd, content[offset:offset + length], offset, piece=rng.choice((997, 4096, 8191)))
                # and read back another range meanwhile (the MD5 reader runs beside the writers)
                other, other_len = ranges[(offset // block * 7) % len(ranges)]
                read_all(fd, other_len, other)

        with ThreadPoolExecutor(8) as pool:
            for fut in [pool.submit(worker, ranges[i::8]) for i in range(8)]:
                fut.result()
        # Read back through positional reads too, from many threads at once.
        with ThreadPoolExecutor(8) as pool:
            pieces = list(pool.map(lambda r: (r[0], read_all(fd, r[1], r[0])), ranges))
    finally:
        os.close(fd)
    assert all(data == content[o:o + len(data)] and len(data) == length
               for (o, data), (_, length) in zip(pieces, ranges))
    assert hashlib.md5(path.read_bytes()).digest() == hashlib.md5(content).digest()


def test_reads_at_and_past_the_end(tmp_path, mode):
    fd = _open(tmp_path / "f")
    try:
        assert positional.pwrite(fd, b"hello\nworld", 0) == 11
        assert positional.pwrite(fd, b"W", 6) == 1
        assert positional.pread(fd, 100, 0) == b"hello\nWorld"
        assert positional.pread(fd, 3, 9) == b"ld"
        assert positional.pread(fd, 3, 11) == b""
        assert positional.pread(fd, 3, 1000) == b""
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"hello\nWorld"


def test_the_downloader_uses_the_portable_functions():
    import inspect

    from bucket_sync.sync import download

    source = inspect.getsource(download)
    assert "os.pwrite" not in source and "os.pread" not in source
    assert download.pwrite is positional.pwrite and download.pread_into is positional.pread_into


def test_reads_into_a_reused_buffer_stop_short_at_the_end(tmp_path, mode):
    content = random.Random(5).randbytes(100_000)
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY | positional.BINARY)
    try:
        buffer = bytearray(64 * 1024)
        assert positional.pread_into(fd, buffer, 10) == len(buffer) and buffer == content[10:10 + len(buffer)]
        assert positional.pread_into(fd, memoryview(buffer)[:1000], 99_500) == 500  # the end of the file
        assert buffer[:500] == content[99_500:]
        assert positional.pread_into(fd, buffer, 100_000) == 0
    finally:
        os.close(fd)
