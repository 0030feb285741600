"""The collector's HTTP surface under hostile clients, through a real ``medtap collector serve``
(uvicorn on 127.0.0.1, SQLite in tmp):

- schemathesis generates requests from the collector's own OpenAPI document for every
  operation, sent with an admin session, a viewer session, a sensor token and an invalid
  token: no 5xx, every answer conforms to the documented status codes, content types and
  response schemas, and the role decides 401 / 403 as documented (docs/collector.md);
- failed bearer-token attempts are limited per client address (429 with Retry-After);
- security headers on every API answer, error answers included (413, 404, 405, 422, 429),
  and on every web page; HSTS on both when served over TLS.

The auth matrix by route and the login limiter per user name are in
tests/test_collector_api.py; this file does not repeat them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.collector_fixtures import (
    Server,
    batch_from_report,
    medtap,
    report,
    run_server,
    small_batch,
)

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery staple"
SENSOR = "fuzz-span"
SERVER_ENV = {
    "MEDTAP_LOGIN_MAX_FAILURES": "100000",
    "MEDTAP_LOGIN_MAX_FAILURES_PER_IP": "100000",
    "MEDTAP_AUTH_MAX_FAILURES_PER_IP": "100000",
    "MEDTAP_MAX_BODY_BYTES": str(256 * 1024),
}
# Per operation and role: small, so the whole matrix stays near a minute on a shared machine.
MAX_EXAMPLES = 12
ROLES = ("admin", "viewer", "sensor", "invalid")
INVALID_TOKEN = "mts_" + "A" * 43  # well-formed, never issued
API_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@dataclass
class Collector:
    server: Server
    db: str
    tokens: dict[str, str]

    def login(self, name: str) -> str:
        with self.server.client() as c:
            r = c.post("/api/v1/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            token: str = r.json()["access_token"]
            return token


def prepare(tmp: Path) -> tuple[str, dict[str, str]]:
    """A migrated SQLite database with users admin and viewer and one sensor (its token)."""
    db = f"sqlite:///{tmp / 'collector.db'}"
    medtap("collector", "migrate", "--database", db)
    tokens = {"sensor": medtap("collector", "add-sensor", SENSOR, "--database", db).strip()}
    for name in ("admin", "viewer"):
        medtap(
            "collector", "add-user", name, "--role", name, "--password-stdin",
            "--database", db, stdin=PASSWORD + "\n",
        )  # fmt: skip
    return db, tokens


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    tmp = tmp_path_factory.mktemp("security-api")
    db, tokens = prepare(tmp)
    with run_server(db, tmp / "server.log", env=SERVER_ENV) as server:
        col = Collector(server, db, tokens)
        for name in ("admin", "viewer"):
            tokens[name] = col.login(name)
        tokens["invalid"] = INVALID_TOKEN
        with server.client(tokens["sensor"]) as c:  # data for the detail routes to find
            r = c.post("/api/v1/ingest", json=batch_from_report(report(), sensor=SENSOR))
            assert r.status_code == 200, r.text
        yield col


# --- schemathesis ------------------------------------------------------------------------------


def is_public(path: str, method: str) -> bool:
    return (method, path) in {("POST", "/api/v1/login"), ("GET", "/healthz")}


def allowed(role: str, method: str, path: str) -> bool:
    """Who may call what (docs/collector.md, "Authentication and roles")."""
    if is_public(path, method):
        return True
    if role == "invalid":
        return False
    if path in ("/api/v1/me", "/api/v1/policy") and method == "GET":
        return True
    if role == "sensor":
        return path == "/api/v1/ingest"
    if path == "/api/v1/ingest":
        return False
    if path == "/api/v1/logout":
        return True
    if role == "viewer":
        return method == "GET" and not path.startswith(("/api/v1/users", "/api/v1/audit"))
    return True  # admin


@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_every_operation_for_every_role(collector: Collector, role: str) -> None:
    """Generated requests (schema-valid, from the OpenAPI document) for each operation:
    no 5xx, answers conform to the document, and the token's role decides 401/403."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    url = collector.server.url
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    failures: list[str] = []
    timings: dict[str, float] = {}
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        method, path = op.method.upper(), op.path
        operations += 1
        run = conformance_run(collector, role, op, method, path, url, checks)
        started = time.monotonic()
        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{method} {path}: {str(exc)[:1500]}")
        timings[f"{method} {path}"] = time.monotonic() - started
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:3]
    print(f"{role}: {operations} operations in {sum(timings.values()):.1f} s; slowest {slowest}")
    assert operations >= 25
    assert not failures, "\n\n".join(failures)


