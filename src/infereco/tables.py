"""The report's tables as CSV (for a spreadsheet) and LaTeX (for a paper), cell for cell.

The cells are the ones the terminal and the HTML page show (`report.summary_cells`,
`report.recommendation_cells`), so an exported table never disagrees with the report. CSV is
written by the `csv` module (quoting commas and quotes in labels); LaTeX escapes every special
character of a cell, since labels are user input.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["latex_table", "to_csv", "write_tables"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "∞": r"$\infty$", "≥": r"$\geq$", "–": "--", "·": r"$\cdot$", "²": r"$^2$",
}  # fmt: skip


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[str]], justify: Sequence[str], caption: str) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs})."""
    spec = "".join("r" if j == "right" else "l" for j in justify)
    lines = [
        r"\begin{table}[ht]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}", rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule", " & ".join(_latex_escape(h) for h in headers) + r" \\", r"\midrule",
    ]  # fmt: skip
    lines += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(
    summaries: Sequence[Mapping[str, Any]], recommendations: Sequence[Any], out_dir: str | Path
) -> list[Path]:
    """Write summary.csv, summary.tex, recommendations.csv and recommendations.tex; returns the paths."""
    from infereco.report import RECOMMENDATION_COLUMNS, SUMMARY_COLUMNS, recommendation_cells, summary_cells

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns, rows, caption in (
        ("summary", SUMMARY_COLUMNS, [summary_cells(s) for s in summaries],
         "Runs: accuracy, coverage and majority vote with 95% bootstrap CIs; cost and cost-of-pass"),
        ("recommendations", RECOMMENDATION_COLUMNS, [recommendation_cells(r) for r in recommendations],
         "Cheapest setting reaching each target accuracy, with 95% bootstrap CIs"),
    ):  # fmt: skip
        headers = [h for h, _ in columns]
        (out / f"{name}.csv").write_text(to_csv(headers, rows), encoding="utf-8")
        (out / f"{name}.tex").write_text(latex_table(headers, rows, [j for _, j in columns], caption), encoding="utf-8")
        written += [out / f"{name}.csv", out / f"{name}.tex"]
    return written
