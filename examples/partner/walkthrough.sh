#!/usr/bin/env bash
# A partner's whole alert flow with curl and jq (docs/PARTNERS.md): tokens, the template, a
# preview, an alert sent, retried, updated and withdrawn, and an error read.
#
#   MAESTRO_URL=http://127.0.0.1:8080 MAESTRO_CLIENT_ID=groundspan MAESTRO_CLIENT_SECRET=mcs_... \
#   MAESTRO_COMPANY_ID=... MAESTRO_USER_ID=... MAESTRO_REQUEST_TOKEN=mrq_... ./walkthrough.sh
set -euo pipefail
cd "$(dirname "$0")"
: "${MAESTRO_URL:=http://127.0.0.1:8080}"

# POST /oauth2/v0/token with these form fields, the client authenticated with HTTP Basic.
token() {
  curl -sS --fail-with-body "$MAESTRO_URL/oauth2/v0/token" \
    -u "$MAESTRO_CLIENT_ID:$MAESTRO_CLIENT_SECRET" "$@"
}

# The company's tokens, for the request token a company administrator's connection sent to the
# redirect URI. It works once: keep the refresh token (with the company id), not the request token.
TOKENS=$(token -d grant_type=password -d credtype=authtoken \
  --data-urlencode username="$MAESTRO_COMPANY_ID" --data-urlencode password="$MAESTRO_REQUEST_TOKEN")
echo "company token: $(jq -r '"scope \(.scope), expires in \(.expires_in) s"' <<<"$TOKENS")"

# Before the hour is out: a new access token, and a new refresh token that replaces the old one.
TOKENS=$(token -d grant_type=refresh_token \
  --data-urlencode refresh_token="$(jq -r .refresh_token <<<"$TOKENS")")
ACCESS_TOKEN=$(jq -r .access_token <<<"$TOKENS")
echo "refreshed: expires in $(jq -r .expires_in <<<"$TOKENS") s"

# An app token (no company, no refresh token): enough to read your templates.
APP_TOKEN=$(token -d grant_type=client_credentials | jq -r .access_token)

# METHOD PATH [JSON]: the answer on stdout; exit code 22 when the status is an error.
api() {
  local args=(-sS --fail-with-body -X "$1" "$MAESTRO_URL$2"
    -H "Authorization: Bearer ${TOKEN:-$ACCESS_TOKEN}")
  if [ $# -gt 2 ]; then args+=(-H 'Content-Type: application/json' --data-binary "$3"); fi
  curl "${args[@]}"
}

# Discover: your templates, and the JSON Schema the metadata of one must satisfy.
TOKEN=$APP_TOKEN api GET /maestro/v4/templates \
  | jq -r '.templates[] | "template \(.templateId) v\(.version)"'
TOKEN=$APP_TOKEN api GET /maestro/v4/templates/NOTIFY_TEMPLATE_ID \
  | jq -r '"NOTIFY_TEMPLATE_ID metadata requires: \(.schema.required | join(", "))"'

# The alert: offer.json with its extRef (yours, unique per company), user and dates. Built once,
# so that a retry sends the very same body.
ALERT=$(jq -c --arg extRef "offer-$(date +%s)-$$" --arg userId "$MAESTRO_USER_ID" \
  --arg createdAt "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg expiresAt "$(date -u -d '+7 days' +%Y-%m-%dT%H:%M:%SZ)" \
  '. + {extRef: $extRef, userId: $userId, createdAt: $createdAt, expiresAt: $expiresAt}' offer.json)

# Preview: checked exactly as a POST would be, rendered, not stored.
api POST /maestro/v4/alerts/preview "$ALERT" | jq -r '"preview: \(.title)"'

# Send, and send again: an identical retry answers the same alertId.
ALERT_ID=$(api POST /maestro/v4/alerts "$ALERT" | jq -r .alertId)
echo "created $ALERT_ID"
api POST /maestro/v4/alerts "$ALERT" | jq -r '"retried \(.alertId): \(.message)"'

# Update by extRef (the body's), or by id; the body is a whole alert again.
CHEAPER=$(jq -c '.metadata.packages[0].variants[0].price.amount = 280' <<<"$ALERT")
api PUT /maestro/v4/alerts "$CHEAPER" | jq -r '"\(.status) \(.alertId) by extRef"'
CHEAPER=$(jq -c '.metadata.packages[0].variants[0].price.amount = 260' <<<"$ALERT")
api PUT "/maestro/v4/alerts/$ALERT_ID" "$CHEAPER" | jq -r '"\(.status) \(.alertId) by id"'

# A deliberate error: every problem at once, each with a JSON Pointer to the field at fault.
BROKEN=$(jq -c '.metadata.packages[0].variants[0].price.amount = "cheap"
  | .metadata.partnerLogoUrl = "http://groundspan.com/logo.png"' <<<"$ALERT")
if ERRORS=$(api POST /maestro/v4/alerts/preview "$BROKEN"); then
  echo "the broken alert was accepted" >&2
  exit 1
fi
jq -r '.errors[] | "error \(.errorCode) at \(.details.field): \(.errorMessage)"' <<<"$ERRORS"

# Withdraw: the offer sold out; the alert leaves every inbox at once.
api DELETE "/maestro/v4/alerts/$ALERT_ID" | jq -r '"\(.status) \(.alertId)"'
