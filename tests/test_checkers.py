"""Checkers: extraction from realistic model output, canonical strings for voting, grading."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infereco.checkers import (
    CHECKER_NAMES,
    Checker,
    ExactChecker,
    MathChecker,
    NumericChecker,
    canonical_number,
    get_checker,
    last_boxed,
)
from infereco.errors import UserError

NUM = NumericChecker()
MATH = MathChecker()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First 12 + 30 = 42, then 42 - 2 = 40.\nAnswer: 40.", "40"),
        ("We have 3 bags of 4 apples, so 12 apples.\nAnswer: 42", "42"),
        ("The answer is **42**", "42"),
        ("**Answer:** 1,234", "1234"),
        ("**Final Answer**: $1,234.00", "1234"),
        ("Step 1: 5 * 3 = 15\nStep 2: 15 + 2 = 17\n#### 17", "17"),
        ("So the result is $\\boxed{17}$.", "17"),
        ("\\boxed{\\frac{1}{2}}", "0.5"),
        ("Answer: -3", "-3"),
        ("The temperature drops to -7 degrees.", "-7"),
        ("answer is −4", "-4"),  # Unicode minus
        ("10 - 3 = 7", "7"),  # the "-" of a subtraction is not a sign
        ("Answer: 12 + 3 = 15", "15"),  # the result after "=" is the answer
        ("Answer: 0.50", "0.5"),
        ("answer: 1/2", "0.5"),
        ("The answer is 2/3", "2/3"),
        ("Answer:\n42", "42"),  # marker with nothing after it on the line: fall back
        ("I think it is 8 or maybe 9", "9"),  # no marker: last number
        ("Answer: 3 apples. Earlier I said 5.", "3"),
        ("The answer is 5.\nWait, that is wrong. The answer is 6.", "6"),
        ("ANSWER: 1,000,000", "1000000"),
        ("no numbers here at all", None),
        ("", None),
        ("Answer: unknown", None),
    ],
)
def test_numeric_extract_from_messy_output(text: str, expected: str | None) -> None:
    assert NUM.extract(text) == expected


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("1,234", "1234"),
        ("1234.0", "1234"),
        ("$1234", "1234"),
        ("0.50", "0.5"),
        ("-3", "-3"),
        ("1/2", "0.5"),
        ("-0", "0"),
        ("**42**.", "42"),
        (".25", "0.25"),
        ("1/3", "1/3"),
        ("6/4", "1.5"),
        ("abc", None),
        ("1/0", None),
        ("", None),
    ],
)
def test_canonical_number(raw: str, canonical: str | None) -> None:
    assert canonical_number(raw) == canonical


_number_texts = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.integers(-10**12, 10**12).map(lambda n: f"{n:,}"),
    st.decimals(min_value=-10**6, max_value=10**6, places=4, allow_nan=False).map(str),
    st.fractions(max_denominator=50).map(str),
)


@given(_number_texts)
def test_canonical_number_is_idempotent_and_exact(text: str) -> None:
    once = canonical_number(text)
    assert once is not None
    assert canonical_number(once) == once
    assert Fraction(once) == Fraction(text.replace(",", ""))


@given(st.integers(-10**15, 10**15))
def test_numeric_round_trip_for_integers(n: int) -> None:
    assert NUM.extract(f"Answer: {n}") == str(n)
    assert NUM.is_correct(NUM.extract(f"Answer: {n}"), str(n))
    assert NUM.is_correct(NUM.extract(f"Some work with 7 and 9.\nThe answer is **{n:,}**."), str(n))
    assert not NUM.is_correct(NUM.extract(f"Answer: {n + 1}"), str(n))


@settings(max_examples=200)
@given(st.text())
def test_numeric_extract_is_canonical_or_none(text: str) -> None:
    """Whatever the text, votes must group by a fixed point of canonicalisation."""
    out = NUM.extract(text)
    assert out is None or canonical_number(out) == out


def test_equal_answers_written_differently_share_one_vote() -> None:
    outputs = ["Answer: 1,234", "The answer is $1234.00", "#### 1234", "so \\boxed{1234}"]
    assert {NUM.extract(o) for o in outputs} == {"1234"}


def test_numeric_is_correct_uses_tolerance() -> None:
    assert NUM.is_correct("0.3333333", "1/3")
    assert not NUM.is_correct("0.33", "1/3")
    assert NUM.is_correct("1234", "1,234")
    assert not NUM.is_correct(None, "0")
    assert NumericChecker(rel_tol=0.05).is_correct("0.33", "1/3")
    assert not NUM.is_correct("1000000", "999999")  # integers never within tolerance


def test_numeric_is_correct_non_numbers_compare_as_text() -> None:
    assert not NUM.is_correct("abc", "42")
    assert NUM.is_correct("Yes", "yes")


def test_last_boxed_handles_nested_braces() -> None:
    text = "first \\boxed{1} then \\boxed{\\frac{a}{b+\\sqrt{2}}} done"
    assert last_boxed(text) == "\\frac{a}{b+\\sqrt{2}}"
    assert last_boxed("unclosed \\boxed{1") is None
    assert last_boxed("nothing") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{ \\dfrac {1} {2} }", "\\frac{1}{2}"),
        ("Answer: $\\boxed{5}$", "5"),
        ("Answer: $x^2 + 1$.", "x^2+1"),
        ("\\boxed{2\\pi r}", "2\\pi r"),
        ("first \\boxed{3}, corrected: \\boxed{4}", "4"),
        ("I do not know", None),
    ],
)
def test_math_extract(text: str, expected: str | None) -> None:
    assert MATH.extract(text) == expected


@pytest.mark.parametrize(
    ("answer", "reference", "correct"),
    [
        ("0.5", "\\frac{1}{2}", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{1}{2}", "\\frac12", True),
        ("1+x^2", "x^2+1", True),
        ("\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", True),
        ("3", "4", False),
        ("\\frac{1}{3}", "0.5", False),
        (None, "1", False),
        ("\\frac{{{", "1", False),  # unparsable: wrong, never an exception
        ("", "1", False),
    ],
)
def test_math_is_correct(answer: str | None, reference: str, correct: bool) -> None:
    assert MATH.is_correct(answer, reference) is correct


def test_math_is_correct_works_off_the_main_thread() -> None:
    """math-verify's default timeouts use signals, which fail in worker threads."""
    cases = [("0.5", "\\frac{1}{2}"), ("3", "4"), ("x^2+1", "1+x^2")] * 4
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: MATH.is_correct(*c), cases))
    assert results == [True, False, True] * 4


def test_exact_checker() -> None:
    ex = ExactChecker()
    assert ex.extract("Let me think.\nAnswer: **Paris**.") == "paris"
    assert ex.extract("blah\n\n  Blue  \n") == "blue"
    assert ex.extract("   ") is None
    assert ex.is_correct("paris", " PARIS ")
    assert not ex.is_correct("paris", "London")
    assert not ex.is_correct(None, "x")


def test_get_checker_known_names() -> None:
    for name in CHECKER_NAMES:
        checker = get_checker(name)
        assert checker.name == name
        assert isinstance(checker, Checker)
    assert set(CHECKER_NAMES) == {"numeric", "math", "exact", "python-tests"}


def test_get_checker_unknown_name_is_one_line_user_error() -> None:
    with pytest.raises(UserError) as info:
        get_checker("fuzzy")
    message = str(info.value)
    assert "\n" not in message
    assert "'fuzzy'" in message
    assert all(name in message for name in CHECKER_NAMES)
