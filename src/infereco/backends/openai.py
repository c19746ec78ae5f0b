"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp's server, Ollama, hosted APIs.

Speaks `/v1/chat/completions` (or `/v1/completions`, for base models) over aiohttp. The API
key is read from an environment variable at construction and kept only in memory: it is never part
of `describe()`, logs or error messages.
Transient failures (connection errors, timeouts, 429, 5xx, a 200 whose body is cut short or is not
JSON) are retried with exponential backoff and full jitter, honouring `Retry-After`; anything else
fails at once with a one-line `BackendError`. Before each retry the request's `retry_gate` (if any)
is told whether the failed try may have been billed; an answer without `usage` is counted at its
upper bound (prompt bound, `max_tokens` per choice), since the provider billed what it counted.

Why aiohttp and not httpx (used elsewhere for one-off calls): against a server that answers at once,
httpx's async client peaks at ~1,650 requests/s on one core and falls to ~600 with 64 connections
(its pool rescans every connection for every request), aiohttp sustains ~9,000-10,000; the
client is the runner's ceiling (docs/benchmarks.md, "Runner throughput").
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from infereco.backends.base import Completion, GenerationRequest, RetryRefused, split_by_weight, split_evenly
from infereco.backends.endpoints import EndpointPool
from infereco.backends.sse import EventReader, StreamError, merge_stream
from infereco.budget import prompt_token_bound
from infereco.errors import BackendError
from infereco.usage import read_usage
from infereco.validate import check_url

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _GarbledAnswer(BackendError):
    """A 200 whose body is not a completion (cut short, not JSON): transient, and possibly billed."""


