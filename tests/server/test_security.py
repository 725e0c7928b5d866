"""Network safety against real servers: the loopback default, the Host allow-list (DNS
rebinding), websocket and cross-site Origin checks, CORS, the security headers, and the
token a non-loopback bind requires (bearer header, cookie, ?token=)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gradscope.server.settings import Settings
from gradscope.server.web.security import HostAllowList, is_loopback, token_required, with_token
from tests.server.conftest import Server, started

EVIL = "http://evil.example"
RUN_ID = "0123456789ab"  # a well-formed id no run has


class AnyAnswerServer(Server):
    """A Server that is up once it answers at all (a 401 too); `command` may replace serve."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        command: Callable[[int], list[str]] | None = None,
    ) -> None:
        super().__init__(data_dir, env)
        self.command_for = command

    def command(self) -> list[str]:
        return self.command_for(self.port) if self.command_for else super().command()

    def ready(self, response: httpx.Response) -> bool:
        return True  # up once it answers at all


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`gradscope serve` with the defaults: loopback, no token."""
    env = {"GRADSCOPE_HOST": "127.0.0.1", "GRADSCOPE_TOKEN": "", "GRADSCOPE_CORS_ORIGINS": ""}
    with started(Server(tmp_path_factory.mktemp("local") / "data", env)) as s:
        yield s


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`gradscope serve` bound to every address: it makes a token and prints it."""
    env = {"GRADSCOPE_HOST": "0.0.0.0", "GRADSCOPE_TOKEN": ""}
    with started(AnyAnswerServer(tmp_path_factory.mktemp("network") / "data", env)) as s:
        yield s


def printed_token(server: Server) -> str:
    found = re.search(
        rf"http://127\.0\.0\.1:{server.port}/\?token=([\w-]+)", server.log.read_text()
    )
    assert found, server.log.read_text()
    return found.group(1)


def ws_refused(url: str, **kwargs: Any) -> InvalidStatus:
    """The refusal of a websocket upgrade (fails if the upgrade is accepted)."""
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(url, open_timeout=30, max_queue=None, **kwargs),
    ):
        pass
    return refused.value


def ws_hello(url: str, **kwargs: Any) -> dict[str, Any]:
    """The first message of an accepted websocket."""
    with connect(url, open_timeout=30, max_queue=None, max_size=None, **kwargs) as ws:
        return json.loads(ws.recv(timeout=30))


# -- settings and pure functions -------------------------------------------------------------
def test_the_default_bind_is_loopback_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRADSCOPE_HOST", "GRADSCOPE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.host == "127.0.0.1"
    assert not token_required(settings) and with_token(settings).token == ""


LOOPBACK = ["127.0.0.1", "127.8.0.1", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]
NETWORK = ["0.0.0.0", "::", "192.168.1.20", "gradscope.lan"]


