"""Alerts: signed webhooks and Telegram messages when something needs an operator.

Settings live in the JSON document "alerts" beside the other settings. Secrets (webhook
secrets, the Telegram bot token) are stored encrypted with LNbits' own helper
(`lnbits.helpers.encrypt_internal_message`: AES with a key derived from
`settings.auth_secret_key`), are never returned by the API and never logged.

Delivery never raises: an alert must not break the monitor or an approval.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from lnbits.helpers import decrypt_internal_message, encrypt_internal_message
from loguru import logger

from . import crud

DOC_ID = "alerts"
EVENTS = ("pending_approval", "applied", "rolled_back", "failed", "node_unreachable")
TEST_EVENT = "test"  # sent by POST /alerts/test to every destination, whatever its events
MAX_WEBHOOKS = 10
MIN_SECRET_LENGTH = 16
MAX_URL_LENGTH = 2000
TIMEOUT_SECONDS = 5.0
RETRY_DELAY_SECONDS = 0.5
DEFAULT_API_BASE = "https://api.telegram.org"
SIGNATURE_HEADER = "X-Daznode-Signature"
EVENT_HEADER = "X-Daznode-Event"
LOOPBACK_NAMES = {"localhost"}
MASK = "••••"

_BOT_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
_CHAT_ID = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
_BOT_PATH = re.compile(r"/bot[^/\s\"']+")


class AlertConfigError(ValueError):
    """A bad alerts document; the message starts with the field it is about."""


# -- signatures -------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The X-Daznode-Signature value: "sha256=" + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """For receivers: does `header` (X-Daznode-Signature) sign `body` with `secret`?
    Constant-time comparison."""
    if not isinstance(header, str) or not isinstance(body, bytes) or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


# -- masking ------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """What logs and results may show of a URL: scheme, host and port only (paths and query
    strings of webhook URLs often carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid url)"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, MASK)
    return _BOT_PATH.sub("/bot" + MASK, text)


class _RedactBotToken(logging.Filter):
    """httpx logs request URLs (at INFO); a Telegram URL carries the bot token."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "/bot" in msg:
            record.msg, record.args = _BOT_PATH.sub("/bot" + MASK, msg), ()
        return True


def _install_log_filter() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactBotToken) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactBotToken())


_install_log_filter()


# -- validation -----------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlertConfigError(f"{field}: required, an http(s) URL")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise AlertConfigError(f"{field}: not a valid URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise AlertConfigError(f"{field}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise AlertConfigError(f"{field}: must be an http(s) URL with a host")
    if parts.scheme == "http" and not _is_loopback(host):
        raise AlertConfigError(
            f"{field}: must use https; plain http is only allowed for a loopback host "
            "(127.0.0.1, localhost, ::1), so that alerts and their signatures cannot be read "
            "or altered on the way"
        )
    return url


def validate_events(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AlertConfigError(f"{field}: a list of events (empty: all events)")
    out: list[str] = []
    for ev in value:
        if ev not in EVENTS:
            raise AlertConfigError(
                f"{field}: unknown event {str(ev)[:40]!r}; known: {', '.join(EVENTS)}"
            )
        if ev not in out:
            out.append(ev)
    return out


def _new_secret(value: Any, field: str, kind: str) -> str | None:
    """A secret the request sets, or None when it leaves the stored one."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AlertConfigError(f"{field}: must be a string")
    if kind == "bot_token":
        if not _BOT_TOKEN.match(value):
            raise AlertConfigError(
                f"{field}: not a Telegram bot token (digits, a colon, then the key BotFather gave)"
            )
    elif len(value) < MIN_SECRET_LENGTH or len(value) > 200:
        raise AlertConfigError(f"{field}: between {MIN_SECRET_LENGTH} and 200 characters")
    return value


def _encrypt(secret: str) -> str:
    encrypted = encrypt_internal_message(secret)
    assert encrypted
    return encrypted


