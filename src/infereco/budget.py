"""Hard budgets: reserve a request's worst case before sending it, commit its real cost after.

Spend can never pass the limit, with any number of requests in flight, because a request is only
sent once `spent + reserved + its worst case` fits. The worst case of a request is:
- prompt tokens: at most one token per UTF-8 byte of the messages plus a chat-template allowance
  (byte-level BPE tokenizers never produce more tokens than bytes); billed once per request, as the
  OpenAI API, vLLM and llama.cpp's server do;
- completion tokens: `n × max_tokens` (servers stop there);
- machine time (when the price has `usd_per_hour`): the longest a request can take with its retries,
  from the backend (`worst_case_seconds`); lower it with `--timeout`.
The Runner is single-threaded asyncio, so check-and-reserve needs no lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from infereco.errors import UserError

TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_PER_REQUEST = 16


def prompt_token_bound(messages: list[dict[str, str]] | tuple[dict[str, str], ...]) -> int:
    """An upper bound on the prompt tokens of a chat request (see the module docstring)."""
    return TEMPLATE_TOKENS_PER_REQUEST + sum(
        len(m.get("content", "").encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages
    )


@dataclass(frozen=True)
class Reservation:
    usd: float
    tokens: int


@dataclass
class Budget:
    """Limits on a run's total spend (money and/or tokens), counting what is already stored."""

    max_usd: float | None = None
    max_tokens: int | None = None
    spent_usd: float = 0.0
    spent_tokens: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    exhausted: bool = False
    #: the worst case (usd, tokens) of the request that did not fit, for the message
    refused: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        from infereco.validate import check_number

        check_number("budget_usd", self.max_usd)
        check_number("budget_tokens", self.max_tokens)
        if self.max_usd is not None and self.max_usd < 0:
            raise UserError(f"--budget-usd must be >= 0, got {self.max_usd}")
        if self.max_tokens is not None and self.max_tokens < 0:
            raise UserError(f"--budget-tokens must be >= 0, got {self.max_tokens}")

    @property
    def limited(self) -> bool:
        return self.max_usd is not None or self.max_tokens is not None

    def fits(self, usd: float, tokens: int) -> bool:
        """Whether a request of this worst case can be reserved now (nothing is marked)."""
        fits_usd = self.max_usd is None or self.spent_usd + self.reserved_usd + usd <= self.max_usd
        return fits_usd and (self.max_tokens is None or self.spent_tokens + self.reserved_tokens + tokens <= self.max_tokens)

    def reserve(self, usd: float, tokens: int) -> Reservation | None:
        """Hold the worst case of one request, or return None (and mark the budget exhausted)."""
        fits_usd = self.max_usd is None or self.spent_usd + self.reserved_usd + usd <= self.max_usd
        fits_tokens = self.max_tokens is None or self.spent_tokens + self.reserved_tokens + tokens <= self.max_tokens
        if not (fits_usd and fits_tokens):
            self.exhausted = True
            self.refused = (usd, tokens)
            return None
        self.reserved_usd += usd
        self.reserved_tokens += tokens
        return Reservation(usd, tokens)

    def commit(self, reservation: Reservation, usd: float, tokens: int) -> None:
        """Replace a reservation by what the request really cost (at most the reservation, by the bounds above)."""
        self.reserved_usd -= reservation.usd
        self.reserved_tokens -= reservation.tokens
        self.spent_usd += usd
        self.spent_tokens += tokens

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation for a request that was never sent."""
        self.reserved_usd -= reservation.usd
        self.reserved_tokens -= reservation.tokens

    def describe(self) -> str:
        parts = []
        if self.max_usd is not None:
            parts.append(f"${self.spent_usd:.6g} of ${self.max_usd:.6g}")
        if self.max_tokens is not None:
            parts.append(f"{self.spent_tokens} of {self.max_tokens} tokens")
        text = ", ".join(parts) or "no budget"
        if self.refused is not None:
            usd, tokens = self.refused
            need = [f"${usd:.6g}" if self.max_usd is not None else "", f"{tokens} tokens" if self.max_tokens is not None else ""]
            text += f" (the next request could cost up to {' / '.join(x for x in need if x)}: lower --max-tokens or --max-n"
            text += ", or --timeout for machine-time prices)" if self.max_usd is not None else ")"
        return text
