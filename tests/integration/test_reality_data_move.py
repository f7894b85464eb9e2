"""`bucket-sync reality-data move ID --to-itwin ITWIN_ID` against the emulator: every documented answer."""

from __future__ import annotations

import re
import time
import uuid

import pytest

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def timeless(lines: list[dict]) -> list[dict]:
    """The JSON lines without their ``time`` (every event has one, RFC 3339 UTC)."""
    assert all(RFC3339.match(line.get("time", "")) for line in lines), lines
    return [{k: v for k, v in line.items() if k != "time"} for line in lines]


@pytest.fixture
def two_itwins(emulator):
    source, destination = emulator.add_itwin(), emulator.add_itwin()
    return emulator.add_reality_data(itwin_id=source), source, destination


def test_move_succeeds_with_a_one_line_confirmation(cli, emulator, two_itwins):
    rd, _, destination = two_itwins
    result = cli("reality-data", "move", rd, "--to-itwin", destination)
    assert result.returncode == 0, result
    assert result.stdout.strip().splitlines() == [f"moved reality data {rd} to iTwin {destination}"]
    assert emulator.reality_data_itwin(rd) == destination


def test_move_json_prints_the_outcome_as_one_object(cli, emulator, two_itwins):
    rd, _, destination = two_itwins
    result = cli("reality-data", "move", rd.upper(), "--to-itwin", destination, "--json")
    assert result.returncode == 0, result
    assert timeless(result.json_lines) == [{"event": "move", "reality_data_id": rd, "to_itwin": destination, "status": "ok",
                                  "exit_code": 0}]


def test_move_of_unknown_reality_data_is_not_found(cli, emulator, new_itwin):
    missing = str(uuid.uuid4())
    result = cli("reality-data", "move", missing, "--to-itwin", new_itwin, "--json")
    assert result.returncode == 4, result
    assert "RealityDataNotFound" in result.stderr
    assert result.json_lines[-1]["exit_code"] == 4 and result.json_lines[-1]["status"] == "failed"


def test_move_into_its_own_itwin_is_a_conflict(cli, emulator, two_itwins):
    rd, source, _ = two_itwins
    result = cli("reality-data", "move", rd, "--to-itwin", source)
    assert result.returncode == 1, result
    assert "already within that iTwin" in result.stderr


def test_move_refused_as_invalid_shows_the_details_and_their_targets(cli, emulator, two_itwins):
    rd, _, _ = two_itwins
    elsewhere = emulator.add_itwin(datacenter="westeurope")
    result = cli("reality-data", "move", rd, "--to-itwin", elsewhere)
    assert result.returncode == 2, result
    assert "iTwinId: The destination iTwin must be in the same data center" in result.stderr
    assert emulator.reality_data_itwin(rd) != elsewhere


def test_move_without_permission_is_an_auth_error(cli, emulator, two_itwins):
    rd, _, destination = two_itwins
    emulator.deny_move_for(rd)
    result = cli("reality-data", "move", rd, "--to-itwin", destination, "--json")
    assert result.returncode == 3, result
    assert "InsufficientPermissions" in result.stderr and "realitydata_manage" in result.stderr
    assert result.json_lines[-1]["exit_code"] == 3


def test_move_with_a_refused_token_is_an_auth_error(cli, emulator, two_itwins):
    rd, _, destination = two_itwins
    result = cli("reality-data", "move", rd, "--to-itwin", destination, env={"ITWIN_ACCESS_TOKEN": "not-a-valid-token"})
    assert result.returncode == 3, result
    assert "401" in result.stderr


def test_move_waits_out_a_rate_limit_then_succeeds(cli, emulator, two_itwins):
    rd, _, destination = two_itwins
    emulator.inject(r"/move$", 429, retry_after=1)
    started = time.monotonic()
    result = cli("reality-data", "move", rd, "--to-itwin", destination)
    assert result.returncode == 0, result
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured, not ignored
    assert emulator.request_count(r"/move$", status=429) == 1
    assert emulator.request_count(r"/move$", status=204) == 1
    assert emulator.reality_data_itwin(rd) == destination


@pytest.mark.parametrize("args", [["not-a-guid", "--to-itwin", str(uuid.uuid4())], [str(uuid.uuid4()), "--to-itwin", "42"]])
def test_move_with_a_non_guid_id_is_a_usage_error_before_any_network_call(cli, emulator, args):
    result = cli("reality-data", "move", *args)
    assert result.returncode == 2, result
    assert "is not a GUID" in result.stderr
    assert emulator.requests == []


def test_move_takes_top_level_config_keys(cli, emulator, two_itwins, tmp_path):
    rd, _, destination = two_itwins
    config = tmp_path / "config.toml"
    config.write_text(f'api-url = "{emulator.url}"\njson = true\n')
    result = cli("reality-data", "move", rd, "--to-itwin", destination, "--config", config,
                 env={"ITWIN_API_URL": None})
    assert result.returncode == 0, result
    assert result.json_lines[-1]["status"] == "ok"


@pytest.mark.parametrize("lost_with", [503, 429])
def test_a_move_whose_answer_was_lost_and_that_a_retry_finds_done_succeeds(cli, emulator, two_itwins, lost_with):
    rd, _, destination = two_itwins
    # The move goes through, but the answer the CLI gets is a 503/429 with Retry-After: it asks again and
    # hears 409 AlreadyExists, about its own first attempt.
    emulator.inject(r"/move$", lost_with, retry_after=1, after_handling=True)
    result = cli("reality-data", "move", rd, "--to-itwin", destination)
    assert result.returncode == 0, result
    assert result.stdout.strip() == (
        f"reality data {rd} is in iTwin {destination}: it was already in the destination when the move was "
        f"retried after HTTP {lost_with} (the first attempt most likely moved it)")
    assert "error" not in result.stderr
    assert emulator.request_count(r"/move$", status=lost_with) == 1
    assert emulator.request_count(r"/move$", status=409) == 1
    assert emulator.reality_data_itwin(rd) == destination


def test_a_retried_move_reports_success_in_json_too(cli, emulator, two_itwins):
    rd, _, destination = two_itwins
    emulator.inject(r"/move$", 503, retry_after=1, after_handling=True)
    result = cli("reality-data", "move", rd, "--to-itwin", destination, "--json")
    assert result.returncode == 0, result
    assert timeless(result.json_lines) == [{"event": "move", "reality_data_id": rd, "to_itwin": destination, "status": "ok",
                                  "already_there_after_retry": True, "exit_code": 0}]


def test_a_throttled_move_into_its_own_itwin_is_still_reported_as_already_there(cli, emulator, two_itwins):
    # Indistinguishable from the case above for the client: the reality data is where it was asked to be.
    rd, source, _ = two_itwins
    emulator.inject(r"/move$", 429, retry_after=1)
    result = cli("reality-data", "move", rd, "--to-itwin", source)
    assert result.returncode == 0, result
    assert "already in the destination when the move was retried after HTTP 429" in result.stdout