def _check_keys(obj: dict, allowed: set[str], field: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        where = f"{field}." if field else ""
        raise AlertConfigError(f"{where}{unknown[0]}: unknown field")


def _validate_webhooks(value: Any, stored: list[dict]) -> list[dict]:
    if not isinstance(value, list):
        raise AlertConfigError("webhooks: a list of {url, secret, events}")
    if len(value) > MAX_WEBHOOKS:
        raise AlertConfigError(f"webhooks: at most {MAX_WEBHOOKS} webhooks")
    by_url = {w["url"]: w for w in stored}
    out = []
    for i, hook in enumerate(value):
        field = f"webhooks[{i}]"
        if not isinstance(hook, dict):
            raise AlertConfigError(f"{field}: an object {{url, secret, events}}")
        _check_keys(hook, {"url", "secret", "events", "secret_set"}, field)
        url = validate_url(hook.get("url"), f"{field}.url")
        if any(w["url"] == url for w in out):
            raise AlertConfigError(f"{field}.url: listed twice")
        events = validate_events(hook.get("events"), f"{field}.events")
        secret = _new_secret(hook.get("secret"), f"{field}.secret", "secret")
        if secret is not None:
            secret_enc = _encrypt(secret)
        elif url in by_url:  # left out: keep the secret stored for this URL
            secret_enc = by_url[url]["secret_enc"]
        else:
            raise AlertConfigError(
                f"{field}.secret: required for a new webhook URL "
                f"(at least {MIN_SECRET_LENGTH} characters; it signs every request)"
            )
        out.append({"url": url, "secret_enc": secret_enc, "events": events})
    return out


def _validate_telegram(value: Any, stored: dict | None) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AlertConfigError("telegram: an object {bot_token, chat_id, events} or null")
    _check_keys(value, {"bot_token", "chat_id", "events", "bot_token_set"}, "telegram")
    chat_id = value.get("chat_id")
    if isinstance(chat_id, int) and not isinstance(chat_id, bool):
        chat_id = str(chat_id)
    if not isinstance(chat_id, str) or not _CHAT_ID.match(chat_id.strip()):
        raise AlertConfigError(
            "telegram.chat_id: a numeric chat id (e.g. 123456789 or -1001234567890) "
            "or a public @channel name"
        )
    events = validate_events(value.get("events"), "telegram.events")
    token = _new_secret(value.get("bot_token"), "telegram.bot_token", "bot_token")
    if token is not None:
        token_enc = _encrypt(token)
    elif stored:
        token_enc = stored["bot_token_enc"]
    else:
        raise AlertConfigError("telegram.bot_token: required (the token BotFather gave)")
    return {"bot_token_enc": token_enc, "chat_id": chat_id.strip(), "events": events}


def empty_doc() -> dict:
    return {"webhooks": [], "telegram": None, "api_base": None}


def validate_update(body: Any, stored: dict) -> dict:
    """The document to store after a PUT of `body` over `stored`. Fields left out keep their
    value; a secret left out keeps the stored one. Raises AlertConfigError naming the field."""
    if not isinstance(body, dict):
        raise AlertConfigError("Send a JSON object {webhooks, telegram, api_base}.")
    _check_keys(body, {"webhooks", "telegram", "api_base", "events"}, "")
    new = {**empty_doc(), **stored}
    if "webhooks" in body:
        new["webhooks"] = _validate_webhooks(body["webhooks"], stored.get("webhooks") or [])
    if "telegram" in body:
        new["telegram"] = _validate_telegram(body["telegram"], stored.get("telegram"))
    if "api_base" in body:
        base = body["api_base"]
        new["api_base"] = None if base in (None, "") else validate_url(base, "api_base")
        if new["api_base"]:
            new["api_base"] = new["api_base"].rstrip("/")
    return new


def public_view(doc: dict) -> dict:
    """What the API shows: everything but the secrets, which are only said to be set."""
    tg = doc.get("telegram")
    return {
        "webhooks": [
            {"url": w["url"], "events": w["events"], "secret_set": bool(w.get("secret_enc"))}
            for w in doc.get("webhooks") or []
        ],
        "telegram": (
            {
                "chat_id": tg["chat_id"],
                "events": tg["events"],
                "bot_token_set": bool(tg.get("bot_token_enc")),
            }
            if tg
            else None
        ),
        "api_base": doc.get("api_base"),
        "events": list(EVENTS),
    }


def describe(doc: dict) -> str:
    """A one-line summary for the audit log (no secrets, no URL paths)."""
    hooks = ", ".join(mask_url(w["url"]) for w in doc.get("webhooks") or [])
    tg = doc.get("telegram")
    return (
        f"webhooks: {len(doc.get('webhooks') or [])} ({hooks or 'none'}); "
        f"telegram: {'chat ' + tg['chat_id'] if tg else 'off'}"
    )


# -- storage ------------------------------------------------------------------------------------


async def load_alerts() -> dict:
    doc = await crud.get_doc(DOC_ID)
    return {**empty_doc(), **doc} if isinstance(doc, dict) else empty_doc()


async def save_alerts(doc: dict, now: int) -> None:
    await crud.save_doc(DOC_ID, doc, now)


# -- delivery -------------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    destination: str  # "webhook #1 https://host/…" or "telegram": never a secret
    ok: bool
    status_code: int | None = None
    attempts: int = 0
    error: str | None = None

    def message(self) -> str:
        if self.ok:
            return f"{self.destination}: delivered (HTTP {self.status_code})"
        return f"{self.destination}: failed: {self.error}"

    def to_dict(self) -> dict:
        return asdict(self)


def _matches(events: list[str], event: str) -> bool:
    return event == TEST_EVENT or not events or event in events


async def _node() -> dict | None:
    try:
        state = await crud.get_monitor_state()
        info = json.loads(state.get("node_info") or "{}")
    except Exception:  # alerts about a broken node or database must still go out
        return None
    if not state.get("node_pubkey"):
        return None
    return {"pubkey": state["node_pubkey"], "alias": info.get("alias") or ""}


def _transient(status: int) -> bool:
    return status >= 500 or status == 429


def _telegram_error(response: httpx.Response) -> str:
    try:
        desc = response.json().get("description")
    except Exception:
        desc = None
    return f"HTTP {response.status_code}" + (f": {str(desc)[:200]}" if desc else "")


async def _post(
    client: httpx.AsyncClient,
    result: DeliveryResult,
    url: str,
    content: bytes,
    headers: dict[str, str],
    secrets: list[str],
) -> DeliveryResult:
    """POST with one retry on transient errors (connection, timeout, 5xx, 429)."""
    for attempt in (1, 2):
        result.attempts = attempt
        transient = False
        try:
            response = await client.post(url, content=content, headers=headers)
        except httpx.TransportError as exc:  # connect, read, timeout...
            transient = True
            result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:
            result.error = type(exc).__name__
        else:
            result.status_code = response.status_code
            if 200 <= response.status_code < 300:
                result.ok, result.error = True, None
                return result
            transient = _transient(response.status_code)
            is_telegram = result.destination == "telegram"
            result.error = (
                _telegram_error(response) if is_telegram else f"HTTP {response.status_code}"
            )
        result.error = _scrub(result.error or "error", [*secrets, url])
        if not (transient and attempt == 1):
            break
        await asyncio.sleep(RETRY_DELAY_SECONDS)
    return result


def _body(event: str, title: str, detail: dict, node: dict | None) -> bytes:
    payload = {"event": event, "title": title, "detail": detail, "ts": int(time.time())}
    payload["node"] = node
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def _telegram_text(event: str, title: str, detail: dict, node: dict | None) -> str:
    who = (node or {}).get("alias") or ((node or {}).get("pubkey") or "")[:12]
    lines = [f"Daznode{' ' + who if who else ''}: {title}", f"event: {event}"]
    for key, value in list(detail.items())[:12]:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        lines.append(f"{key}: {text[:200]}")
    return "\n".join(lines)[:3500]


def _decrypt(enc: str) -> str | None:
    try:
        return decrypt_internal_message(enc) or None
    except Exception:
        return None


async def _webhook(
    client: httpx.AsyncClient, index: int, hook: dict, event: str, body: bytes
) -> DeliveryResult:
    result = DeliveryResult(f"webhook #{index + 1} {mask_url(hook['url'])}", False)
    secret = _decrypt(hook.get("secret_enc") or "")
    if not secret:
        result.error = "cannot decrypt the stored secret (LNbits' auth key changed?): set it again"
        return result
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Daznode-Alerts",
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_HEADER: event,
    }
    return await _post(client, result, hook["url"], body, headers, [secret])


