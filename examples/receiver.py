#!/usr/bin/env python3
"""A partner's postback receiver, for trying company notifications on one machine.

    WEBHOOK_SECRET=whsec_... python3 examples/receiver.py 9000

Prints every delivery maestro POSTs and checks its Standard Webhooks signature with the
partner's postback secret (`maestro partner show PARTNER --secret`), using only the standard
library: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 under the
secret's base64 key, and `webhook-signature` holds one or more `v1,<base64>` (two while a rotated
secret's grace period lasts). Answers 204 to a delivery that verifies, 401 otherwise — a 4xx
fails the delivery for good, so a wrong secret shows as `failed` in `maestro delivery list`, and
`maestro delivery replay ID` sends it again once the secret is right. (docs/PARTNERS.md has the
same receiver with the `standardwebhooks` library, in Python and TypeScript.)
"""

import base64
import hashlib
import hmac
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_SECONDS = 5 * 60


def verified(secret, headers, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "0")
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.split(",", 1)[1] for part in headers.get("webhook-signature", "").split()
               if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, signature) for signature in offered)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verified(os.environ["WEBHOOK_SECRET"], self.headers, body)
        print(f"{self.headers.get('webhook-id')} {self.path} signature "
              f"{'verified' if ok else 'REFUSED'}\n{body.decode()}", flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if "WEBHOOK_SECRET" not in os.environ:
        sys.exit("set WEBHOOK_SECRET to the partner's postback secret (whsec_...)")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
