"""``strongroom up``: a local Prefect server on SQLite, the demo platform, one backup and one
recovery, then the UI address; Ctrl-C (or ``--once`` after the runs) stops everything it started.

Nothing here imports prefect before the environment points it at the local server.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import redirect_stderr, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, StorageError, StrongroomError

DEMO_SOURCE = "demo-files"
PROFILE = "strongroom-local"
SERVER_START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300
STOP_TIMEOUT_S = 20


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "strongroom"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def user_profiles_path() -> Path:
    """The profiles file the user's other shells read (before this process moves PREFECT_HOME
    into the state directory)."""
    if os.environ.get("PREFECT_PROFILES_PATH"):
        return Path(os.environ["PREFECT_PROFILES_PATH"]).expanduser()
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser() / "profiles.toml"


def save_profile(path: Path, api_url: str, name: str = PROFILE) -> None:
    """Create or update the Prefect profile ``name`` in ``path`` with PREFECT_API_URL (the
    active profile is left as it is: ``prefect profile use NAME`` switches)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_PROFILES_PATH,
        load_profiles,
        save_profiles,
        temporary_settings,
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_settings({PREFECT_PROFILES_PATH: path}):
        profiles = load_profiles()
        profiles.update_profile(name, {PREFECT_API_URL: api_url})
        save_profiles(profiles)


def announce(config: Path, profiles_path: Path, api_url: str, as_json: bool = False,
             strict: bool = False) -> None:
    """Check the platform file (a bad one fails here, before anything starts; ``strict``: a
    schedule missing its RPO too), save the profile, then print the ``export
    PREFECT_API_URL=...`` line first: the file's warnings (schedules missing an RPO) follow it."""
    from deployments.config import load_config

    said = io.StringIO()
    try:
        with redirect_stderr(said):
            load_config(config, strict=strict)
    except BaseException:
        sys.stderr.write(said.getvalue())  # the warnings, then the error
        raise
    warnings = said.getvalue()
    save_profile(profiles_path, api_url)
    if not as_json:
        print("\n".join(findable_lines(api_url)), flush=True)
    sys.stderr.write(warnings)
    sys.stderr.flush()


def findable_lines(api_url: str) -> list[str]:
    """What to type in another shell to reach this server."""
    return [f"export PREFECT_API_URL={api_url}",
            f"prefect profile use {PROFILE}   # or: the profile names this server for good"]


def stack_env(state: Path, host: str, port: int) -> dict[str, str]:
    """Environment for the server, the runner and this process: local, offline, no analytics."""
    return {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_API_URL": f"http://{host}:{port}/api",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": f"http://{host}:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # ... but flow and task run logs reach the API at INFO: the UI's Logs tabs show them.
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
        "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
        "DO_NOT_TRACK": "1",
    }


DEMO_REDIS = "demo-cache"


def redis_available() -> bool:
    return bool(shutil.which("redis-server") and shutil.which("redis-cli"))


def demo_platform(state: Path, with_redis: bool = False) -> Path:
    """Write the demo platform file (a generated files tree, local repositories and, where
    redis-server is installed, a Redis the stack starts) once."""
    demo = state / "demo"
    data = demo / "data"
    if not data.exists():
        for i in range(60):
            sub = data / f"dept-{i % 5}" / f"year-{2020 + i % 4}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"report-{i:03}.txt").write_text(
                f"Report {i}\n" + "".join(f"line {j}: {secrets.token_hex(24)}\n"
                                          for j in range(40 + i)))
        (data / "README.md").write_text("Demo data for Strongroom.\n")
        (data / "empty-dir").mkdir()
        (data / "latest").symlink_to("dept-0")
    password_file = state / "demo.password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    config = demo / "platform.yaml"
    if config.exists():
        return config
    config.write_text(f"""# Demo platform written by `strongroom up` (rewritten only if deleted)
site: demo
timezone: America/New_York
keys:
  demo:
    password: ${{STRONGROOM_DEMO_PASSWORD}}
targets:
  primary: {{url: {state / 'repos' / 'primary'}, role: primary, key: demo}}
  secondary: {{url: {state / 'repos' / 'secondary'}, role: secondary, key: demo}}
sources:
  {DEMO_SOURCE}:
    kind: files
    class: files
    paths: [{data}]
    restore_target: {state / 'restores' / DEMO_SOURCE}
""" + (f"""  {DEMO_REDIS}:
    kind: redis
    class: database
    port: ${{STRONGROOM_DEMO_REDIS_PORT}}
    password: ${{STRONGROOM_DEMO_PASSWORD}}
    restore_target: redis://127.0.0.1:${{STRONGROOM_DEMO_REDIS_PORT}}
""" if with_redis else "") + demo_schedules())
    return config


def demo_schedules() -> str:
    """The seed's schedules plus the example platform's four-hourly files incremental, so the
    demo meets its own objectives (a daily incremental alone misses the files RPO of 4 h)."""
    import yaml

    from deployments.seed import SEED_SCHEDULES

    rows = {**SEED_SCHEDULES, "four-hourly-incremental": {
        "tier": "incremental", "cron": "0 */4 * * *", "classes": ["files"], "keep": "2d"}}
    return yaml.safe_dump({"schedules": rows}, sort_keys=False)


