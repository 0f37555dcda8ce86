"""explainer.py (the shell side) against the fake OpenAI chat-completions server, over real
HTTP with httpx: the model's text when it answers, the built-in explanation with the reason
otherwise, one polite retry on 429/503, and the API key nowhere but in the header.

explainer.py lives at the extension's root and imports the engine relatively, as LNbits
loads it (package `daznode`); importing the root package would start the LNbits side, so
the module is loaded here as part of a bare package over the same folder.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from tests.fakes.openai_server import (
    DEFAULT_REPLY,
    EMPTY_CHOICES,
    EMPTY_CONTENT,
    ERROR_500,
    MALFORMED,
    OK,
    RATE_LIMITED,
    SLOW,
    UNAVAILABLE,
    FakeOpenAIServer,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "daznode_shell_under_test"


def _load(name: str) -> types.ModuleType:
    if PACKAGE not in sys.modules:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = [str(ROOT)]  # a namespace over the root, without running __init__.py
        sys.modules[PACKAGE] = pkg
    return importlib.import_module(f"{PACKAGE}.{name}")


explainer = _load("explainer")
explain = _load("engine.explain")
ModelConfig, ModelConfigError = explainer.ModelConfig, explainer.ModelConfigError
explain_with_model, Explanation = explainer.explain_with_model, explain.Explanation

KEY = "sk-test-0123456789abcdefSECRET"
MODEL = "gpt-4o-mini"
SUBJECT = "channel 800000x1x0"
FACTS = {"decision": "INCREASE_FEES", "suggested": {"fee_ppm": 400}, "confidence": 0.52}
FALLBACK = Explanation("Raise the fee to 400 ppm", ["Built-in paragraph one.", "Two."])


@pytest.fixture
def ai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY, slow_seconds=5.0) as server:
        yield server


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Everything loguru logs during the test, formatted with level and extras."""
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message} {extra}"
    )
    yield lines
    logger.remove(sink)


def config(server: FakeOpenAIServer, **kw) -> ModelConfig:
    return ModelConfig(base_url=server.base_url, model=MODEL, api_key=KEY, **kw)


def fallback_with(note: str) -> Explanation:
    return Explanation(FALLBACK.title, FALLBACK.paragraphs, "built-in", note)


# -- the model answers ----------------------------------------------------------------------


async def test_the_model_text_is_used_and_the_request_is_openai_shaped(ai, logs):
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e.source == f"model {MODEL}"
    assert e.note == ""
    assert e.title == FALLBACK.title
    assert e.paragraphs == DEFAULT_REPLY.split("\n\n")
    (req,) = ai.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.body["model"] == MODEL
    assert req.body["messages"] == explain.chat_messages(SUBJECT, FACTS)
    assert req.body["messages"][0]["role"] == "system"
    assert '"fee_ppm":400' in req.body["messages"][1]["content"]
    assert req.body["max_tokens"] == 600
    assert 0 <= req.body["temperature"] <= 0.3
    assert not any("WARNING" in line for line in logs)


async def test_paragraphs_are_split_on_blank_lines_and_joined_inside(ai):
    ai.reply = "  First line\nsame paragraph.\n \n\nSecond.\r\n\r\nThird.  "
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e.paragraphs == ["First line same paragraph.", "Second.", "Third."]


async def test_an_answer_cut_by_max_tokens_is_used_and_said(ai):
    e = await explain_with_model(config(ai, max_tokens=5), SUBJECT, FACTS, FALLBACK)
    assert e.source == f"model {MODEL}"
    assert e.paragraphs == [" ".join(DEFAULT_REPLY.split(" ")[:5])]
    assert e.note == "the model's answer was cut at 5 tokens"
    assert ai.requests[0].body["max_tokens"] == 5


async def test_no_key_sends_no_authorization_header():
    with FakeOpenAIServer() as open_server:
        cfg = ModelConfig(base_url=open_server.base_url, model="llama3", api_key="")
        e = await explain_with_model(cfg, SUBJECT, FACTS, FALLBACK)
        assert e.source == "model llama3"
        assert "authorization" not in open_server.requests[0].headers


# -- the built-in explainer stands in, and says why -----------------------------------------


