"""The fast List Blobs reader never disagrees with ElementTree: on any page it accepts, it gives exactly the
tuples, folders and marker ElementTree gives; pages it will not vouch for go to ElementTree (None)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucket_sync.storage.list_pages import _has_refused_chars, _parse, _parse_fast, parse_page
from devtools.list_stub import Layout, list_page

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
text = st.text(alphabet=st.sampled_from("ab/é&<>\"'%0 \r\t\x01\ufffe]"), max_size=12)
AZURE_ORDER = ("Creation-Time", "Last-Modified", "Etag", "Content-Length", "Content-Type", "Content-Encoding",
               "Content-MD5", "BlobType")


def esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def pages(draw) -> bytes:
    blobs = []
    for _ in range(draw(st.integers(0, 3))):
        values = {"Creation-Time": "Mon, 01 Jan 2024 00:00:00 GMT", "Last-Modified": draw(st.sampled_from(["Tue, 01 Dec 2026 09:00:00 GMT", ""])),
                  "Etag": draw(st.one_of(st.just("0x8D1"), text)), "Content-Length": draw(st.sampled_from(["1", "0", "-1", " 5", "x", ""])),
                  "Content-Type": "application/octet-stream", "Content-Encoding": "",
                  "Content-MD5": draw(st.sampled_from(["1B2M2Y8AsgTpgAmY7PhCfg==", "", "abc", "1B2M2Y8AsgTpgAmY7PhCf==="])),
                  "BlobType": "BlockBlob"}
        order = list(AZURE_ORDER) if draw(st.booleans()) else draw(st.permutations(AZURE_ORDER))
        kept = [k for k in order if draw(st.integers(0, 5))]
        props = "".join(f"<{k} />" if not values[k] and draw(st.booleans()) else f"<{k}>{esc(values[k])}</{k}>" for k in kept)
        if draw(st.integers(0, 9)) == 0:
            props += "<Unclosed>x</Other>"
        meta = draw(st.sampled_from(["", "<Metadata />", "<Metadata><mtime>2026-11-23T10:00:00.5Z</mtime></Metadata>",
                                     "<Metadata><author>x</author><Mtime>2026-11-23T10:00:00Z</Mtime></Metadata>",
                                     "<Metadata><mtime /><Mtime>m</Mtime></Metadata>", "<Metadata><mtime>a&amp;b</mtime></Metadata>",
                                     "<Metadata><mtime>2026-11-23T10:00:00Z</mtime><sha256pieces>v1:8:ab:cd</sha256pieces></Metadata>",
                                     "<Metadata><sha256pieces>v1:8:ab:cd</sha256pieces><author>x</author></Metadata>",
                                     "<Metadata><sha256pieces /><mtime>2026-11-23T10:00:00Z</mtime></Metadata>"]))
        encoded = ' Encoded="true"' if draw(st.booleans()) else ""
        blobs.append(f"<Blob><Name{encoded}>{esc(draw(text))}</Name>"
                     + (f"<Properties>{props}</Properties>" if draw(st.integers(0, 7)) else "") + meta
                     + ("<OrMetadata />" if draw(st.booleans()) else "") + "</Blob>")
    folders = [f"<BlobPrefix><Name>{esc(draw(text))}</Name></BlobPrefix>" for _ in range(draw(st.integers(0, 2)))]
    marker = draw(st.sampled_from(["", "<NextMarker />", "<NextMarker>2!5</NextMarker>", "<NextMarker>a&amp;b</NextMarker>"]))
    head = draw(st.sampled_from(['<?xml version="1.0" encoding="utf-8"?>', "", '<?xml version="1.0" encoding="utf-16"?>',
                                 '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
                                 '<?xml version="1.0" encoding="UTF-16" standalone="yes"?>',
                                 '<?xml version="1.0" encoding="UTF-8" standalone="no"?>']))
    attrs = draw(st.sampled_from(["", ' ServiceEndpoint="http://h/" ContainerName="c"', ' A="&amp;"']))
    body = f"{head}<EnumerationResults{attrs}><MaxResults>5</MaxResults><Blobs>{''.join(blobs + folders)}</Blobs>{marker}</EnumerationResults>"
    return body.encode("utf-8", "surrogatepass")


def outcome(parse, body: bytes):
    try:
        page = parse(body)
    except Exception as exc:  # noqa: BLE001 - the reference's verdict, whatever it is
        return ("error", type(exc).__name__)
    return page if page is None else (page.blobs, page.folders, page.next_marker)


@FUZZ
@given(pages())
def test_whatever_the_fast_reader_accepts_elementtree_reads_the_same(body):
    fast = outcome(_parse_fast, body)
    if fast is None:
        return  # ElementTree reads it
    assert fast == outcome(_parse, body)


def test_azure_shaped_pages_take_the_fast_path_and_match():
    layout = Layout("tree", 30_000)
    for prefix, delimiter, metadata in (("t001/", "", True), ("t001/", "", False), ("", "/", True), ("t002/s3/", "/", True)):
        body = list_page(layout, "c", "http://h/devstoreaccount1", prefix, delimiter, "", 5000, metadata)
        fast = _parse_fast(body)
        assert fast is not None, (prefix, delimiter, metadata)
        assert outcome(_parse_fast, body) == outcome(_parse, body)
        assert parse_page(body).blobs == fast.blobs


def test_a_content_md5_that_is_not_an_md5_is_refused_as_elementtree_refuses_it():
    """Found by the property test above: the Azure-order pattern let a malformed Content-MD5 through as an
    ordinary property (md5 None), where ElementTree's reader fails on its base64. Now the fast reader has a
    doubt (None) and the page goes to ElementTree."""
    body = (b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><MaxResults>5</MaxResults><Blobs><Blob>'
            b'<Name>0</Name><Properties><Last-Modified>Tue, 01 Dec 2026 09:00:00 GMT</Last-Modified><Etag>0x8D1</Etag>'
            b'<Content-Length>1</Content-Length><Content-MD5>abc</Content-MD5></Properties></Blob></Blobs>'
            b'</EnumerationResults>')
    assert outcome(_parse_fast, body) is None
    assert outcome(_parse, body) == ("error", "Error")  # binascii.Error: not base64
    assert outcome(parse_page, body) == ("error", "StorageError")  # refused as a bad answer, as any other


def test_azurite_shaped_pages_take_the_fast_path_and_match():
    """Azurite declares its pages ``encoding="UTF-8" standalone="yes"``: the same document for both readers, so
    a no-op against Azurite (the suite's, the benchmark's) is read as fast as against Azure."""
    layout = Layout("tree", 30_000)
    azure = list_page(layout, "c", "http://h/devstoreaccount1", "t001/", "", "", 5000, True)
    assert azure.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    body = azure.replace(b'encoding="utf-8"?>', b'encoding="UTF-8" standalone="yes"?>', 1)
    fast = _parse_fast(body)
    assert fast is not None and fast.blobs
    assert outcome(_parse_fast, body) == outcome(_parse, body)


def test_the_refused_characters_are_found_in_the_bytes():
    """The check on the UTF-8 bytes finds exactly the characters XML refuses (or rewrites: \\r), anywhere in a
    page: C0 controls but tab and newline, U+FFFE and U+FFFF; nothing else, in the BMP or beyond it."""
    refused = {*range(0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20), 0xFFFE, 0xFFFF}
    for code in [*range(0x10000), 0x10000, 0x1F600, 0x10FFFF]:
        if 0xD800 <= code < 0xE000:
            continue  # surrogates: no UTF-8 body holds them
        assert _has_refused_chars(f"<a>x{chr(code)}y</a>".encode()) == (code in refused), hex(code)
