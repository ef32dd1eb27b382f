// A partner of maestro in TypeScript (docs/PARTNERS.md): Node 20's fetch and `standardwebhooks`.
//
//   npm ci && npm run build
//   node dist/partner.js               # the alert flow: token, discover, preview, send, update,
//                                      # an error, withdraw (MAESTRO_URL, MAESTRO_CLIENT_ID, ...)
//   node dist/partner.js receive 9000  # receive company notifications (MAESTRO_WEBHOOK_SECRET)

import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

const BASE_URL = process.env.MAESTRO_URL ?? "http://127.0.0.1:8080";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

interface Tokens {
  access_token: string;
  expires_in: string; // seconds, as a string
  refresh_token?: string; // absent on app tokens
  scope: string;
}

interface ApiError {
  errorCode: string;
  errorMessage: string;
  details?: { field?: string; parameter?: string; alertId?: string };
}

/** The answer's JSON, or an exception carrying what maestro said. */
async function ok<T>(response: Response): Promise<T> {
  if (!response.ok) throw new Error(`${response.url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** A company's tokens, renewed before they expire, and calls made with them. */
class Maestro {
  private accessToken = "";
  private refreshToken?: string;
  private expiresAt = 0;

  constructor(private clientId: string, private clientSecret: string) {}

  private async token(form: Record<string, string>): Promise<Tokens> {
    const basic = Buffer.from(`${this.clientId}:${this.clientSecret}`).toString("base64");
    const response = await fetch(`${BASE_URL}/oauth2/v0/token`, {
      method: "POST",
      headers: { Authorization: `Basic ${basic}` },
      body: new URLSearchParams(form), // application/x-www-form-urlencoded
    });
    const tokens = await ok<Tokens>(response);
    this.accessToken = tokens.access_token;
    this.expiresAt = Date.now() + Number(tokens.expires_in) * 1000;
    // Refresh tokens rotate: each works once, so keep only the newest (store it durably).
    this.refreshToken = tokens.refresh_token;
    return tokens;
  }

  /** Redeems the request token a company's connection sent to your redirect URI. */
  connect(companyId: string, requestToken: string): Promise<Tokens> {
    return this.token({
      grant_type: "password",
      credtype: "authtoken",
      username: companyId,
      password: requestToken,
    });
  }

  refresh(): Promise<Tokens> {
    return this.token({ grant_type: "refresh_token", refresh_token: this.refreshToken ?? "" });
  }

  /** One API call. 429, 503 and 504 did nothing and say when to come back (Retry-After): the
   *  same request is sent again, which is safe for every alert call. */
  async call(method: string, path: string, body?: unknown): Promise<Response> {
    if (this.refreshToken && Date.now() > this.expiresAt - 300_000) await this.refresh();
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(BASE_URL + path, {
        method,
        headers: { Authorization: `Bearer ${this.accessToken}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (![429, 503, 504].includes(response.status) || attempt === 4) return response;
      const seconds = Number(response.headers.get("Retry-After") ?? "1");
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

interface Alert {
  extRef: string;
  userId: string;
  createdAt: string;
  expiresAt: string;
  templateId: string;
  msgType: string;
  metadata: { packages: { variants: { price: { amount: unknown } }[] }[]; [key: string]: unknown };
}

interface AlertAnswer {
  alertId: string;
  status: "received" | "updated" | "withdrawn";
  message: string;
}

async function walkthrough(): Promise<void> {
  const maestro = new Maestro(env("MAESTRO_CLIENT_ID"), env("MAESTRO_CLIENT_SECRET"));
  const tokens = await maestro.connect(env("MAESTRO_COMPANY_ID"), env("MAESTRO_REQUEST_TOKEN"));
  console.log(`company token: scope ${tokens.scope}, expires in ${tokens.expires_in} s`);
  await maestro.refresh();
  console.log("refreshed: a new access token and a new refresh token");

  type Template = { templateId: string; version: number; schema: { required: string[] } };
  const { templates } = await ok<{ templates: Template[] }>(
    await maestro.call("GET", "/maestro/v4/templates"),
  );
  for (const t of templates) console.log(`template ${t.templateId} v${t.version}`);
  const { schema } = await ok<Template>(
    await maestro.call("GET", "/maestro/v4/templates/NOTIFY_TEMPLATE_ID"),
  );
  console.log(`NOTIFY_TEMPLATE_ID metadata requires: ${schema.required.join(", ")}`);

  const now = new Date();
  now.setMilliseconds(0);
  const offer = JSON.parse(readFileSync(new URL("../offer.json", import.meta.url), "utf8"));
  const alert: Alert = {
    ...offer,
    extRef: `offer-${crypto.randomUUID()}`,
    userId: env("MAESTRO_USER_ID"),
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + 7 * 86_400_000).toISOString(),
  };

  const preview = await ok<{ title: string }>(
    await maestro.call("POST", "/maestro/v4/alerts/preview", alert),
  );
  console.log(`preview: ${preview.title}`);

  const created = await ok<AlertAnswer>(await maestro.call("POST", "/maestro/v4/alerts", alert));
  console.log(`created ${created.alertId}`);
  const retried = await ok<AlertAnswer>(await maestro.call("POST", "/maestro/v4/alerts", alert));
  console.log(`retried ${retried.alertId}: ${retried.message}`);

  const cheaper: Alert = structuredClone(alert);
  cheaper.metadata.packages[0].variants[0].price.amount = 260;
  const updated = await ok<AlertAnswer>(await maestro.call("PUT", "/maestro/v4/alerts", cheaper));
  console.log(`${updated.status} ${updated.alertId}`);

  const broken: Alert = structuredClone(alert);
  broken.metadata.packages[0].variants[0].price.amount = "cheap";
  broken.metadata.partnerLogoUrl = "http://groundspan.com/logo.png";
  const refused = await maestro.call("POST", "/maestro/v4/alerts/preview", broken);
  console.log(`preview refused: ${refused.status}`);
  const { errors } = (await refused.json()) as { errors: ApiError[] };
  for (const e of errors) {
    console.log(`error ${e.errorCode} at ${e.details?.field}: ${e.errorMessage}`);
  }

  const withdrawn = await ok<AlertAnswer>(
    await maestro.call("DELETE", `/maestro/v4/alerts/${created.alertId}`),
  );
  console.log(`${withdrawn.status} ${withdrawn.alertId}`);
}

/** Company notifications: legacy v1.0 XML, signed the Standard Webhooks way. */
function receive(port: number): void {
  const webhook = new Webhook(env("MAESTRO_WEBHOOK_SECRET"));
  const seen = new Set<string>(); // webhook-ids handled; keep them in your database
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const id = String(request.headers["webhook-id"]);
    try {
      // The body is XML: jsonParse false, or verify() fails parsing it as JSON.
      webhook.verify(body, request.headers as Record<string, string>, { jsonParse: false });
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      console.log(`refused ${id}: ${error.message}`);
      response.writeHead(401).end();
      return;
    }
    if (seen.has(id)) {
      console.log(`duplicate ${id}`); // a retry of a notification already handled
      response.writeHead(204).end();
      return;
    }
    seen.add(id);
    // A few known elements: a regular expression does here; use an XML parser for more.
    const element = (name: string) => body.match(new RegExp(`<${name}>([^<]*)</${name}>`))?.[1];
    console.log(
      `verified ${id}: ${element("ObjectType")} ${element("EventType")} ${element("ObjectURI")}`,
    );
    response.writeHead(204).end(); // answer at once; fetch the ObjectURI and do the work afterwards
  });
  server.listen(port, "127.0.0.1", () => {
    console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
}

if (process.argv[2] === "receive") {
  receive(Number(process.argv[3] ?? 9000));
} else {
  await walkthrough();
}
