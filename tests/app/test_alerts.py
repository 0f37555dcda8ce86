"""Alerts on the real app: signed webhooks and Telegram to a local receiver, secrets kept
encrypted and masked, validation, admin-only access, failures reported not raised."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from loguru import logger

from tests.support.changes import apply_fee_raise

API = "/daznode/api/v1"
SECRET = "whsec-0123456789-abcdef-XYZ"
TOKEN = "123456789:AAH-test_token_ABCDEFGHIJKLMNOPqrstu"
CHAT_ID = "-1001234567890"


def extension(name: str):
    # LNbits imported the extension as the top-level package `daznode` while starting.
    return sys.modules[f"daznode.{name}"]


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread that records every request."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                reply = b'{"ok": true}' if receiver.status < 300 else b'{"ok": false}'
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
async def alerts_reset(client, admin):
    """Leave no alert destination behind for the other tests."""
    yield
    r = await client.put(
        f"{API}/alerts",
        headers=admin.key_headers(admin=True),
        json={"webhooks": [], "telegram": None, "api_base": None},
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def captured_logs():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    yield lines
    logger.remove(sink)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def stored_document() -> str:
    row = await extension("crud").db.fetchone(
        "SELECT data FROM daznode.settings WHERE id = 'alerts'"
    )
    return row["data"] if row else ""


async def configure(client, admin, hook_url: str, api_base: str) -> dict:
    r = await client.put(
        f"{API}/alerts",
        headers=admin.key_headers(admin=True),
        json={
            "webhooks": [{"url": f"{hook_url}/hook?k=v", "secret": SECRET, "events": []}],
            "telegram": {"bot_token": TOKEN, "chat_id": CHAT_ID, "events": ["failed"]},
            "api_base": api_base,
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_test_alert_reaches_webhook_and_telegram_signed(
    client, admin, receiver, alerts_reset, captured_logs
):
    shown = await configure(client, admin, receiver.url, receiver.url)
    r = await client.post(f"{API}/alerts/test", headers=admin.key_headers(admin=True))
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["ok"] and result["delivered"] == 2 and result["failed"] == 0, result

    hooks = [q for q in receiver.requests if q["path"].startswith("/hook")]
    tgs = [q for q in receiver.requests if "/sendMessage" in q["path"]]
    assert len(hooks) == 1 and len(tgs) == 1, receiver.requests

    hook = hooks[0]
    assert hook["path"] == "/hook?k=v"
    header = hook["headers"]["X-Daznode-Signature"]
    alerts = extension("alerts")
    assert alerts.verify_signature(SECRET, hook["body"], header)
    expected = hmac.new(SECRET.encode(), hook["body"], hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"  # independent of verify_signature
    assert not alerts.verify_signature("another-secret-of-length", hook["body"], header)
    assert not alerts.verify_signature(SECRET, hook["body"] + b" ", header)
    assert hook["headers"]["X-Daznode-Event"] == "test"
    payload = json.loads(hook["body"])
    assert set(payload) == {"event", "title", "detail", "ts", "node"}
    assert payload["event"] == "test" and payload["title"]

    tg = tgs[0]
    assert tg["path"] == f"/bot{TOKEN}/sendMessage"
    message = json.loads(tg["body"])
    assert set(message) == {"chat_id", "text"}
    assert message["chat_id"] == CHAT_ID and "Test alert" in message["text"]

    # Secrets never come back from the API and are not stored in plain text.
    for view in (shown, (await client.get(f"{API}/alerts", headers=admin.bearer())).json()):
        text = json.dumps(view)
        assert SECRET not in text and TOKEN not in text and TOKEN.split(":")[1] not in text
        assert view["webhooks"][0]["secret_set"] is True
        assert view["telegram"]["bot_token_set"] is True
        assert view["telegram"]["chat_id"] == CHAT_ID
    raw = await stored_document()
    assert raw and SECRET not in raw and TOKEN.split(":")[1] not in raw
    logs = "\n".join(captured_logs)
    assert SECRET not in logs and TOKEN.split(":")[1] not in logs

    # Event filters: telegram only wants "failed"; the webhook (no filter) wants everything.
    receiver.requests.clear()
    assert await alerts.send_alert("applied", "Applied 1 change", {"batch": "b1"}) == []
    assert [q["path"] for q in receiver.requests] == ["/hook?k=v"]
    sent = json.loads(receiver.requests[0]["body"])
    assert sent["event"] == "applied" and sent["detail"] == {"batch": "b1"}
    receiver.requests.clear()
    assert await alerts.send_alert("failed", "Batch failed", {"batch": "b2"}) == []
    assert len(receiver.requests) == 2


async def test_a_put_without_secrets_keeps_them(client, admin, receiver, alerts_reset):
    await configure(client, admin, receiver.url, receiver.url)
    before = await stored_document()
    h = admin.key_headers(admin=True)
    view = (await client.get(f"{API}/alerts", headers=h)).json()
    view["telegram"]["chat_id"] = "@daznode_alerts"
    r = await client.put(f"{API}/alerts", headers=h, json=view)  # GET's shape, round-tripped
    assert r.status_code == 200, r.text
    after = json.loads(await stored_document())
    assert after["webhooks"][0]["secret_enc"] == json.loads(before)["webhooks"][0]["secret_enc"]
    assert after["telegram"]["chat_id"] == "@daznode_alerts"
    receiver.requests.clear()
    r = await client.post(f"{API}/alerts/test", headers=h)
    assert r.json()["ok"], r.text
    hook = next(q for q in receiver.requests if q["path"].startswith("/hook"))
    assert extension("alerts").verify_signature(
        SECRET, hook["body"], hook["headers"]["X-Daznode-Signature"]
    )
    tg = next(q for q in receiver.requests if "/sendMessage" in q["path"])
    assert tg["path"] == f"/bot{TOKEN}/sendMessage"


async def test_bad_input_names_the_field_and_saves_nothing(client, admin, receiver, alerts_reset):
    await configure(client, admin, receiver.url, receiver.url)
    h = admin.key_headers(admin=True)
    before_view = (await client.get(f"{API}/alerts", headers=h)).json()
    before_raw = await stored_document()
    hook = {"url": "https://alerts.example.com/hook", "secret": SECRET}
    tg = {"bot_token": TOKEN, "chat_id": CHAT_ID}
    cases = [
        ({"webhooks": [{**hook, "url": "http://alerts.example.com/hook"}]}, "webhooks[0].url"),
        ({"webhooks": [{**hook, "events": ["applied", "exploded"]}]}, "webhooks[0].events"),
        ({"webhooks": [hook] * 11}, "webhooks"),
        ({"webhooks": [{"secret": SECRET}]}, "webhooks[0].url"),
        ({"webhooks": [{**hook, "url": "ftp://alerts.example.com/"}]}, "webhooks[0].url"),
        ({"webhooks": [{"url": "https://new.example.com/"}]}, "webhooks[0].secret"),
        ({"webhooks": [{**hook, "secret": "short"}]}, "webhooks[0].secret"),
        ({"telegram": {**tg, "chat_id": "my chat"}}, "telegram.chat_id"),
        ({"telegram": {**tg, "events": ["nope"]}}, "telegram.events"),
        ({"telegram": {**tg, "bot_token": "not/a/token"}}, "telegram.bot_token"),
        ({"api_base": "http://telegram.example.com"}, "api_base"),
        ({"emails": []}, "emails"),
    ]
    for body, field in cases:
        r = await client.put(f"{API}/alerts", headers=h, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["detail"].startswith(field), (field, r.text)
        assert SECRET not in r.text and TOKEN not in r.text
    r = await client.put(
        f"{API}/alerts", headers=h, json={"webhooks": [{**hook, "url": "http://x.example/"}]}
    )
    assert "https" in r.json()["detail"] and "loopback" in r.json()["detail"]
    r = await client.put(f"{API}/alerts", headers=h, content=b"[1, 2]")
    assert r.status_code == 400
    assert (await client.get(f"{API}/alerts", headers=h)).json() == before_view
    assert await stored_document() == before_raw

    # Loopback hosts may use plain http; a numeric chat id may be a number.
    ok = await client.put(
        f"{API}/alerts",
        headers=h,
        json={
            "webhooks": [
                {"url": "http://localhost:9/a", "secret": SECRET},
                {"url": "http://[::1]:9/b", "secret": SECRET, "events": ["applied"]},
            ],
            "telegram": {"bot_token": TOKEN, "chat_id": 123456789},
        },
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["telegram"]["chat_id"] == "123456789"


async def test_only_admins_see_or_change_alerts(client, admin, alice):
    for method, path in (("GET", ""), ("PUT", ""), ("POST", "/test")):
        r = await client.request(
            method, f"{API}/alerts{path}", headers=alice.key_headers(admin=True), json={}
        )
        assert r.status_code == 403, (path, r.text)
        r = await client.request(
            method, f"{API}/alerts{path}", headers=admin.key_headers(), json={}
        )
        assert r.status_code == 403, (path, r.text)  # an admin's invoice key only reads
    assert (await client.get(f"{API}/alerts")).status_code == 401


async def test_failures_are_reported_not_raised(
    client, admin, receiver, alerts_reset, captured_logs
):
    receiver.status = 500
    down = f"http://127.0.0.1:{free_port()}"
    h = admin.key_headers(admin=True)
    r = await client.put(
        f"{API}/alerts",
        headers=h,
        json={
            "webhooks": [
                {"url": f"{receiver.url}/hook?token=querysecret", "secret": SECRET},
                {"url": f"{down}/hook", "secret": SECRET},
            ],
            "telegram": {"bot_token": TOKEN, "chat_id": CHAT_ID},
            "api_base": down,
        },
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"{API}/alerts/test", headers=h)
    assert r.status_code == 200, r.text
    result = r.json()
    assert not result["ok"] and result["failed"] == 3 and result["delivered"] == 0
    by_dest = {x["destination"]: x for x in result["results"]}
    assert len(by_dest) == 3
    failing = next(x for x in result["results"] if x["status_code"] == 500)
    assert failing["error"] == "HTTP 500" and failing["attempts"] == 2  # one retry
    assert len(receiver.requests) == 2
    assert by_dest["telegram"]["ok"] is False and by_dest["telegram"]["status_code"] is None
    text = json.dumps(result)
    assert SECRET not in text and TOKEN.split(":")[1] not in text and "querysecret" not in text

    alerts = extension("alerts")
    messages = await alerts.send_alert("node_unreachable", "Node down", {"error": "timeout"})
    assert len(messages) == 3 and all("failed" in m for m in messages)
    assert await alerts.send_alert("no_such_event", "x", {}) != []  # reported, not raised
    logs = "\n".join(captured_logs)
    assert "not delivered" in logs
    for secret in (SECRET, TOKEN.split(":")[1], "querysecret"):
        assert secret not in logs


async def test_test_alert_without_destinations_says_so(client, admin, alerts_reset):
    h = admin.key_headers(admin=True)
    r = await client.put(f"{API}/alerts", headers=h, json={"webhooks": [], "telegram": None})
    assert r.status_code == 200
    r = await client.post(f"{API}/alerts/test", headers=h)
    assert r.status_code == 400 and "destination" in r.json()["detail"]


async def test_approving_a_change_alerts_with_a_signed_webhook(
    client, admin, receiver, alerts_reset
):
    h = admin.key_headers(admin=True)
    await configure(client, admin, receiver.url, receiver.url)
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    ch = sorted(channels, key=lambda c: c["channel_id"])[2]
    await apply_fee_raise(client, admin, ch)
    hooks = [q for q in receiver.requests if q["path"].startswith("/hook")]
    events = [q["headers"]["X-Daznode-Event"] for q in hooks]
    assert "applied" in events, events
    hook = hooks[events.index("applied")]
    assert extension("alerts").verify_signature(
        SECRET, hook["body"], hook["headers"]["X-Daznode-Signature"]
    )
    assert ch["channel_id"] in json.loads(hook["body"])["detail"]["channels"]
    # Telegram only wants "failed" events in this configuration.
    assert not [q for q in receiver.requests if "/sendMessage" in q["path"]]
