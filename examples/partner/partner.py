#!/usr/bin/env python3
"""A partner of maestro in Python (docs/PARTNERS.md), with `requests` and `standardwebhooks`.

    python3 partner.py               # the alert flow: token, discover, preview, send, update,
                                     # an error, withdraw (MAESTRO_URL, MAESTRO_CLIENT_ID, ...)
    python3 partner.py receive 9000  # receive company notifications (MAESTRO_WEBHOOK_SECRET)
"""

import copy
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from xml.etree import ElementTree

import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

BASE_URL = os.environ.get("MAESTRO_URL", "http://127.0.0.1:8080")


def ok(response):
    """The answer's JSON, or the end of the program with the errors maestro gave."""
    if not response.ok:
        sys.exit(f"{response.request.method} {response.url}: {response.status_code} {response.text}")
    return response.json()


class Maestro:
    """A company's tokens, renewed before they expire, and calls made with them."""

    def __init__(self, client_id, client_secret):
        self.client = (client_id, client_secret)

    def token(self, **form):
        tokens = ok(requests.post(f"{BASE_URL}/oauth2/v0/token", data=form, auth=self.client,
                                  timeout=30))
        self.access_token = tokens["access_token"]
        self.expires_at = time.monotonic() + int(tokens["expires_in"])
        # Refresh tokens rotate: each works once, so keep only the newest (store it durably).
        self.refresh_token = tokens.get("refresh_token")
        return tokens

    def connect(self, company_id, request_token):
        """Redeems the request token a company's connection sent to your redirect URI."""
        return self.token(grant_type="password", credtype="authtoken",
                          username=company_id, password=request_token)

    def refresh(self):
        return self.token(grant_type="refresh_token", refresh_token=self.refresh_token)

    def call(self, method, path, body=None):
        """One API call. 429, 503 and 504 did nothing and say when to come back (Retry-After):
        the same request is sent again, which is safe for every alert call."""
        if self.refresh_token and time.monotonic() > self.expires_at - 300:
            self.refresh()
        for attempt in range(5):
            response = requests.request(method, BASE_URL + path, json=body, timeout=30,
                                        headers={"Authorization": f"Bearer {self.access_token}"})
            if response.status_code not in (429, 503, 504) or attempt == 4:
                return response
            time.sleep(int(response.headers.get("Retry-After", "1")))


def walkthrough():
    env = os.environ
    maestro = Maestro(env["MAESTRO_CLIENT_ID"], env["MAESTRO_CLIENT_SECRET"])
    tokens = maestro.connect(env["MAESTRO_COMPANY_ID"], env["MAESTRO_REQUEST_TOKEN"])
    print(f"company token: scope {tokens['scope']}, expires in {tokens['expires_in']} s")
    maestro.refresh()
    print("refreshed: a new access token and a new refresh token")

    for template in ok(maestro.call("GET", "/maestro/v4/templates"))["templates"]:
        print(f"template {template['templateId']} v{template['version']}")
    schema = ok(maestro.call("GET", "/maestro/v4/templates/NOTIFY_TEMPLATE_ID"))["schema"]
    print(f"NOTIFY_TEMPLATE_ID metadata requires: {', '.join(schema['required'])}")

    now = datetime.now(timezone.utc).replace(microsecond=0)
    alert = json.loads((Path(__file__).parent / "offer.json").read_text())
    alert.update(extRef=f"offer-{uuid.uuid4()}", userId=env["MAESTRO_USER_ID"],
                 createdAt=now.isoformat(), expiresAt=(now + timedelta(days=7)).isoformat())

    preview = ok(maestro.call("POST", "/maestro/v4/alerts/preview", alert))
    print(f"preview: {preview['title']}")

    created = ok(maestro.call("POST", "/maestro/v4/alerts", alert))
    alert_id = created["alertId"]
    print(f"created {alert_id}")
    retried = ok(maestro.call("POST", "/maestro/v4/alerts", alert))
    print(f"retried {retried['alertId']}: {retried['message']}")

    cheaper = copy.deepcopy(alert)
    cheaper["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = 260
    updated = ok(maestro.call("PUT", f"/maestro/v4/alerts/{alert_id}", cheaper))
    print(f"{updated['status']} {updated['alertId']}")

    broken = copy.deepcopy(alert)
    broken["metadata"]["packages"][0]["variants"][0]["price"]["amount"] = "cheap"
    broken["metadata"]["partnerLogoUrl"] = "http://groundspan.com/logo.png"
    refused = maestro.call("POST", "/maestro/v4/alerts/preview", broken)
    print(f"preview refused: {refused.status_code}")
    for error in refused.json()["errors"]:
        print(f"error {error['errorCode']} at {error['details']['field']}: {error['errorMessage']}")

    withdrawn = ok(maestro.call("DELETE", f"/maestro/v4/alerts/{alert_id}"))
    print(f"{withdrawn['status']} {withdrawn['alertId']}")


class Postbacks(BaseHTTPRequestHandler):
    """Company notifications: legacy v1.0 XML, signed the Standard Webhooks way."""

    webhook = None  # Webhook(your postback secret, whsec_...)
    seen = set()  # webhook-ids handled; keep them in your database, with what they caused

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        msg_id = self.headers.get("webhook-id")
        try:
            # The body is XML: json_parse=False, or verify() fails parsing it as JSON.
            self.webhook.verify(body, dict(self.headers), json_parse=False)
        except WebhookVerificationError as error:
            print(f"refused {msg_id}: {error}", flush=True)
            return self.answer(401)
        if msg_id in self.seen:  # a retry of a notification already handled
            print(f"duplicate {msg_id}", flush=True)
            return self.answer(204)
        self.seen.add(msg_id)
        notification = ElementTree.fromstring(body)
        print(f"verified {msg_id}: {notification.findtext('ObjectType')} "
              f"{notification.findtext('EventType')} {notification.findtext('ObjectURI')}",
              flush=True)
        self.answer(204)  # answer at once; fetch the ObjectURI and do the work afterwards

    def answer(self, status):
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


def receive(port):
    Postbacks.webhook = Webhook(os.environ["MAESTRO_WEBHOOK_SECRET"])
    server = HTTPServer(("127.0.0.1", port), Postbacks)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        receive(int(sys.argv[2]) if len(sys.argv) > 2 else 9000)
    else:
        walkthrough()
