"""Explanations by a language model behind an OpenAI-compatible chat-completions endpoint,
with Daznode's built-in explainer as the fallback.

`explain_with_model` never raises: without a configured model, or when the endpoint times
out, cannot be reached, answers an error, malformed JSON or nothing, it returns the built-in
explanation with a note saying why (the same reason is logged at warning). The API key is
sent only in the Authorization header and never appears in a note, a log line or a repr.
One retry, after the pause the endpoint asks for (at most 5 s), on 429 and 503 only.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from loguru import logger

from .engine.explain import NO_MODEL, Explanation, chat_messages

TEMPERATURE = 0.2  # low: the text should follow the facts, not wander
RETRY_STATUSES = (429, 503)
MAX_RETRY_AFTER = 5.0  # seconds; an endpoint asking for longer gets no retry
DEFAULT_RETRY_PAUSE = 1.0  # when a 429/503 names no Retry-After
LOCAL_HOSTS = ("localhost", "127.0.0.1")
MAX_DETAIL = 200  # characters of an endpoint's error message kept in a note


class ModelConfigError(ValueError):
    """A bad model setting; the message names the field and never contains the key."""


@dataclass(frozen=True)
class ModelConfig:
    base_url: str  # e.g. https://api.openai.com/v1 (POST {base_url}/chat/completions)
    model: str
    api_key: str = field(default="", repr=False)  # "" sends no Authorization header
    timeout_seconds: float = 20.0  # per attempt, the whole request
    max_tokens: int = 600

    def __post_init__(self) -> None:
        base = str(self.base_url or "").strip().rstrip("/")
        object.__setattr__(self, "base_url", _check_base_url(base))
        model = str(self.model or "").strip()
        if not model:
            raise ModelConfigError("model: must not be empty")
        if len(model) > 200 or not model.isprintable():
            raise ModelConfigError("model: at most 200 printable characters")
        object.__setattr__(self, "model", model)
        key = str(self.api_key or "").strip()
        if any(c.isspace() or not c.isprintable() for c in key):
            raise ModelConfigError("api_key: must not contain spaces or control characters")
        object.__setattr__(self, "api_key", key)
        timeout = self.timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ModelConfigError("timeout_seconds: must be a number of seconds")
        if not 0 < timeout <= 300:
            raise ModelConfigError("timeout_seconds: must be above 0 and at most 300")
        tokens = self.max_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= 32768:
            raise ModelConfigError("max_tokens: must be a whole number from 1 to 32768")

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def source(self) -> str:
        return f"model {self.model}"


def _check_base_url(base: str) -> str:
    if not base:
        raise ModelConfigError("base_url: must not be empty")
    try:
        parts = urlsplit(base)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ModelConfigError("base_url: not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ModelConfigError("base_url: must be an https:// URL")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise ModelConfigError(
            f"base_url: plain http:// only for localhost or 127.0.0.1, not {host}; use https://"
        )
    if parts.username is not None or parts.password is not None:
        raise ModelConfigError("base_url: no credentials in the URL; use the API key field")
    if parts.query or parts.fragment:
        raise ModelConfigError("base_url: no query or fragment")
    return base


class _Fallback(Exception):
    """Why the model's answer cannot be used (the note, without secrets)."""


async def explain_with_model(
    config: ModelConfig | None,
    subject: str,
    facts: Mapping[str, Any],
    fallback: Explanation,
) -> Explanation:
    """The model's explanation of `subject` from `facts`, or `fallback` with a note saying
    why not. Never raises (except cancellation)."""
    if config is None:
        return replace(fallback, note=NO_MODEL)
    try:
        content, finish = await _ask(config, subject, facts)
    except _Fallback as exc:
        note = _scrub(str(exc), config.api_key)
    except Exception as exc:  # never let an explanation break the caller
        note = f"the model call failed unexpectedly ({type(exc).__name__})"
    else:
        paragraphs = _paragraphs(content)
        cut = finish == "length"
        return Explanation(
            title=fallback.title,
            paragraphs=paragraphs,
            source=config.source,
            note=f"the model's answer was cut at {config.max_tokens} tokens" if cut else "",
        )
    logger.warning(f"daznode: built-in explanation of {subject[:80]!r}: {note}")
    return replace(fallback, note=note)


