"""Named remotes (NAME:<prefix>, as in rclone): a SAS URL kept in the config file or the environment, never
on the command line where every local user can read it in the process list."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def site(azurite):
    name = f"named-{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    return azurite.container_sas_url(name, "racwdl", 3600), azurite.container_client(name)


def write_config(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_named_remote_from_the_config_file(cli, site, tmp_path, make_files):
    url, container = site
    config = write_config(tmp_path / "config.toml", f'[remotes.site]\nurl = "{url}"\n')
    src = make_files(tmp_path / "src", {"a.txt": "a", "b/c.txt": "c"})
    up = cli("upload", src, "site:captures/day1", "--config", config, "--json")
    assert up.returncode == 0, up
    assert sorted(b.name for b in container.list_blobs()) == ["captures/day1/a.txt", "captures/day1/b/c.txt"]
    listed = cli("ls", "site:captures", "--recursive", "--config", config)
    assert listed.returncode == 0 and "captures/day1/b/c.txt" in listed.stdout, listed
    down = cli("download", "site:captures/day1", tmp_path / "out", "--config", config)
    assert down.returncode == 0 and (tmp_path / "out" / "b" / "c.txt").read_text() == "c", down
    assert "warning" not in up.stderr  # 0600: nothing to warn about


def test_named_remote_from_the_environment(cli, site, tmp_path, make_files):
    url, container = site
    src = make_files(tmp_path / "src", {"x.txt": "x"})
    result = cli("upload", src, "field-site:in", env={"BUCKET_SYNC_REMOTE_FIELD_SITE_URL": url})
    assert result.returncode == 0, result
    assert [b.name for b in container.list_blobs()] == ["in/x.txt"]


def test_named_itwin_and_reality_data_remotes(cli, emulator, new_itwin, new_reality_data, bucket_container, tmp_path, make_files):
    owner = emulator.reality_data_itwin(new_reality_data)
    config = write_config(tmp_path / "config.toml",
                          f'[remotes.bucket]\nitwin = "{new_itwin}"\n\n'
                          f'[remotes.scan]\nreality-data = "{new_reality_data}"\nitwin = "{owner}"\n')
    src = make_files(tmp_path / "src", {"roi.json": "{}"})
    assert cli("upload", src, "bucket:jobs/1", "--config", config).returncode == 0
    assert [b.name for b in bucket_container(new_itwin).list_blobs()] == ["jobs/1/roi.json"]
    assert cli("upload", src, "scan:", "--config", config).returncode == 0
    # The reality data was reached through its iTwin (access is decided from the iTwin).
    assert emulator.request_count(r"/writeaccess$", status=200) == 1


@pytest.mark.skipif(not os.path.exists("/proc/self/cmdline"), reason="reads the process list from /proc (Linux)")
def test_the_process_list_of_a_running_upload_shows_no_signature(cli, site, tmp_path, make_files):
    url, _ = site
    signature = url.split("sig=", 1)[1].split("&", 1)[0]
    config = write_config(tmp_path / "config.toml", f'[remotes.site]\nurl = "{url}"\n')
    src = make_files(tmp_path / "src", {f"f{i}.bin": 64 * 1024 for i in range(4)})
    proc = subprocess.Popen([str(cli.executable), "upload", str(src), "site:slow", "--config", str(config),
                             "--bwlimit", "64K", "--concurrency", "1"],
                            env=cli.env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "the upload ended before its process list could be read"
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().decode(errors="replace")
        assert "site:slow" in cmdline and signature not in cmdline and "sig=" not in cmdline
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_config_file_with_a_sas_that_others_can_read_gets_a_warning(cli, site, tmp_path):
    url, _ = site
    config = write_config(tmp_path / "config.toml", f'[remotes.site]\nurl = "{url}"\n', mode=0o644)
    result = cli("ls", "site:", "--config", config)
    assert result.returncode == 0, result
    assert "chmod 600" in result.stderr and str(config) in result.stderr
    os.chmod(config, stat.S_IRUSR | stat.S_IWUSR)
    quiet = cli("ls", "site:", "--config", config)
    assert "chmod 600" not in quiet.stderr


def test_bad_named_remotes_are_usage_errors(cli, tmp_path):
    config = write_config(tmp_path / "config.toml", '[remotes.broken]\nurl = "not a url"\n\n[remotes.two]\nurl = "https://x/c?sig=a"\nitwin = "x"\n')
    result = cli("ls", "broken:", "--config", config)
    assert result.returncode == 2, result
    assert "[remotes.two]" in result.stderr and "exactly one" in result.stderr
    config.write_text('[remotes.broken]\nurl = "not a url"\n')
    result = cli("ls", "broken:", "--config", config)
    assert result.returncode == 2 and "broken" in result.stderr and "Traceback" not in result.stderr, result
    unknown = cli("ls", "nobody:", "--config", config)
    assert unknown.returncode == 2 and "not a remote location" in unknown.stderr, unknown