def demo_has_redis(config: Path) -> bool:
    return f"  {DEMO_REDIS}:\n    kind: redis" in config.read_text()


def start_demo_redis(stack: Stack, state: Path, host: str, port: int, password: str) -> None:
    """The demo's Redis on loopback (password in a 0600 config file, never on a command
    line), with a few keys of several types so a snapshot and a recovery have something."""
    import redis

    rdir = state / "demo" / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    conf = rdir / "redis.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"bind {host}\nport {port}\nrequirepass {password}\ndir {rdir}\n"
                 'save ""\nappendonly no\ndaemonize no\nprotected-mode yes\n')
    stack.spawn("redis", [str(shutil.which("redis-server")), str(conf)])
    client = redis.Redis(host=host, port=port, password=password, socket_timeout=5)
    deadline = time.monotonic() + 30
    while True:
        stack.check_alive()
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise StorageError(f"the demo Redis did not start (see {state / 'redis.log'})"
                                   ) from None
            time.sleep(0.1)
    if client.dbsize() == 0:
        for i in range(200):
            client.set(f"order:{i}", f"order {i}: {secrets.token_hex(16)}")
        client.hset("customer:1", mapping={"name": "Ada", "tier": "gold"})
        client.rpush("queue:emails", *[f"job-{i}" for i in range(20)])
        client.set("session:demo", "expires in a day", ex=86400)
    client.close()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if ``strongroom up`` itself is killed (Linux)."""
    with suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Stack:
    """The child processes of ``strongroom up``, each in its own process group."""

    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.env = {**os.environ, **env}
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], cwd: Path | None = None
              ) -> subprocess.Popen[bytes]:
        log = open(self.state / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent, cwd=cwd)
        log.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise StorageError(f"{name} exited with code {proc.returncode} (see "
                                   f"{self.state / (name + '.log')})")

    def stop(self) -> None:
        """SIGINT each process group, then SIGTERM, then SIGKILL; newest first."""
        for _name, proc in reversed(self.procs):
            for sig, wait in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 5),
                              (signal.SIGKILL, 5)):
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with suppress(ProcessLookupError):  # stragglers of the group (flow-run children)
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


def wait_healthy(stack: Stack, api_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_alive()
        with suppress(OSError):
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise StorageError(f"Prefect server did not answer on {api_url} within {timeout_s:.0f} s")


def wait_deployments(stack: Stack, names: list[str], timeout_s: float) -> None:
    """Wait until the runner has registered every deployment in ``names``."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            stack.check_alive()
            have = {d.name for d in client.read_deployments()}
            if set(names) <= have:
                return
            time.sleep(0.5)
    raise StorageError(f"deployments were not registered within {timeout_s:.0f} s (see "
                       f"{stack.state / 'serve.log'})")


def run_demo(state: Path, with_redis: bool = False) -> dict[str, Any]:
    """One backup and one recovery through their deployments (with Redis: also a database
    snapshot and a database recovery); their states and artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.deployments import run_deployment

    source = f"files/{DEMO_SOURCE}"
    dest = state / "restores" / f"{DEMO_SOURCE}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    runs = {}
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("backup", "backup-full/weekly-full", {"sources": [source]}),
        ("recovery", "recover-files/recover-files", {"source": source, "target_dir": str(dest)}),
    ]
    if with_redis:
        plan += [("database backup", "backup-snapshot/hourly-snapshot",
                  {"sources": [f"redis/{DEMO_REDIS}"]}),
                 ("database recovery", "recover-database/recover-database",
                  {"source": f"redis/{DEMO_REDIS}", "replace": True})]
    for label, name, params in plan:
        run = run_deployment(name, parameters=params, timeout=RUN_TIMEOUT_S)
        state_name = run.state.name if run.state else "unknown"
        runs[label] = {"deployment": name, "flow_run": str(run.id), "state": state_name,
                       "message": (run.state.message or "") if run.state else ""}
        if not (run.state and run.state.is_completed()):
            break
    keys = [f"post-mortem-recover-files-{DEMO_SOURCE}"]
    if with_redis:
        keys.append(f"post-mortem-recover-database-{DEMO_REDIS}")
    with get_client(sync_client=True) as client:
        found = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=keys)))}
    return {"runs": runs, "restored_to": str(dest), "expected_runs": len(plan),
            "post_mortem_artifact": keys[0] if keys[0] in found else None,
            "post_mortem_artifacts": [k for k in keys if k in found]}


def up(state_dir: Path | None = None, host: str = "127.0.0.1", port: int = 4200,
       once: bool = False, config_path: Path | None = None, as_json: bool = False,
       strict: bool = False) -> int:
    """Start the stack, run the demo, print the UI address; stop on Ctrl-C or after ``once``
    (``strict``: refuse a platform file whose schedules miss an RPO)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"strongroom up listens on loopback only, not {host!r}")
    state = (state_dir or default_state_dir()).expanduser().absolute()
    state.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    if port_in_use(host, port):
        raise ConfigError(f"port {port} on {host} is in use (another Prefect server?): "
                          "pass --port")
    env = stack_env(state, host, port)
    profiles_path = user_profiles_path()  # read before the environment moves PREFECT_HOME
    config = config_path or demo_platform(state, with_redis=redis_available())
    with_redis = config_path is None and demo_has_redis(config)
    if with_redis:
        env["STRONGROOM_DEMO_REDIS_PORT"] = str(free_port(host))
    password = (state / "demo.password").read_text().strip() if (
        state / "demo.password").exists() else ""
    env.setdefault("STRONGROOM_DEMO_PASSWORD", password)
    os.environ.update(env)  # before prefect is imported in this process
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    announce(config, profiles_path, env["PREFECT_API_URL"], as_json, strict)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored
    stack = Stack(state, env)
    try:
        # Explicit settings: right even if prefect was imported before the environment was set,
        # so this process never falls back on an ephemeral API of its own.
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"],
                                 PREFECT_HOME: env["PREFECT_HOME"]}):
            return _run(stack, state, host, port, config, config_path is None, once, as_json,
                        with_redis)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


