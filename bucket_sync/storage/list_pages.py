"""One List Blobs page: its XML parsed into plain tuples, and those tuples as RemoteBlobs.

Parsed here rather than by the SDK: its generic XML deserializer costs ~0.3 ms per blob, which made a no-op
run over 20,000 files spend seconds of CPU on the listing alone. Tuples, not objects, until the end: the
metadata cache (listing.py) fills in a tuple's mtime before it becomes a RemoteBlob.

Two parsers, one answer. ElementTree builds every element of a page (about 20 per blob): 12-15 µs per
blob, half of a no-op run's CPU at a million files. Pages shaped as Azure writes them (compact, no
comments, CDATA or entity other than the five predefined) are read instead by regular expressions that
check the same structure element by element (each tag closed by its own name) and take the same fields,
at a fifth of the cost. Anything else, or any doubt, goes to ElementTree, which decides: the fast reader
only ever accepts pages that ElementTree reads to the same tuples (a property test compares them).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from ..errors import StorageError
from ..sync.keys import key_from_blob_name
from ..sync.model import RemoteBlob
from ..sync.mtime import datetime_to_ns, parse_mtime
from ..sync.piece_digest import PIECES_KEY

if TYPE_CHECKING:
    from xml.etree import ElementTree

# ElementTree and html are imported where used: pages as Azure writes them never reach ElementTree, and a
# marker rarely needs unescaping (the last page has none); importing both cost every run ~2 ms of its start.


# A listed blob: (name, size, md5, etag, mtime metadata, Last-Modified, sha256pieces metadata)
BlobRow = tuple[str, int, bytes | None, str | None, str | None, str | None, str | None]


@dataclass
class Page:
    blobs: list[BlobRow] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # BlobPrefix names (delimiter listings only)
    next_marker: str | None = None


def parse_page(body: bytes) -> Page:
    """One page, or StorageError for a body that is not a List Blobs answer (hostile or broken: never a
    traceback). A DTD or entity declaration is refused before parsing: List Blobs XML has none, and
    without one no entity can expand (the "billion laughs"), at the cost of two substring searches
    rather than defusedxml's pure-Python parser, which doubled the parse time of every page."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise StorageError("storage answered a listing page with a DTD or entity declarations: refused",
                           hint="check that the URL is an Azure Blob Storage container")
    try:
        fast = _parse_fast(body)
        return fast if fast is not None else _parse(body)
    except (SyntaxError, ValueError, TypeError, AttributeError) as exc:  # SyntaxError: ElementTree.ParseError
        raise StorageError(f"storage answered a listing page that cannot be read ({type(exc).__name__}: "
                           f"{str(exc)[:200]})", hint="check that the URL is an Azure Blob Storage container") from None


def _parse(body: bytes) -> Page:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)
    page = Page(next_marker=root.findtext("NextMarker") or None)
    blobs = root.find("Blobs")
    if blobs is None:
        return page
    for blob in blobs.iter("Blob"):
        props = blob.find("Properties")
        if props is None:
            raise ValueError("a Blob without Properties")
        md5_text = props.findtext("Content-MD5")
        meta = blob.find("Metadata")
        mtime = pieces = None
        if meta is not None:
            mtime = meta.findtext("mtime") or meta.findtext("Mtime")
            pieces = meta.findtext(PIECES_KEY)
        size = int(props.findtext("Content-Length") or 0)
        if size < 0:
            raise ValueError(f"negative Content-Length {size}")
        page.blobs.append((_name(blob), size,
                           base64.b64decode(md5_text) if md5_text else None,
                           props.findtext("Etag"), mtime, props.findtext("Last-Modified"), pieces))
    for folder in blobs.iter("BlobPrefix"):
        page.folders.append(_name(folder))
    return page


# -- the fast reader ---------------------------------------------------------------------------------
_TEXT = r"[^<&]*"
_LEAF = r"<([A-Za-z][\w.:-]*)(?: ?/>|>[^<&]*</\1>)"  # an element holding text only, closed by its own name
_NAME = r'<Name( Encoded="true")?>([^<&]*(?:&(?:amp|lt|gt|quot|apos);[^<&]*)*)</Name>'
_ATTRS = r'(?: [A-Za-z][\w:.-]*="[^"<&]*")*'
# The declaration as Azure writes it, or as Azurite does (``encoding="UTF-8" standalone="yes"``: the same
# encoding, and no external declarations): Azurite's pages went to ElementTree, ~1.4x the fast reader's time.
_HEAD = re.compile(r'(?:<\?xml version="1\.0" encoding="(?:utf|UTF)-8"(?: standalone="yes")?\?>)?<EnumerationResults'
                   + _ATTRS + r">(?:" + _LEAF + r")*<Blobs>")