@pytest.mark.parametrize(
    ("host", "loopback"), [(h, True) for h in LOOPBACK] + [(h, False) for h in NETWORK]
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert token_required(Settings(host=host)) is not loopback


def test_a_network_bind_gets_a_fresh_strong_token() -> None:
    a, b = (with_token(Settings(host="0.0.0.0")).token for _ in range(2))
    assert len(a) >= 32 and a != b
    given = "x" * 20
    assert with_token(Settings(host="0.0.0.0", token=given)).token == given
    assert token_required(Settings(token=given))  # a token set on loopback is required too


# Any port; an address literal cannot be rebound; gradscope.lan is configured.
ALLOWED = ["localhost:8000", "LOCALHOST", "127.0.0.1:8000", "[::1]:8000", "10.1.2.3:8000"]
ALLOWED += ["gradscope.lan:8000"]
REFUSED = ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.evil.example"]
REFUSED += ["", "localhost:port", "[::1", "a b", "evil.example;script-src *"]


@pytest.mark.parametrize(
    ("header", "allowed"), [(h, True) for h in ALLOWED] + [(h, False) for h in REFUSED]
)
def test_host_allow_list(header: str, allowed: bool) -> None:
    hosts = HostAllowList(Settings(allowed_hosts=("gradscope.lan",)))
    assert hosts.allows(header) is allowed


def test_a_wildcard_bind_answers_to_the_machine_name() -> None:
    hosts = HostAllowList(Settings(host="0.0.0.0"))
    assert hosts.allows(f"{socket.gethostname()}:8000") and not hosts.allows("evil.example")
    assert HostAllowList(Settings(allowed_hosts=("*",))).allows("evil.example")


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADSCOPE_ALLOWED_HOSTS", " a.example, b.example ,")
    monkeypatch.setenv("GRADSCOPE_CORS_ORIGINS", "https://app.example")
    settings = Settings.from_env()
    assert settings.allowed_hosts == ("a.example", "b.example")
    assert settings.cors_origins == ("https://app.example",)
    monkeypatch.setenv("GRADSCOPE_TOKEN", "short")
    with pytest.raises(ValueError, match="GRADSCOPE_TOKEN"):
        Settings.from_env()
    monkeypatch.setenv("GRADSCOPE_TOKEN", "with a space and ; semicolons")
    with pytest.raises(ValueError, match="GRADSCOPE_TOKEN"):
        Settings.from_env()
    monkeypatch.delenv("GRADSCOPE_TOKEN")
    monkeypatch.setenv("GRADSCOPE_CORS_ORIGINS", "app.example/path")
    with pytest.raises(ValueError, match="GRADSCOPE_CORS_ORIGINS"):
        Settings.from_env()


# -- a default server ---------------------------------------------------------------------
def _listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net shows them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_serve_listens_on_loopback_only(local: Server) -> None:
    assert _listening(local.port) == ["0100007F"]  # 127.0.0.1 and nothing else
    log = local.log.read_text()
    assert f"http://127.0.0.1:{local.port}/ " in log and "token=" not in log


def test_a_foreign_host_name_is_refused(local: Server) -> None:
    for path in ("/", "/draw", "/api/runs", "/static/js/api.js", "/docs"):
        r = local.request("GET", path, headers={"Host": "evil.example"})
        assert r.status_code == 403, (path, r.text)
        assert "GRADSCOPE_ALLOWED_HOSTS" in r.text and "DNS rebinding" in r.text
    r = local.request(
        "POST",
        "/api/runs",
        json={"preset": "napkin-average"},
        headers={"Host": f"evil.example:{local.port}"},
    )
    assert r.status_code == 403 and "GRADSCOPE_ALLOWED_HOSTS" in r.json()["detail"]
    for host in (f"localhost:{local.port}", f"[::1]:{local.port}", "127.0.0.1", "localhost"):
        assert local.request("GET", "/api/runs", headers={"Host": host}).status_code == 200
    # A websocket asking for the rebound name: refused before the upgrade.
    for path in ("/ws/runs", f"/ws/runs/{RUN_ID}"):
        sock = socket.create_connection(("127.0.0.1", local.port))
        refused = ws_refused(f"ws://evil.example:{local.port}{path}", sock=sock)
        assert refused.response.status_code == 403
        assert b"GRADSCOPE_ALLOWED_HOSTS" in refused.response.body
    sock = socket.create_connection(("127.0.0.1", local.port))
    assert ws_hello(f"ws://localhost:{local.port}/ws/runs", sock=sock)["kind"] == "runs"


def test_a_websocket_from_another_origin_is_refused(local: Server) -> None:
    for origin in (EVIL, f"http://evil.example:{local.port}", "null"):
        for path in ("/ws/runs", f"/ws/runs/{RUN_ID}"):
            refused = ws_refused(f"{local.ws_url}{path}", origin=origin)
            assert refused.response.status_code == 403, (origin, path)
            assert b"GRADSCOPE_CORS_ORIGINS" in refused.response.body
    # The page's own origin, and scripts that send no Origin, are served.
    own = f"http://127.0.0.1:{local.port}"
    assert ws_hello(f"{local.ws_url}/ws/runs", origin=own)["kind"] == "runs"
    assert ws_hello(f"{local.ws_url}/ws/runs")["kind"] == "runs"


def test_a_cross_site_request_that_changes_something_is_refused(local: Server) -> None:
    path = f"/api/runs/{RUN_ID}/pause"
    refused = [
        {"Origin": EVIL},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame
        {"Sec-Fetch-Site": "same-site"},
    ]
    for headers in refused:
        r = local.request("POST", path, headers=headers)
        assert r.status_code == 403 and "GRADSCOPE_CORS_ORIGINS" in r.json()["detail"], headers
    passed = [
        {},
        {"Origin": f"http://127.0.0.1:{local.port}", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # our page, no-referrer policy
    ]
    for headers in passed:
        assert local.request("POST", path, headers=headers).status_code == 404, headers
    # Reads are not refused: without CORS the browser keeps the answer from the other page.
    r = local.request("GET", "/api/runs", headers={"Origin": EVIL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_no_cors_by_default(local: Server) -> None:
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    r = local.request("OPTIONS", "/api/runs", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = local.request("GET", "/api/presets", headers={"Origin": EVIL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_security_headers(local: Server) -> None:
    page = local.request("GET", "/")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert f"ws://127.0.0.1:{local.port}" in directives["connect-src"]
    for r in (page, local.request("GET", "/api/runs"), local.request("GET", "/static/js/api.js")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in local.request("GET", "/api/runs").headers
    # FastAPI's /docs loads Swagger UI from a CDN with an inline script: no policy there.
    docs = local.request("GET", "/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers


def inline_scripts(html: str) -> list[str]:
    """Inline scripts, inline event handlers and javascript: URLs in a page."""
    problems = [
        tag
        for tag, body in re.findall(r"(<script\b[^>]*>)(.*?)</script>", html, re.S | re.I)
        if "src=" not in tag or body.strip()
    ]
    problems += re.findall(r"<[^>]*\son[a-z]+\s*=[^>]*>", html, re.I)
    return problems + re.findall(r"<[^>]*=\s*[\"']?\s*javascript:[^>]*>", html, re.I)


def test_pages_have_no_inline_script(local: Server) -> None:
    run = local.create("napkin-average", steps=3)  # a short real run: its pages are the point
    pages = ["/", "/draw", "/compare", f"/compare?runs={run['id']}", f"/runs/{run['id']}"]
    for path in pages:
        r = local.request("GET", path)
        assert r.status_code == 200, path
        assert '<script type="module" src="/static/js/' in r.text  # the page has its script
        assert inline_scripts(r.text) == [], path
    bad = '<button onclick="go()">x</button><script>alert(1)</script><a href="javascript:x">'
    assert len(inline_scripts(bad)) == 3  # the check itself can fail


def test_configured_hosts_and_cors_origins(tmp_path: Path) -> None:
    app = "http://app.example:3000"
    env = {"GRADSCOPE_ALLOWED_HOSTS": "gradscope.lan", "GRADSCOPE_CORS_ORIGINS": app}
    with started(Server(tmp_path / "data", env)) as s:
        lan = f"gradscope.lan:{s.port}"
        assert s.request("GET", "/", headers={"Host": lan}).status_code == 200
        assert s.request("GET", "/", headers={"Host": "evil.example"}).status_code == 403
        r = s.request("GET", "/api/runs", headers={"Origin": app})
        assert r.headers["access-control-allow-origin"] == app
        r = s.request("GET", "/api/runs", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in r.headers
        preflight = {"Origin": app, "Access-Control-Request-Method": "POST"}
        r = s.request("OPTIONS", "/api/runs", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == app
        r = s.request("POST", f"/api/runs/{RUN_ID}/pause", headers={"Origin": app})
        assert r.status_code == 404  # past the Origin check
        assert ws_hello(f"{s.ws_url}/ws/runs", origin=app)["kind"] == "runs"
        assert ws_refused(f"{s.ws_url}/ws/runs", origin=EVIL).response.status_code == 403


# -- a server bound to the network needs the token ------------------------------------------
def test_a_network_bind_prints_its_token(network: Server) -> None:
    token = printed_token(network)
    log = network.log.read_text()
    assert f"http://{socket.gethostname()}:{network.port}/?token={token}" in log
    assert len(token) >= 32


def test_a_network_bind_refuses_without_the_token(network: Server) -> None:
    wrong = "w" * 43
    attempts: list[dict[str, Any]] = [
        {},
        {"headers": {"Authorization": f"Bearer {wrong}"}},
        {"headers": {"Cookie": f"gradscope_token_{network.port}={wrong}"}},
        {"params": {"token": wrong}},
        {"headers": {"Cookie": f"gradscope_token_1={printed_token(network)}"}},  # another port's
    ]
    for kwargs in attempts:
        for method, path in (("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/docs")):
            r = network.request(method, path, **kwargs)
            assert r.status_code == 401, (method, path, kwargs)
        r = network.request("GET", "/api/runs", **kwargs)
        assert "token" in r.json()["detail"] and r.headers["www-authenticate"].startswith("Bearer")
        page = network.request("GET", "/", **kwargs)
        assert page.status_code == 401 and "?token=" in page.text
        assert page.headers["content-type"].startswith("text/plain")
        assert network.request("GET", "/openapi.json", **kwargs).status_code == 401
    for url, kwargs in (
        (f"{network.ws_url}/ws/runs", {}),
        (f"{network.ws_url}/ws/runs/{RUN_ID}", {}),
        (f"{network.ws_url}/ws/runs?token={wrong}", {}),
        (f"{network.ws_url}/ws/runs", {"additional_headers": {"Authorization": f"Bearer {wrong}"}}),
    ):
        refused = ws_refused(url, **kwargs)
        assert refused.response.status_code == 401 and b"token" in refused.response.body
    # Static files are the same for everyone: they stay open.
    assert network.request("GET", "/static/js/api.js").status_code == 200


def test_a_network_bind_serves_with_the_token(network: Server) -> None:
    token = printed_token(network)
    bearer = {"Authorization": f"Bearer {token}"}
    assert network.request("GET", "/api/runs", headers=bearer).status_code == 200
    short = {"preset": "napkin-average", "config": {"steps": 3}}
    run = network.request("POST", "/api/runs", json=short, headers=bearer)
    assert run.status_code == 201, run.text
    rid = run.json()["id"]
    assert network.request("GET", "/api/runs", params={"token": token}).status_code == 200

    # The first visit with ?token= sets the cookie and takes the token out of the address.
    first = network.request("GET", f"/runs/{rid}", params={"token": token, "x": "1"})
    assert first.status_code == 303 and first.headers["location"] == f"/runs/{rid}?x=1"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"gradscope_token_{network.port}={token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    with httpx.Client(base_url=network.url, timeout=60, follow_redirects=True) as browser:
        page = browser.get("/", params={"token": token})
        assert page.status_code == 200 and str(page.url) == f"{network.url}/"
        assert "<script" in page.text
        assert browser.get(f"/runs/{rid}").status_code == 200  # the cookie alone
        assert browser.get("/api/runs").status_code == 200
        again = browser.get("/draw", params={"token": token}, follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == "/draw"
        jar = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

    # Websockets: the cookie (as a browser sends it), the bearer header, or ?token=.
    ws = f"{network.ws_url}/ws/runs/{rid}"
    for url, kwargs in (
        (ws, {"additional_headers": {"Cookie": jar}}),
        (ws, {"additional_headers": bearer}),
        (f"{ws}?token={token}&since=0", {}),
    ):
        assert ws_hello(url, **kwargs)["kind"] == "hello"


def test_a_token_set_on_loopback_is_required(tmp_path: Path) -> None:
    token = "a-loopback-token-1234"
    with started(AnyAnswerServer(tmp_path / "data", {"GRADSCOPE_TOKEN": token})) as s:
        assert s.request("GET", "/api/runs").status_code == 401
        ok = s.request("GET", "/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert ws_refused(f"{s.ws_url}/ws/runs").response.status_code == 401
        assert ws_hello(f"{s.ws_url}/ws/runs?token={token}")["kind"] == "runs"
