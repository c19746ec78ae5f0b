"""The arithmetic step verifier: exact checks of shown calculations, and its honest blind spots."""

from __future__ import annotations

from infereco.verifiers import ArithmeticStepVerifier

V = ArithmeticStepVerifier()


def test_right_calculations_pass_and_wrong_ones_fail() -> None:
    assert V.passes("2 * 3 = 6\n5 + 6 = 11\nAnswer: 11")
    assert not V.passes("2 * 3 = 6\n5 + 6 = 12\nAnswer: 12")
    assert V.score("2 * 3 = 6\n5 + 6 = 12") == 0.5
    assert V.passes("1,200 / 4 = 300 and 300 × 2 = 600") and V.passes("7.5 - 2.5 = 5")


def test_its_blind_spots_are_those_of_an_imperfect_verifier() -> None:
    # the wrong quantity computed correctly passes (a false positive for "3 boxes of 4 apples")
    assert V.passes("3 + 4 = 7\nAnswer: 7")
    # a right answer with no shown work fails (a false negative)
    assert not V.passes("Answer: 12") and V.score("Answer: 12") == 0.0
    assert not V.passes("10 / 0 = 0")  # division by zero is never right


def test_cli_verifier_limits_on_a_stored_run(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from infereco import Problem
    from infereco.records import RequestRecord, SampleRecord
    from infereco.store import Store

    texts = [
        ("2 * 3 = 6\n5 + 6 = 11\nAnswer: 11", True),  # passes, right
        ("2 + 3 = 5\n5 + 5 = 10\nAnswer: 10", False),  # passes, wrong: a false positive
        ("2 * 3 = 7\nAnswer: 12", False),  # fails, wrong
        ("Answer: 11", True),  # fails, right: a false negative
    ]
    db_path = tmp_path / "v.db"
    with Store(db_path) as db:
        db.ensure_run("r", "r", {})
        db.add_problems("r", [Problem("p", "q", "11")])
        samples = [SampleRecord("p", "sample", i, "k", t, "stop", None, ok, 1, 0, 1, 0, 0.1, 0.0, None)
                   for i, (t, ok) in enumerate(texts)]  # fmt: skip
        db.record_request("r", RequestRecord("k", "p", "sample", 0, 4, None, 0.1, 0.1, 4, 0, 4, 0.0), samples)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "infereco.cli", "verifier-limits", str(db_path), "--json", "--penalty", "2"],
        env={**os.environ, "PYTHONPATH": str(root / "src")}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tpr"] == 0.5 and result["fpr"] == 0.5 and result["ceiling"] == 0.5  # p = q = 1/4
    assert result["optimal_n"]["2.0"]["n"] == 0  # a wrong answer costs 2, half of what passes is wrong
