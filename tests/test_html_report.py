"""The HTML report: one self-contained file (no network, no script), the terminal table's rows, real
PNGs; the `report` command's --out/--html/--json; and the page as headless Chromium renders it.

Runs come from a small SQLite store written here with `Store` and records (no model is called):
a priced local run, an API-priced run whose label needs HTML escaping, and a run that is never
right (cost-of-pass infinity).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infereco import api
from infereco.html_report import PLOTS, write_html
from infereco.problem import Problem
from infereco.records import ProblemResult, RequestRecord, SampleRecord
from infereco.report import summary_cells
from infereco.store import Store

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
PNG = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")

LOCAL = "qwen-0.5b local / majority N=8"
TRICKY = 'api <model> & "friends" / majority N=8'
NEVER = "never right / majority N=4"


def _config(model: str, kind: str, n: int, price: dict[str, Any]) -> dict[str, Any]:
    """A run config shaped like the Runner's (task, backend, strategy, sampling, seed, price)."""
    return {
        "task": {"name": "arithmetic", "level": 3, "limit": 12, "seed": 0},
        "backend": {"kind": kind, "model": model},
        "strategy": {"name": "majority", "n": n},
        "sampling": {"max_tokens": 192, "temperature": 0.8, "top_p": 1.0, "stop": [], "logprobs": False},
        "seed": 7,
        "price": {
            "input_per_mtok": 0.0, "output_per_mtok": 0.0, "cached_input_per_mtok": None, "usd_per_hour": 0.0, **price
        },
    }  # fmt: skip


