"""The OpenAI-compatible backend against the loopback fake server: shares, headers, secrets, retries."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time

import pytest

from fakeserver import FakeServer
from infereco.backends.base import GenerationRequest
from infereco.backends.openai import OpenAIBackend, parse_retry_after
from infereco.errors import BackendError, UserError

SECRET = "sk-test-0123456789abcdef-not-a-real-key"
MESSAGES = (
    {"role": "system", "content": "Solve it."},
    # 8 words: prompt_tokens = 18 on the fake server, which does not divide evenly by 4
    {"role": "user", "content": "What is 86 + 32 ? Please answer now."},
)


def _generate(backend: OpenAIBackend, request: GenerationRequest):
    async def go():
        try:
            return await backend.generate(request)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _backend(url: str, **kwargs) -> OpenAIBackend:
    kwargs.setdefault("backoff_base_s", 0.01)
    kwargs.setdefault("backoff_max_s", 0.05)
    return OpenAIBackend(url, "fake", **kwargs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _header(headers: dict[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def test_n_choices_and_token_shares_sum_to_server_usage() -> None:
    with FakeServer() as fake:
        out = _generate(_backend(fake.base_url), GenerationRequest(messages=MESSAGES, n=4, seed=7, key="run/p1|sample|0+4"))
        assert len(out) == 4
        assert len(fake.model.bodies) == 1
        body = fake.model.bodies[0]
        assert body["n"] == 4 and body["seed"] == 7 and body["model"] == "fake"
        usage = fake.model.answer(body)["usage"]  # the fake is deterministic: same body, same usage
    assert usage["prompt_tokens"] % 4 != 0  # the split below is not trivial
    assert sum(c.prompt_tokens for c in out) == usage["prompt_tokens"]
    assert sum(c.completion_tokens for c in out) == usage["completion_tokens"]
    assert max(c.prompt_tokens for c in out) - min(c.prompt_tokens for c in out) <= 1
    assert all(c.text.strip().splitlines()[-1].startswith("Answer: ") for c in out)
    assert all(c.finish_reason == "stop" and c.latency_s >= 0 for c in out)


def test_request_key_header_reaches_server() -> None:
    key = "abc123/arith-L1-0000|sample|2+2"
    with FakeServer() as fake:
        _generate(_backend(fake.base_url), GenerationRequest(messages=MESSAGES, n=2, key=key))
        assert fake.model.keys == [key]


def test_api_key_sent_as_bearer_but_never_described(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERECO_TEST_KEY", SECRET)
    with FakeServer() as fake:
        backend = _backend(fake.base_url, api_key_env="INFERECO_TEST_KEY")
        _generate(backend, GenerationRequest(messages=MESSAGES, n=1))
        assert _header(fake.model.headers[0], "Authorization") == f"Bearer {SECRET}"
    described = json.dumps(backend.describe())
    assert SECRET not in described
    assert "INFERECO_TEST_KEY" in described  # the variable's name is fine to store, its value is not
    assert SECRET not in repr(backend.describe())


def test_no_authorization_header_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERECO_TEST_KEY", raising=False)
    with FakeServer() as fake:
        _generate(_backend(fake.base_url, api_key_env="INFERECO_TEST_KEY"), GenerationRequest(messages=MESSAGES))
        assert _header(fake.model.headers[0], "Authorization") is None


def test_429_with_retry_after_zero_is_retried_then_succeeds() -> None:
    with FakeServer(fail_first=2, fail_status=429, retry_after="0") as fake:
        # a long backoff would make this test slow: Retry-After: 0 must win over it
        backend = _backend(fake.base_url, max_retries=3, backoff_base_s=5.0, backoff_max_s=5.0)
        started = time.perf_counter()
        out = _generate(backend, GenerationRequest(messages=MESSAGES, n=2, key="k"))
        elapsed = time.perf_counter() - started
        assert fake.model.attempts == 3
        assert fake.model.keys == ["k"]
    assert len(out) == 2
    assert elapsed < 3.0


def test_500_beyond_max_retries_is_one_line_error_naming_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERECO_TEST_KEY", SECRET)
    with FakeServer(fail_first=100, fail_status=500, retry_after=None) as fake:
        backend = _backend(fake.base_url, max_retries=2, api_key_env="INFERECO_TEST_KEY")
        with pytest.raises(BackendError) as info:
            _generate(backend, GenerationRequest(messages=MESSAGES))
        assert fake.model.attempts == 3  # 1 try + 2 retries
        assert fake.model.keys == []
        message = str(info.value)
        assert f"{fake.base_url}/chat/completions" in message
    assert "\n" not in message and message.strip()
    assert "500" in message
    assert SECRET not in message
    assert isinstance(info.value, UserError)


def test_400_is_not_retried() -> None:
    with FakeServer(fail_first=5, fail_status=400, retry_after="0") as fake:
        backend = _backend(fake.base_url, max_retries=5)
        with pytest.raises(BackendError) as info:
            _generate(backend, GenerationRequest(messages=MESSAGES))
        assert fake.model.attempts == 1
    message = str(info.value)
    assert "400" in message and "injected failure" in message and "\n" not in message


def test_connection_refused_is_one_line_backend_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    backend = _backend(url, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(BackendError) as info:
        _generate(backend, GenerationRequest(messages=MESSAGES))
    assert time.perf_counter() - started < 5.0
    message = str(info.value)
    assert url in message
    assert "\n" not in message
    assert "connect" in message.lower()


def test_bad_base_url_scheme_is_rejected() -> None:
    with pytest.raises(BackendError, match="http://"):
        OpenAIBackend("127.0.0.1:8080/v1", "fake")


def test_parse_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    future = email.utils.formatdate(now + 30, usegmt=True)  # "Tue, 14 Nov 2023 22:13:50 GMT"
    assert future.endswith("GMT")
    assert parse_retry_after(future, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 3600, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_server_ignoring_n_gives_what_it_sent_and_is_asked_for_fewer_from_then_on() -> None:
    with FakeServer(honour_n=False) as fake:
        backend = _backend(fake.base_url)
        out = _generate(backend, GenerationRequest(messages=MESSAGES, n=3))
    assert len(out) == 1 and out[0].text  # kept (it was paid for); the Runner asks for the rest
    assert backend.max_samples_per_request() == 1


def test_n_above_max_n_is_refused_before_sending() -> None:
    with FakeServer() as fake:
        with pytest.raises(BackendError, match="n=4"):
            _generate(_backend(fake.base_url, max_n=2), GenerationRequest(messages=MESSAGES, n=4))
        assert fake.model.attempts == 0


def test_completions_api_sends_a_prompt_string_and_reads_text_choices() -> None:
    with FakeServer() as fake:
        out = _generate(_backend(fake.base_url, api="completions"), GenerationRequest(messages=MESSAGES, n=3, seed=2))
        body = fake.model.bodies[0]
        assert fake.model.paths == ["/v1/completions"]
        assert "messages" not in body and body["prompt"] == "Solve it.\n\nWhat is 86 + 32 ? Please answer now.\n"
        usage = fake.model.answer(body)["usage"]
    assert len(out) == 3 and all(c.text.strip().splitlines()[-1].startswith("Answer: ") for c in out)
    assert sum(c.completion_tokens for c in out) == usage["completion_tokens"]


def test_completions_logprobs_give_exact_per_choice_token_counts() -> None:
    from infereco.backends.openai import _token_logprobs

    lp = _token_logprobs({"tokens": ["A", "n", "s"], "token_logprobs": [-0.1, -0.2, -0.3]})
    assert lp == [{"token": "A", "logprob": -0.1}, {"token": "n", "logprob": -0.2}, {"token": "s", "logprob": -0.3}]
    assert _token_logprobs({"content": [{"token": "x", "logprob": 0.0}]}) == [{"token": "x", "logprob": 0.0}]
    assert _token_logprobs(None) is None


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_per_choice_token_counts_come_from_logprobs_in_either_api(api: str) -> None:
    """Each choice's completion tokens are its own logprob count, not a share of the request's usage."""
    with FakeServer(filler_max=40) as fake:  # answers of different lengths
        backend = _backend(fake.base_url, api=api, count_tokens_from_logprobs=True)
        out = _generate(backend, GenerationRequest(messages=MESSAGES, n=4, seed=5, logprobs=True))
        body = fake.model.bodies[0]
    assert (body["logprobs"] is True) if api == "chat" else (body["logprobs"] >= 1)  # 0 gets none from llama.cpp
    assert [c.completion_tokens for c in out] == [len(c.text.split()) for c in out]
    assert len({c.completion_tokens for c in out}) > 1
    assert all(c.logprobs and len(c.logprobs) == c.completion_tokens for c in out)
    assert out[0].logprobs[0] == {"token": out[0].text.split()[0], "logprob": -0.5}


def test_unknown_api_is_a_one_line_error() -> None:
    with pytest.raises(BackendError, match="--api must be chat or completions"):
        OpenAIBackend("http://127.0.0.1:9/v1", "fake", api="embeddings")


def test_a_slow_server_times_out_as_a_one_line_error() -> None:
    with FakeServer(delay_s=1.5) as fake:
        with pytest.raises(BackendError, match="timed out after 0.3s") as err:
            _generate(_backend(fake.base_url, timeout_s=0.3, max_retries=0), GenerationRequest(messages=MESSAGES))
    assert "\n" not in str(err.value)
