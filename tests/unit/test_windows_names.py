"""Windows names (sync/winnames.py through sync/keys.py), on every platform: property tests that the
mapping is reversible both ways, never yields a name Windows cannot hold (a reserved device name
included), and never lets a blob name land outside the destination; the documented table; the \\\\?\\ form.
"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bucket_sync.errors import UnsafeBlobNameError, UsageError
from bucket_sync.sync import keys, winnames
from bucket_sync.sync.diff import DiffPolicy
from bucket_sync.sync.engine import Engine
from bucket_sync.sync.settings import TransferSettings
from bucket_sync.sync.listener import Listener, Tally
from bucket_sync.sync.model import Action, Direction, Reason, RemoteBlob
from bucket_sync.sync.scan import Skipped, scan_tree
from bucket_sync.sync.winnames import QUOTE, decode_name, encode_name, extended_path, windows_problem

PROFILE = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ROOT = os.path.abspath("/srv/dest")

# Characters that matter to the mapping, often; anything else now and then.
_TRICKY = list('<>:"|?*. \x01\x1f\t') + [QUOTE, "：", "＊", "．", "␠", "␁", "␟", "Ｃ", "ｃ", "Ｎ", "¹", "²"] + list("CONPRAUXLMTcon1")
tricky_segment = st.one_of(
    st.lists(st.sampled_from(_TRICKY), min_size=1, max_size=12).map("".join),
    st.sampled_from(["CON", "con.txt", "Nul.tar.gz", "COM1", "lpt9.log", "COM¹", "AUX ", "prn .txt", "CONSOLE",
                     "ＣON", "‛CON", "‛‛ＣON.x", "‛‛‛ｃon", "a.", "b ", "．", "‛", "x‛", "‛：", "‛‛:"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=16),
).filter(lambda s: "/" not in s and "\\" not in s and "\x00" not in s)
# A name a Windows folder can hold: what the scan of a real Windows disk hands over.
windows_name = tricky_segment.filter(lambda s: windows_problem(s) is None and s not in (".", ".."))


@PROFILE
@given(tricky_segment)
@example("CON.txt")
@example("a:b")
@example("a：b")
@example("‛:")
def test_every_blob_name_segment_maps_to_a_windows_name_and_back(segment):
    local = encode_name(segment)
    assert windows_problem(local) is None, (segment, local)  # no < > : " | ? *, no trailing . or space
    assert not winnames.is_reserved(local), (segment, local)  # never a device
    assert decode_name(local) == segment, (segment, local)


@PROFILE
@given(windows_name)
@example("a：b")
@example("ＣON.txt")
@example("‛‛ＣON")
@example("‛CON")
@example("x‛")
def test_every_windows_name_reads_back_and_is_written_again_as_it_was(local):
    """upload -> download -> upload changes nothing, and no two local names claim one blob name."""
    segment = decode_name(local)
    assert encode_name(segment) == local, (local, segment)


@pytest.mark.parametrize("segment, local", [
    ("a<b>c", "a＜b＞c"), ('say "hi"', "say ＂hi＂"), ("a|b", "a｜b"), ("why?", "why？"), ("*.las", "＊.las"),
    ("12:30", "12：30"), ("bell\x07", "bell␇"), ("dot.", "dot．"), ("space ", "space␠"), ("in. side", "in. side"),
    ("CON", "ＣON"), ("con.txt", "ｃon.txt"), ("Nul.tar.gz", "Ｎul.tar.gz"), ("COM1", "ＣOM1"), ("lpt9.log", "ｌpt9.log"),
    ("COM¹", "ＣOM¹"), ("AUX .txt", "ＡUX .txt"), ("CONSOLE", "CONSOLE"), ("COM10", "COM10"),
    ("a：b", "a‛：b"), ("ＣON", "‛ＣON"), ("‛ＣON", "‛‛ＣON"), ("‛CON", "‛CON"), ("x．", "x‛．"), ("‛:", "‛‛："),
    ("it‛s", "it‛s"),
])
def test_the_documented_table(segment, local):
    assert encode_name(segment) == local
    assert decode_name(local) == segment


# -- whole paths, through keys.py ----------------------------------------------------------------------

@pytest.fixture
def windows_names(monkeypatch):
    monkeypatch.setenv(keys.LOCAL_ENCODING_ENV, "windows")
    assert keys.local_names() is keys.WINDOWS_NAMES
    return keys.WINDOWS_NAMES


blob_key = st.lists(tricky_segment, min_size=1, max_size=5).map("/".join)


@settings(PROFILE, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # env only
@given(blob_key)
@example("../evil")
@example("a/../../b")
@example("CON/aux.txt")
@example("C:/evil")
def test_a_blob_name_never_lands_outside_the_destination_and_reads_back(windows_names, key):
    try:
        path = keys.local_path_for(ROOT, key)
    except UnsafeBlobNameError:
        return
    assert os.path.commonpath([ROOT, path]) == ROOT and path != ROOT
    rel = os.path.relpath(path, ROOT)
    assert all(windows_problem(part) is None for part in rel.split(os.sep)), rel
    assert keys.key_from_local(rel) == key


def test_windows_names_are_off_by_default_on_posix(monkeypatch):
    monkeypatch.delenv(keys.LOCAL_ENCODING_ENV, raising=False)
    if os.name != "nt":
        assert keys.local_names() is keys.POSIX_NAMES
        assert keys.local_path_for(ROOT, "x/a:b/CON") == os.path.join(ROOT, "x", "a:b", "CON")
    monkeypatch.setenv(keys.LOCAL_ENCODING_ENV, "ntfs")
    with pytest.raises(UsageError, match="BUCKET_SYNC_LOCAL_ENCODING"):
        keys.local_names()


def test_a_local_name_windows_cannot_hold_is_refused_not_merged(windows_names):
    # Only on a filesystem that can hold ':' with the mapping forced: 'a:b' and 'a：b' would both be 'a:b'.
    assert keys.key_from_local(os.path.join("d", "a：b")) == "d/a:b"
    with pytest.raises(UnsafeBlobNameError, match="rename it"):
        keys.key_from_local(os.path.join("d", "a:b"))
    with pytest.raises(UnsafeBlobNameError):
        keys.key_from_local("．")  # would be the blob name segment "."


def test_the_scan_reads_names_back_and_reports_what_it_cannot(windows_names, tmp_path):
    for name in ("a：b.txt", "ＣON.txt", "dot．", "raw:colon.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub：dir").mkdir()
    (tmp_path / "sub：dir" / "x？.txt").write_text("x")
    skipped: list[Skipped] = []
    found = {f.key: os.path.basename(f.path) for f in scan_tree(str(tmp_path), on_skip=skipped.append)}
    assert found == {"a:b.txt": "a：b.txt", "CON.txt": "ＣON.txt", "dot.": "dot．", "sub:dir/x?.txt": "x？.txt"}
    assert [s.key for s in skipped] == ["raw:colon.txt"] and "rename it" in skipped[0].why
    assert list(found) == sorted(found), "keys come in blob-name order, as the diff needs"


class _Nothing(Listener):
    pass


def test_the_case_clash_guard_compares_what_is_written(windows_names, monkeypatch, tmp_path):
    engine = Engine(storage=None, direction=Direction.DOWN, prefix="", local_root=str(tmp_path),  # type: ignore[arg-type]
                    settings=TransferSettings(), listener=_Nothing(), tally=Tally(), stop=threading.Event())
    blobs = [RemoteBlob(key=k, name=k, size=1, mtime_ns=0, md5=None) for k in sorted(["CON.txt", "con.txt", "a:b"])]
    plan = engine.plan(iter(blobs), iter([]), DiffPolicy(transfer=Action.DOWNLOAD, case_insensitive=True))
    assert sorted(a.key for a in plan.work) == ["CON.txt", "a:b"]
    assert [(a.key, a.reason) for a in plan.rejected] == [("con.txt", Reason.NAME_CLASH)]


# -- long paths ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, extended", [
    ("C:\\data\\scan.las", "\\\\?\\C:\\data\\scan.las"),
    ("C:/data/../data/./scan.las", "\\\\?\\C:\\data\\scan.las"),  # the form turns normalisation off: done first
    ("\\\\server\\share\\scan.las", "\\\\?\\UNC\\server\\share\\scan.las"),
    ("\\\\?\\C:\\already", "\\\\?\\C:\\already"),
])
def test_the_extended_length_form(path, extended):
    assert extended_path(path) == extended
    assert winnames.plain_path(extended) == ("\\\\server\\share\\scan.las" if "UNC" in extended
                                             else extended[4:])


def test_only_long_paths_take_the_extended_form():
    short = "C:\\d\\" + "a" * 20
    deep = "C:\\d\\" + "\\".join(["folder" * 8] * 6)
    assert winnames.long_path_if_needed(short) == short
    assert len(deep) >= winnames.WINDOWS_LONG_PATH_FROM
    assert winnames.long_path_if_needed(deep) == "\\\\?\\" + deep