def conformance_run(
    collector: Collector, role: str, op: Any, method: str, path: str, url: str, checks: list[Any]
) -> Any:
    """A hypothesis test over one operation's generated requests (called without arguments)."""
    from hypothesis import HealthCheck, Phase, given, settings

    @given(case=op.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time on failure
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        token = collector.tokens[role]
        if path == "/api/v1/logout" and role in ("admin", "viewer"):
            token = collector.login(role)  # logging out must not end the shared session
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(base_url=url, headers=headers, timeout=30)
        case.validate_response(response, checks=checks, headers=headers)
        for name, value in API_HEADERS.items():  # schemathesis: header -> list of values
            assert response.headers.get(name) == [value], (name, response.status_code)
        code = response.status_code
        if not allowed(role, method, path):
            want = 401 if role == "invalid" else 403
            # FastAPI decodes a JSON body before the dependencies run: a body that is not
            # JSON at all is 422 for anyone (it reveals nothing about the token).
            assert code == want or (code == 422 and "json_invalid" in response.text), (
                f"{role} {method} {path} -> {code}"
            )
        elif not is_public(path, method):  # (a public login says 401 to a wrong password)
            assert code not in (401, 403) or path.endswith(("/logout", "/ingest")), (
                f"{role} {method} {path} -> {code}: {response.text[:200]}"
            )

    return run


# --- failed bearer tokens are rate limited per client address -------------------------------


def test_failed_bearer_tokens_are_limited_per_address(tmp_path: Path) -> None:
    env = {"MEDTAP_AUTH_MAX_FAILURES_PER_IP": "8", "MEDTAP_LOGIN_WINDOW_SECONDS": "900"}
    db, tokens = prepare(tmp_path)
    with run_server(db, tmp_path / "server.log", env=env) as server:
        good = tokens["sensor"]
        with server.client() as c:
            codes = []
            for i in range(8):
                bad = {"Authorization": f"Bearer mts_guess{i:040d}"}
                codes.append(c.get("/api/v1/policy", headers=bad).status_code)
            assert codes == [401] * 8
            # a missing header is not a guess: it answers 401 and does not count
            assert c.get("/api/v1/me").status_code == 401
            limited = c.get("/api/v1/me", headers={"Authorization": "Bearer mtu_guess"})
            assert limited.status_code == 429, limited.text
            assert int(limited.headers["retry-after"]) > 0
            assert limited.headers["x-content-type-options"] == "nosniff"
            # past the limit the token is not even looked up: the right one waits too
            # (a guesser cannot tell a hit from a miss), for the rest of the window
            r = c.post(
                "/api/v1/ingest",
                json=small_batch(SENSOR),
                headers={"Authorization": f"Bearer {good}"},
            )
            assert r.status_code == 429
            # web logins have their own limiter; the login page still answers
            assert c.get("/login").status_code == 200
        log = server.log.read_text()
    assert "mts_guess" not in log and good not in log  # tokens are never logged
    assert "too many failed bearer tokens" in log


def test_valid_tokens_never_count_toward_the_limit(tmp_path: Path) -> None:
    env = {"MEDTAP_AUTH_MAX_FAILURES_PER_IP": "3"}
    db, tokens = prepare(tmp_path)
    with run_server(db, tmp_path / "server.log", env=env) as server, server.client() as c:
        for _ in range(20):  # successes never count toward the limit
            me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['sensor']}"})
            assert me.status_code == 200
        for _ in range(2):
            assert c.get("/api/v1/me", headers={"Authorization": "Bearer x"}).status_code == 401
        me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['sensor']}"})
        assert me.status_code == 200  # below the limit the right token still works


# --- security headers everywhere ---------------------------------------------------------------


def test_security_headers_on_every_api_answer_and_web_page(collector: Collector) -> None:
    admin = {"Authorization": f"Bearer {collector.tokens['admin']}"}
    with collector.server.client() as c:
        answers = {
            "healthz": c.get("/healthz"),
            "404": c.get("/api/v1/devices/999999", headers=admin),
            "405": c.delete("/api/v1/devices", headers=admin),
            "422": c.get("/api/v1/devices?limit=99999", headers=admin),
            "401": c.get("/api/v1/devices"),
            "413": c.post(
                "/api/v1/ingest",
                content=b"x" * (300 * 1024),
                headers={"Authorization": f"Bearer {collector.tokens['sensor']}"},
            ),
            "unknown path": c.get("/api/v1/nope"),
            "csv": c.get("/api/v1/exports/assets.csv", headers=admin),
        }
        assert answers["413"].status_code == 413
        for what, r in answers.items():
            for name, value in API_HEADERS.items():
                assert r.headers.get(name) == value, (what, name, r.status_code)
            assert "default-src 'none'" in r.headers.get("content-security-policy", ""), what
            assert "strict-transport-security" not in r.headers  # plain HTTP: no HSTS
    with collector.server.client(cookies={"medtap_session": collector.tokens["admin"]}) as c:
        pages = ["/login", "/", "/inventory/devices", "/segmentation", "/sensors", "/audit"]
        pages += ["/device/1", "/device/999999", "/nope", "/static/medtap.css"]
        for path in pages:
            r = c.get(path)
            csp = r.headers.get("content-security-policy", "")
            # web pages allow their own script file; anything else gets default-src 'none'
            assert "script-src 'self'" in csp or "default-src 'none'" in csp, path
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
            for name in ("x-frame-options", "x-content-type-options", "referrer-policy"):
                assert name in r.headers, (path, name)


def test_hsts_and_headers_over_tls_for_web_and_api(tmp_path: Path) -> None:
    """tests/test_collector_api.py::test_tls_with_a_self_signed_certificate covers TLS for
    the API; this checks HSTS on web pages and error answers too."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    db, _tokens = prepare(tmp_path)
    with (
        run_server(
            db,
            tmp_path / "tls.log",
            extra=("--tls-cert", str(cert), "--tls-key", str(key)),
            scheme="https",
            verify=str(cert),
        ) as server,
        server.client() as c,
    ):
        for path in ("/login", "/healthz", "/api/v1/devices", "/nope", "/static/medtap.css"):
            r = c.get(path)
            assert r.headers["strict-transport-security"].startswith("max-age="), path
            assert r.headers["x-content-type-options"] == "nosniff", path
        login = c.get("/login")
        assert "secure" in login.headers["set-cookie"].lower()
