"""`infereco serve`: the chosen strategy behind an OpenAI-compatible endpoint, every request billed.

- `protocol`: the chat-completions wire format (validation, answers, stream events, errors);
- `service`: one request = one problem of a stored run, solved by the Runner, billed from the store;
- `app`: the aiohttp routes, concurrency, streaming.
`serve(...)` assembles them from `infereco serve`'s flags and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from infereco.errors import UserError
from infereco.serve.protocol import ApiError, ChatBody
from infereco.serve.service import STRATEGY_OPTIONS, ServeOptions, Service

__all__ = ["serve", "build_service", "Service", "ServeOptions", "ApiError", "ChatBody", "STRATEGY_OPTIONS"]


def build_service(o: dict[str, Any]) -> Service:
    """The service from `infereco serve`'s flags (run's flag names); flag errors are `UserError`s."""
    from infereco import api
    from infereco.store import Store

    if o.get("max_tokens", 256) < 1:
        raise UserError(f"--max-tokens must be >= 1, got {o['max_tokens']}")
    if not 0 <= o.get("temperature", 0.8) <= 2:
        raise UserError(f"--temperature must be in [0, 2], got {o['temperature']}")
    if o.get("concurrency") is not None and o["concurrency"] < 1:
        raise UserError(f"--concurrency must be >= 1, got {o['concurrency']}")
    backend = api.make_backend(
        o.get("backend", "llamacpp"), model=o.get("model"), base_url=o.get("base_url"),
        api_key_env=o.get("api_key_env", "OPENAI_API_KEY"), concurrency=o.get("concurrency"), max_n=o.get("max_n"),
        max_retries=o.get("max_retries", 5), timeout_s=o.get("timeout", 600.0), api=o.get("api_kind", "chat"),
    )  # fmt: skip
    price = api.make_price(backend, prices=o.get("prices"), input_price=o.get("input_price"),
                           output_price=o.get("output_price"), usd_per_hour=o.get("usd_per_hour"))  # fmt: skip
    strategy = {k: o[k] for k in STRATEGY_OPTIONS if o.get(k) is not None}
    strategy.setdefault("strategy", "majority")
    strategy.setdefault("n", 1)
    if strategy.get("step_delimiter") is not None:  # "\\n" on a command line means a newline
        strategy["step_delimiter"] = str(strategy["step_delimiter"]).encode().decode("unicode_escape")
    roles = {k: o.get(k) for k in ("judge_model", "judge_base_url", "judge_prompt", "reward_url", "reward_model",
                                   "reward_price", "draft_model", "draft_base_url", "accept_threshold", "prices",
                                   "api_key_env")}  # fmt: skip
    roles.update(timeout_s=o.get("timeout", 600.0), max_retries=o.get("max_retries", 5))
    options = ServeOptions(
        served_model=o.get("served_model_name") or backend.model,
        strategy=strategy,
        max_tokens=o.get("max_tokens", 256),
        temperature=o.get("temperature", 0.8),
        top_p=o.get("top_p", 1.0),
        seed=o.get("seed", 0),
        checker=o.get("checker", "numeric"),
        budget_usd=o.get("budget_usd"),
        budget_tokens=o.get("budget_tokens"),
        roles={k: v for k, v in roles.items() if v is not None},
    )
    from infereco.budget import Budget

    Budget(max_usd=options.budget_usd, max_tokens=options.budget_tokens)  # validates the numbers
    store = Store(Path(o.get("store", "infereco.db")))
    try:
        return Service(backend, price, store, options)
    except BaseException:
        store.close()
        raise


def serve(o: dict[str, Any], *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run `infereco serve` until SIGINT or SIGTERM."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {port}")
    service = build_service(o)
    key_env = o.get("serve_api_key_env")
    api_key = os.environ.get(key_env) if key_env else None
    if key_env and not api_key:
        raise UserError(f"--serve-api-key-env {key_env}: that environment variable is empty or unset")
    # aiohttp logs protocol errors (a client sending garbage) with tracebacks: one line is enough
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    asyncio.run(_serve(service, host, port, o.get("concurrency") or 8, api_key))


async def _serve(service: Service, host: str, port: int, concurrency: int, api_key: str | None) -> None:
    from aiohttp import web

    from infereco.serve.app import make_app

    start = getattr(service.backend, "start", None)
    if start is not None:  # the embedded model: start its server before the first request
        await start()
    profile = getattr(service.backend, "runtime_profile", None)
    if service.price.clock == "runtime" and service.price.runtime is None and profile is not None:
        service.price = service.price.model_copy(update={"runtime": await profile()})  # priced by idealized runtime
    runner = web.AppRunner(make_app(service, concurrency=concurrency, api_key=api_key), access_log=None,
                           handle_signals=False)  # fmt: skip
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        strategy = service.options.strategy
        print(f"infereco serve: http://{host}:{bound}/v1 serves {service.options.served_model!r} "
              f"({strategy['strategy']} N={strategy['n']}), store {service.store.path}", file=sys.stderr, flush=True)  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("infereco serve: stopping (requests in flight are finished and stored)", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()  # finishes in-flight requests, then closes the backends (on_cleanup)
        service.store.close()
