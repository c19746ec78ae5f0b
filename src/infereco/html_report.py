"""One self-contained HTML page for a set of runs: table, plots, run configs, price sources.

The page is meant to be mailed, attached to an issue or opened years later without a network: the
plots are inline base64 PNGs, the style is an inline sheet with system fonts, and there is no
script at all. Every number comes from the same summaries (and `report.summary_cells`) as the
terminal table and `--json`, so the three can never disagree. Every piece of text that came from
a run (labels, task names, price sources) is escaped: a label is user input.
"""

from __future__ import annotations

import base64
import html
import json
import struct
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infereco.pool import SamplePool
from infereco.report import (
    SUMMARY_COLUMNS,
    plot_cost,
    plot_cost_of_pass,
    plot_scaling,
    summary_cells,
    to_jsonable,
)

__all__ = ["PLOTS", "html_page", "render_plots", "write_html"]

# The report's plots: file name, caption, alt text (what the image shows, for screen readers and
# for a reader whose viewer cannot show images).
PLOTS: tuple[tuple[str, str, str], ...] = (
    (
        "scaling.png",
        "Accuracy vs samples per problem and vs money",
        "Line chart per run: coverage (pass@k) and majority@k with bootstrap bands, against samples "
        "per problem k on a log axis (left) and against the dollar cost of k samples (right).",
    ),
    (
        "cost.png",
        "Accuracy vs cost per problem, in dollars and in tokens",
        "Line chart per run: coverage (pass@k) and majority@k against the cost of k samples per "
        "problem, in US dollars (left) and in prompt plus completion tokens (right), log axes.",
    ),
    (
        "cost_of_pass.png",
        "Cost-of-pass vs N: dollars per correct answer",
        "Line chart per run, log axes: dollars per correct answer for one sample, for a majority "
        "vote over N samples and for coverage pass@N, against N, with bootstrap bands.",
    ),
)