async def _ask(config: ModelConfig, subject: str, facts: Mapping[str, Any]) -> tuple[str, str]:
    body = {
        "model": config.model,
        "messages": chat_messages(subject, facts),
        "max_tokens": config.max_tokens,
        "temperature": TEMPERATURE,
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(config.timeout_seconds), follow_redirects=False
    ) as client:
        response = await _post(client, config, body, headers)
        if response.status_code in RETRY_STATUSES:
            pause = _retry_after(response)
            if pause is None or pause > MAX_RETRY_AFTER:
                wait = "" if pause is None else f" (asked to retry after {pause:g} s)"
                raise _Fallback(
                    f"the model endpoint answered {response.status_code}: "
                    f"{_error_message(response)}{wait}"
                )
            logger.info(
                f"daznode: the model endpoint answered {response.status_code}, "
                f"retrying once in {pause:g} s"
            )
            await asyncio.sleep(pause)
            response = await _post(client, config, body, headers)
    return _content(response)


async def _post(
    client: httpx.AsyncClient, config: ModelConfig, body: dict, headers: dict[str, str]
) -> httpx.Response:
    """One attempt, bounded as a whole (httpx's own timeout is per read, not per request)."""
    timed_out = _Fallback(f"the model endpoint timed out after {config.timeout_seconds:g} s")
    try:
        return await asyncio.wait_for(
            client.post(config.url, json=body, headers=headers), config.timeout_seconds
        )
    except (asyncio.TimeoutError, httpx.TimeoutException):
        raise timed_out from None
    except httpx.ConnectError as exc:
        raise _Fallback(f"the model endpoint could not be reached: {_detail(exc)}") from None
    except httpx.HTTPError as exc:
        raise _Fallback(f"the model endpoint failed: {_detail(exc)}") from None


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:MAX_DETAIL]


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the endpoint asks to wait (Retry-After in seconds or as a date, or OpenAI's
    retry-after-ms); the default pause when it names none; None when unreadable."""
    ms = response.headers.get("retry-after-ms")
    value = response.headers.get("retry-after")
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        if value is None:
            return DEFAULT_RETRY_PAUSE
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None


def _content(response: httpx.Response) -> tuple[str, str]:
    """The first choice's text and finish reason, or _Fallback naming what was wrong."""
    if not response.is_success:
        raise _Fallback(
            f"the model endpoint answered {response.status_code}: {_error_message(response)}"
        )
    try:
        doc = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise _Fallback(
            f"the model endpoint answered {response.status_code} with malformed JSON"
        ) from None
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _Fallback("the model endpoint answered without any choice")
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    finish = str(first.get("finish_reason") or "")
    text = _text(message.get("content"))
    if not text:
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal.strip():
            raise _Fallback(f"the model refused: {refusal.strip()[:MAX_DETAIL]}")
        why = f" (finish_reason {finish})" if finish else ""
        raise _Fallback(f"the model answered with empty content{why}")
    return text, finish


def _text(content: Any) -> str:
    """A message's content: a string, or (some servers) a list of text parts."""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = [
            p.get("text", "") if isinstance(p, dict) else p if isinstance(p, str) else ""
            for p in content
        ]
        return "\n".join(p for p in parts if isinstance(p, str)).strip()
    return ""


def _error_message(response: httpx.Response) -> str:
    """OpenAI's {"error": {"message": ...}}, else the start of the body, else the reason."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        error = doc.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message.strip():
            return " ".join(message.split())[:MAX_DETAIL]
    text = " ".join(response.text.split())[:MAX_DETAIL] if response.content else ""
    return text or response.reason_phrase or "no details"


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def _paragraphs(content: str) -> list[str]:
    """Blank lines separate paragraphs; the lines of one paragraph are joined."""
    blocks = re.split(r"\n[ \t]*\n", content.replace("\r\n", "\n"))
    out = [" ".join(line.strip() for line in b.splitlines() if line.strip()) for b in blocks]
    return [p for p in out if p]


__all__ = ["ModelConfig", "ModelConfigError", "explain_with_model"]
