"""Per-request prices: provider usage fields, tiers, cache reads and writes, reasoning, dates, price files."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from infereco.errors import UserError
from infereco.prices import Charge, Price, RuntimeProfile, Tier, genai_price, load_price_file
from infereco.usage import TokenUsage, read_usage


# -- usage fields --------------------------------------------------------------------------------
def test_openai_counts_cached_inside_prompt_and_reasoning_inside_completion() -> None:
    got = read_usage({"usage": {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
                                "prompt_tokens_details": {"cached_tokens": 600},
                                "completion_tokens_details": {"reasoning_tokens": 200}}})  # fmt: skip
    assert (got.format, got.prompt, got.cached, got.cache_write, got.completion, got.reasoning) == (
        "openai", 1000, 600, None, 300, 200)


def test_anthropic_input_excludes_cache_reads_and_writes() -> None:
    got = read_usage({"usage": {"input_tokens": 100, "cache_read_input_tokens": 8000,
                                "cache_creation_input_tokens": 1500, "output_tokens": 400}})  # fmt: skip
    assert (got.format, got.prompt, got.cached, got.cache_write, got.completion) == ("anthropic", 9600, 8000, 1500, 400)


def test_gemini_reports_thinking_apart_and_it_is_billed_as_output() -> None:
    got = read_usage({"usageMetadata": {"promptTokenCount": 5000, "cachedContentTokenCount": 4000,
                                        "candidatesTokenCount": 120, "thoughtsTokenCount": 900}})  # fmt: skip
    assert (got.format, got.prompt, got.cached, got.completion, got.reasoning) == ("gemini", 5000, 4000, 1020, 900)


def test_a_gateway_leaving_reasoning_out_of_completion_is_corrected_by_the_total() -> None:
    got = read_usage({"usage": {"prompt_tokens": 21, "completion_tokens": 0, "total_tokens": 81,
                                "completion_tokens_details": {"reasoning_tokens": 60}}})  # fmt: skip
    assert (got.completion, got.reasoning) == (60, 60)
    consistent = read_usage({"usage": {"prompt_tokens": 21, "completion_tokens": 60, "total_tokens": 81,
                                       "completion_tokens_details": {"reasoning_tokens": 60}}})  # fmt: skip
    assert consistent.completion == 60


@pytest.mark.parametrize("body", [None, {}, {"usage": None}, {"usage": {"prompt_tokens": -1, "completion_tokens": 2.5}},
                                  {"usage": {"prompt_tokens": True}}])  # fmt: skip
def test_missing_or_bad_counts_are_not_reported(body: object) -> None:
    got = read_usage(body)
    assert got.prompt is None and got.completion is None


def test_openai_gateway_cache_writes_are_read() -> None:
    assert read_usage({"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cache_write_tokens": 4}}}).cache_write == 4
    assert read_usage({"usage": {"prompt_tokens": 10, "cache_creation_input_tokens": 3}}).cache_write == 3


# -- price tables --------------------------------------------------------------------------------
SONNET = Price(input_per_mtok=3, output_per_mtok=15, cached_input_per_mtok=0.3, cache_write_per_mtok=3.75,
               tiers=[Tier(above_input_tokens=200_000, input_per_mtok=6, output_per_mtok=22.5,
                           cached_input_per_mtok=0.6, cache_write_per_mtok=7.5)])  # fmt: skip


def test_a_tier_is_a_cliff_on_the_whole_request() -> None:
    below = SONNET.charge(TokenUsage(prompt=200_000, completion=1000)).usd
    above = SONNET.charge(TokenUsage(prompt=200_001, completion=1000)).usd
    assert below == pytest.approx((200_000 * 3 + 1000 * 15) / 1e6)
    assert above == pytest.approx((200_001 * 6 + 1000 * 22.5) / 1e6)


def test_cache_reads_writes_and_reasoning_are_priced_apart() -> None:
    price = SONNET.model_copy(update={"reasoning_per_mtok": 20.0})
    charge = price.charge(TokenUsage(prompt=10_000, cached=6_000, cache_write=1_000, completion=500, reasoning=300))
    assert charge.input_usd == pytest.approx((3_000 * 3 + 6_000 * 0.3 + 1_000 * 3.75) / 1e6)
    assert charge.output_usd == pytest.approx((200 * 15 + 300 * 20) / 1e6)


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-pro", "gpt-5.6-terra"])
def test_a_table_from_genai_prices_prices_as_calc_price(model: str) -> None:
    """Detached from genai-prices (a flag overrode nothing), the table with its tiers gives calc_price's figure."""
    genai = genai_price(model)
    assert genai is not None and genai.tiers
    table = genai.model_copy(update={"genai": None})
    for usage in (TokenUsage(9_000, 6_000, 1_500, 800, 500), TokenUsage(300_000, 150_000, 2_000, 2_000, 1_500)):
        expected = calc_price(Usage(input_tokens=usage.prompt, cache_read_tokens=usage.cached,
                                    cache_write_tokens=usage.cache_write, output_tokens=usage.completion),
                              model_ref=model)  # fmt: skip
        assert table.charge(usage).usd == pytest.approx(float(expected.total_price), rel=1e-9)
        assert genai.charge(usage).usd == pytest.approx(float(expected.total_price), rel=1e-9)


