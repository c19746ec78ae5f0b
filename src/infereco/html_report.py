"""One self-contained HTML page for a set of runs: table, plots, run configs, price sources.

The page is meant to be mailed, attached to an issue or opened years later without a network: the
plots are inline base64 PNGs, the style is an inline sheet with system fonts, and the one script
(the sample viewer's) is inline too, under a Content-Security-Policy that forbids any fetch. Every number comes from the same summaries (and `report.summary_cells`) as the
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
    RECOMMENDATION_COLUMNS,
    SUMMARY_COLUMNS,
    plot_accuracy_cost,
    plot_cost_of_pass,
    recommendation_cells,
    summary_cells,
    to_jsonable,
)
from infereco.viewer import VIEWER_STYLE, viewer_html

__all__ = ["PLOTS", "html_page", "render_plots", "write_html"]

# The report's plots: file name, caption, alt text (what the image shows, for screen readers and
# for a reader whose viewer cannot show images).
PLOTS: tuple[tuple[str, str, str], ...] = (
    (
        "accuracy_cost.png",
        "Accuracy vs cost per problem: every k, with the recommended settings starred",
        "Line chart per run: majority@k (dashed) and coverage pass@k (solid) with bootstrap bands, against "
        "the dollar cost of k samples per problem on a log axis, each point labelled with its k; a star marks "
        "the cheapest setting reaching each target accuracy.",
    ),
    (
        "cost_of_pass.png",
        "Cost-of-pass vs N: dollars per correct answer",
        "Line chart per run, log axes: dollars per correct answer for one sample, for a majority "
        "vote over N samples and for coverage pass@N, against N, with bootstrap bands.",
    ),
)

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
.answer { background: #eef6ee; border-left: 4px solid #4c9a4c; padding: 0.5rem 1rem; font-size: 1.05rem; }
.answer.none { background: #fbf1ea; border-left-color: #c2662d; }
"""
_STYLE += VIEWER_STYLE
# Nothing on the page may reach the network: images are data: URLs, style and script are inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

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
    recommendations: Sequence[Any] = (),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write accuracy_cost.png (recommended settings starred) and cost_of_pass.png into out_dir.

    Runs are pools or summaries, as every plot function takes; summaries are used as they are, so
    pass them when you have them (a pool would be summarised once per plot).
    """
    target = Path(out_dir)
    return {
        "accuracy_cost.png": plot_accuracy_cost(
            runs, target / "accuracy_cost.png", recommendations=recommendations, n_boot=n_boot, seed=seed
        ),
        "cost_of_pass.png": plot_cost_of_pass(runs, target / "cost_of_pass.png", n_boot=n_boot, seed=seed),
    }


def _recommendations(recs: Sequence[Any]) -> str:
    """The answer the reader came for, first: per target, the cheapest setting reaching it."""
    if not recs:
        return ""
    head = "".join(f'<th scope="col">{_e(name)}</th>' for name, _ in RECOMMENDATION_COLUMNS)
    rows = []
    for rec in recs:
        cells = "".join(
            (f'<td class="num">{_e(text)}</td>' if justify == "right" else f"<td>{_e(text)}</td>")
            for (_, justify), text in zip(RECOMMENDATION_COLUMNS, recommendation_cells(rec))
        )
        rows.append(f'<tr data-target="{rec.target:g}" data-reached="{int(rec.reached)}">{cells}</tr>')
    reached = [r for r in recs if r.reached]
    top = max(reached, key=lambda r: r.target) if reached else recs[0]
    cls = "answer" if top.reached else "answer none"
    return (
        f'<h2>Recommendation</h2><p class="{cls}" id="headline">{_e(top.headline())}</p>'
        f'<table id="recommendations"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<p class="meta">Every (model, strategy, k &le; N) the store can estimate is a candidate: a majority vote '
        "over k of the stored samples for every k up to the run's N, and a verifier or search strategy's own answer "
        "at its N. The cheapest one whose accuracy reaches the target is named, with 95% bootstrap CIs "
        "(<code>infereco recommend STORE --target-accuracy A [--confidence C]</code> for any other target).</p>"
    )


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


def _fit(s: Mapping[str, Any]) -> str:
    """The power-law fit of a run's coverage curve, shown only when a fit on the small ks predicts
    the large ones (`fits.coverage_fit_verdict`); otherwise "no reliable fit" and why."""
    from infereco.fits import coverage_fit_verdict
    from infereco.report import _numbers

    curve = s.get("pass_at_k") or {}
    if not s.get("ks") or not curve:
        return "–"
    verdict = coverage_fit_verdict(*(_numbers(v) for v in (s["ks"], curve["mean"], curve["lo"], curve["hi"])))
    if not verdict["reliable"]:
        return f"no reliable fit: {verdict['why']}"
    a, b = float(verdict["a"]), float(verdict["b"])
    return f"log(coverage) = {a:.3g} * k^{b:.3g}, fitted on k ≤ {max(verdict['fit_ks']):g}; {verdict['why']}"


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
        ("coverage fit", _fit(s)),
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
    recommendations: Sequence[Any] = (),
    samples: Mapping[str, Any] | None = None,
) -> str:
    """The report as one HTML string: title, time, recommendation, how-to-read, table, plots, run
    configs, and the sample viewer when `samples` (from `viewer.viewer_data`) is given."""
    when = (generated or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    source = f" from <code>{_e(store)}</code>" if store is not None else ""
    figures = "".join(_figure(name, images[name]) for name, _, _ in PLOTS if name in images)
    runs = "".join(_run_section(s, c) for s, c in zip(summaries, configs))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<link rel="icon" href="data:,">'  # no favicon request, so no failed load in the console
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="meta">Generated {_e(when)}{source} by infereco; {len(summaries)} run(s).</p>'
        f"{_recommendations(recommendations)}"
        f'<h2>How to read this</h2><div class="howto">{_HOW_TO_READ}</div>'
        f"<h2>Summary</h2>{_summary_table(summaries)}"
        f"<h2>Plots</h2>{figures}"
        f"{viewer_html(samples) if samples else ''}"
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
    recommendations: Sequence[Any] = (),
    samples: Mapping[str, Any] | None = None,
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
        files = plots if plots is not None else render_plots(summaries, tmp, recommendations=recommendations)
        images = {name: Path(file).read_bytes() for name, file in files.items()}
    page = html_page(summaries, images, configs, title=title, store=store, generated=generated,
                     recommendations=recommendations, samples=samples)  # fmt: skip
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
