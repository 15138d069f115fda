"""Backend options (``-o``): unknown keys and bad values are bad input (exit 2) naming the
option, before any connection is tried; so are a repository path that is a file and an S3 URL
without a bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import ConfigError
from strongroom.storage import registry
from strongroom.storage.base import Backend
from strongroom.storage.options import whole_number
from strongroom.storage.registry import open_backend, register_scheme
from tests.cli.conftest import one_line_error

S3 = "s3://some-bucket/repo"


@pytest.mark.parametrize(("option", "named"), [
    ("no_such_option=1", "unknown option 'no_such_option' for s3://"),
    ("max_attempts=abc", "option max_attempts is not a whole number, got 'abc'"),
    ("max_attempts=0", "option max_attempts must be between 1"),
    ("endpoint=not-a-url", "option endpoint is not a URL"),
    ("endpoint=http://127.0.0.1:99999", "option endpoint is not a URL"),
    ("endpoint=ftp://host", "option endpoint is not a URL"),
    ("region=@@@", "option region is not a region name"),
    ("read_timeout=soon", "option read_timeout is not a number of seconds"),
    ("connect_timeout=-1", "option connect_timeout must be more than 0"),
    ("storage_class=GLACIERX", "option storage_class must be GLACIER, DEEP_ARCHIVE or STANDARD"),
    ("object_lock_days=many", "option object_lock_days is not a whole number"),
    ("legal_hold=maybe", "option legal_hold is not true or false"),
])
def test_bad_s3_option_is_refused_naming_it(option: str, named: str) -> None:
    key, _, value = option.partition("=")
    with pytest.raises(ConfigError) as err:
        open_backend(S3, {key: value})
    assert named in str(err.value) and err.value.exit_code == 2


@pytest.mark.parametrize(("option", "named"), [
    ("no_such_option=1", "unknown option 'no_such_option' for s3://"),
    ("max_attempts=abc", "option max_attempts is not a whole number, got 'abc'"),
    ("endpoint=not-a-url", "option endpoint is not a URL"),
    ("region=@@@", "option region is not a region name"),
])
def test_bad_s3_option_is_exit_2_on_the_command_line(cli, option: str, named: str) -> None:
    one_line_error(cli("snapshots", "-r", S3, "-o", option, check=False, timeout=60), 2, named)


@pytest.mark.parametrize("command", ["init", "status", "forget --keep-last 1"])
def test_every_command_checks_options(cli, command: str) -> None:
    proc = cli(*command.split(), "-r", S3, "-o", "no_such_option=1", check=False, timeout=60)
    one_line_error(proc, 2, "unknown option 'no_such_option'")


def test_local_repository_takes_no_options(cli) -> None:
    cli("init")
    one_line_error(cli("snapshots", "-o", "endpoint=http://127.0.0.1:9000", check=False), 2,
                   "unknown option 'endpoint' for file:// repositories")


def test_secret_values_are_never_repeated() -> None:
    with pytest.raises(ConfigError) as err:
        open_backend(S3, {"secret_access_key": "  "})
    assert str(err.value) == "option secret_access_key is empty"


def test_repository_path_that_is_a_file_is_bad_input(cli, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a repository\n")
    for command in ("init", "snapshots", "verify"):
        one_line_error(cli(command, "-r", str(plain), check=False), 2,
                       f"repository path {plain} is a file")
    assert plain.read_text() == "not a repository\n"


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix"])
def test_s3_url_without_bucket_is_bad_input(cli, url: str) -> None:
    one_line_error(cli("snapshots", "-r", url, check=False), 2, "no bucket in S3 URL")


def test_values_are_converted_for_the_backend() -> None:
    backend = open_backend(S3, {"max_attempts": "2", "read_timeout": "2.5",
                                "connect_timeout": 1, "endpoint": "http://127.0.0.1:9",
                                "region": "eu-west-1"})
    config = backend.client.meta.config  # type: ignore[attr-defined]
    assert (config.read_timeout, config.connect_timeout) == (2.5, 1.0)
    assert config.retries["total_max_attempts"] == 2  # in all, not 2 retries
    assert backend.client.meta.region_name == "eu-west-1"  # type: ignore[attr-defined]


def test_a_plugin_scheme_declares_its_options(tmp_path: Path) -> None:
    opened: list[dict[str, Any]] = []

    def factory(url: str, options: dict[str, Any]) -> Backend:
        opened.append(options)
        return open_backend(str(tmp_path / "r"))

    register_scheme("toy", factory, {"parts": whole_number(1, 9)})
    try:
        open_backend("toy://x", {"parts": "3"})
        assert opened == [{"parts": 3}]
        with pytest.raises(ConfigError, match="unknown option 'size' for toy://"):
            open_backend("toy://x", {"size": "3"})
        assert registry.known_options("toy") == ["parts"]
        register_scheme("toy", factory)  # no declaration: the factory checks its own options
        open_backend("toy://x", {"anything": "goes"})
    finally:
        registry._factories.pop("toy", None)
        registry._known_options.pop("toy", None)