def test_the_price_at_the_requests_date_applies() -> None:
    """claude-opus-4-6 has two prices in the data: tiered above 200k input tokens until 2026-03-13, flat
    after. Each request pays the one of its own date."""
    price = genai_price("claude-opus-4-6")
    assert price is not None
    usage = TokenUsage(prompt=250_000, cached=10_000, completion=2_000)
    bill = Usage(input_tokens=250_000, cache_read_tokens=10_000, output_tokens=2_000)
    dates = [datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2026, 11, 1, tzinfo=timezone.utc)]
    costs = [price.charge(usage, when=d).usd for d in dates]
    expected = [float(calc_price(bill, model_ref="claude-opus-4-6", genai_request_timestamp=d).total_price) for d in dates]
    assert costs == pytest.approx(expected, rel=1e-12)
    assert costs[0] > costs[1]  # the tier of the older price


def test_worst_case_takes_the_dearer_of_input_and_cache_writes() -> None:
    worst = SONNET.worst_charge(1000, 100)
    assert worst == pytest.approx((1000 * 3.75 + 100 * 15) / 1e6)
    for usage in (TokenUsage(1000, 0, 1000, 100), TokenUsage(1000, 500, 0, 100), TokenUsage(1000, 0, 0, 100)):
        assert SONNET.charge(usage).usd <= worst + 1e-15


def test_a_charge_is_shared_over_samples_and_adds_up() -> None:
    charge = Charge(input_usd=0.3, output_usd=0.6, machine_usd=0.1)
    shares = charge.split([10, 20, 0], [5, 5, 4])
    assert sum(shares) == pytest.approx(charge.usd)
    assert shares[1] > shares[0] > shares[2]


def test_idealized_runtime_interpolates_batch_sizes() -> None:
    profile = RuntimeProfile(prefill_s_per_token=0.001, decode_s_per_token={1: 0.05, 4: 0.02, 16: 0.01})
    assert profile.decode_at(1) == 0.05 and profile.decode_at(16) == 0.01 and profile.decode_at(64) == 0.01
    assert profile.decode_at(2) == pytest.approx(0.04)
    assert profile.seconds(100, 200, 4) == pytest.approx(0.1 + 200 * 0.02)
    price = Price(usd_per_hour=3.6, clock="runtime", runtime=profile)
    charge = price.charge(TokenUsage(prompt=100, completion=200), busy_s=99.0, batch=4)
    assert charge.compute_s == pytest.approx(4.1) and charge.usd == pytest.approx(4.1 / 1000)  # wall time ignored


# -- price files ---------------------------------------------------------------------------------
def test_a_price_file_says_tiers_and_cache_writes(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."big"]\ninput_per_mtok = 3\noutput_per_mtok = 15\ncached_input_per_mtok = 0.3\n'
        "cache_write_per_mtok = 3.75\n"
        '[[models."big".tiers]]\nabove_input_tokens = 200000\ninput_per_mtok = 6\noutput_per_mtok = 22.5\n'
        "cached_input_per_mtok = 0.6\ncache_write_per_mtok = 7.5\n"
    )
    price = load_price_file(path, "big")
    for usage in (TokenUsage(10_000, 8_000, 500, 500), TokenUsage(250_000, 100_000, 2_000, 1_000)):
        assert price.charge(usage).usd == pytest.approx(SONNET.charge(usage).usd, rel=1e-12)
    assert price.source == f'{path}:models."big"' and price.data_version().startswith("prices.toml ")


@pytest.mark.parametrize(
    ("body", "must_name"),
    [
        ('[[models."big".tiers]]\nabove_input_tokens = -5\n', "above_input_tokens"),
        ('[[models."big".tiers]]\nabove_input_tokens = 10\ninput_per_mtok = "x"\n', "input_per_mtok"),
        ('[[models."big".tiers]]\nabove = 10\n', "above"),
        ("genai = 1\n", "genai"),
    ],
)
def test_a_bad_tier_names_the_file_line_and_field(tmp_path: Path, body: str, must_name: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."big"]\ninput_per_mtok = 3\n' + body)
    with pytest.raises(UserError) as err:
        load_price_file(path, "big")
    message = str(err.value)
    assert str(path) in message and must_name in message and "\n" not in message
