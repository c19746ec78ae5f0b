"""The sample viewer of the HTML report: what the model wrote, problem by problem.

Per problem: the prompt, the reference answer, the strategy's chosen answer and its verdict, and
every stored sample with its text, extracted answer, verdict, tokens, cost, finish reason and the
verifier's score where the strategy stored one; a filter (chosen answer right / wrong, samples
disagree) and a search box. The page stays one offline file that opens quickly with thousands of
samples: the samples travel as one embedded JSON block (`<script type="application/json">`, never
parsed as HTML), problems are listed 100 at a time, collapsed, and a problem's samples are turned
into DOM only when it is opened. All text goes in through `textContent`, so a sample that contains
markup is shown, never run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from infereco.store import Store

__all__ = ["viewer_data", "viewer_html"]

# a sample as the page receives it: a list, not an object, to keep the embedded JSON small
SAMPLE_FIELDS = ("step", "index", "text", "answer", "correct", "prompt_tokens", "completion_tokens", "cost_usd",
                 "finish_reason", "score")  # fmt: skip


def viewer_data(results: Sequence[Any]) -> dict[str, Any]:
    """Every stored sample of the runs (each a `RunResult`), grouped by run and problem."""
    runs = []
    for r in results:
        with Store(r.store_path) as db:
            prompts = db.problem_prompts(r.run_id)
            chosen = db.results(r.run_id)
            rows = db.viewer_rows(r.run_id)
            strategy = str(((db.run(r.run_id)["config"].get("strategy")) or {}).get("name", "?"))
        by_problem: dict[str, list[list[Any]]] = {pid: [] for pid in prompts}
        for pid, step, index, text, answer, correct, ptok, ctok, cost, finish in rows:
            by_problem.setdefault(pid, []).append([step, index, text, answer, int(bool(correct)), ptok, ctok, cost, finish, None])
        problems = []
        for pid, samples in by_problem.items():
            answer, ok, info = chosen.get(pid, (None, None, {}))
            scores = info.get("scores") if isinstance(info, dict) else None
            if isinstance(scores, list):  # bon stores one verifier score per sample of the "sample" step, in order
                drawn = [s for s in samples if s[0] == "sample"]
                for s, score in zip(drawn, scores):
                    s[9] = score
            short = {k: v for k, v in (info or {}).items() if k != "scores"}
            prompt, reference = prompts.get(pid, ("", ""))
            problems.append({
                "id": pid, "prompt": prompt, "reference": reference, "chosen": answer,
                "ok": None if ok is None else int(ok), "info": json.dumps(short, sort_keys=True) if short else "",
                "s": samples,
            })  # fmt: skip
        runs.append({"label": str(r.summary.get("label", r.run_id)), "run_id": r.run_id, "strategy": strategy,
                     "problems": problems})  # fmt: skip
    return {"fields": list(SAMPLE_FIELDS), "runs": runs}


def _embed(data: Any) -> str:
    """JSON safe inside a <script> element: no "</script>", "<!--" or U+2028 can end or confuse it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace(
        "\u2028", "\\u2028").replace("\u2029", "\\u2029")  # fmt: skip