def _add_run(db: Store, run_id: str, label: str, config: dict[str, Any], p_right: np.ndarray, cost: float) -> None:
    """Store one run: per problem, `n` samples right with probability p_right[p], one request each."""
    n, rng = config["strategy"]["n"], np.random.default_rng(len(label))
    db.ensure_run(run_id, label, config)
    problems = [Problem(f"q{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(len(p_right))]
    db.add_problems(run_id, problems)
    for prob, p in zip(problems, p_right):
        key = f"{prob.id}|sample|0+{n}"
        answers = [prob.answer if rng.random() < p else str(int(rng.integers(0, 3)) + 100) for _ in range(n)]
        samples = [
            SampleRecord(
                problem_id=prob.id, step="sample", index=j, request_key=key, text=f"Answer: {a}", finish_reason="stop",
                answer=a, correct=a == prob.answer, prompt_tokens=60, cached_prompt_tokens=0,
                completion_tokens=20 + j, reasoning_tokens=0, latency_s=0.2, cost_usd=cost, seed=7,
            )  # fmt: skip
            for j, a in enumerate(answers)
        ]
        request = RequestRecord(
            key=key, problem_id=prob.id, step="sample", start_index=0, n=n, seed=7, latency_s=0.2, busy_s=0.4,
            prompt_tokens=60 * n, cached_prompt_tokens=0, completion_tokens=sum(s.completion_tokens for s in samples),
            cost_usd=cost * n,
        )  # fmt: skip
        db.record_request(run_id, request, samples)
        vote = max(set(answers), key=answers.count)
        db.record_result(run_id, ProblemResult(prob.id, vote, vote == prob.answer))
    db.set_status(run_id, "done")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "runs.db"
    with Store(path) as db:
        local = {"usd_per_hour": 0.1, "source": "default: local machine at $0.10/h"}
        api_price = {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "source": "prices.toml [models.\"api <model>\"]"}
        _add_run(db, "aaa111", LOCAL, _config("qwen-0.5b", "llamacpp", 8, local), np.linspace(0.1, 0.9, 12), 2e-5)
        _add_run(db, "bbb222", TRICKY, _config("api <model>", "openai", 8, api_price), np.linspace(0.4, 1, 12), 3e-4)
        _add_run(db, "ccc333", NEVER, _config("never", "openai", 4, api_price), np.zeros(12), 1e-4)
    return path


@pytest.fixture(scope="module")
def built(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """`api.report` with --out and --html: (html file, out dir, summaries)."""
    where = tmp_path_factory.mktemp("report")
    summaries = api.report(store, out_dir=where / "out", html=where / "report.html")
    return where / "report.html", where / "out", summaries


class _Page(HTMLParser):
    """The parts of the page the tests look at: every URL attribute, the images, the table cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []
        self.images: list[dict[str, str]] = []
        self.script_srcs: list[str] = []
        self.tags: set[str] = set()
        self.rows: list[list[str]] = []
        self._in_summary = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.urls += [(tag, k, a[k]) for k in ("src", "href", "action", "srcset", "poster", "data") if k in a]
        if tag == "img":
            self.images.append(a)
        if tag == "script" and "src" in a:
            self.script_srcs.append(a["src"])
        if tag == "table" and a.get("id") == "summary":
            self._in_summary = True
        elif self._in_summary and tag == "tr":
            self.rows.append([])
        elif self._in_summary and tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False
        elif tag == "table":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._in_summary and self._in_cell:
            self.rows[-1][-1] += data


def _parse(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def test_html_is_self_contained(built: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    text, page = _parse(built[0])
    assert text.startswith("<!DOCTYPE html>")
    for tag, attr, url in page.urls:
        assert url.startswith("data:"), f"<{tag} {attr}={url[:60]!r}> would need a network or another file"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert not page.tags & {"iframe", "object", "embed"}
    assert not page.script_srcs, page.script_srcs  # the viewer's script is inline, nothing is loaded
    assert "@import" not in text and "url(" not in text  # no stylesheet or font fetched
    # and the browser is told so: a Content-Security-Policy that forbids every fetch but data: images
    assert "default-src 'none'; img-src data:;" in text


def test_html_images_are_the_plots(built: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    html_path, out_dir, _ = built
    _, page = _parse(html_path)
    assert len(page.images) == len(PLOTS) == 2
    for img, (name, _, alt) in zip(page.images, PLOTS):
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix) :], validate=True)
        assert data[:8] == PNG and len(data) > 10_000
        assert data == (out_dir / name).read_bytes()  # rendered once: --out and --html agree
        assert int(img["width"]) >= 1000 and int(img["height"]) >= 400
        assert img["alt"] == alt and len(alt) > 40


def test_html_table_matches_terminal_table(built: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    _, page = _parse(built[0])
    header, *rows = page.rows
    assert header[:3] == ["run", "problems", "N"] and "$/pass majority@N" in header
    assert rows == [summary_cells(s) for s in built[2]]
    assert [r[0] for r in rows] == [LOCAL, TRICKY, NEVER]
    assert rows[2][-1] == "∞"  # never right: no amount of money buys a pass


def test_html_escapes_and_shows_configs(built: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    text, _ = _parse(built[0])
    assert "<model>" not in text and "api &lt;model&gt; &amp; &quot;friends&quot;" in text
    for needle in (
        "How to read this",
        "default: local machine at $0.10/h",  # price sources
        "prices.toml [models.&quot;api &lt;model&gt;&quot;]",
        "machine time $0.1 / hour",
        "output $0.6 / 1M tokens",
        "temperature=0.8",  # sampling params
        "name=&quot;arithmetic&quot;",  # task spec
        "aaa111",  # run ids
        "Generated 20",  # timestamp
        "perfect verifier",
    ):
        assert needle in text, needle
    # a coverage fit is shown only with what it predicted on held-out ks; else why there is none
    assert text.count("no reliable fit: ") + text.count("within their CIs") == 3


def test_write_html_from_summaries_alone(built: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    """Summaries read back from summary.json (infinities as "inf") are enough for a page."""
    summaries = json.loads((built[1] / "summary.json").read_text(encoding="utf-8"))
    path = write_html(summaries, None, tmp_path / "deep" / "again.html", title="from JSON")
    text, page = _parse(path)
    assert "<title>from JSON</title>" in text and len(page.images) == 2
    assert [r[0] for r in page.rows[1:]] == [LOCAL, TRICKY, NEVER]
    with pytest.raises(ValueError):
        write_html(summaries, [], tmp_path / "x.html")


def test_summaries_have_cost_of_pass_curves(built: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    local = built[2][0]
    curves = local["cost_of_pass_at_k"]
    assert curves["ks"] == local["ks"] == [1, 2, 4, 8]
    assert curves["majority_at_k"]["mean"][-1] == pytest.approx(local["cost_of_pass"]["majority_at_n"])
    assert curves["oracle_pass_at_k"]["mean"][-1] == pytest.approx(local["cost_of_pass"]["oracle_best_of_n"])
    assert curves["single_sample"]["mean"] == pytest.approx(local["cost_of_pass"]["single_sample"])
    assert built[2][2]["cost_of_pass_at_k"]["majority_at_k"]["hi"] == [float("inf")] * 3


def test_to_pandas_from_store(store: Path) -> None:
    results = api.load_results(store, ["bbb"])
    frame = results[0].to_pandas()
    assert len(frame) == 12 * 8 and frame["cost_usd"].sum() == pytest.approx(12 * 8 * 3e-4)


# ---------------------------------------------------------------------------------------------
# the command line


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infereco.cli", *args], env=ENV, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_cli_report_out_html_and_json(store: Path, tmp_path: Path) -> None:
    done = _cli("report", str(store), "--run", "aaa", "--run", "ccc", "--out", "out", "--html", "r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "qwen-0.5b" in done.stdout and "never right" in done.stdout and "api <model>" not in done.stdout
    for name in ("accuracy_cost.png", "cost_of_pass.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG
    for name in ("summary.csv", "summary.tex", "recommendations.csv", "recommendations.tex", "recommendations.json"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    assert len(json.loads((tmp_path / "out" / "summary.json").read_text())) == 2
    _, page = _parse(tmp_path / "r.html")
    assert [r[0] for r in page.rows[1:]] == [LOCAL, NEVER]

    done = _cli("report", str(store), "--json", "--html", "only.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # stdout is JSON alone; "wrote ..." goes to stderr
    assert [s["label"] for s in printed] == [LOCAL, TRICKY, NEVER]
    assert printed[2]["cost_of_pass_at_k"]["single_sample"]["mean"] == "inf"
    assert (tmp_path / "only.html").is_file() and not (tmp_path / "accuracy_cost.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.db"], "no such store"),
        (["{store}", "--run", "zzz"], "--run zzz"),
        (["{store}", "--html", "."], "--html"),
        (["{store}", "--out", "afile"], "--out"),
    ],
)
def test_cli_report_errors_are_one_line(store: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    done = _cli("report", *[a.format(store=store) for a in args], cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# in a real browser


def _chromium(user_data: Path) -> Any:
    """Headless Chromium under chromedriver, with the browser console log kept for the test.

    Flags: no sandbox (CI runs as root), no GPU, and none of Chromium's own network traffic
    (component updates, sync, QUIC), so a console error can only come from the page.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(driver_path).is_file():
        pytest.fail("chromium is installed but chromedriver is not: apt-get install chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={user_data}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    return driver


def test_page_renders_in_headless_chromium(
    built: tuple[Path, Path, list[dict[str, Any]]], store: Path, tmp_path: Path
) -> None:
    if not CHROMIUM.is_file():
        why = f"needs {CHROMIUM}: apt-get install chromium chromium-driver"
        if os.environ.get("INFERECO_REQUIRE_BROWSER"):  # set by .ci/run: CI must not skip this
            pytest.fail(why)
        pytest.skip(why)
    html_path = built[0]
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = _chromium(Path(profile))
        try:
            driver.get(html_path.resolve().as_uri())
            state = driver.execute_script("return document.readyState")
            images = driver.execute_script(
                "return Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
            )
            rows = driver.execute_script(
                "return Array.from(document.querySelectorAll('#summary tbody tr'), r => r.cells[0].textContent)"
            )
            table_height = driver.execute_script("return document.getElementById('summary').offsetHeight")
            title = driver.title
            recommended = driver.execute_script(
                "return [document.getElementById('headline').textContent, "
                "Array.from(document.querySelectorAll('#recommendations tbody tr'), r => r.cells[1].textContent)]"
            )
            viewer = _use_viewer(driver)
            shot = tmp_path / "page.png"
            driver.save_screenshot(str(shot))
            logs = driver.get_log("browser")
        finally:
            driver.quit()
    assert state == "complete" and title == "infereco report"
    assert len(images) == 2
    for complete, width, height, alt in images:
        assert complete and width >= 1000 and height >= 400 and alt, images
    assert rows == [LOCAL, TRICKY, NEVER] and table_height > 50
    errors = [entry for entry in logs if entry.get("level") in ("SEVERE", "WARNING")]
    assert not errors, errors
    assert shot.read_bytes()[:8] == PNG
    headline, choices = recommended
    assert "cheapest to reach" in headline or "none reaches" in headline
    assert len(choices) == 5 and any(LOCAL in c or TRICKY in c for c in choices)
    _check_viewer(viewer, store)


def _use_viewer(driver: Any) -> dict[str, Any]:
    """Drive the sample viewer as a reader would: list, open one problem, filter, switch run."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    seen: dict[str, Any] = {}
    count = "return document.querySelectorAll('#v-list details.problem').length"
    seen["listed"] = driver.execute_script(count)
    seen["open_before"] = driver.execute_script("return document.querySelectorAll('#v-list tr.sample').length")
    problem = driver.find_element(By.CSS_SELECTOR, '#v-list details[data-problem="q5"] > summary')
    driver.execute_script("arguments[0].scrollIntoView()", problem)
    problem.click()
    from selenium.webdriver.support.ui import WebDriverWait

    # the body is rendered on the toggle event, which the browser dispatches after the click returns
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.querySelector('#v-list details[data-problem=\"q5\"] pre.prompt')")
    )
    seen["q5"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#v-list details[data-problem=\"q5\"] tr.sample'), "
        "r => Array.from(r.cells, c => c.textContent))"
    )
    seen["prompt"] = driver.execute_script(
        "return document.querySelector('#v-list details[data-problem=\"q5\"] pre.prompt').textContent"
    )
    Select(driver.find_element(By.ID, "v-filter")).select_by_value("wrong")
    seen["wrong"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#v-list details.problem'), d => d.dataset.problem)"
    )
    Select(driver.find_element(By.ID, "v-filter")).select_by_value("disagree")
    seen["disagree"] = driver.execute_script(count)
    Select(driver.find_element(By.ID, "v-filter")).select_by_value("all")
    Select(driver.find_element(By.ID, "v-run")).select_by_index(2)
    seen["run3"] = driver.execute_script(count)
    return seen


def _check_viewer(seen: dict[str, Any], store: Path) -> None:
    """What the viewer showed is what the store holds: every sample of the opened problem, in order."""
    assert seen["listed"] == 12 and seen["open_before"] == 0  # collapsed: nothing rendered until opened
    rows = seen["q5"]
    assert len(rows) == 8  # every sample of the problem
    assert [r[1] for r in rows] == [str(i) for i in range(8)]
    for step, _, answer, verdict, tokens, cost, score, finish, text in rows:
        assert step == "sample" and text == f"Answer: {answer}" and finish == "stop"
        assert ("right" in verdict) == (answer == "10") and tokens.startswith("60 + ") and cost.startswith("$")
    assert seen["prompt"] == "What is 5 + 5?"
    assert set(seen["wrong"]) == set(_wrong_problems(store)) and seen["disagree"] >= 1
    assert seen["run3"] == 12


def _wrong_problems(store: Path) -> list[str]:
    """Problems of the first run whose chosen answer is wrong, from the store itself."""
    import sqlite3

    with sqlite3.connect(store) as conn:
        return [pid for (pid,) in conn.execute("SELECT problem_id FROM results WHERE run_id='aaa111' AND correct=0")]


@pytest.mark.model
def test_the_demo_report_in_headless_chromium(tmp_path: Path) -> None:
    """`infereco demo` on the real embedded model (small: 4 problems x 4 samples) writes report.html;
    in Chromium it shows the recommendation, both figures, and every sample of an opened problem."""
    if not CHROMIUM.is_file():
        pytest.skip(f"needs {CHROMIUM}")
    done = subprocess.run(
        [sys.executable, "-m", "infereco.cli", "demo", "--out", "demo", "--limit", "4", "--n", "4", "--max-tokens", "96",
         "--quiet"], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip  (the model server's start alone may take minutes on a busy machine)
    assert done.returncode == 0, done.stderr
    page = tmp_path / "demo" / "report.html"
    with sqlite3.connect(tmp_path / "demo" / "demo.db") as conn:
        first, stored = conn.execute(
            "SELECT problem_id, COUNT(*) FROM samples GROUP BY problem_id ORDER BY problem_id LIMIT 1"
        ).fetchone()
        texts = [t for (t,) in conn.execute(
            "SELECT text FROM samples WHERE problem_id=? ORDER BY step, sample_index", (first,))]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = _chromium(Path(profile))
        try:
            driver.get(page.resolve().as_uri())
            headline = driver.execute_script("return document.getElementById('headline').textContent")
            images = driver.execute_script("return Array.from(document.images, i => [i.complete, i.naturalWidth])")
            driver.execute_script(
                "const d = document.querySelector('#v-list details[data-problem=\"' + arguments[0] + '\"]');"
                "d.open = true; d.scrollIntoView();", first
            )
            from selenium.webdriver.support.ui import WebDriverWait

            rows = "return Array.from(document.querySelectorAll('#v-list details[open] tr.sample'), r => r.cells[8].textContent)"
            WebDriverWait(driver, 10).until(lambda d: d.execute_script(rows))  # rendered on the toggle event
            shown = driver.execute_script(rows)
            logs = driver.get_log("browser")
        finally:
            driver.quit()
    assert "cheapest to reach" in headline or "none reaches" in headline
    assert len(images) == 2 and all(ok and width >= 1000 for ok, width in images)
    assert len(shown) == stored == 4 and shown == texts
    assert not [e for e in logs if e.get("level") in ("SEVERE", "WARNING")]


def test_viewer_embeds_every_sample_as_inert_json(tmp_path: Path) -> None:
    """Thousands of samples travel as one JSON block, nothing rendered until a problem is opened; a
    sample whose text is markup (or tries to close the script) stays data."""
    path = tmp_path / "big.db"
    hostile = '</script><script>document.title="pwned"</script><!-- \u2028 & <b>bold</b>'
    with Store(path) as db:
        config = _config("m", "openai", 40, {"input_per_mtok": 1.0, "output_per_mtok": 1.0, "source": "flags"})
        _add_run(db, "big1", "big run", config, np.linspace(0.2, 0.8, 100), 1e-5)
        key = "q0|sample|hostile"
        db.record_request("big1", RequestRecord(
            key=key, problem_id="q0", step="judge/outcome/x", start_index=0, n=1, seed=1, latency_s=0.1, busy_s=0.1,
            prompt_tokens=5, cached_prompt_tokens=0, completion_tokens=5, cost_usd=1e-6), [SampleRecord(
            problem_id="q0", step="judge/outcome/x", index=0, request_key=key, text=hostile, finish_reason="stop",
            answer=None, correct=False, prompt_tokens=5, cached_prompt_tokens=0, completion_tokens=5,
            reasoning_tokens=0, latency_s=0.1, cost_usd=1e-6, seed=1)])  # fmt: skip
    api.report(path, html=tmp_path / "big.html")
    text = (tmp_path / "big.html").read_text(encoding="utf-8")
    assert '<tr class="sample"' not in text and '<details class="problem"' not in text  # rendered lazily, by the script
    block = re.search(r'<script type="application/json" id="v-data">(.*?)</script>', text, re.S)
    assert block is not None and "</script" not in block.group(1) and "<" not in block.group(1)
    data = json.loads(block.group(1))
    [run] = data["runs"]
    assert sum(len(p["s"]) for p in run["problems"]) == 100 * 40 + 1
    assert any(s[2] == hostile for p in run["problems"] for s in p["s"])
