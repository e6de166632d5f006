"""A Standard Webhooks receiver for the black-box tests: verifies every delivery with the
PyPI `standardwebhooks` library (an implementation independent of ours) and records it.

    python receiver.py      prints "listening <port>" once it serves on 127.0.0.1

Control (JSON):
    POST /__secrets {"secrets": ["whsec_…", …]}   the secrets to verify with
    POST /__answer {"statuses": [503, …]}          the next answers, in order (then 204)
    GET  /__received                               every delivery so far:
        [{"id", "timestamp", "signatures", "verified_by": [i, …], "body": {…}, "raw": "…",
          "answered": status}]
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

lock = threading.Lock()
secrets: list = []
answers: list = []
received: list = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, payload=None):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__received":
            with lock:
                self.reply(200, received)
        else:
            self.reply(404)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/__secrets":
            with lock:
                secrets[:] = json.loads(raw)["secrets"]
            return self.reply(204)
        if self.path == "/__answer":
            with lock:
                answers[:] = json.loads(raw)["statuses"]
            return self.reply(204)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified_by = []
        with lock:
            for i, secret in enumerate(secrets):
                try:
                    Webhook(secret).verify(raw, headers)
                    verified_by.append(i)
                except Exception:
                    pass
            status = answers.pop(0) if answers else 204
            received.append(
                {
                    "id": headers.get("webhook-id"),
                    "timestamp": headers.get("webhook-timestamp"),
                    "signatures": headers.get("webhook-signature", ""),
                    "content_type": headers.get("content-type"),
                    "verified_by": verified_by,
                    "body": json.loads(raw),
                    "raw": raw.decode(),
                    "answered": status,
                }
            )
        self.reply(status)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
server.serve_forever()
