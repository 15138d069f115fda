"""``strongroom metrics``: Prometheus metrics of repositories, backups and drills.

``strongroom metrics --textfile PATH`` writes the text format for node-exporter's textfile
collector (atomically); ``strongroom metrics serve --port P`` serves ``/metrics`` (loopback by
default), reading the repositories again at most every ``--cache`` seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.app import app
from strongroom.cli.common import KeyFileOpt, OptionOpt, PasswordFileOpt, RepoOpt
from strongroom.errors import ConfigError, StrongroomError

metrics_app = typer.Typer(help="Prometheus metrics: a textfile for node-exporter, or /metrics.",
                          invoke_without_command=True)
app.add_typer(metrics_app, name="metrics")

RepositoryOpt = Annotated[list[str] | None, typer.Option(
    "--repository", "-R",
    help="URL[,tier=primary|secondary|archive][,password-file=F][,key-file=F][,endpoint=...]"
         "[,name=LABEL][,capacity=BYTES] (repeatable). Without it: the --repo repository.")]
DrillsOpt = Annotated[Path | None, typer.Option(
    "--drills", help="Drill history JSON (prefect variable get strongroom_drill_history).")]
FailuresOpt = Annotated[Path | None, typer.Option(
    "--failures", help="Failure counts JSON ({\"<source>|<tier>\": n}) kept by the flows.")]


class Collector:
    """Reads the repositories and records, builds the registry; caches for ``ttl`` seconds."""

    def __init__(self, ctx: typer.Context, repository: list[str], repo: str | None,
                 option: list[str] | None, password_file: Path | None,
                 key_file: Path | None, drills: Path | None, failures: Path | None,
                 ttl: float = 0.0) -> None:
        from strongroom.cli.tiers import _default_password, _status_specs

        self.specs = _status_specs(ctx, repository, repo, option)
        password = _default_password(password_file)
        self.capacity: dict[int, int | None] = {}
        self.names: dict[int, str] = {}
        for i, spec in enumerate(self.specs):
            self.names[i] = str(spec.options.pop("name", None) or _target_name(spec.url))
            cap = spec.options.pop("capacity", None)
            try:
                self.capacity[i] = int(cap) if cap is not None else None
            except ValueError:
                raise ConfigError(f"capacity={cap!r}: give a number of bytes") from None
            if spec.password is None and spec.keyfile is None:
                spec.password = password
                spec.keyfile = str(key_file) if key_file else None
        self.drills, self.failures, self.ttl = drills, failures, ttl
        self._cached: tuple[float, Any] | None = None

    def facts(self) -> list[dict[str, Any]]:
        from strongroom.cli.tiers import _open_spec
        from strongroom.metrics import repository_facts

        out = []
        for i, spec in enumerate(self.specs):
            refused: list[StrongroomError] = []
            repo = _open_spec(spec, refused)
            try:
                out.append(repository_facts(repo, self.names[i], spec.tier,
                                            self.capacity[i]))
            finally:
                repo.close()
        return out

    def registry(self) -> Any:
        from strongroom.metrics import build_registry, load_json

        if self._cached and time.monotonic() - self._cached[0] < self.ttl:
            return self._cached[1]
        reg = build_registry(self.facts(), load_json(self.failures), load_json(self.drills))
        self._cached = (time.monotonic(), reg)
        return reg


def _target_name(url: str) -> str:
    """A short, stable label for a repository URL (credentials never included)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme and parsed.netloc:
        host = parsed.hostname or ""
        return f"{parsed.scheme}://{host}{parsed.path}"
    return url


@metrics_app.callback()
def metrics_cmd(
    ctx: typer.Context,
    textfile: Annotated[Path | None, typer.Option(
        "--textfile", help="Write the metrics here (node-exporter textfile collector); "
        "without it, print them.")] = None,
    repository: RepositoryOpt = None, drills: DrillsOpt = None, failures: FailuresOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None,
) -> None:
    """Repository, backup and drill metrics in the Prometheus text format."""
    from strongroom.metrics import render, write_textfile

    ctx.obj = {"args": (repository or [], repo, option, password_file, key_file, drills,
                        failures)}
    if ctx.invoked_subcommand is not None:
        return
    collector = Collector(ctx, *ctx.obj["args"])
    registry = collector.registry()
    if textfile:
        write_textfile(textfile, registry)
    else:
        print(render(registry), end="")


@metrics_app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="Port of /metrics.")] = 9464,
    address: Annotated[str, typer.Option("--address", help="Listen address (loopback by "
                                         "default; 0.0.0.0 for every interface).")
                       ] = "127.0.0.1",
    cache: Annotated[float, typer.Option("--cache", help="Seconds a reading of the "
                                         "repositories is reused.")] = 30.0,
) -> None:
    """Serve /metrics until interrupted."""
    from prometheus_client import start_http_server

    parent = ctx.parent
    assert parent is not None and parent.obj
    collector = Collector(parent, *parent.obj["args"], ttl=cache)
    collector.registry()  # a bad repository or key fails now, not at the first scrape
    proxy = _Proxy(collector)
    server, thread = start_http_server(port, addr=address, registry=proxy)  # type: ignore
    print(f"serving metrics on http://{address}:{server.server_port}/metrics", flush=True)
    try:
        while thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


class _Proxy:
    """A registry-like object whose ``collect`` reads the collector's current registry."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Any:
        return self.collector.registry().collect()