def automation_names() -> list[str]:
    """Strongroom's alert automations on the server, by name."""
    from prefect.client.orchestration import get_client

    from deployments.alerts import PREFIX

    with get_client(sync_client=True) as client:
        return sorted(a.name for a in client.read_automations() if a.name.startswith(PREFIX))


def _run(stack: Stack, state: Path, host: str, port: int, config: Path, demo: bool,
         once: bool, as_json: bool, with_redis: bool = False) -> int:
    say = (lambda *a, **k: None) if as_json else print
    api = f"http://{host}:{port}/api"
    say(f"Starting Prefect server on http://{host}:{port} (state in {state}) ...")
    stack.spawn("server", [sys.executable, "-m", "prefect", "server", "start",
                           "--host", host, "--port", str(port), "--analytics-off"])
    wait_healthy(stack, api, SERVER_START_TIMEOUT_S)
    if with_redis:
        redis_port = int(os.environ["STRONGROOM_DEMO_REDIS_PORT"])
        say(f"Starting the demo Redis on {host}:{redis_port} ...")
        start_demo_redis(stack, state, host, redis_port, os.environ["STRONGROOM_DEMO_PASSWORD"])
    say("Registering blocks and deployments, serving them ...")
    stack.spawn("serve", [sys.executable, "-m", "deployments.serve", "--config", str(config)])
    from deployments.build import schedule_specs
    from deployments.config import load_config

    # all of them, so the table below is complete (serve registers them one by one)
    wait_deployments(stack, list(schedule_specs(load_config(config))), SERVER_START_TIMEOUT_S)
    from deployments.listing import deployment_rows, format_rows

    rows = deployment_rows()
    say(format_rows(rows))
    result = run_demo(state, with_redis) if demo else {"runs": {}}
    if demo:  # a deliberately failing source alerts a local webhook (deployments/alert_demo.py)
        from deployments.alert_demo import WebhookReceiver, demo_alert

        result["alert"] = demo_alert(config, state, WebhookReceiver(host))
    ui = f"http://{host}:{port}"
    result["automations"] = automation_names()
    result |= {"ui": ui, "api_url": api, "profile": PROFILE, "state_dir": str(state),
               "config": str(config), "deployments": rows}
    ok = all(r["state"] == "Completed" for r in result["runs"].values()) and (
        not demo or len(result["runs"]) == result["expected_runs"])
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for label, r in result["runs"].items():
            print(f"{label}: {r['deployment']} -> {r['state']} {r['message']}".rstrip())
        for key in result.get("post_mortem_artifacts", []):
            print(f"post-mortem artifact: {key}")
        if alert := result.get("alert"):
            print(f"critical alert for {alert['source']} ({alert['run_state']}): " + (
                f"received by the demo webhook {alert['webhook']} {alert['latency_s']} s "
                f"after the failure: {alert['subject']}" if alert["received"] else
                f"NOT received by the demo webhook {alert['webhook']}"))
        print(f"automations ({len(result['automations'])}, the UI's Automations page): "
              + ", ".join(result["automations"]))
        print(f"Prefect UI: {ui}")
        print(f"Other shells: {findable_lines(api)[0]}  (or prefect profile use {PROFILE})",
              flush=True)
    if once:
        return 0 if ok else 1
    say("Press Ctrl-C to stop.", flush=True)
    while True:
        stack.check_alive()
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    """``strongroom-up`` without the engine CLI (same options as ``strongroom up``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="strongroom up", description=__doc__)
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    try:
        return up(args.state_dir, port=args.port, once=args.once, config_path=args.config,
                  as_json=args.json, strict=args.strict)
    except StrongroomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
