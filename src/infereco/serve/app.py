"""The HTTP face of `infereco serve`: an aiohttp application speaking the OpenAI chat API.

Routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions` (plain or
`stream: true`), `GET /health`. Every answer other than a completion is an OpenAI-style error object;
anything unexpected is one line on stderr and a 500, never a traceback. Requests are answered
concurrently, at most `concurrency` at a time (the rest wait their turn).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import sys
import time
from typing import Any

from aiohttp import web

from infereco.serve.protocol import DONE, ApiError, chunk, completion_body, parse_body
from infereco.serve.service import Answer, Service

BUDGET_HEADER = "X-Infereco-Budget-Usd"
KEEPALIVE_S = 15.0  # an SSE comment this often while an aggregating strategy works: proxies keep the stream open


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure as an OpenAI-style error: ApiErrors as they are, HTTP errors (404, 405, 413)
    with their status, anything else as a 500 with one line on stderr."""
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            _say(f"infereco serve: {exc.status} {exc.message}")
        return _error(exc)
    except web.HTTPException as exc:
        if exc.status == 413:
            message = f"the body is larger than the server accepts ({request.app['max_body']} bytes)"
        elif exc.status == 404:
            message = f"{request.path}: no such route (this server has /v1/models and /v1/chat/completions)"
        else:
            message = f"{request.method} {request.path}: {exc.reason}"
        return _error(ApiError(exc.status, message))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into a 500
        _say(f"infereco serve: internal error on {request.path}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        return _error(ApiError(500, f"internal error ({type(exc).__name__}); the server log has the reason"))


def _budget_header(request: web.Request) -> float | None:
    raw = request.headers.get(BUDGET_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{BUDGET_HEADER}: expected a number of USD >= 0, got {raw[:40]!r}", param=BUDGET_HEADER)
    return value


class _Handlers:
    def __init__(self, service: Service, concurrency: int, api_key: str | None) -> None:
        self.service = service
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.api_key = api_key
        self.model = service.options.served_model

    def _check_key(self, request: web.Request) -> None:
        if not self.api_key:
            return
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise ApiError(401, "Authorization: missing or wrong API key for this server")

    async def models(self, request: web.Request) -> web.Response:
        self._check_key(request)
        return web.json_response({"object": "list", "data": [self._model_card()]})

    async def one_model(self, request: web.Request) -> web.Response:
        self._check_key(request)
        if request.match_info["model"] != self.model:
            raise ApiError(404, f"model {request.match_info['model']!r} is not served here; this server serves {self.model!r}",
                           param="model", type_="model_not_found")  # fmt: skip
        return web.json_response(self._model_card())

    def _model_card(self) -> dict[str, Any]:
        strategy = self.service.options.strategy
        return {"id": self.model, "object": "model", "created": 0, "owned_by": "infereco",
                "infereco": {"strategy": strategy.get("strategy"), "n": strategy.get("n")}}  # fmt: skip

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        self._check_key(request)
        budget = _budget_header(request)
        body = parse_body(await request.read())
        plan = self.service.plan(body)
        self.service.admit(plan, budget)  # a request that cannot fit is refused before it waits its turn
        async with self.slots:
            if not body.stream:
                answer = await self.service.answer(plan, budget, received=received)
                rid = f"chatcmpl-{answer.info['request_id']}"
                return web.json_response(completion_body(rid, self.model, answer.text, answer.finish_reason, answer.usage, answer.info))
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await self._stream(request, plan, budget, include_usage, received)

    async def _stream(self, request: web.Request, plan: Any, budget: float | None, include_usage: bool,
                      received: float) -> web.StreamResponse:  # fmt: skip
        """Server-sent events: a one-sample strategy's text as the upstream generates it; an
        aggregating strategy's chosen text once it is chosen; then the finish and usage events."""
        self.service.admit(plan, budget)  # still fits now that it is this request's turn?
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        async def solve() -> Answer:
            try:
                return await self.service.answer(plan, budget, on_text=pieces.put_nowait, received=received)
            finally:
                pieces.put_nowait(None)

        task = asyncio.ensure_future(solve())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        rid, created = f"chatcmpl-{time.time_ns():x}", int(time.time())
        streamed: list[str] = []
        gone = False  # the client hung up: the answer is still finished and stored (it is being paid for)

        async def send(data: bytes) -> None:
            nonlocal gone
            if not gone:
                try:
                    await response.write(data)
                except (ConnectionResetError, RuntimeError):
                    gone = True

        await send(chunk(rid, self.model, created, {"role": "assistant", "content": ""}))
        while True:
            try:
                piece = await asyncio.wait_for(pieces.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await send(b": keep-alive\n\n")
                continue
            if piece is None:
                break
            streamed.append(piece)
            await send(chunk(rid, self.model, created, {"content": piece}))
        try:
            answer = await task
        except ApiError as exc:
            if exc.status >= 500:
                _say(f"infereco serve: {exc.status} {exc.message}")
            await send(b"data: " + json.dumps(exc.body()).encode() + b"\n\n")
            return response
        already = "".join(streamed)
        rest = answer.text[len(already):] if answer.text.startswith(already) else answer.text
        if rest:
            await send(chunk(rid, self.model, created, {"content": rest}))
        if include_usage:
            await send(chunk(rid, self.model, created, {}, answer.finish_reason))
            await send(chunk(rid, self.model, created, None, usage=answer.usage.body(), infereco=answer.info))
        else:
            await send(chunk(rid, self.model, created, {}, answer.finish_reason, infereco=answer.info))
        await send(DONE)
        return response


def make_app(service: Service, *, concurrency: int = 8, api_key: str | None = None,
             max_body: int = 8 * 1024 * 1024) -> web.Application:  # fmt: skip
    """The aiohttp application; `api_key`, when set, is required as `Authorization: Bearer KEY`."""
    app = web.Application(middlewares=[_errors], client_max_size=max_body)
    app["max_body"] = max_body
    h = _Handlers(service, concurrency, api_key)
    app.router.add_get("/v1/models", h.models)
    app.router.add_get("/v1/models/{model}", h.one_model)
    app.router.add_post("/v1/chat/completions", h.chat)
    app.router.add_get("/health", h.health)

    async def close(_: web.Application) -> None:
        await service.aclose()

    app.on_cleanup.append(close)
    return app
