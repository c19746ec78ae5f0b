"""Generated arithmetic problems with graded difficulty.

Why generate instead of download: a run needs no data files, the difficulty dial (`level`) lets a
small model show where extra inference-time compute starts to pay off, and a seed makes the set
reproducible. Every problem keeps its arithmetic `expression` in metadata so tests (and sceptical
users) can recompute the reference answer independently of the generator.

Levels:
1. 2-digit sums.  2. 3-digit sums/differences, 2-digit x 1-digit products.
3. two-step word problems.  4. three-step word problems.
5. three- or four-step word problems that mix + - x and always include an exact division.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from infereco.checkers import NumericChecker
from infereco.errors import UserError
from infereco.problem import Problem
from infereco.tasks.base import DEFAULT_SYSTEM_PROMPT, Task, check_limit

LEVELS = range(1, 6)

_NAMES: tuple[tuple[str, str], ...] = (
    ("Tom", "he"), ("Mia", "she"), ("Ravi", "he"), ("Lena", "she"), ("Omar", "he"),
    ("Sofia", "she"), ("Kenji", "he"), ("Amara", "she"), ("Lucas", "he"), ("Priya", "she"),
    ("Diego", "he"), ("Hannah", "she"), ("Noah", "he"), ("Yuki", "she"), ("Felix", "he"),
    ("Zara", "she"), ("Samuel", "he"), ("Ines", "she"), ("Mateo", "he"), ("Chloe", "she"),
)
# (plural item, container it comes in)
_ITEMS: tuple[tuple[str, str], ...] = (
    ("apples", "bags"), ("marbles", "jars"), ("stickers", "sheets"), ("pencils", "boxes"),
    ("cookies", "packs"), ("stamps", "albums"), ("shells", "buckets"), ("cards", "decks"),
    ("eggs", "cartons"), ("beads", "strings"), ("books", "crates"), ("balloons", "packets"),
)
_ARITH_FORMS = ("What is {}?", "Compute {}.", "Calculate {}.", "What is the value of {}?")

_MAX_ATTEMPTS = 1000


@dataclass
class _Story:
    """A word problem being built: the running value, its expression, and the sentences so far."""

    rng: random.Random
    name: str
    pronoun: str
    friend: str
    item: str
    container: str
    value: int
    expr: str
    sentences: list[str]
    ops: int = 0

    @property
    def obj(self) -> str:
        return "him" if self.pronoun == "he" else "her"

    @property
    def poss(self) -> str:
        return "his" if self.pronoun == "he" else "her"

    def subject(self) -> str:
        """Alternate between the name and the pronoun so the text reads naturally."""
        return self.name if self.rng.random() < 0.4 else self.pronoun.capitalize()

    def apply(self, op: str, operands: tuple[int, ...], sentence: str) -> None:
        """Record one sentence: `op` applied to the running value with the product of `operands`.

        Two operands ("3 bags with 4 each") make a two-operation step: a product, then `op`.
        """
        amount = 1
        for x in operands:
            amount *= x
        if op == "+":
            self.value += amount
        elif op == "-":
            self.value -= amount
        elif op == "*":
            self.value *= amount
        else:
            assert self.value % amount == 0, "division must be exact"
            self.value //= amount
        self.expr = f"({self.expr} {op} {' * '.join(map(str, operands))})"
        self.sentences.append(sentence)
        self.ops += len(operands)


def _add(s: _Story, big: int) -> bool:
    k = s.rng.randint(2, big)
    text = s.rng.choice([
        f"{s.subject()} buys {k} more {s.item}.",
        f"{s.friend} gives {s.obj} {k} {s.item}.",
        f"{s.subject()} finds {k} more {s.item}.",
    ])
    s.apply("+", (k,), text)
    return True


def _sub(s: _Story, big: int) -> bool:
    if s.value < 3:
        return False
    k = s.rng.randint(2, min(big, s.value - 1))
    text = s.rng.choice([
        f"{s.subject()} gives {k} {s.item} to {s.friend}.",
        f"{s.subject()} loses {k} {s.item}.",
        f"{s.subject()} sells {k} {s.item}.",
    ])
    s.apply("-", (k,), text)
    return True


def _mul(s: _Story, big: int) -> bool:
    m = s.rng.randint(2, 4)
    forms = [f"{s.subject()} ends up with {m} times as many {s.item} as before."]
    if m == 2:
        forms.append(f"{s.subject()} doubles {s.poss} {s.item}.")
    if m == 3:
        forms.append(f"{s.subject()} triples {s.poss} {s.item}.")
    s.apply("*", (m,), s.rng.choice(forms))
    return True


def _div(s: _Story, big: int) -> bool:
    divisors = [d for d in range(2, 10) if s.value % d == 0 and s.value // d >= 2]
    if not divisors:
        return False
    d = s.rng.choice(divisors)
    text = s.rng.choice([
        f"{s.subject()} splits the {s.item} equally into {d} piles and keeps only one pile.",
        f"{s.subject()} packs the {s.item} equally into {d} {s.container}, "
        f"keeps one of the {s.container} and gives the others away.",
        f"{s.subject()} shares the {s.item} equally among {d} people, {s.obj}self included, "
        f"and keeps only {s.poss} share.",
    ])
    s.apply("/", (d,), text)
    return True


def _add_groups(s: _Story, big: int) -> bool:
    g, k = s.rng.randint(2, 6), s.rng.randint(2, max(3, big // 2))
    text = s.rng.choice([
        f"{s.subject()} buys {g} {s.container} of {s.item} with {k} {s.item} in each.",
        f"{s.friend} gives {s.obj} {g} {s.container} with {k} {s.item} each.",
    ])
    s.apply("+", (g, k), text)
    return True


def _sub_groups(s: _Story, big: int) -> bool:
    g = s.rng.randint(2, 5)
    if (s.value - 1) // g < 2:
        return False
    k = s.rng.randint(2, min(max(2, big // 2), (s.value - 1) // g))
    text = s.rng.choice([
        f"{s.subject()} uses {k} {s.item} a day for {g} days.",
        f"{s.subject()} gives {k} {s.item} to each of {g} friends.",
    ])
    s.apply("-", (g, k), text)
    return True


# Each step kind with the number of arithmetic operations it adds.
_STEPS = {"add": (_add, 1), "sub": (_sub, 1), "mul": (_mul, 1), "div": (_div, 1),
          "add_groups": (_add_groups, 2), "sub_groups": (_sub_groups, 2)}


def _plan(rng: random.Random, level: int) -> list[str]:
    """Sequence of step kinds whose operations add up to the level's number of steps."""
    kinds = ["add", "sub", "mul", "add_groups", "sub_groups"] + (["div"] if level == 5 else [])
    target = {3: 2, 4: 3}.get(level) or rng.choice([3, 4])
    while True:
        plan: list[str] = []
        total = 0
        while total < target:
            kind = rng.choice(kinds)
            if total + _STEPS[kind][1] <= target:
                plan.append(kind)
                total += _STEPS[kind][1]
        has_mul = any(k in ("mul", "add_groups", "sub_groups") for k in plan)
        if level < 5 or ("div" in plan and has_mul):
            return plan