class HTTPAnswer:
    """A whole HTTP answer, read: the part of `httpx.Response` the backend and its subclasses use
    (`status_code`, `headers`, `reason_phrase`, `text`, `json()`, `request.url`), so code that parses
    answers does not depend on which HTTP client fetched them."""

    __slots__ = ("status_code", "reason_phrase", "headers", "content", "request")

    def __init__(self, url: str, status: int, reason: str, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code, self.reason_phrase, self.headers, self.content = status, reason, headers, content
        self.request = _Sent(url)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Sent:
    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class OpenAIBackend:
    """An OpenAI-compatible endpoint: `api="chat"` (`/chat/completions`, the default) or `"completions"`.

    Instruct models want chat: the server applies their chat template. Base models have none and
    want `/completions` with the plain prompt of `render_prompt`; the two give different samples,
    so `api` is part of `describe()` and of the run's identity.

    `base_url` may be a list of replicas serving the same model: each attempt goes to the healthy
    one with the fewest requests outstanding, and one that keeps failing is taken out and probed
    back in (`EndpointPool`). A retry may land on another replica; the answer does not depend on
    which one serves it (the request's seed decides), so the run's identity leaves the URLs out.
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 600.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        concurrency: int = 8,
        max_n: int = 16,
        send_n: bool = True,
        extra_body: dict[str, Any] | None = None,
        count_tokens_from_logprobs: bool = False,
        api: str = "chat",
        eject_after: int = 3,
        cooldown_s: float = 5.0,
        llamacpp: bool | None = None,
        home_slot: Callable[[str], int] | None = None,
    ) -> None:
        """`llamacpp`: whether the endpoints are llama.cpp servers (per-choice token counts come from
        a streamed answer there, see `infereco.backends.sse`); None learns it once per endpoint, from
        its `GET /props`, before the first request for several choices is sent.
        `home_slot`: for a llama.cpp server that keeps idle slots' contents (the embedded one), the
        slot a request family (`GenerationRequest.affinity`) is sent to, as `id_slot`; see
        `infereco.backends.slots`."""
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise BackendError("--base-url is needed (e.g. http://127.0.0.1:8080/v1)")
        for url in urls:
            check_url(url, "--base-url", BackendError)
        if len(set(u.rstrip("/") for u in urls)) != len(urls):
            raise BackendError(f"--base-url given twice: {', '.join(urls)}")
        if api not in ("chat", "completions"):
            raise BackendError(f"--api must be chat or completions, got {api!r}")
        self.api = api
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self.endpoints = EndpointPool(self.base_urls, eject_after=eject_after, cooldown_s=cooldown_s)
        self._proxies = {u: _env_proxy(u) for u in self.base_urls}
        self.model = model
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env, "") if api_key_env else ""  # None: send no key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.concurrency = max(1, concurrency)
        self.max_n = max(1, max_n) if send_n else 1
        self._n_limit = self.max_n  # what was configured; `max_n` drops to what a server really gives
        self.extra_body = dict(extra_body or {})
        # per-choice counts from logprobs (one entry per generated token): only for callers that
        # want them; llama.cpp's servers give exact per-choice counts by streaming instead
        self.count_tokens_from_logprobs = count_tokens_from_logprobs
        # which endpoints are llama.cpp servers, whose `usage` covers the first of n choices only
        self._llamacpp: dict[str, bool] = {u: llamacpp for u in self.base_urls} if llamacpp is not None else {}
        self._home_slot = home_slot
        self._learning: asyncio.Lock | None = None
        self._client: aiohttp.ClientSession | None = None
        self._closing: aiohttp.ClientSession | None = None  # one connection per request (see `_http`)
        self._rng = random.Random()

    # -- identity ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "model": self.model, "api_key_env": self.api_key_env,
            "base_url": self.base_url if len(self.base_urls) == 1 else list(self.base_urls),
            "max_n": self.max_n, "concurrency": self.concurrency, "api": self.api, "timeout_s": self.timeout_s,
        }  # fmt: skip

    def max_samples_per_request(self) -> int:
        return self.max_n

    def worst_case_seconds(self) -> float:
        """The longest one `generate` call can take: every try timing out, each followed by the longest wait."""
        return (self.max_retries + 1) * self.timeout_s + self.max_retries * self.backoff_max_s * 4

    def max_concurrency(self) -> int:
        return self.concurrency

    # -- transport --------------------------------------------------------------------------
    def _http(self, fresh_connections: bool = False) -> aiohttp.ClientSession:
        """The session (made lazily: it belongs to the event loop that first uses it).

        `fresh_connections`: a second session whose connections serve one request each. llama.cpp's
        server hangs up after a streamed answer while its headers let the connection be kept
        alive, so a pooled connection would fail the next request sent on it (measured: every
        other request to the embedded model, each then retried and charged as maybe billed).
        """
        if fresh_connections:
            if self._closing is None:
                self._closing = self._session(force_close=True)
            return self._closing
        if self._client is None:
            self._client = self._session(force_close=False)
        return self._client

    def _session(self, force_close: bool) -> aiohttp.ClientSession:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        connector = aiohttp.TCPConnector(limit=self.concurrency * 2, limit_per_host=0, force_close=force_close)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, connect=min(10.0, self.timeout_s))
        return aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector)

    async def aclose(self) -> None:
        for session in (self._client, self._closing):
            if session is not None:
                await session.close()
        self._client = self._closing = None

    def _path(self) -> str:
        """Where requests go, relative to `base_url`."""
        return "/chat/completions" if self.api == "chat" else "/completions"

    async def _learn_servers(self) -> None:
        """Ask each endpoint not yet known whether it is llama.cpp (`GET /props`), once, before the
        first request for several choices: that decides how its per-choice token counts are read.
        Any failure means "not llama.cpp": the request then goes out as a plain one."""
        if all(u in self._llamacpp for u in self.base_urls):
            return
        if self._learning is None:
            self._learning = asyncio.Lock()
        async with self._learning:
            unknown = [u for u in self.base_urls if u not in self._llamacpp]
            found = await asyncio.gather(*(self._is_llamacpp(u) for u in unknown))
            self._llamacpp.update(zip(unknown, found))

    async def _is_llamacpp(self, url: str) -> bool:
        root = url[: -len("/v1")] if url.endswith("/v1") else url
        try:
            timeout = aiohttp.ClientTimeout(total=min(10.0, self.timeout_s))
            async with self._http().get(f"{root}/props", timeout=timeout, proxy=self._proxies[url]) as raw:
                if raw.status != 200:
                    return False
                data = json.loads(await raw.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return False
        return isinstance(data, dict) and "default_generation_settings" in data and "total_slots" in data

    def _streams(self, url: str, request: GenerationRequest) -> bool:
        """Whether this request goes to this endpoint as a stream (llama.cpp, several choices)."""
        return request.n > 1 and self._llamacpp.get(url, False)

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.api == "chat":
            body["messages"] = [dict(m) for m in request.messages]
            if _prefill(request):
                # continue the assistant's partial answer (step-level strategies): llama.cpp does so
                # by itself; vLLM and SGLang need to be told, and leave out a new assistant header
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
        else:
            body["prompt"] = render_prompt(request.messages)
        body.update({
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        })  # fmt: skip
        if request.n != 1:
            body["n"] = request.n
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.logprobs or self.count_tokens_from_logprobs:
            if self.api == "chat":
                body["logprobs"] = True
                if request.top_logprobs:
                    body["top_logprobs"] = request.top_logprobs
            else:  # the completions API takes the number of alternatives per token; at least 1,
                # since llama.cpp's server returns no logprobs at all for 0 (OpenAI, vLLM: sampled only)
                body["logprobs"] = max(request.top_logprobs, 1)
        if request.affinity and self._home_slot is not None:
            body["id_slot"] = self._home_slot(request.affinity)
        body.update(self.extra_body)
        return body

    def _redact(self, text: str) -> str:
        """Server text with the API key blanked: some servers quote the credentials they were sent."""
        return text.replace(self._api_key, "[redacted]") if len(self._api_key) >= 4 else text

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s * 4)
        cap = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return self._rng.uniform(0, cap)  # full jitter: spreads retries of many clients

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        if request.n > self._n_limit:
            raise BackendError(f"asked for n={request.n} samples in one request; this backend allows {self.max_n}")
        path = self._path()
        # stream when asked to (infereco serve): one sample of a chat, not a continued partial answer
        streaming = request.on_text is not None and request.n == 1 and self.api == "chat" and not _prefill(request)
        if request.n > 1:
            await self._learn_servers()
        payloads: dict[bool, bytes] = {}
        forwarded = [0]  # characters already passed to on_text: once any, the request cannot be retried
        headers = {"X-Infereco-Request-Key": request.key} if request.key else {}
        last_reason = ""
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            endpoint = self.endpoints.acquire()
            url = f"{endpoint.url}{path}"
            merged = self._streams(endpoint.url, request)  # n choices streamed, read whole, merged
            stream = streaming or merged
            if stream not in payloads:
                body = self._body(request)  # (subclasses, e.g. the reward model, shape their own bodies)
                if stream:
                    body["stream"] = True
                    body["stream_options"] = {"include_usage": True}
                payloads[stream] = json.dumps(body).encode()
            payload = payloads[stream]
            started = time.perf_counter()
            retry_after: float | None = None
            healthy: bool | None = False  # did it answer as a live server should (not 429/5xx/nothing)?
            # whether this try may have been billed: the request reached the server and no clear
            # refusal came back (a provider bills the answer it generated, even if it got lost)
            maybe_billed = True
            try:
                fresh = stream and self._llamacpp.get(endpoint.url, False)  # see `_http`
                async with self._http(fresh).post(url, data=payload, headers=headers, proxy=self._proxies[endpoint.url]) as raw:
                    if streaming and raw.status == 200 and raw.content_type == "text/event-stream":
                        content = await _read_stream(raw, request.on_text, forwarded)  # type: ignore[arg-type]
                    else:
                        content = await raw.read()
                    response = HTTPAnswer(url, raw.status, raw.reason or "", raw.headers, content)
            except asyncio.TimeoutError:
                last_reason = f"timed out after {self.timeout_s:g}s"
            except aiohttp.ClientConnectorError as exc:
                maybe_billed = False  # never reached the server
                last_reason = f"cannot connect ({type(exc).__name__})"
            except aiohttp.ClientError as exc:  # dropped mid-answer, malformed HTTP
                last_reason = f"connection lost ({type(exc).__name__})"
            except BaseException:  # cancelled: the attempt says nothing about the endpoint
                healthy = None
                raise
            else:
                latency = time.perf_counter() - started
                # only a retryable status counts against the endpoint: a 400 is the request's fault
                healthy = response.status_code not in RETRY_STATUS
                if response.status_code == 200:
                    try:
                        return self._parse(self._merged(response) if merged else response, request, latency)
                    except _GarbledAnswer as exc:
                        healthy = False  # a server that garbles its answers is not a healthy one
                        last_reason = self._redact(str(exc))
                else:
                    maybe_billed = False  # an error status: the server refused the work
                    last_reason = f"HTTP {response.status_code}: {_short_error(response, self._redact)}"
                    if healthy:  # not a transient status: the request's own fault, not the endpoint's
                        raise BackendError(f"{url}: {last_reason}")
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
            finally:
                self.endpoints.release(endpoint, healthy)
            if forwarded[0]:  # part of this answer is already with the client: another try could differ
                raise _lost(BackendError(f"{url}: {last_reason} after streaming began (not retried)"), True)
            if attempt < self.max_retries:
                if request.retry_gate is not None and not request.retry_gate(maybe_billed):
                    raise RetryRefused(f"{url}: {last_reason}; no budget left for a retry")
                await asyncio.sleep(self._backoff(attempt, retry_after))
        raise _lost(BackendError(f"{url}: {last_reason} (gave up after {self.max_retries + 1} tries)"), maybe_billed)

    def _merged(self, response: HTTPAnswer) -> HTTPAnswer:
        """A streamed answer as the JSON a plain one would be (see `infereco.backends.sse`)."""
        if response.content.lstrip().startswith(b"{"):
            return response  # a server that ignored `stream` answered with plain JSON
        try:
            merged = merge_stream(response.content, self.api)
        except StreamError as exc:
            raise _GarbledAnswer(f"{response.request.url}: streamed answer is not whole ({exc})") from None
        content = json.dumps(merged).encode()
        return HTTPAnswer(str(response.request.url), response.status_code, response.reason_phrase, response.headers, content)

    def _parse(self, response: HTTPAnswer, request: GenerationRequest, latency: float) -> list[Completion]:
        """The completions of a 200 answer, whatever shape its fields come in.

        Only a body that is no completion at all (not JSON, no list of choices) is garbled, and
        retried. Otherwise every choice that arrived becomes a Completion, so it is stored and
        paid for once: a choice whose text cannot be read is kept as an empty text with finish
        reason "unusable: ..." (counted wrong), an odd finish reason is kept as text. Fewer choices
        than `n` are returned as they are; the Runner asks for the rest.
        """
        url = str(response.request.url)
        try:
            data = response.json()
            raw_choices = data["choices"]
            if not isinstance(raw_choices, list) or not raw_choices:
                raise TypeError(f"'choices' is {type(raw_choices).__name__}{'' if raw_choices else ' and empty'}")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            what = "a chat completion" if self.api == "chat" else "a completion"
            detail = " ".join(str(exc).split())[:120]
            raise _GarbledAnswer(f"{url}: answer is not {what} (field 'choices' missing or not JSON: {detail})") from None
        choices = [c for _, c in sorted(enumerate(raw_choices), key=lambda ic: _choice_index(ic[1], ic[0]))]
        if len(choices) < request.n and self.max_n > 1:
            # a server that ignores `n`: ask it for as many as it gives from now on
            self.max_n = max(1, len(choices))
        choices = choices[: request.n]
        reported = read_usage(data)  # OpenAI, Anthropic or Gemini fields: see infereco.usage
        texts: list[str] = []
        reasons: list[str | None] = []
        logprobs: list[list[dict[str, Any]] | None] = []
        for i, choice in enumerate(choices):
            text, reason = _choice_text(choice, self.api == "chat")
            prefill = _prefill(request)
            if text is not None and self.api == "chat" and prefill and text.startswith(prefill):
                text = text[len(prefill) :]  # llama.cpp echoes the partial answer it continued
            texts.append(text if text is not None else "")
            reasons.append(reason)
            logprobs.append(_token_logprobs(choice.get("logprobs")) if isinstance(choice, dict) else None)
        n = len(choices)
        # a count the server did not report is taken at its upper bound: the budget stays hard
        prompt_total = _or(reported.prompt, prompt_token_bound(request.messages))
        completion_total = _or(reported.completion, n * request.max_tokens)
        cached_total = min(_or(reported.cached, 0), prompt_total)
        cache_write_total = min(_or(reported.cache_write, 0), prompt_total - cached_total)
        reasoning_total = min(_or(reported.reasoning, 0), completion_total)
        # Per-choice completion tokens: the server's own count of each choice where it gives one
        # (a streamed llama.cpp answer), else exact from logprobs when present, else by text length.
        per_choice = [_count(u.get("completion_tokens"), -1) if isinstance(c, dict) and isinstance(u := c.get("usage"), dict) else -1
                  for c in choices]  # a choice that is not an object is refused below
        if all(count >= 0 for count in per_choice):
            completion_split = per_choice
        elif all(lp is not None for lp in logprobs) and (
            self.count_tokens_from_logprobs or sum(len(lp or []) for lp in logprobs) == completion_total
        ):
            completion_split = [len(lp or []) for lp in logprobs]
        elif n > 1 and isinstance(data.get("timings"), dict):
            # llama.cpp's server (it adds "timings") counts only the first choice in `usage` when
            # n > 1, and its `/props` did not say what it is (a proxy in front?). Estimate the others
            # from their length at the first choice's tokens per character, and stream from now on,
            # which gives the server's own count of every choice.
            self._llamacpp[url[: -len(self._path())]] = True
            per_char = completion_total / max(len(texts[0]), 1)
            completion_split = [completion_total] + [max(1, round(len(t) * per_char)) for t in texts[1:]]
        else:
            completion_split = split_by_weight(completion_total, [max(len(t), 1) for t in texts])
        prompt_split = split_evenly(prompt_total, n)
        cached_split = split_evenly(cached_total, n)
        write_split = split_evenly(cache_write_total, n)
        reasoning_split = split_by_weight(reasoning_total, [float(c) for c in completion_split])
        return [
            Completion(
                text=texts[i],
                finish_reason=reasons[i],
                prompt_tokens=prompt_split[i],
                completion_tokens=completion_split[i],
                cached_prompt_tokens=cached_split[i],
                reasoning_tokens=reasoning_split[i],
                cache_write_tokens=write_split[i],
                latency_s=latency,
                logprobs=logprobs[i] if request.logprobs else None,
            )
            for i in range(n)
        ]


async def _read_stream(raw: aiohttp.ClientResponse, on_text: Any, forwarded: list[int]) -> bytes:
    """Read a streamed chat completion (server-sent events), passing each piece of text to `on_text`
    as it arrives; return the whole answer as the JSON body a non-streamed request would have got,
    so it is parsed (and counted) by the same code. Lines that are not JSON events are skipped (a
    tolerant `EventReader`); a stream that ends before `[DONE]` and without a finish reason counts
    as a lost connection."""
    text: list[str] = []
    logprobs: list[Any] = []
    finish: str | None = None
    usage: Any = None
    reader = EventReader(strict=False)

    def take(event: dict[str, Any]) -> None:
        nonlocal finish, usage
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        choices = event.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            text.append(piece)
            forwarded[0] += len(piece)
            on_text(piece)
        lp = choice.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            logprobs.extend(lp["content"])
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]

    async for chunk in raw.content.iter_any():
        for event in reader.feed(chunk):
            take(event)
        if reader.done:
            break
    for event in reader.close():
        take(event)
    if not reader.done and finish is None:
        raise aiohttp.ClientPayloadError("the stream ended before its last event")
    choice_out: dict[str, Any] = {"index": 0, "finish_reason": finish,
                                  "message": {"role": "assistant", "content": "".join(text)}}  # fmt: skip
    if logprobs:
        choice_out["logprobs"] = {"content": logprobs}
    answer: dict[str, Any] = {"choices": [choice_out]}
    if usage is not None:
        answer["usage"] = usage
    return json.dumps(answer).encode()


def render_prompt(messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> str:
    """The chat messages as one plain prompt for the completions API.

    Base models have no chat template, so they get the system text, a blank line, and the user's
    text, each message's content verbatim, ending with a newline for the answer to follow.
    Instruct models are better served by `api="chat"`, where the server applies their template.
    """
    return "\n\n".join(m.get("content", "") for m in messages if m.get("content")) + "\n"


def _prefill(request: GenerationRequest) -> str:
    """The partial answer a request asks the model to continue (a final assistant message), or ""."""
    last = request.messages[-1] if request.messages else {}
    return str(last.get("content") or "") if last.get("role") == "assistant" else ""


def _or(value: int | None, missing: int) -> int:
    return missing if value is None else value


def _choice_index(choice: Any, position: int) -> int:
    index = choice.get("index") if isinstance(choice, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _choice_text(choice: Any, chat: bool) -> tuple[str | None, str | None]:
    """A choice's text and finish reason; (None, "unusable: why") when it carries no text."""
    if not isinstance(choice, dict):
        return None, f"unusable: the choice is {type(choice).__name__}, not an object"
    reason = choice.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        reason = json.dumps(reason, default=str)[:60]
    message = choice.get("message")
    text: Any = None
    if isinstance(message, dict):
        text = message.get("content")
    elif isinstance(message, str):  # some servers put the text itself there
        text = message
    if text is None:
        text = choice.get("text")
    if isinstance(text, list):  # content parts: keep the text ones
        parts = [p.get("text") for p in text if isinstance(p, dict) and isinstance(p.get("text"), str)]
        text = "".join(parts) if parts else None
    if text is None and message is None and "text" not in choice:
        return None, "unusable: no message.content or text"
    if text is None:
        return "", reason  # an empty answer (e.g. content null: all of it went to reasoning)
    if not isinstance(text, str):
        field = "message.content" if chat else "text"
        return None, f"unusable: {field} is {type(text).__name__}, not text"
    return text, reason


def _count(value: Any, missing: int) -> int:
    """A token count from a usage field; `missing` when absent or not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return missing
    if value != int(value):
        return missing
    return int(value)


def _token_logprobs(lp: Any) -> list[dict[str, Any]] | None:
    """Per-token logprobs of one choice in a common shape, from the chat or the completions format.

    Whatever the server sent, each entry comes out as {"token": str, "logprob": finite float or
    None[, "top_logprobs": [...]]}: a judge reading them never meets a list, a string or 1e308.
    """
    if not isinstance(lp, dict):
        return None
    if isinstance(lp.get("content"), list):  # chat: [{"token", "logprob", ...}, ...]
        return [_clean_entry(e) for e in lp["content"]]
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if isinstance(tokens, list):  # completions: parallel lists
        values = values if isinstance(values, list) else [None] * len(tokens)
        tops = lp.get("top_logprobs") if isinstance(lp.get("top_logprobs"), list) else [None] * len(tokens)
        out: list[dict[str, Any]] = []
        for t, v, top in zip(tokens, values + [None] * (len(tokens) - len(values)), tops + [None] * (len(tokens) - len(tops))):
            entry: dict[str, Any] = {"token": _token_text(t), "logprob": _logprob(v)}
            if isinstance(top, dict):  # completions give {token: logprob}; chat gives a list of entries
                entry["top_logprobs"] = [{"token": _token_text(k), "logprob": _logprob(x)} for k, x in top.items()]
            out.append(entry)
        return out
    return None


def _clean_entry(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {"token": "", "logprob": None}
    out: dict[str, Any] = {"token": _token_text(entry.get("token")), "logprob": _logprob(entry.get("logprob"))}
    tops = entry.get("top_logprobs")
    if isinstance(tops, list):
        out["top_logprobs"] = [_clean_entry(t) for t in tops]
    return out


def _token_text(token: Any) -> str:
    return token if isinstance(token, str) else ""


def _logprob(value: Any) -> float | None:
    """A log-probability: a finite number, at most 0 (a server's 1000 would be e^1000); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return min(float(value), 0.0)


def _env_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY / NO_PROXY name for `url`, looked up once (as httpx did by default;
    aiohttp's own `trust_env` looks it up on every request, halving its requests/s)."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _short_error(response: HTTPAnswer, redact: Any = None) -> str:
    """The server's own error message, on one line and short (never echoing request headers)."""
    try:
        data = response.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        message = err.get("message") if isinstance(err, dict) else str(err)
    except ValueError:
        message = response.text
    message = " ".join(str(message or response.reason_phrase).split())
    if redact is not None:
        message = redact(message)  # before cutting: a cut must not leave half a key behind
    return message[:200]


def _lost(exc: BackendError, maybe_billed: bool) -> BackendError:
    """Mark a request's final failure with whether its last try may have been billed, so the
    Runner charges that try (at its worst case) against the budget; no retry gate saw it."""
    exc.maybe_billed = maybe_billed
    return exc
