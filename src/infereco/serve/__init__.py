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
from infereco.serve.service import OVERRIDABLE, ServeOptions, Service

__all__ = ["serve", "build_service", "Service", "ServeOptions", "ApiError", "ChatBody", "OVERRIDABLE"]


#: `infereco serve`'s own options (not part of the run description)
OWN_OPTIONS = ("served_model_name", "checker", "serve_api_key_env")


def build_service(o: dict[str, Any]) -> Service:
    """The service from `infereco serve`'s options: the run description's fields (`RunConfig`,
    as `infereco run` takes them) plus OWN_OPTIONS; a bad one is a `UserError` naming its flag."""
    from infereco.assemble import make_backend, make_price
    from infereco.checkers import get_checker
    from infereco.runconfig import RunConfig
    from infereco.store import Store

    run = RunConfig.build({k: v for k, v in o.items() if k not in OWN_OPTIONS})
    try:
        get_checker(o.get("checker") or "numeric")
    except UserError as exc:
        raise UserError(f"--checker: {exc}") from None
    backend = make_backend(
        run.backend, model=run.model, base_url=run.base_url, api_key_env=run.api_key_env, concurrency=run.concurrency,
        max_n=run.max_n, max_retries=run.max_retries, timeout_s=run.timeout, api=run.api_kind,
    )  # fmt: skip
    price = make_price(backend, prices=run.prices, input_price=run.input_price, output_price=run.output_price,
                       usd_per_hour=run.usd_per_hour)  # fmt: skip
    options = ServeOptions(served_model=o.get("served_model_name") or backend.model, run=run,
                           checker=o.get("checker") or "numeric")  # fmt: skip
    store = Store(Path(run.store))
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
    asyncio.run(_serve(service, host, port, service.options.run.concurrency or 8, api_key))


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