def _word_problem(rng: random.Random, level: int) -> tuple[str, str, int, int]:
    """(prompt, expression, answer, steps) for a level 3-5 word problem."""
    big = {3: 12, 4: 20, 5: 30}[level]
    for _ in range(_MAX_ATTEMPTS):
        (name, pronoun), (friend, _) = rng.sample(_NAMES, 2)
        item, container = rng.choice(_ITEMS)
        start = rng.randint(5, 10 + 2 * big)
        opening = rng.choice([
            f"{name} has {start} {item}.",
            f"{name} starts the day with {start} {item}.",
            f"{name} collected {start} {item}.",
        ])
        story = _Story(rng, name, pronoun, friend, item, container, start, str(start), [opening])
        if all(_STEPS[kind][0](story, big) for kind in _plan(rng, level)):
            question = rng.choice([
                f"How many {item} does {name} have now?",
                f"How many {item} does {name} have at the end?",
            ])
            return " ".join([*story.sentences, question]), story.expr[1:-1], story.value, story.ops
    raise AssertionError("word problem generation did not converge")  # pragma: no cover


def _plain_problem(rng: random.Random, level: int) -> tuple[str, str, int, int]:
    """(prompt, expression, answer, steps) for a level 1-2 bare arithmetic question."""
    if level == 1:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        shown, expr, answer = f"{a} + {b}", f"{a} + {b}", a + b
    else:
        kind = rng.choice(["sum", "difference", "product"])
        if kind == "product":
            a, b = rng.randint(10, 99), rng.randint(2, 9)
            shown, expr, answer = f"{a} × {b}", f"{a} * {b}", a * b
        else:
            a, b = rng.randint(100, 999), rng.randint(100, 999)
            if kind == "difference":
                a, b = max(a, b), min(a, b)
                shown, expr, answer = f"{a} - {b}", f"{a} - {b}", a - b
            else:
                shown, expr, answer = f"{a} + {b}", f"{a} + {b}", a + b
    return rng.choice(_ARITH_FORMS).format(shown), expr, answer, 1


def arithmetic_task(level: int = 1, limit: int = 30, seed: int = 0) -> Task:
    """`limit` generated problems of difficulty `level` (1..5), reproducible from `seed`.

    The i-th problem depends only on (level, seed, i), so a smaller limit gives a prefix of a
    larger one and stored samples stay valid when a run is extended.
    """
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise UserError(f"--level must be 1..5, got {level!r}")
    if limit is None:
        raise UserError("--limit must be an integer >= 1, got None")
    check_limit(limit)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"--seed must be an integer, got {seed!r}")
    rng = random.Random(f"infereco-arithmetic:{level}:{seed}")
    problems: list[Problem] = []
    seen: set[str] = set()
    while len(problems) < limit:
        make = _plain_problem if level <= 2 else _word_problem
        for _ in range(_MAX_ATTEMPTS):  # avoid repeats; tiny chance of exhausting, then allow one
            prompt, expr, answer, steps = make(rng, level)
            if prompt not in seen:
                break
        seen.add(prompt)
        problems.append(Problem(
            id=f"arith-L{level}-{len(problems):04d}",
            prompt=prompt,
            answer=str(answer),
            metadata={"level": level, "steps": steps, "expression": expr},
        ))
    return Task(
        name=f"arithmetic-L{level}",
        problems=tuple(problems),
        checker=NumericChecker(),
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        spec={"name": "arithmetic", "level": level, "limit": limit, "seed": seed},
        step_delimiter="\n",
    )
