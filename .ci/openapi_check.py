#!/usr/bin/env python3
"""The OpenAPI document, checked two ways against a real server.

1. The document validates as OpenAPI 3.1 (openapi-spec-validator).
2. A bounded schemathesis run, one per group of operations with a token that may use them,
   finds no 5xx and no answer the document does not describe (status, content type, headers,
   body schema).

Usage: .ci/openapi_check.py path/to/maestro   (CI runs it after `cargo test`, with the debug
binary that built). Needs `pip install openapi-spec-validator schemathesis`.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from openapi_spec_validator import OpenAPIV31SpecValidator

COMPANY = "b7d12989-0489-471a-81cd-175f8b78afa5"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_database():
    """A fresh PostgreSQL database for the run, or None where PostgreSQL is not reachable (an
    error under CI=true, where it must be)."""
    if shutil.which("psql") is None:
        if os.environ.get("CI") == "true":
            raise SystemExit("psql is missing: the PostgreSQL round cannot run")
        print("SKIPPED: the PostgreSQL round (no psql)")
        return None
    name = "maestro_openapi_check"
    command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q",
               "-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"]
    if subprocess.run(command, capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            raise SystemExit("PostgreSQL at 127.0.0.1:5432 is unreachable under CI")
        print("SKIPPED: the PostgreSQL round (PostgreSQL unreachable)")
        return None
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def main(binary):
    binary = os.path.abspath(binary)
    failed = check(binary, None)
    postgres = postgres_database()
    if postgres:
        failed += check(binary, postgres)
    if failed:
        print("schemathesis found answers the document does not describe:", ", ".join(failed))
        return 1
    return 0


def check(binary, database_url):
    """One round on a fresh database: the names of the groups that failed."""
    workdir = tempfile.mkdtemp(prefix="maestro-openapi-")
    base = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update({"MAESTRO_PUBLIC_URL": base, "RUST_LOG": "warn"})
    if database_url:
        env["MAESTRO_DATABASE_URL"] = database_url
        env["MAESTRO_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    backend = "PostgreSQL" if database_url else "SQLite"

    def maestro(*args):
        return subprocess.run([binary, *args], cwd=workdir, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def token(kind, subject, *extra):
        return maestro("token", "issue", "--type", kind, "--subject", subject, *extra)

    maestro("migrate")
    server = subprocess.Popen([binary, "serve", "--listen", base.removeprefix("http://")],
                              cwd=workdir, env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        document = json.load(urllib.request.urlopen(f"{base}/openapi.json", timeout=5))
        problems = list(OpenAPIV31SpecValidator(document).iter_errors())
        for problem in problems:
            print("openapi:", problem.message, list(problem.absolute_path))
        if problems:
            return ["the document"]
        print(f"openapi: the document validates ({len(document['paths'])} paths)")

        partner = token("company", COMPANY, "--app", "groundspan",
                        "--scope", "maestro.alerts.writeonly", "--scope", "maestro.admin")
        groups = [
            ("alerts and admin", partner, ["--include-tag", "alerts", "--include-tag", "admin"]),
            ("inbox", token("user", "u-1", "--company", COMPANY,
                            "--scope", "maestro.inbox.readwrite"),
             ["--include-tag", "inbox", "--exclude-operation-id", "streamInbox"]),
            ("company events", token("app", "travel-core", "--app", "travel-core",
                                     "--scope", "maestro.events.publish"),
             ["--include-tag", "company events"]),
            ("app center", token("user", "admin-1", "--company", COMPANY,
                                 "--role", "CompanyAdministrator"),
             ["--include-tag", "app center"]),
            ("operations", None, ["--include-tag", "operations"]),
        ]
        failed = []
        for name, bearer, selection in groups:
            command = ["schemathesis", "run", f"{base}/openapi.json", "--checks", CHECKS,
                       "--max-examples", os.environ.get("OPENAPI_CHECK_EXAMPLES", "15"),
                       "--seed", "1", "--request-timeout", "10",
                       # One worker: CPython 3.11 can fail hypothesis's ast.parse when two threads
                       # run it at once ("AST constructor recursion depth mismatch").
                       "--workers", "1",
                       "--generation-allow-x00", "true", "--warnings", "off", *selection]
            if bearer:
                command += ["-H", f"Authorization: Bearer {bearer}"]
            print(f"schemathesis: {name} on {backend}", flush=True)
            if subprocess.run(command, env=env).returncode != 0:
                failed.append(f"{name} on {backend}")
        return failed
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/debug/maestro"))
