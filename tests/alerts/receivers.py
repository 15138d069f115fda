"""Real receivers on 127.0.0.1: an HTTP server that records JSON POSTs, an SMTP server
(aiosmtpd) that records messages, each with the time it arrived."""

from __future__ import annotations

import json
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from deployments.up import free_port


class WebhookRecorder:
    """``url`` receives POSTs; ``messages`` holds (arrival time, decoded JSON body)."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    data = {"raw": body.decode(errors="replace")}
                recorder.messages.append((time.time(), data))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, predicate: Any, timeout_s: float) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for when, msg in list(self.messages):
                if predicate(msg):
                    return when, msg
            time.sleep(0.1)
        raise AssertionError(f"no matching message within {timeout_s} s; got "
                             f"{[m for _, m in self.messages]}")

    def matching(self, predicate: Any) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if predicate(m)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpRecorder:
    """An aiosmtpd server on loopback; ``messages`` holds (arrival, subject, body, to)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[float, str, str, list[str]]] = []
        recorder = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                msg = message_from_bytes(envelope.content, policy=default_policy)
                part = msg.get_body(preferencelist=("plain", "html"))
                body = part.get_content() if part is not None else ""
                recorder.messages.append((time.time(), str(msg["subject"]), body,
                                          list(envelope.rcpt_tos)))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait(self, predicate: Any, timeout_s: float) -> tuple[float, str, str, list[str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in list(self.messages):
                if predicate(item):
                    return item
            time.sleep(0.1)
        raise AssertionError(f"no matching mail within {timeout_s} s; got {self.messages}")

    def close(self) -> None:
        self.controller.stop()
