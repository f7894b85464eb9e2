"""The piece digest (bucket_sync/sync/piece_digest.py), through the real command against Azurite: a chunked
upload stores it next to the Content-MD5, a download of the blob checks it instead of the MD5, and a blob
whose bytes or Content-MD5 changed under it is refused by the check that applies, leaving nothing behind."""

from __future__ import annotations

import hashlib
import os

import pytest
from azure.storage.blob import BlobBlock, ContentSettings

pytestmark = pytest.mark.integration

PIECE = 64 * 1024
SIZE = 10 * PIECE + 4321  # eleven pieces, the last one short


@pytest.fixture(params=["listing", "sp=rw"])
def uploaded(request, cli, emulator, listing_itwin, bucket_container, tmp_path):
    """The blob, and the remote its download names: the folder through a SAS that lists, or the blob by
    name through the documented bucket SAS (sp=rw: no listing, the blob's facts come from a HEAD)."""
    data = os.urandom(SIZE)
    src = tmp_path / "src"
    src.mkdir()
    (src / "scan.las").write_bytes(data)
    itwin = listing_itwin if request.param == "listing" else emulator.add_itwin()
    up = cli("upload", str(src), f"itwin://{itwin}/clouds", "--block-size", "64K", "--json")
    assert up.returncode == 0 and up.summary["uploaded"] == 1, up
    blob = bucket_container(itwin).get_blob_client("clouds/scan.las")
    if request.param == "listing":
        return f"itwin://{itwin}/clouds", blob, data, tmp_path / "dst" / "scan.las"
    return f"itwin://{itwin}/clouds/scan.las", blob, data, tmp_path / "dst"  # by name: DEST is the file


def downloaded_files(tmp_path):
    """Files a download left anywhere outside the source (the file, or its partial beside DEST)."""
    return [p for p in tmp_path.rglob("*") if p.is_file() and not {"src", "home"} & set(p.relative_to(tmp_path).parts)]


def test_a_chunked_upload_stores_the_piece_digest_of_its_bytes(uploaded):
    _remote, blob, data, _landed = uploaded
    props = blob.get_blob_properties()
    md5 = hashlib.md5(data).digest()
    assert bytes(props.content_settings.content_md5) == md5
    pieces = b"".join(hashlib.sha256(data[i:i + PIECE]).digest() for i in range(0, SIZE, PIECE))
    assert props.metadata["sha256pieces"] == f"v1:{PIECE}:{md5.hex()}:{hashlib.sha256(pieces).hexdigest()}"
    assert set(props.metadata) == {"mtime", "sha256pieces"}


@pytest.mark.parametrize("chunk", ["64K", "128K", "200K"])  # ranges of one, two and (rounded) three pieces
def test_a_download_checked_by_pieces_is_exact(cli, uploaded, tmp_path, chunk):
    remote, _blob, data, landed = uploaded
    down = cli("download", remote, str(tmp_path / "dst"), "--block-size", chunk, "--json")
    assert down.returncode == 0 and down.summary["downloaded"] == 1, down
    assert landed.read_bytes() == data


def test_bytes_changed_under_the_digest_are_refused_by_it(cli, uploaded, tmp_path):
    # Another writer commits new bytes and copies the old metadata and Content-MD5 along: only a check of
    # the content can tell. The piece digest is the one that applies (its MD5 is still the blob's).
    remote, blob, data, _landed = uploaded
    props = blob.get_blob_properties()
    tampered = bytearray(data)
    tampered[3 * PIECE + 7] ^= 0x01
    blob.stage_block("b" * 8, bytes(tampered))
    blob.commit_block_list([BlobBlock(block_id="b" * 8)], metadata=props.metadata,
                           content_settings=ContentSettings(content_md5=props.content_settings.content_md5))
    down = cli("download", remote, str(tmp_path / "dst"), "--block-size", "64K", "--json")
    assert down.returncode == 1, down
    [failed] = down.transfers(status="failed")
    assert "does not match the digest bucket-sync stored at upload" in failed["error"], failed
    assert downloaded_files(tmp_path) == []  # neither the file nor its partial


def test_a_content_md5_that_no_longer_matches_the_digest_is_what_gets_checked(cli, uploaded, tmp_path):
    # The digest names the Content-MD5 it was made with: once that changes, the digest is not trusted and the
    # download checks the Content-MD5 itself (here wrong, so the file is refused).
    remote, blob, data, _landed = uploaded
    blob.set_http_headers(ContentSettings(content_md5=bytearray(hashlib.md5(data + b"!").digest())))
    down = cli("download", remote, str(tmp_path / "dst"), "--block-size", "64K", "--json")
    assert down.returncode == 1, down
    [failed] = down.transfers(status="failed")
    assert "does not match the blob's Content-MD5" in failed["error"], failed
    assert downloaded_files(tmp_path) == []
