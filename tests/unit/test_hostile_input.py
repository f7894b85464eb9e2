"""Property-based fuzzing of every parser fed by the outside: List Blobs pages, HEAD headers, SAS URLs and
REMOTE arguments, Retry-After, API JSON and error bodies. Whatever arrives: never a traceback, only a
bucket_sync error with its exit code (or a value within bounds)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucket_sync.errors import BucketSyncError, ExitCode, StorageError, UsageError
from bucket_sync.platform.api import _container_url
from bucket_sync.platform.api_errors import error_from_response
from bucket_sync.retry import HINT_WITHIN_ATTEMPTS, HINT_WITHIN_BUDGET
from bucket_sync.sas import ContainerSas, parse_sas_time
from bucket_sync.storage.list_pages import Page, blob_from_headers, parse_page, to_remote_blob
from bucket_sync.targets import parse_remote

# FUZZ_EXAMPLES=5000 for a longer hunt by hand; the suite's share stays a few seconds.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
EXIT_CODES = {int(c) for c in ExitCode}


def xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def listing_pages(draw) -> bytes:
    """Pages shaped like List Blobs answers, with any value in any field (and fields left out)."""
    blobs = []
    for _ in range(draw(st.integers(0, 4))):
        fields = {
            "Content-Length": draw(st.one_of(st.integers(-5, 10**12).map(str), text)),
            "Content-MD5": draw(st.one_of(st.just("1B2M2Y8AsgTpgAmY7PhCfg=="), text)),
            "Last-Modified": draw(st.one_of(st.just("Tue, 01 Dec 2026 09:00:00 GMT"), text)),
            "Etag": draw(text),
        }
        kept = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
        props = "".join(f"<{k}>{xml_text(fields[k])}</{k}>" for k in kept)
        meta = draw(st.one_of(st.just(""), text.map(lambda t: f"<Metadata><mtime>{xml_text(t)}</mtime></Metadata>")))
        name = draw(text)
        encoded = ' Encoded="true"' if draw(st.booleans()) else ""
        blobs.append(f"<Blob><Name{encoded}>{xml_text(name)}</Name>"
                     + (f"<Properties>{props}</Properties>" if draw(st.booleans()) else "") + meta + "</Blob>")
    prefixes = "".join(f"<BlobPrefix><Name>{xml_text(draw(text))}</Name></BlobPrefix>"
                       for _ in range(draw(st.integers(0, 2))))
    marker = draw(st.one_of(st.just(""), text.map(lambda t: f"<NextMarker>{xml_text(t)}</NextMarker>")))
    return f"<EnumerationResults><Blobs>{''.join(blobs)}{prefixes}</Blobs>{marker}</EnumerationResults>".encode()


@FUZZ
@given(st.one_of(listing_pages(), st.binary(max_size=300)), st.sampled_from(["", "a", "folder/sub"]))
def test_listing_pages_never_crash(body, prefix):
    try:
        page = parse_page(body)
    except StorageError as exc:
        assert exc.exit_code == ExitCode.FAILED and exc.message
        return
    assert isinstance(page, Page)
    for item in page.blobs:
        assert item[1] >= 0  # a negative size is refused, never planned
        try:
            blob = to_remote_blob(prefix, item)
        except StorageError:
            continue
        assert blob is None or (blob.size >= 0 and blob.name == item[0])


@FUZZ
@given(st.dictionaries(st.sampled_from(["Content-Length", "Content-MD5", "x-ms-meta-mtime", "Last-Modified", "ETag"]),
                       text))
def test_head_headers_never_crash(headers):
    blob = blob_from_headers("k", "p/k", headers)
    assert blob.size >= 0 and blob.key == "k"


@FUZZ
@given(st.one_of(text, st.builds(lambda host, q: f"https://{host}/c?{q}", text, text),
                 st.builds(lambda q: f"http://127.0.0.1:10000/devstoreaccount1/c/p?{q}&sig=x", text)))
def test_sas_urls_and_remotes_are_parsed_or_refused_as_usage_errors(value):
    for parse in (ContainerSas.from_url, parse_remote):
        try:
            parse(value)
        except UsageError as exc:
            assert exc.exit_code == ExitCode.USAGE and "sig=x" not in exc.message
    assert parse_sas_time(value) is None or parse_sas_time(value).tzinfo is not None


@FUZZ
@given(st.tuples(st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99),
                 st.integers(0, 99)).map(lambda t: "%04d-%02d-%02dT%02d:%02d:%02dZ" % t))
def test_a_sas_time_in_the_common_form_reads_as_strptime_reads_it(value):
    """se= as Azure writes it is read without strptime: to the same instant, and impossible dates (month 13,
    second 60) still go through strptime and the ISO fallback, as before."""
    try:
        expected = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        try:
            expected = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            expected = None
    assert parse_sas_time(value) == expected


@FUZZ
@given(st.one_of(text, st.floats(allow_nan=True).map(str), st.integers().map(str)))
def test_retry_after_is_bounded_whatever_it_says(value):
    api = HINT_WITHIN_BUDGET.seconds(value, now=1_700_000_000.0)
    assert api is None or 0 < api <= HINT_WITHIN_BUDGET.cap_s
    storage = HINT_WITHIN_ATTEMPTS.seconds(value)
    assert storage is None or storage >= 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | text,
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
                           max_leaves=12)


@st.composite
def api_bodies(draw) -> bytes:
    shaped = st.fixed_dictionaries({"error": st.one_of(json_values, st.fixed_dictionaries(
        {"code": json_values, "message": json_values, "details": json_values}))})
    value = draw(st.one_of(json_values, shaped))
    return draw(st.one_of(st.just(json.dumps(value).encode()), st.binary(max_size=200)))


@FUZZ
@given(st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 502, 503]), api_bodies(),
       st.sampled_from(["application/json", "text/html", "text/plain", ""]))
def test_api_error_answers_map_to_an_error_with_an_exit_code(status, body, content_type):
    resp = httpx.Response(status, content=body, headers={"content-type": content_type},
                          request=httpx.Request("GET", "https://api.example/x"))
    error = error_from_response(resp, what="do the thing")
    assert isinstance(error, BucketSyncError) and int(error.exit_code) in EXIT_CODES
    assert error.message.startswith("could not do the thing")


@FUZZ
@given(api_bodies())
def test_api_success_answers_give_a_container_url_or_a_clear_error(body):
    resp = httpx.Response(200, content=body, request=httpx.Request("GET", "https://api.example/bucket"))
    try:
        url = _container_url(resp, "get the bucket")
    except BucketSyncError as exc:
        assert int(exc.exit_code) in EXIT_CODES and "get the bucket" in exc.message
        return
    assert isinstance(url, str)