VIEWER_STYLE = """
#viewer .controls { display: flex; gap: 1rem; flex-wrap: wrap; align-items: center; margin: 0.5rem 0; }
#viewer details.problem { border: 1px solid #ddd; border-radius: 4px; margin: 0.25rem 0; padding: 0.2rem 0.6rem; }
#viewer details.problem > summary { cursor: pointer; font-variant-numeric: tabular-nums; }
#viewer .ok { color: #1a7f37; font-weight: bold; } #viewer .bad { color: #b42318; font-weight: bold; }
#viewer pre.text { white-space: pre-wrap; max-height: 16rem; overflow-y: auto; margin: 0; }
#viewer table.samples td { font-size: 0.85rem; } #viewer .muted { color: #666; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("v-data").textContent);
  var F = {}; data.fields.forEach(function (name, i) { F[name] = i; });
  var runSel = document.getElementById("v-run"), filt = document.getElementById("v-filter");
  var search = document.getElementById("v-search"), list = document.getElementById("v-list");
  var more = document.getElementById("v-more"), count = document.getElementById("v-count");
  var PAGE = 100, shown = 0, rows = [];
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function usd(x) {
    if (x === null || x === undefined) return "–";
    if (x === 0) return "$0";
    return "$" + (Math.abs(x) >= 1e-4 ? Number(x.toPrecision(3)) : x.toExponential(2));
  }
  function verdict(ok) { return ok === null ? el("span", "muted", "–") : el("span", ok ? "ok" : "bad", ok ? "✓ right" : "✗ wrong"); }
  function answers(p) {
    var seen = {};
    p.s.forEach(function (s) { if (s[F.answer] !== null) seen[s[F.answer]] = 1; });
    return Object.keys(seen).length;
  }
  function matches(p, f, q) {
    if (f === "correct" && p.ok !== 1) return false;
    if (f === "wrong" && p.ok !== 0) return false;
    if (f === "disagree" && answers(p) < 2) return false;
    if (q && p.id.toLowerCase().indexOf(q) < 0 && p.prompt.toLowerCase().indexOf(q) < 0) return false;
    return true;
  }
  function body(p) {
    var box = el("div", "body");
    box.appendChild(el("h4", null, "Prompt"));
    box.appendChild(el("pre", "text prompt", p.prompt));
    var facts = el("p");
    facts.appendChild(document.createTextNode("reference answer: " + p.reference + " · chosen answer: " +
      (p.chosen === null ? "none" : p.chosen) + " "));
    facts.appendChild(verdict(p.ok));
    if (p.info) facts.appendChild(el("span", "muted", " · strategy: " + p.info));
    box.appendChild(facts);
    var table = el("table", "samples"), head = el("tr");
    ["step", "#", "answer", "verdict", "tokens (prompt + completion)", "cost", "verifier score", "finish", "text"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
    var tbody = el("tbody");
    p.s.forEach(function (s) {
      var tr = el("tr", "sample");
      tr.appendChild(el("td", null, s[F.step]));
      tr.appendChild(el("td", "num", s[F.index]));
      tr.appendChild(el("td", null, s[F.answer] === null ? "(none)" : s[F.answer]));
      var v = el("td"); v.appendChild(verdict(s[F.correct] === 1)); tr.appendChild(v);
      tr.appendChild(el("td", "num", s[F.prompt_tokens] + " + " + s[F.completion_tokens]));
      tr.appendChild(el("td", "num", usd(s[F.cost_usd])));
      tr.appendChild(el("td", "num", s[F.score] === null ? "–" : Number(s[F.score]).toPrecision(3)));
      tr.appendChild(el("td", null, s[F.finish_reason] || "–"));
      var t = el("td"); t.appendChild(el("pre", "text", s[F.text])); tr.appendChild(t);
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    box.appendChild(table);
    return box;
  }
  function item(p) {
    var d = el("details", "problem"), s = el("summary");
    d.setAttribute("data-problem", p.id);
    var right = p.s.filter(function (x) { return x[F.correct] === 1; }).length;
    s.appendChild(verdict(p.ok));
    s.appendChild(document.createTextNode(" " + p.id + " · chosen " + (p.chosen === null ? "none" : p.chosen) +
      " (reference " + p.reference + ") · " + p.s.length + " samples, " + right + " right, " + answers(p) + " distinct answers"));
    d.appendChild(s);
    d.addEventListener("toggle", function () {
      if (d.open && !d.getAttribute("data-filled")) { d.appendChild(body(p)); d.setAttribute("data-filled", "1"); }
    });
    return d;
  }
  function page() {
    var end = Math.min(rows.length, shown + PAGE);
    for (; shown < end; shown++) list.appendChild(item(rows[shown]));
    more.hidden = shown >= rows.length;
  }
  function render() {
    var run = data.runs[Number(runSel.value)] || { problems: [] };
    var q = search.value.trim().toLowerCase();
    list.textContent = ""; shown = 0;
    rows = run.problems.filter(function (p) { return matches(p, filt.value, q); });
    count.textContent = rows.length + " of " + run.problems.length + " problems";
    page();
  }
  data.runs.forEach(function (r, i) {
    var o = el("option", null, r.label + " (" + r.problems.length + " problems)"); o.value = String(i); runSel.appendChild(o);
  });
  runSel.addEventListener("change", render); filt.addEventListener("change", render);
  search.addEventListener("input", render); more.addEventListener("click", page);
  render();
})();
"""


def viewer_html(data: dict[str, Any]) -> str:
    """The viewer section: controls, an empty list the script fills, the data, the script."""
    total = sum(len(p["s"]) for r in data["runs"] for p in r["problems"])
    return (
        '<section id="viewer"><h2>Samples</h2>'
        f'<p class="meta">Every stored sample ({total}), per problem: open one to read its prompt and what '
        "the model wrote, with each sample's extracted answer, verdict, tokens, cost and verifier score.</p>"
        '<div class="controls"><label>run <select id="v-run"></select></label>'
        '<label>show <select id="v-filter"><option value="all">every problem</option>'
        '<option value="correct">chosen answer right</option><option value="wrong">chosen answer wrong</option>'
        '<option value="disagree">samples disagree</option></select></label>'
        '<label>find <input id="v-search" type="search" placeholder="problem id or prompt text"></label>'
        '<span id="v-count" class="meta"></span></div>'
        '<div id="v-list"></div><button id="v-more" type="button" hidden>show 100 more</button>'
        "<noscript>The sample viewer needs JavaScript; `infereco.load_results(STORE)[i].to_pandas()` has the same "
        "samples.</noscript>"
        f'<script type="application/json" id="v-data">{_embed(data)}</script>'
        f"<script>{_SCRIPT}</script></section>"
    )