async def test_no_model_configured(logs):
    e = await explain_with_model(None, SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with("no language model configured")


async def test_timeout_falls_back_with_the_reason(ai, logs):
    ai.scenario = SLOW
    started = time.monotonic()
    e = await explain_with_model(config(ai, timeout_seconds=0.5), SUBJECT, FACTS, FALLBACK)
    assert time.monotonic() - started < 2.5
    assert e == fallback_with("the model endpoint timed out after 0.5 s")
    assert len(ai.requests) == 1  # no retry on a timeout
    assert any(line.startswith("WARNING") and "timed out after 0.5 s" in line for line in logs)


async def test_server_error_falls_back_with_openai_message(ai):
    ai.scenario = ERROR_500
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with(
        "the model endpoint answered 500: The server had an error while processing your "
        "request. Sorry about that!"
    )
    assert len(ai.requests) == 1  # a 500 is not retried


async def test_malformed_json_falls_back(ai):
    ai.scenario = MALFORMED
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with("the model endpoint answered 200 with malformed JSON")


async def test_empty_choices_and_empty_content_fall_back(ai):
    ai.scenario = EMPTY_CHOICES
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with("the model endpoint answered without any choice")
    ai.scenario = EMPTY_CONTENT
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with(
        "the model answered with empty content (finish_reason content_filter)"
    )


async def test_wrong_key_falls_back_without_showing_the_key(ai):
    cfg = ModelConfig(base_url=ai.base_url, model=MODEL, api_key="sk-wrong-key-123456789")
    e = await explain_with_model(cfg, SUBJECT, FACTS, FALLBACK)
    assert e.note.startswith("the model endpoint answered 401: Incorrect API key provided: sk-")
    assert "sk-wrong-key-123456789" not in e.note


async def test_connection_refused_falls_back():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ModelConfig(base_url=f"http://127.0.0.1:{port}/v1", model=MODEL, api_key=KEY)
    e = await explain_with_model(cfg, SUBJECT, FACTS, FALLBACK)
    assert e.source == "built-in"
    assert e.note.startswith("the model endpoint could not be reached: ")


async def test_unknown_path_falls_back_with_the_404(ai):
    cfg = ModelConfig(base_url=ai.url + "/v2", model=MODEL, api_key=KEY)
    e = await explain_with_model(cfg, SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with(
        "the model endpoint answered 404: Invalid URL (POST /v2/chat/completions)"
    )


# -- 429 and 503: one retry after the pause asked for, at most 5 s --------------------------


async def test_rate_limited_then_ok_uses_the_model_after_retry_after(ai, logs):
    ai.queue(RATE_LIMITED, OK)
    started = time.monotonic()
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    assert e.source == f"model {MODEL}" and e.note == ""
    assert [r.scenario for r in ai.requests] == [RATE_LIMITED, OK]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in ai.requests)
    assert any("answered 429, retrying once in 1 s" in line for line in logs)


async def test_unavailable_then_ok_is_retried_too(ai):
    ai.retry_after = "0"
    ai.queue(UNAVAILABLE, OK)
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e.source == f"model {MODEL}"
    assert len(ai.requests) == 2


async def test_rate_limited_twice_gives_up_after_one_retry(ai):
    ai.retry_after = "0"
    ai.scenario = RATE_LIMITED
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e.source == "built-in"
    assert e.note.startswith("the model endpoint answered 429: Rate limit reached for gpt-4o-mini")
    assert len(ai.requests) == 2


async def test_a_long_retry_after_is_not_waited_for(ai):
    ai.retry_after = "30"
    ai.scenario = RATE_LIMITED
    started = time.monotonic()
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert time.monotonic() - started < 2
    assert len(ai.requests) == 1
    assert e.source == "built-in"
    assert e.note.endswith("(asked to retry after 30 s)")


async def test_retry_after_as_a_date_and_missing():
    class R:
        def __init__(self, headers):
            self.headers = headers

    assert explainer._retry_after(R({})) == explainer.DEFAULT_RETRY_PAUSE
    assert explainer._retry_after(R({"retry-after": "2"})) == 2.0
    assert explainer._retry_after(R({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert explainer._retry_after(R({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert explainer._retry_after(R({"retry-after": "soon"})) is None


# -- the key stays secret -------------------------------------------------------------------


async def test_the_key_never_reaches_logs_notes_or_reprs(ai, logs, caplog):
    caplog.set_level(logging.DEBUG)
    # an endpoint that echoes the key in its error message
    ai.error_message = f"upstream rejected token {KEY} for project p"
    ai.retry_after = "0"
    ai.queue(ERROR_500, MALFORMED, EMPTY_CHOICES, RATE_LIMITED, RATE_LIMITED, UNAVAILABLE, OK)
    cfg = config(ai)
    notes = [(await explain_with_model(cfg, SUBJECT, FACTS, FALLBACK)).note for _ in range(5)]
    ai.scenario = SLOW
    notes.append(
        (await explain_with_model(config(ai, timeout_seconds=0.3), SUBJECT, FACTS, FALLBACK)).note
    )
    assert notes[0] == "the model endpoint answered 500: upstream rejected token *** for project p"
    assert all(notes[:4]) and notes[4] == ""  # the 503 was retried into the OK
    assert len([line for line in logs if line.startswith("WARNING")]) == 5
    everything = "\n".join([*logs, caplog.text, *notes, repr(cfg), str(cfg)])
    assert KEY not in everything
    assert KEY[-10:] not in everything
    # it was sent, in the header only
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in ai.requests)
    assert all(KEY not in str(r.body) for r in ai.requests)


async def test_unexpected_errors_never_escape(ai, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError(f"something with {KEY}")

    monkeypatch.setattr(explainer, "chat_messages", boom)
    e = await explain_with_model(config(ai), SUBJECT, FACTS, FALLBACK)
    assert e == fallback_with("the model call failed unexpectedly (RuntimeError)")


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://openrouter.ai/api/v1/",
        "http://localhost:11434/v1",
        "http://127.0.0.1:8080/v1",
        " https://example.org:8443/openai/v1 ",
    ],
)
def test_accepted_base_urls(url):
    cfg = ModelConfig(base_url=url, model=MODEL, api_key=KEY)
    assert cfg.base_url == url.strip().rstrip("/")
    assert cfg.url == cfg.base_url + "/chat/completions"
    assert (cfg.timeout_seconds, cfg.max_tokens) == (20, 600)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "base_url: must not be empty"),
        ("http://api.openai.com/v1", "plain http:// only for localhost or 127.0.0.1"),
        ("http://10.0.0.5:8080/v1", "plain http:// only for localhost"),
        ("ftp://example.org/v1", "must be an https:// URL"),
        ("api.openai.com/v1", "must be an https:// URL"),
        ("https://user:pw@example.org/v1", "no credentials in the URL"),
        ("https://example.org/v1?key=abc", "no query or fragment"),
        ("https://example.org:99999/v1", "not a valid URL"),
    ],
)
def test_refused_base_urls(url, problem):
    with pytest.raises(ModelConfigError, match=problem):
        ModelConfig(base_url=url, model=MODEL, api_key=KEY)


def test_other_fields_are_validated_without_echoing_the_key():
    with pytest.raises(ModelConfigError, match="model: must not be empty"):
        ModelConfig(base_url="https://api.openai.com/v1", model="  ", api_key=KEY)
    with pytest.raises(ModelConfigError, match="api_key: must not contain") as info:
        ModelConfig(base_url="https://api.openai.com/v1", model=MODEL, api_key="sk-a\nX-Evil: 1")
    assert "X-Evil" not in str(info.value)
    with pytest.raises(ModelConfigError, match="timeout_seconds"):
        ModelConfig(base_url="https://x.org", model=MODEL, api_key="", timeout_seconds=0)
    with pytest.raises(ModelConfigError, match="max_tokens"):
        ModelConfig(base_url="https://x.org", model=MODEL, api_key="", max_tokens=0)
    cfg = ModelConfig(base_url="https://x.org", model=f" {MODEL} ", api_key=f" {KEY} ")
    assert (cfg.model, cfg.api_key, cfg.source) == (MODEL, KEY, f"model {MODEL}")
    assert KEY not in repr(cfg)
