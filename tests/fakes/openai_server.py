"""A fake OpenAI chat-completions endpoint: a real HTTP server answering in OpenAI's shapes.

POST /v1/chat/completions answers like api.openai.com: a `chat.completion` object (id,
object, created, model, choices[{index, message{role, content, refusal}, logprobs,
finish_reason}], usage, system_fingerprint), errors as {"error": {message, type, param,
code}} with OpenAI's status codes (400 bad body, 401 bad key, 404 unknown path, 429 rate
limit with Retry-After, 500 server error, 503 overloaded). `max_tokens` cuts the reply
(one token per word here) with finish_reason "length".

Scenarios (`FakeOpenAIServer(scenario=...)`, or `queue(...)` for the next requests):
ok, slow (answers after `slow_seconds`), error_500, rate_limited (429), unavailable (503),
malformed (200 with broken JSON), empty_choices, empty_content. Every request is recorded
(method, path, headers, parsed body) for the tests to assert on.

In tests:  `with FakeOpenAIServer(api_key="sk-test") as ai: ModelConfig(ai.base_url, ...)`.
Standalone (from the repository root): `python -m tests.fakes.openai_server --port 8099`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.http_fake import HttpFake, TrackingHTTPServer, serve_until_stopped

OK = "ok"
SLOW = "slow"
ERROR_500 = "error_500"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
MALFORMED = "malformed"
EMPTY_CHOICES = "empty_choices"
EMPTY_CONTENT = "empty_content"
SCENARIOS = (
    OK,
    SLOW,
    ERROR_500,
    RATE_LIMITED,
    UNAVAILABLE,
    MALFORMED,
    EMPTY_CHOICES,
    EMPTY_CONTENT,
)
PATH = "/v1/chat/completions"
DEFAULT_REPLY = (
    "Raise the fee on this channel: it is nearly empty and payments keep failing.\n\n"
    "Daznode is fairly sure, because the channel has a month of history."
)
CREATED = 1_735_689_600  # 2025-01-01, fixed so answers are reproducible


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw bytes when it was not JSON
    scenario: str  # what the fake answered with


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _mask(key: str) -> str:
    """How OpenAI echoes a wrong key: the first and last characters only."""
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 8 else "***"


class FakeOpenAIServer(HttpFake):
    """The fake endpoint: scenario switches, recorded requests and the HTTP server thread."""

    def __init__(
        self,
        scenario: str = OK,
        *,
        api_key: str | None = None,  # required Bearer key; None accepts any or none
        reply: str | Callable[[dict], str] = DEFAULT_REPLY,
        slow_seconds: float = 30.0,
        retry_after: str | None = "1",  # the 429/503 Retry-After header; None: not sent
        error_message: str = (
            "The server had an error while processing your request. Sorry about that!"
        ),  # the 500's message
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        self.scenario = scenario
        self.api_key = api_key
        self.reply = reply
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.error_message = error_message
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._queue: deque[str] = deque()
        self.listen(host, port, _Handler, "fake-openai")

    @property
    def base_url(self) -> str:
        """What a client configures, as for OpenAI: https://api.openai.com/v1."""
        return f"{self.url}/v1"

    # scenarios
    def queue(self, *scenarios: str) -> None:
        """Answer the next requests with these scenarios, in order, then with `scenario`."""
        for s in scenarios:
            if s not in SCENARIOS:
                raise ValueError(f"unknown scenario {s!r}")
        with self.lock:
            self._queue.extend(scenarios)

    def next_scenario(self) -> str:
        with self.lock:
            return self._queue.popleft() if self._queue else self.scenario

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    # the answers
    def completion(self, body: dict) -> tuple[dict, str]:
        """OpenAI's chat.completion for `body`, and the finish reason."""
        text = self.reply(body) if callable(self.reply) else self.reply
        words = text.split(" ")
        finish = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and len(words) > limit:
            text, finish = " ".join(words[:limit]), "length"
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion = len(text.split())
        doc = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "system_fingerprint": "fp_fake0000",
        }
        return doc, finish


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TrackingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; requests are recorded on the fake

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in self.headers.items()}
        scenario = fake.next_scenario() if (method, path) == ("POST", PATH) else "-"
        fake.record(RecordedRequest(method, path, headers, body, scenario))
        # a client that gave up (a timeout) gets no answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._serve(fake, method, path, headers, body, scenario)

    def _serve(self, fake, method, path, headers, body, scenario) -> None:
        if (method, path) != ("POST", PATH):
            message = f"Invalid URL ({method} {path})"
            return self._json(404, error_body(message, "invalid_request_error"))
        if fake.api_key is not None:
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:]:
                message = (
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                )
                return self._json(401, error_body(message, "invalid_request_error"))
            if auth[7:] != fake.api_key:
                message = f"Incorrect API key provided: {_mask(auth[7:])}."
                return self._json(
                    401, error_body(message, "invalid_request_error", "invalid_api_key")
                )
        if not isinstance(body, dict):
            message = (
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)"
            )
            return self._json(400, error_body(message, "invalid_request_error"))
        if not body.get("model"):
            message = "you must provide a model parameter"
            return self._json(400, error_body(message, "invalid_request_error"))
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self._json(
                400,
                error_body(
                    "Missing required parameter: 'messages'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    "messages",
                ),
            )
        if scenario == SLOW and fake.wait(fake.slow_seconds):
            return None  # stopping: drop the answer
        if scenario == ERROR_500:
            return self._json(500, error_body(fake.error_message, "server_error"))
        if scenario in (RATE_LIMITED, UNAVAILABLE):
            extra = {"retry-after": fake.retry_after} if fake.retry_after is not None else {}
            if scenario == RATE_LIMITED:
                message = (
                    f"Rate limit reached for {body['model']} in organization org-fake on "
                    "requests per min (RPM): Limit 3, Used 3, Requested 1."
                )
                doc = error_body(message, "requests", "rate_limit_exceeded")
                extra |= {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"}
                return self._json(429, doc, extra)
            message = "The engine is currently overloaded, please try again later"
            return self._json(503, error_body(message, "server_error"), extra)
        if scenario == MALFORMED:
            return self._send(
                200, b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": ['
            )
        doc, _finish = fake.completion(body)
        if scenario == EMPTY_CHOICES:
            doc["choices"] = []
        elif scenario == EMPTY_CONTENT:
            doc["choices"][0]["message"]["content"] = ""
            doc["choices"][0]["finish_reason"] = "content_filter"
        return self._json(200, doc)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), headers)

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.send_header("openai-processing-ms", "1")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)
            self.wfile.flush()


# --------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI chat-completions API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--scenario", choices=SCENARIOS, default=OK)
    parser.add_argument("--api-key", default=None, help="require this Bearer key")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    args = parser.parse_args(argv)
    fake = FakeOpenAIServer(
        args.scenario, api_key=args.api_key, reply=args.reply, host=args.host, port=args.port
    )
    serve_until_stopped(fake, f"fake OpenAI listening on {fake.base_url} ({args.scenario})")


if __name__ == "__main__":
    main()
