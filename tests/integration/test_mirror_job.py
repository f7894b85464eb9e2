"""README.md, "Mirroring from cron", through the real command: a named job from the config file runs, the command line
wins over the job's options, and a wrong job name or job key is a usage error."""

from __future__ import annotations

import pytest

from tests.support.mirror_trees import local_tree, remote_tree

pytestmark = pytest.mark.integration


def write_config(path, itwin: str, src, *, extra: str = "") -> None:
    path.write_text(
        f"""
[mirror]
max-delete = "90%"

[jobs.captures]
source = "{src}"
destination = "itwin://{itwin}/cap"
exclude = ["*.tmp"]
max-delete = 1
json = true
{extra}
[jobs.other]
source = "{src}"
destination = "itwin://{itwin}/other"
""",
        encoding="utf-8",
    )


def test_named_job_runs_with_its_options_and_the_command_line_wins(cli, listing_itwin, bucket_container, make_files, tmp_path):
    src = make_files(tmp_path / "src", {"a.txt": "a", "b.txt": "b", "c.txt": "c", "scratch.tmp": "no"})
    config = tmp_path / "bucket-sync.toml"
    write_config(config, listing_itwin, src)
    container = bucket_container(listing_itwin)

    run = cli("mirror", "--job", "captures", "--config", config)
    assert run.returncode == 0, run
    assert run.summary is not None and run.summary["uploaded"] == 3, "json = true in the job gives JSON lines"
    assert set(remote_tree(container, "cap")) == {"a.txt", "b.txt", "c.txt"}, "the job's exclude applies"

    (src / "a.txt").unlink()
    (src / "b.txt").unlink()
    # The job's max-delete 1 (not [mirror]'s 90%) refuses deleting 2 of 3...
    refused = cli("mirror", "--job", "captures", env={"BUCKET_SYNC_CONFIG": str(config)})
    assert refused.returncode == 6, refused
    assert "allows 1" in refused.stderr, refused
    # ...and --max-delete on the command line wins over the job.
    allowed = cli("mirror", "--job", "captures", "--max-delete", "2", "--config", config)
    assert allowed.returncode == 0 and allowed.summary["deleted"] == 2, allowed
    assert {k: v[0] for k, v in remote_tree(container, "cap").items()} == \
        {k: v[0] for k, v in local_tree(src).items() if not k.endswith(".tmp")}


def test_unknown_job_lists_the_known_ones(cli, listing_itwin, tmp_path):
    config = tmp_path / "c.toml"
    write_config(config, listing_itwin, tmp_path)
    run = cli("mirror", "--job", "nightly", "--config", config)
    assert run.returncode == 2, run
    assert "nightly" in run.stderr and "captures, other" in run.stderr, run


def test_job_with_src_and_dst_too_is_a_usage_error(cli, listing_itwin, tmp_path):
    config = tmp_path / "c.toml"
    write_config(config, listing_itwin, tmp_path)
    run = cli("mirror", "--job", "captures", "--config", config, tmp_path, f"itwin://{listing_itwin}/x")
    assert run.returncode == 2 and "do not pass them too" in run.stderr, run


def test_job_setting_an_option_mirror_does_not_have_is_a_usage_error(cli, listing_itwin, tmp_path):
    config = tmp_path / "c.toml"
    write_config(config, listing_itwin, tmp_path, extra="recursive = true\n")
    run = cli("mirror", "--job", "captures", "--config", config)
    assert run.returncode == 2 and "'recursive', which is not a mirror option" in run.stderr, run