_BLOB = re.compile(r"<Blob>" + _NAME + r"<Properties>((?:" + _LEAF.replace("\\1", "\\4") + r")*)</Properties>"
                   r"(?:<Metadata>((?:" + _LEAF.replace("\\1", "\\6") + r")*)</Metadata>|(<Metadata ?/>))?"
                   r"(?:<OrMetadata ?/>)?</Blob>")
# Azure's own order of properties, read in one match (the general pattern above takes any order).
_AZURE_BLOB = re.compile(
    r"<Blob>" + _NAME + r"<Properties>(?:<Creation-Time>[^<&]*</Creation-Time>)?"
    r"<Last-Modified>([^<&]*)</Last-Modified><Etag>([^<&]*)</Etag><Content-Length>(\d+)</Content-Length>"
    r"(?:<(?!Content-MD5\b)([A-Za-z][\w.:-]*)(?: ?/>|>[^<&]*</\6>))*"
    r"(?:<Content-MD5>([A-Za-z0-9+/]{22}==)</Content-MD5>|<Content-MD5 ?/>)?"
    # ...and no Content-MD5 after it: one the group above refused (not 16 bytes of base64) must not slip
    # through as an ordinary property; the general reader then decides (and ElementTree refuses it).
    r"(?:" + _LEAF.replace("<(", "<(?!Content-MD5\\b)(", 1).replace("\\1", "\\8") + r")*</Properties>"
    r"(?:<Metadata>(?:<mtime>([^<&]+)</mtime>)?((?:" + _LEAF.replace("\\1", "\\11") + r")*)</Metadata>|<Metadata ?/>)?"
    r"(?:<OrMetadata ?/>)?</Blob>")
_PREFIX = re.compile(r"<BlobPrefix>" + _NAME + r"</BlobPrefix>")
_TAIL = re.compile(r"</Blobs>(?:<NextMarker>(" + _TEXT + r")</NextMarker>|<NextMarker ?/>)?</EnumerationResults>\s*\Z")
# Characters XML refuses, or (\r) rewrites: U+0000-U+001F but tab and newline, U+FFFE and U+FFFF. Looked for
# in the UTF-8 bytes (valid, as decoded), where a control character is its own byte and U+FFFE/U+FFFF
# their three: bytes.translate keeps only the refused bytes, ~3x faster than a regex over the text
# (1.4 instead of 3.9 ms for a page of 1,000 Azurite blobs).
_REFUSED_BYTES = bytes([*range(0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20)])
_OTHER_BYTES = bytes(b for b in range(256) if b not in _REFUSED_BYTES)
_REFUSED_SEQUENCES = ("\ufffe".encode(), "\uffff".encode())

_FIELDS = {tag: re.compile(f"<{tag}(?: ?/>|>({_TEXT})</{tag}>)")
           for tag in ("Content-Length", "Content-MD5", "Etag", "Last-Modified", "mtime", "Mtime", PIECES_KEY)}
_DIGITS = re.compile(r"\d+")
_MD5_B64 = re.compile(r"[A-Za-z0-9+/]{22}==")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos);")


def _has_refused_chars(body: bytes) -> bool:
    return bool(body.translate(None, _OTHER_BYTES)) or any(seq in body for seq in _REFUSED_SEQUENCES)


class _Doubt(Exception):
    """The fast reader will not vouch for this page: ElementTree reads it."""


def _field(tag: str, text: str, start: int, end: int) -> str | None:
    """ElementTree's findtext for a leaf between ``start`` and ``end``: None if absent, '' if empty."""
    found = _FIELDS[tag].search(text, start, end)
    return None if found is None else (found.group(1) or "")


def _ours(text: str, start: int, end: int, mtime: str | None = None) -> tuple[str | None, str | None]:
    """Our metadata entries, mtime and sha256pieces, in the Metadata between ``start`` and ``end`` (``mtime``:
    already read, where it came first)."""
    if mtime is None:
        mtime = _field("mtime", text, start, end) or _field("Mtime", text, start, end)
    return mtime, _field(PIECES_KEY, text, start, end)


def _xml_name(encoded: str | None, raw: str) -> str:
    name = _ENTITY.sub(lambda m: _ENTITIES[m.group()], raw) if "&" in raw else raw
    if not name:
        raise _Doubt
    return unquote(name) if encoded else name


