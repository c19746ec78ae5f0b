"""The OpenAI chat-completions wire format, as `infereco serve` reads and writes it.

Requests are validated by pydantic models, and a validation error becomes one OpenAI-style error
object naming the field (`messages[0].role`, `infereco.n`), never a traceback. Fields a chat client
commonly sends but that change nothing here (`user`, `seed`, penalties, metadata) are accepted and
ignored; fields whose meaning infereco cannot honour (tools, several choices, logprobs, images) are
refused by name rather than silently dropped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: OpenAI-style error types by HTTP status
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "budget_exceeded",
               404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error",
               500: "server_error", 502: "upstream_error", 503: "server_error"}  # fmt: skip


class ApiError(Exception):
    """An answer other than 200: the HTTP status, a one-line message and the field it is about."""

    def __init__(self, status: int, message: str, param: str | None = None, type_: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type_ or ERROR_TYPES.get(status, "server_error")
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "param": self.param, "code": self.type}
        error.update(self.extra)
        return {"error": error}


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id... are carried, not used
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_Part] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatBody(BaseModel):
    """A `POST /v1/chat/completions` body."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None
    #: per-request strategy options, named as `infereco run`'s flags; checked by the service against
    #: the run description (`RunConfig`), like flags
    infereco: dict[str, Any] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError("infereco serve answers one choice (the strategy's pick); set the strategy's N with infereco.n")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("logprobs are not returned by infereco serve")
        return v

    def chat_messages(self) -> list[dict[str, str]]:
        """The messages as the backends take them: role and plain text ("developer" is a system message)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


_REFUSED = {"tools": "tool calls are not supported", "functions": "function calls are not supported",
            "tool_choice": "tool calls are not supported", "function_call": "function calls are not supported",
            "audio": "audio output is not supported"}  # fmt: skip


def parse_body(raw: bytes) -> ChatBody:
    """Validate a chat-completions body; an `ApiError` (400) names the first bad field."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    for name, why in _REFUSED.items():
        if data.get(name) not in (None, [], "none"):
            raise ApiError(400, f"{name}: {why} by infereco serve", param=name)
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise ApiError(400, "response_format: only text is supported by infereco serve", param="response_format")
    try:
        return ChatBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """The first pydantic error as a 400 naming its field, e.g. `messages[1].content`."""
    err = exc.errors()[0]
    loc = list(err.get("loc", ()))
    # a union's error names the member it tried ("str", "list[_Part]"): those are not fields
    loc = [p for p in loc if isinstance(p, int) or not any(ch in str(p) for ch in "[]") and str(p) not in ("str", "int", "float", "bool")]
    field = prefix
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if err.get("type") in ("missing",):
        msg = "is required"
    elif err.get("type") == "extra_forbidden":
        msg = "is not an option (see docs/serving.md)"
    elif err.get("type") == "literal_error" and "role" in str(loc[-1:]):
        msg = "must be system, developer, user or assistant"
    return ApiError(400, f"{field or 'body'}: {msg}", param=field or None)


# -- answers ---------------------------------------------------------------------------------


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached_prompt_tokens: int = 0

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": self.cost_usd,
        }
        if self.cached_prompt_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_prompt_tokens}
        return out


def completion_body(rid: str, model: str, text: str, finish: str, usage: Usage, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                     "logprobs": None}],  # fmt: skip
        "usage": usage.body(),
        "infereco": info,
    }


def chunk(rid: str, model: str, created: int, delta: dict[str, Any] | None, finish: str | None = None,
          **extra: Any) -> bytes:  # fmt: skip
    """One server-sent event of a streamed chat completion."""
    body: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish,
                                                                  "logprobs": None}]}  # fmt: skip
    body.update(extra)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
