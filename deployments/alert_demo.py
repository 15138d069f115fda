"""``strongroom up``'s alert demo: a local webhook, a source that cannot be read, one critical
alert from Prefect's automation to that webhook.

The webhook (a small recorder on a free loopback port, in the ``up`` process) becomes the
channel ``demo-webhook`` for critical, warning and maintenance alerts; a files source whose
path does not exist (``demo-broken``) is backed up through the daily-incremental deployment;
its Failed state reaches the webhook through the ``strongroom: critical: run failed``
automation. The platform file is not changed.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BROKEN = "demo-broken"
CHANNEL = "demo-webhook"


class WebhookReceiver:
    """Records the JSON POSTs it receives, with their arrival time."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        messages = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    messages.append((time.time(), json.loads(body or b"{}")))
                except ValueError:
                    messages.append((time.time(), {"body": body.decode(errors="replace")}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, prefix: str, timeout_s: float) -> tuple[float, dict[str, Any]] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for when, msg in list(self.messages):
                if str(msg.get("subject", "")).startswith(prefix):
                    return when, msg
            time.sleep(0.1)
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def demo_alert(config_path: Path, state: Path, receiver: WebhookReceiver,
               timeout_s: float = 60.0) -> dict[str, Any]:
    """Add the demo channel, back up the broken source, wait for the critical alert."""
    from prefect.deployments import run_deployment

    from blocks import FilesSource
    from deployments.alerts import apply_alerts
    from deployments.config import load_config
    from deployments.notifications import ChannelConfig
    from flows.limits import ensure_limits

    config = load_config(config_path)
    config.notifications.channels[CHANNEL] = ChannelConfig(
        webhook=receiver.url, levels=["critical", "warning", "maintenance"])
    apply_alerts(config)
    FilesSource(source_name=BROKEN, objective_class="files",
                paths=[str(state / "demo" / "missing-on-purpose")]).save(BROKEN, overwrite=True)
    ensure_limits([f"files/{BROKEN}"])
    run = run_deployment("backup-incremental/daily-incremental",
                         parameters={"sources": [f"files/{BROKEN}"]}, timeout=300)
    failed_at = run.state.timestamp.timestamp() if run.state else time.time()
    got = receiver.wait("[critical]", timeout_s)
    out: dict[str, Any] = {"webhook": receiver.url, "source": f"files/{BROKEN}",
                           "run_state": run.state.name if run.state else "unknown",
                           "received": got is not None}
    if got:
        when, msg = got
        out |= {"latency_s": round(when - failed_at, 2), "subject": msg.get("subject"),
                "body": msg.get("body")}
    return out
