#!/usr/bin/env python3
"""A webhook receiver for trying wagate's forwarding: verifies both signatures by hand.

    python3 examples/receiver.py <shared_secret> [port]

Prints one JSON line per request: the event and whether each signature verified. Answers 200
when both verify, 401 when one does not, and 400 on any path starting with /reject (to watch a
delivery be dead-lettered, then redriven). Standard library only.
"""
import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 9000


def seed_signature_ok(body: bytes, header: str) -> bool:
    # X-Webhook-Signature: hex HMAC-SHA256 of the exact body, keyed by the whole secret string.
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.lower())


def standard_signature_ok(body: bytes, msg_id: str, timestamp: str, header: str) -> bool:
    # Standard Webhooks: base64 HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed by the bytes the
    # part after `whsec_` decodes to; the header holds one or more "v1,<sig>" entries.
    if abs(time.time() - int(timestamp)) > 300:
        return False
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, entry.removeprefix("v1,"))
        for entry in header.split(" ")
        if entry.startswith("v1,")
    )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        h = self.headers
        seed = seed_signature_ok(body, h.get("x-webhook-signature", ""))
        standard = standard_signature_ok(
            body, h.get("webhook-id", ""), h.get("webhook-timestamp", "0"), h.get("webhook-signature", "")
        )
        event = json.loads(body)
        print(json.dumps({
            "path": self.path,
            "event_type": event["event_type"],
            "event_id": event["event_id"],
            "attempt": int(h.get("x-attempt-count", "0")),
            "message": event.get("message"),
            "seed_signature_ok": seed,
            "standard_signature_ok": standard,
        }), flush=True)
        code = 400 if self.path.startswith("/reject") else 200 if seed and standard else 401
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