def _parse_fast(body: bytes) -> Page | None:
    """The page, or None when it is not shaped as Azure writes pages (then ElementTree reads it)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "<!" in text or "]]>" in text or text.count("<?") > text.startswith("<?xml ") or _has_refused_chars(body):
        return None  # comments, CDATA, processing instructions, characters XML refuses: ElementTree decides
    head = _HEAD.match(text)
    if head is None:
        return None
    page = Page()
    pos = head.end()
    azure_match, blob_match, prefix_match = _AZURE_BLOB.match, _BLOB.match, _PREFIX.match
    append = page.blobs.append
    try:
        while True:
            m = azure_match(text, pos)
            if m is not None:
                encoded, raw, last_modified, etag, size_text, _, md5_text, _, mtime, rest, _ = m.groups()
                pieces = None
                if rest:  # other metadata: ours may be among it (mtime too, if it did not come first)
                    mtime, pieces = _ours(text, *m.span(10), mtime)
                append((_xml_name(encoded, raw), int(size_text), base64.b64decode(md5_text) if md5_text else None,
                        etag, mtime, last_modified, pieces))
                pos = m.end()
                continue
            m = blob_match(text, pos)
            if m is not None:
                encoded, raw, _props, _, meta, _, _ = m.groups()
                ps, pe = m.span(3)
                size_text = _field("Content-Length", text, ps, pe)
                if size_text and not _DIGITS.fullmatch(size_text):
                    raise _Doubt
                md5_text = _field("Content-MD5", text, ps, pe)
                if md5_text and not _MD5_B64.fullmatch(md5_text):
                    raise _Doubt
                mtime = pieces = None
                if meta is not None:
                    mtime, pieces = _ours(text, *m.span(5))
                page.blobs.append((_xml_name(encoded, raw), int(size_text or 0),
                                   base64.b64decode(md5_text) if md5_text else None,
                                   _field("Etag", text, ps, pe), mtime, _field("Last-Modified", text, ps, pe), pieces))
                pos = m.end()
                continue
            m = prefix_match(text, pos)
            if m is None:
                break
            page.folders.append(_xml_name(m.group(1), m.group(2)))
            pos = m.end()
    except _Doubt:
        return None
    tail = _TAIL.match(text, pos)
    if tail is None:
        return None
    page.next_marker = tail.group(1) or None
    return page


def _name(element: ElementTree.Element) -> str:
    name_el = element.find("Name")
    if name_el is None:
        raise ValueError(f"a {element.tag} without a Name")
    name = name_el.text or ""
    # Names with characters XML cannot carry come percent-encoded.
    return unquote(name) if name_el.get("Encoded") == "true" else name


_NEXT_MARKER = re.compile(rb"<NextMarker>([^<]*)</NextMarker>")


def next_marker(body: bytes) -> str | None:
    """The continuation marker, found without parsing the page (it ends the body): lets the next page be
    requested before this one is parsed."""
    found = _NEXT_MARKER.search(body, max(0, len(body) - 4096))
    if not found:
        return None
    import html

    return html.unescape(found.group(1).decode()) or None


class Headers(Protocol):
    """Response headers as http.client (an HTTPMessage) or a mapping gives them."""

    def get(self, name: str, /) -> str | None: ...


def blob_from_headers(key: str, name: str, headers: Headers) -> RemoteBlob:
    """A blob as a HEAD describes it (Get Blob Properties): the same facts a listing gives."""
    md5_text = headers.get("Content-MD5")
    try:
        md5 = base64.b64decode(md5_text) if md5_text else None
    except ValueError:
        md5 = None
    mtime = headers.get("x-ms-meta-mtime")
    ns = parse_mtime(mtime)
    last_modified = headers.get("Last-Modified")
    if ns is None:
        try:
            fallback = datetime_to_ns(parsedate_to_datetime(last_modified)) if last_modified else 0
        except (TypeError, ValueError):
            fallback = 0
    try:
        size = max(0, int(headers.get("Content-Length") or 0))
    except ValueError:
        size = 0
    return RemoteBlob(key=key, name=name, size=size, mtime_ns=ns if ns is not None else fallback, md5=md5,
                      etag=headers.get("ETag"), mtime_from_metadata=ns is not None,
                      pieces=headers.get("x-ms-meta-" + PIECES_KEY))


def to_remote_blob(prefix: str, item: BlobRow) -> RemoteBlob | None:
    """A listed blob as the diff sees it; None for names outside ``prefix`` and folder markers."""
    name, size, md5, etag, mtime, last_modified, pieces = item
    key = key_from_blob_name(prefix, name)
    if not key or name.endswith("/"):
        return None  # folder markers written by other tools carry no data
    ns = parse_mtime(mtime)
    if ns is None:
        try:
            # None raises TypeError, reported below like an unreadable date
            ns_from_header = datetime_to_ns(parsedate_to_datetime(last_modified))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise StorageError(f"storage listed {name!r} without a readable Last-Modified ({str(last_modified)[:40]!r})",
                               hint="check that the URL is an Azure Blob Storage container") from None
    return RemoteBlob(key=key, name=name, size=size,
                      mtime_ns=ns if ns is not None else ns_from_header,
                      md5=md5, etag=etag, mtime_from_metadata=ns is not None, pieces=pieces)