_PLOTTERS = {
    "scaling.png": plot_scaling,
    "cost.png": plot_cost,
    "cost_of_pass.png": plot_cost_of_pass,
}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1260px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.55rem; vertical-align: top; }
th { background: #f0f3f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.92rem; }
.howto { background: #f7f7f2; border-left: 4px solid #b8b27a; padding: 0.5rem 1rem; }
.run { border-top: 1px solid #ddd; margin-top: 1rem; } .run th { width: 11rem; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
code { font-size: 0.92em; }
"""

_HOW_TO_READ = (
    "<p><b>Coverage</b> (pass@k) is the share of problems where at least one of k samples is "
    "correct. Reaching it needs a perfect verifier that picks the right sample, so it is an upper "
    "bound on accuracy. <b>Majority@k</b> answers with the most frequent of k answers: it needs no "
    "verifier, so it is what you can deploy. The gap between the two is what a better verifier "
    "could still buy.</p>"
    "<p><b>Cost-of-pass</b> is the expected money spent per correct answer: the cost of one "
    "attempt divided by its success rate (an attempt is one sample, or k samples for a vote). "
    "&infin; means that way of spending never succeeded. Lower is better; a flat single-sample "
    "line below a rising majority line means voting costs more per correct answer than it "
    "gains.</p>"
    "<p>Ranges in brackets and shaded bands are percentile-bootstrap confidence intervals over "
    "problems. k samples are estimated from the N stored per problem, never re-sampled.</p>"
)


def _e(value: Any) -> str:
    """Any value as escaped HTML text: a run label or a price source is user input."""
    return html.escape(str(value), quote=True)


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header, so the page reserves the image's space before it loads."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def render_plots(
    runs: Sequence[SamplePool | Mapping[str, Any]],
    out_dir: str | Path,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write scaling.png, cost.png and cost_of_pass.png for these runs into out_dir.

    Runs are pools or summaries, as every plot function takes; summaries are used as they are, so
    pass them when you have them (a pool would be summarised once per plot).
    """
    target = Path(out_dir)
    return {
        name: _PLOTTERS[name](runs, target / name, n_boot=n_boot, seed=seed) for name, _, _ in PLOTS
    }


def _summary_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The terminal table's columns and cells as an HTML table, one row per run."""
    head = "".join(f'<th scope="col">{_e(name)}</th>' for name, _ in SUMMARY_COLUMNS)
    rows = []
    for s in summaries:
        cells = []
        for (_, justify), text in zip(SUMMARY_COLUMNS, summary_cells(s)):
            cls = ' class="num"' if justify == "right" else ""
            cells.append(f"<td{cls}>{_e(text)}</td>")
        rows.append(f'<tr data-run="{_e(s.get("run_id", ""))}">{"".join(cells)}</tr>')
    return (
        f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<p class="meta">N = samples every problem has; rates are means over problems [95% CI]; '
        "$/pass = dollars per correct answer (&infin;: never correct).</p>"
    )


def _figure(name: str, data: bytes) -> str:
    """One plot as an inline PNG with its caption and alt text."""
    caption, alt = next((c, a) for n, c, a in PLOTS if n == name)
    width, height = _png_size(data)
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img src="{src}" alt="{_e(alt)}" width="{width}" height="{height}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _fields(values: Mapping[str, Any] | None) -> str:
    """A config block such as the task spec as "name=arithmetic, level=3": short and unambiguous."""
    if not values:
        return "–"
    return ", ".join(
        f"{key}={json.dumps(to_jsonable(v), ensure_ascii=False)}" for key, v in values.items()
    )


def _money(value: Any, unit: str) -> str:
    """A price field: "$0.15 / 1M tokens", or "–" where the price does not apply (None)."""
    return "–" if value is None else f"${float(value):g} {unit}"


def _price(price: Mapping[str, Any]) -> str:
    """Every price field of a run, so a reader can redo any cost in the report by hand."""
    return "; ".join(
        [
            f"input {_money(price.get('input_per_mtok'), '/ 1M tokens')}",
            f"cached input {_money(price.get('cached_input_per_mtok'), '/ 1M tokens')}",
            f"output {_money(price.get('output_per_mtok'), '/ 1M tokens')}",
            f"machine time {_money(price.get('usd_per_hour'), '/ hour')}",
        ]
        + ([f"cache writes {_money(price['cache_write_per_mtok'], '/ 1M tokens')}"] if price.get("cache_write_per_mtok") is not None else [])
        + ([f"reasoning {_money(price['reasoning_per_mtok'], '/ 1M tokens')}"] if price.get("reasoning_per_mtok") is not None else [])
        + [f"above {t.get('above_input_tokens')} input tokens: "
           + ", ".join(f"{k.removesuffix('_per_mtok').replace('_', ' ')} ${v:g}" for k, v in t.items() if k != "above_input_tokens" and v is not None)
           for t in price.get("tiers") or [] if isinstance(t, Mapping)]
        + (["per request by genai-prices calc_price at its date (base tier shown)"] if price.get("genai") else [])
        + (["machine time: hours of idealized runtime (the model's profile), not wall time"] if price.get("clock") == "runtime" else [])
    )  # fmt: skip


def _fit(fit: Mapping[str, Any] | None) -> str:
    """The power-law fit of the coverage curve, or why there is none."""
    if not fit:
        return "–"
    try:
        a, b, r2 = float(fit["a"]), float(fit["b"]), float(fit["r2"])
    except (KeyError, TypeError, ValueError):
        return "–"
    if any(x != x for x in (a, b, r2)):  # NaN: too few points strictly between 0 and 1
        return "not enough points between 0 and 1 to fit"
    return f"log(coverage) = {a:.3g} * k^{b:.3g} (R² = {r2:.3f}, {fit.get('points', '?')} points)"


def _run_section(s: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """One run's identity: what was sampled, how, with which seed, and where its prices came from."""
    backend = config.get("backend") or {}
    strategy = config.get("strategy") or {}
    price = config.get("price") or {}
    rows = [
        ("run id", s.get("run_id", "?")),
        ("model", backend.get("model", "–")),
        ("backend", backend.get("kind", "–")),
        ("task", _fields(config.get("task"))),
        ("strategy", _fields(strategy)),
        ("sampling", _fields(config.get("sampling"))),
        ("seed", config.get("seed", "–")),
        ("price source", price.get("source", "not recorded")),
        ("prices", _price(price) if price else "not recorded"),
        ("samples", f"{s.get('n_samples_total', '?')} stored, {s.get('n_problems', '?')} problems"),
        ("coverage fit", _fit(s.get("coverage_fit"))),
    ]
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows)
    full = json.dumps(to_jsonable(config), indent=2, sort_keys=True, ensure_ascii=False)
    return (
        f'<section class="run"><h3>{_e(s.get("label", "?"))}</h3><table>{body}</table>'
        f"<details><summary>full stored config</summary><pre>{_e(full)}</pre></details></section>"
    )


def html_page(
    summaries: Sequence[Mapping[str, Any]],
    images: Mapping[str, bytes],
    configs: Sequence[Mapping[str, Any]],
    *,
    title: str = "infereco report",
    store: str | Path | None = None,
    generated: datetime | None = None,
) -> str:
    """The report as one HTML string: title, time, how-to-read, table, plots, run configs."""
    when = (generated or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    source = f" from <code>{_e(store)}</code>" if store is not None else ""
    figures = "".join(_figure(name, images[name]) for name, _, _ in PLOTS if name in images)
    runs = "".join(_run_section(s, c) for s, c in zip(summaries, configs))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request, so no failed load in the console
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="meta">Generated {_e(when)}{source} by infereco; {len(summaries)} run(s).</p>'
        f'<h2>How to read this</h2><div class="howto">{_HOW_TO_READ}</div>'
        f"<h2>Summary</h2>{_summary_table(summaries)}"
        f"<h2>Plots</h2>{figures}"
        f"<h2>Runs</h2>{runs}"
        "</body></html>\n"
    )


def write_html(
    summaries: Sequence[Mapping[str, Any]],
    pools: Sequence[SamplePool] | None,
    path: str | Path,
    *,
    plots: Mapping[str, str | Path] | None = None,
    title: str = "infereco report",
    store: str | Path | None = None,
    generated: datetime | None = None,
) -> Path:
    """Write the report for these runs as ONE self-contained HTML file; returns its path.

    summaries: one per run, from `metrics.summarize` or read back from summary.json. pools: the
    runs' pools in the same order, or None; a pool's stored config is used when its summary carries
    none (a summary from an older JSON file). plots: PNGs already written by `render_plots` (the
    CLI's --out); when None they are rendered into a temporary folder and embedded.
    """
    if pools is not None and len(pools) != len(summaries):
        raise ValueError(f"{len(pools)} pools for {len(summaries)} summaries")
    configs = [
        s.get("config") or (pools[i].config if pools is not None else {})
        for i, s in enumerate(summaries)
    ]
    with tempfile.TemporaryDirectory(prefix="infereco-html-") as tmp:
        files = plots if plots is not None else render_plots(summaries, tmp)
        images = {name: Path(file).read_bytes() for name, file in files.items()}
    page = html_page(summaries, images, configs, title=title, store=store, generated=generated)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