async def _telegram(
    client: httpx.AsyncClient, tg: dict, api_base: str, event: str, text: str
) -> DeliveryResult:
    result = DeliveryResult("telegram", False)
    token = _decrypt(tg.get("bot_token_enc") or "")
    if not token:
        result.error = (
            "cannot decrypt the stored bot token (LNbits' auth key changed?): set it again"
        )
        return result
    body = json.dumps({"chat_id": tg["chat_id"], "text": text}).encode()
    url = f"{api_base.rstrip('/')}/bot{token}/sendMessage"
    headers = {"Content-Type": "application/json", "User-Agent": "Daznode-Alerts"}
    return await _post(client, result, url, body, headers, [token])


async def deliver(event: str, title: str, detail: dict) -> list[DeliveryResult]:
    """Send to every destination that wants `event` (all of them for "test"), concurrently;
    one result per destination. Raises only on a bad event name or unreadable settings."""
    if event not in EVENTS and event != TEST_EVENT:
        raise ValueError(f"unknown alert event {event!r}")
    doc = await load_alerts()
    hooks = [(i, w) for i, w in enumerate(doc["webhooks"]) if _matches(w["events"], event)]
    tg = doc.get("telegram")
    if tg and not _matches(tg["events"], event):
        tg = None
    if not hooks and not tg:
        return []
    node = await _node()
    detail = detail if isinstance(detail, dict) else {"detail": detail}
    body = _body(event, title, detail, node)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS), follow_redirects=False
    ) as client:
        jobs = [_webhook(client, i, w, event, body) for i, w in hooks]
        if tg:
            text = _telegram_text(event, title, detail, node)
            jobs.append(_telegram(client, tg, doc.get("api_base") or DEFAULT_API_BASE, event, text))
        results = list(await asyncio.gather(*jobs))
    for r in results:
        if not r.ok:
            logger.warning(f"daznode: alert {event!r} not delivered: {r.message()}")
    return results


async def send_alert(event: str, title: str, detail: dict) -> list[str]:
    """Alert every destination that wants `event`. Never raises: returns one message per
    destination that failed (empty: all delivered, or nothing configured for the event)."""
    try:
        results = await deliver(event, title, detail)
    except Exception as exc:
        message = f"alerts: {type(exc).__name__}: {str(exc)[:200]}"
        logger.warning(f"daznode: alert {str(event)[:40]!r} not sent: {message}")
        return [message]
    return [r.message() for r in results if not r.ok]
