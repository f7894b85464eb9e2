"""The config file: config.example.toml stays valid and documents every key; bad files are usage errors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bucket_sync.config import AUTH_KEYS, COMMANDS, JOB_KEYS, OPTION_TYPES, load_config, parse_config
from bucket_sync.errors import ConfigError, ExitCode

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
COMMENTED_KEY = re.compile(r"^# ([a-z][a-z-]*) = (.*?)(\s+#.*)?$", re.MULTILINE)


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def test_example_parses_as_shipped():
    config = parse_config(tomllib.loads(example_text()), EXAMPLE)
    assert set(config.jobs) == {"captures", "restore"}
    assert config.jobs["captures"]["exclude"] == ("*.tmp", "*.part")
    assert config.default_map()["mirror"]["max_delete"] == "50%"


def test_example_parses_with_every_commented_key_enabled():
    """The "# key = value" examples must be valid too: uncommented, the file still parses."""
    enabled = COMMENTED_KEY.sub(lambda m: f"{m.group(1)} = {m.group(2)}", example_text())
    assert enabled != example_text()
    config = parse_config(tomllib.loads(enabled), EXAMPLE)
    assert config.auth["client-id"] == "service-app-client-id"
    assert config.common["block-size"] == "8M"


def test_example_documents_every_key():
    text = example_text()
    documented = set(re.findall(r"^(?:# )?([a-z][a-z-]*) =", text, re.MULTILINE))
    missing = (set(OPTION_TYPES) | AUTH_KEYS | JOB_KEYS) - documented
    assert not missing, f"config.example.toml does not document: {sorted(missing)}"
    for command in COMMANDS:
        if command != "url":  # url has no option worth a config key
            assert f"[{command}]" in text
    assert "[auth]" in text and "[jobs." in text


def test_example_active_values_are_the_defaults(tmp_path):
    """Copying the example changes nothing: its active mirror values equal the command's defaults."""
    from bucket_sync.cli.mirror_cmd import mirror

    config = parse_config(tomllib.loads(example_text()), EXAMPLE)
    import click

    ctx = click.Context(mirror)
    defaults = {p.name: p.get_default(ctx) for p in mirror.params}
    for key, value in config.default_map()["mirror"].items():
        if key in defaults and key not in ("include", "exclude"):
            default = defaults[key]
            same = default == value or str(default) == str(value) or (default in (False, 0, None) and value in (False, 0))
            assert same, f"{key}: example {value!r}, default {default!r}"


@pytest.mark.parametrize("data, fragment", [
    ({"concurency": 4}, "unknown key 'concurency'"),
    ({"concurrency": "4"}, "wrong type"),
    ({"concurrency": True}, "wrong type"),
    ({"mirror": {"max_delete": 1.5}}, "wrong type"),
    ({"exclude": ["ok", 3]}, "list of strings"),
    ({"auth": {"password": "x"}}, "unknown key 'password' in [auth]"),
    ({"jobs": {"nightly": {"source": "/a"}}}, "needs a destination"),
    ({"jobs": {"nightly": {"source": "/a", "destination": "itwin://x", "colour": "red"}}}, "unknown key 'colour'"),
    ({"jobs": {"nightly": "not a table"}}, "must be a table"),
    ({"backup": {"x": 1}}, "unknown section [backup]"),
])
def test_bad_config_is_a_usage_error_naming_the_key(data, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("/etc/bs.toml"))
    assert fragment in info.value.message
    assert info.value.exit_code == ExitCode.USAGE


def test_underscores_and_dashes_are_the_same_key():
    config = parse_config({"max_retry_wait": 10, "mirror": {"no_delete": True}, "auth": {"client_id": "c"}})
    assert config.common == {"max-retry-wait": 10}
    assert config.default_map()["mirror"]["no_delete"] is True
    assert config.auth == {"client-id": "c"}


def test_section_overrides_top_level_for_its_command_only():
    config = parse_config({"concurrency": 4, "upload": {"concurrency": 32}})
    assert config.default_map()["upload"]["concurrency"] == 32
    assert config.default_map()["download"]["concurrency"] == 4


def test_lookup_order(tmp_path, monkeypatch):
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("concurrency = 1\n")
    from_env = tmp_path / "env.toml"
    from_env.write_text("concurrency = 2\n")
    user = tmp_path / "xdg" / "bucket-sync" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("concurrency = 3\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    env = {"BUCKET_SYNC_CONFIG": str(from_env)}
    assert load_config(str(explicit), env).common["concurrency"] == 1
    assert load_config(None, env).common["concurrency"] == 2
    assert load_config(None, {}).common["concurrency"] == 3


def test_missing_explicit_file_is_an_error_but_missing_user_file_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    assert load_config(None, {}).path is None
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.toml"), {})
    with pytest.raises(ConfigError, match="not found"):
        load_config(None, {"BUCKET_SYNC_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("concurrency = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(str(bad), {})
    assert str(bad) in info.value.message
