"""The `infereco` command line. Every command mirrors a library function; bad input is one line, exit 2."""

from __future__ import annotations

import inspect
import json
import signal
import sqlite3
import sys
import time
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer._click import core as click_core
from typer._click import exceptions as click_exc
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from infereco import api
from infereco.errors import UserError
from infereco.runner import Progress as RunProgress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="infereco: which model + inference-time strategy + budget reaches your accuracy at the lowest cost.",
)
console = Console(stderr=True)
_OUT_HELP = "write accuracy_cost.png, cost_of_pass.png, summary.json, recommendations.json and the tables as CSV and LaTeX here"
_HTML_HELP = "write one self-contained HTML page: plots inline, table, run configs, price sources"
out = Console(width=None if sys.stdout.isatty() else 150)  # tables stay readable when piped


class _Bar:
    """A rich progress bar fed by the Runner's counters: samples, tokens/s, dollars, ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[tps]:>6.1f} tok/s  ${task.fields[usd]:.4f}  {task.fields[reused]} reused"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self.task_id = self.bar.add_task("sampling", total=None, tps=0.0, usd=0.0, reused=0, status="sampling")
        self.progress = RunProgress(on_change=self.update)
        self._last = 0.0
        self._status = "sampling"

    def update(self, p: RunProgress) -> None:
        now = time.monotonic()
        status = p.status or "sampling"
        if now - self._last < 0.2 and p.samples_done < p.samples_total and status == self._status:
            return
        self._last, self._status = now, status
        if self.enabled and p.status and not console.is_terminal:  # a pipe shows no live bar: one line then
            console.print(f"{p.status}…", highlight=False)
        self.bar.update(
            self.task_id, total=p.samples_total or None, completed=p.samples_done,
            tps=p.tokens_per_s, usd=p.cost_usd, reused=p.samples_reused, status=status,
        )  # fmt: skip

    def __enter__(self) -> _Bar:
        self.bar.__enter__()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            # Failing: erase the bar and print nothing more (Progress.stop would add a newline on a
            # non-terminal), so the error that follows is the only line on stderr.
            self.bar.live.transient = True
            self.bar.live.stop()
            return
        self.update(self.progress)
        self.bar.__exit__(None, None, None)


def _show(result: api.RunResult, as_json: bool, out_dir: Path | None, html: Path | None = None) -> None:
    from infereco import report

    written = api.write_report([result], out_dir, html) if out_dir is not None or html is not None else []
    if as_json:
        print(json.dumps(report.to_jsonable(result.to_dict()), indent=2))
        return
    out.print(report.curve_table(result.summary))
    out.print(report.summary_table([result.summary]))
    t = result.totals
    out.print(
        f"run {result.run_id} in {result.store_path}: {t['problems_done']}/{t['problems']} problems, "
        f"{t['samples']} samples ({result.reused_samples} reused from the store, {result.sent_requests} requests sent), "
        f"{t['completion_tokens']} completion tokens, ${t['cost_usd']:.4f}"
    )
    if "mean_samples_used" in result.summary:
        out.print(f"adaptive: {result.summary['mean_samples_used']:.1f} samples per problem on average before the vote settled")
    if result.budget_note:
        out.print(result.budget_note)
    _print_ledger(result.summary)
    if written:
        out.print("wrote " + ", ".join(str(p) for p in written))


def run_parameters(exclude: frozenset[str] = frozenset(), defaults: dict[str, Any] | None = None) -> list[inspect.Parameter]:
    """`infereco run`'s options, one per field of the run description (`RunConfig`): its name with
    `-` for `_` (or the field's `flag`), its description as help, its default. Other commands that
    take a run's flags (`serve`, ...) reuse this list, so a field added there is a flag everywhere."""
    from infereco.runconfig import RunConfig, field_names, flag

    params = []
    for name in field_names():
        if name in exclude:
            continue
        field = RunConfig.model_fields[name]
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli") is False:
            continue
        kind = _cli_type(field.annotation)
        default = (defaults or {}).get(name, field.default)
        if kind is bool:
            option = typer.Option(flag(name), help=field.description)
            default = bool(default)
        else:
            option = typer.Option(flag(name), help=field.description, metavar=extra.get("metavar"))
            if kind is list and default is not None:
                default = [default]
        annotation = Optional[list[str]] if kind is list else (kind if kind is bool else Optional[kind])  # type: ignore[valid-type]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[annotation, option]))  # fmt: skip
    return params


def _cli_type(annotation: Any) -> type:
    """The command-line type of a field: Optional and Literal unwrapped, a str-or-list a repeatable option."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if any(typing.get_origin(a) is list for a in args):
        return list
    first = args[0]
    if typing.get_origin(first) is typing.Literal:
        return type(typing.get_args(first)[0])
    if typing.get_origin(first) is typing.Annotated:
        first = typing.get_args(first)[0]
    if typing.get_origin(first) is not None or first not in (str, int, float, bool):
        return str
    return first


_RUN_EXTRAS = [
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[Path], typer.Option("--config", help="TOML file of these flags (flag names as keys); flags given here win")]),
    inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, typer.Option("--resume", help="finish an interrupted run (alone: the latest unfinished one in --store)")]),
    inspect.Parameter("run_id", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[str], typer.Option("--run", help="with --resume: which stored run")]),
    inspect.Parameter("out_dir", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[Path], typer.Option("--out", help=_OUT_HELP)]),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, typer.Option("--json", help="print the result as JSON")]),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, typer.Option("--quiet", help="no progress bar")]),
]  # fmt: skip


def given_options(ctx: typer.Context, options: dict[str, Any], config: Path | None = None) -> tuple[dict[str, Any], set[str]]:
    """The run description's fields given on the command line, and from `--config FILE` those not
    given there (the names that came from the file are returned too, to blame its lines)."""
    from infereco.runconfig import RunConfig

    values = {
        k: v for k, v in options.items()
        if k in RunConfig.model_fields and ctx.get_parameter_source(k) == click_core.ParameterSource.COMMANDLINE
    }  # fmt: skip
    if isinstance(values.get("base_url"), list) and len(values["base_url"]) == 1:
        values["base_url"] = values["base_url"][0]
    from_file: set[str] = set()
    if config is not None:
        from infereco.config import load_run_config

        for key, value in load_run_config(config).items():
            if key not in values:
                values[key] = value
                from_file.add(key)
    return values, from_file


def run(ctx: typer.Context, **options: Any) -> None:
    """Sample N answers per problem with a strategy, store every sample, and print accuracy and cost.

    Example: infereco run --task arithmetic --level 3 --strategy majority --n 32 --limit 50 --store runs.db
    """
    config = options.pop("config")
    resume, run_id, out_dir, as_json, quiet = (options.pop(k) for k in ("resume", "run_id", "out_dir", "as_json", "quiet"))
    values, from_file = given_options(ctx, options, config)
    try:
        result = _run_or_resume(values, resume, run_id, quiet or as_json)
    except UserError as exc:
        if not from_file:
            raise
        from infereco.config import blame

        raise blame(exc, config, from_file) from None
    _show(result, as_json, out_dir)


run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context), *_RUN_EXTRAS, *run_parameters()]
)
app.command("run")(run)


def _run_or_resume(values: dict[str, Any], resume: bool, run_id: str | None, quiet: bool) -> api.RunResult:
    from infereco.assemble import assemble
    from infereco.runconfig import RunConfig, session_fields

    sampling = set(values) - session_fields()
    with _Bar(enabled=not quiet) as bar:
        if resume and (run_id or not sampling):
            from infereco.budget import Budget

            session = RunConfig.build(values)  # the session's own options, validated like any run's
            return api.resume(
                session.store, run_id, progress=bar.progress,
                budget=Budget(max_usd=session.budget_usd, max_tokens=session.budget_tokens),
                problem_budget=(session.budget_usd_per_problem, session.budget_tokens_per_problem),
                timeout_s=session.timeout if "timeout" in values else None,
                max_retries=session.max_retries if "max_retries" in values else None,
                executor=session.executor, ray_address=session.ray_address,
            )  # fmt: skip
        return api.execute_assembly(assemble(RunConfig.build(values)), bar.progress)

#: run-description fields `infereco serve` does not take: a served request is the problem, and the
#: server's spend is bounded by its run-wide budget; every other run flag is a serve flag too
SERVE_EXCLUDES = frozenset({"task", "level", "limit", "data", "task_seed", "budget_usd_per_problem",
                            "budget_tokens_per_problem", "executor", "ray_address", "label",
                            "task_format", "system_prompt", "prompt_template", "sandbox_packages",
                            "grader_model", "grader_base_url", "grader_prompt"})  # fmt: skip
_SERVE_DEFAULTS = {"n": 1}  # one sample per request unless told: a plain proxy that bills and stores

_SERVE_OWN = [
    inspect.Parameter("host", inspect.Parameter.KEYWORD_ONLY, default="127.0.0.1", annotation=Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")]),
    inspect.Parameter("port", inspect.Parameter.KEYWORD_ONLY, default=8000, annotation=Annotated[int, typer.Option(help="port to listen on (0: any free one, printed at start)")]),
    inspect.Parameter("served_model_name", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[str], typer.Option(help="the model name clients ask for (default: --model's)")]),
    inspect.Parameter("checker", inspect.Parameter.KEYWORD_ONLY, default="numeric", annotation=Annotated[str, typer.Option(help="how answers are extracted for voting: numeric, math, exact")]),
    inspect.Parameter("serve_api_key_env", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[str], typer.Option(help="environment variable holding a key clients must send as 'Authorization: Bearer KEY'")]),
]  # fmt: skip


def serve(ctx: typer.Context, **options: Any) -> None:
    """Serve a strategy behind an OpenAI-compatible endpoint; every upstream call is billed and stored.

    Takes `infereco run`'s flags (strategy, backend, prices, budget, ...) except the task's.
    Example: infereco serve --backend openai --base-url http://127.0.0.1:8080/v1 --model NAME
    --input-price 0.15 --output-price 0.60 --strategy majority --n 8 --store served.db
    """
    from infereco.runconfig import RunConfig
    from infereco.serve import serve as run_server

    host, port = options.pop("host"), options.pop("port")
    own = {k: options.pop(k) for k in ("served_model_name", "checker", "serve_api_key_env")}
    values, _ = given_options(ctx, options)
    config = RunConfig.build({**_SERVE_DEFAULTS, **values})  # validated and checked like a run's
    o = {k: v for k, v in config.model_dump().items() if k not in SERVE_EXCLUDES}
    run_server({**o, **own}, host=host, port=port)


serve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context), *_SERVE_OWN,
     *run_parameters(exclude=SERVE_EXCLUDES, defaults=_SERVE_DEFAULTS)]
)  # fmt: skip
app.command("serve")(serve)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where the store, plot and JSON go")] = Path("infereco-demo"),
    n: Annotated[int, typer.Option("--n", help="samples per problem")] = 16,
    limit: Annotated[int, typer.Option(help="number of arithmetic problems")] = 30,
    level: Annotated[int, typer.Option(help="arithmetic difficulty 1..5")] = 3,
    max_tokens: Annotated[int, typer.Option(help="completion token limit per sample")] = 192,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Repeated sampling + majority vote on built-in arithmetic with the embedded model; table, PNG, JSON, HTML.

    Example: infereco demo --out infereco-demo
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with _Bar(enabled=not quiet and not as_json) as bar:
        result = api.run(
            "arithmetic", level=level, limit=limit, strategy="majority", n=n, max_tokens=max_tokens,
            store=out_dir / "demo.db", progress=bar.progress,
        )  # fmt: skip
    _show(result, as_json, out_dir, out_dir / "report.html")


_TARGET_HELP = "accuracy to reach (a share of problems, e.g. 0.8); repeat for several"
_CONFIDENCE_HELP = "require the one-sided lower confidence bound of accuracy at this level (e.g. 0.9) to reach the target"


@app.command()
def report(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    run_ids: Annotated[Optional[list[str]], typer.Option("--run", help="run id (prefix); repeat to compare; default all")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help=_OUT_HELP)] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help=_HTML_HELP)] = None,
    target_accuracy: Annotated[Optional[list[float]], typer.Option("--target-accuracy", help=_TARGET_HELP + " (default 0.5 ... 0.9)")] = None,
    confidence: Annotated[Optional[float], typer.Option("--confidence", help=_CONFIDENCE_HELP)] = None,
    allow_mixed: Annotated[bool, typer.Option("--allow-mixed", help="overlay runs over different problem sets as they are (default: compare on the problems they share)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print summaries as JSON")] = False,
) -> None:
    """Summarise stored runs from their sample pools (no model is called); recommend the cheapest setting per target accuracy.

    Example: infereco report runs.db --out report/ --html report.html --target-accuracy 0.8
    """
    from infereco import report as rep

    data = api.report_data(store, run_ids, targets=target_accuracy, confidence=confidence, allow_mixed=allow_mixed)
    api.write_report(data.results, out_dir, html, store=store, recommendations=data.recommendations)
    summaries = data.summaries
    if as_json:
        print(json.dumps(rep.to_jsonable(summaries), indent=2))
    else:
        out.print(rep.summary_table(summaries))
        out.print(rep.recommendation_table(data.recommendations))
        out.print(rep.efficiency_table(summaries))
        for s in summaries:
            note = (s.get("run_status") or {}).get("note")
            if note:
                out.print(f"{s.get('label')}: {note}", highlight=False)
            _print_ledger(s)
    for path in ([out_dir] if out_dir is not None else []) + ([html] if html is not None else []):
        console.print(f"wrote {path}", highlight=False)


@app.command()
def reprice(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    prices: Annotated[Optional[Path], typer.Option(help="TOML price file; default: each run's stored price, refreshed (genai-prices looked up again)")] = None,
    run_ids: Annotated[Optional[list[str]], typer.Option("--run", help="run id (prefix); repeat; default all")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print old and new totals as JSON")] = False,
) -> None:
    """Recompute the stored costs of every request and sample from their stored usage (no model is called).

    Example: infereco reprice runs.db --prices prices.toml
    """
    from infereco.reprice import reprice as reprice_store

    results = reprice_store(store, prices, run_ids)
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return
    table = Table(title=f"Repriced {store}", title_justify="left")
    for header in ("run", "label", "requests", "old $", "new $", "price source"):
        table.add_column(header, justify="right" if header in ("requests", "old $", "new $") else "left")
    for r in results:
        table.add_row(r.run_id, r.label, str(r.requests), f"{r.old_usd:.6g}", f"{r.new_usd:.6g}", "; ".join(r.sources))
    out.print(table)


@app.command()
def profile(
    model: Annotated[Optional[str], typer.Option(help="embedded model name or .gguf path (default: the default model)")] = None,
    slots: Annotated[int, typer.Option(help="parallel slots (the largest batch profiled)")] = 16,
    remeasure: Annotated[bool, typer.Option("--remeasure", help="measure again (e.g. now that the machine is quiet)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the profile as JSON")] = False,
) -> None:
    """Show (measuring once) the embedded model's idealized-runtime profile that prices its requests.

    Example: infereco profile --remeasure
    """
    import asyncio

    from infereco.backends.llamacpp import LlamaCppBackend

    async def go() -> Any:
        backend = LlamaCppBackend(model, slots=slots)
        try:
            return await backend.runtime_profile(remeasure=remeasure)
        finally:
            await backend.aclose()

    measured = asyncio.run(go())
    if as_json:
        print(measured.model_dump_json(indent=2))
        return
    table = Table(title=f"Idealized runtime of {model or 'the default model'} on {measured.machine} ({measured.measured_at})",
                  title_justify="left")  # fmt: skip
    for header in ("batch", "decode s/token", "tokens/s"):
        table.add_column(header, justify="right")
    for batch, seconds in sorted(measured.decode_s_per_token.items()):
        table.add_row(str(batch), f"{seconds:.4f}", f"{1 / seconds:.1f}" if seconds > 0 else "–")
    out.print(table)
    out.print(f"prefill: {measured.prefill_s_per_token:.5f} s/token")


@app.command()
def recommend(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    target_accuracy: Annotated[float, typer.Option("--target-accuracy", help="accuracy to reach, a share of problems (e.g. 0.8)")],
    confidence: Annotated[Optional[float], typer.Option("--confidence", help=_CONFIDENCE_HELP)] = None,
    run_ids: Annotated[Optional[list[str]], typer.Option("--run", help="run id (prefix); repeat; default all")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the recommendation as JSON")] = False,
) -> None:
    """The cheapest (model, strategy, k) whose accuracy reaches the target, from the stored samples only.

    Every k up to each run's N counts (majority@k from the pooled samples), with bootstrap CIs of
    accuracy, cost per problem and cost-of-pass; the runner-up of each model; and when nothing
    reaches the target, the closest setting. Example: infereco recommend runs.db --target-accuracy 0.8
    """
    from infereco import report as rep

    recs = api.recommend(store, target_accuracy, confidence=confidence, run_ids=run_ids)
    if as_json:
        print(json.dumps(rep.to_jsonable([r.to_dict() for r in recs]), indent=2))
        return
    for r in recs:
        out.print(("" if len(recs) == 1 else f"{r.task}: ") + r.headline(), highlight=False)
        for other in r.runners_up:
            out.print(
                f"  runner-up, {other.model}: {other.label}: {other.method}, accuracy {other.accuracy:.2f} "
                f"[{other.accuracy_lo:.2f}, {other.accuracy_hi:.2f}], {rep._usd(other.usd_per_problem)} per problem",
                highlight=False,
            )
    out.print(rep.recommendation_table(recs))


@app.command("runs")
def runs_command(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    prune_empty: Annotated[bool, typer.Option("--prune-empty", help="delete runs that hold no sample (nothing was paid for them)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the runs as JSON")] = False,
) -> None:
    """Every run in a store: label, status (finished / interrupted / empty), problems done of planned, samples, spend.

    Example: infereco runs runs.db --prune-empty
    """
    from infereco import report as rep
    from infereco import runs as runs_mod

    pruned = runs_mod.prune_empty(store) if prune_empty else []
    infos = runs_mod.list_runs(store)
    if as_json:
        print(json.dumps(rep.to_jsonable({"runs": [r.to_dict() for r in infos], "pruned": [r.run_id for r in pruned]}), indent=2))
        return
    table = Table(title=f"Runs in {store}", title_justify="left")
    for header in ("run id", "label", "status", "problems", "samples", "spend", "note"):
        table.add_column(header, justify="right" if header in ("problems", "samples", "spend") else "left")
    for r in infos:
        table.add_row(r.run_id[:12], r.label, r.status, f"{r.problems_done}/{r.problems_planned}", str(r.samples),
                      rep._usd(r.spend_usd), r.note())  # fmt: skip
    out.print(table)
    if pruned:
        out.print(f"pruned {len(pruned)} empty run(s): {', '.join(r.run_id[:12] for r in pruned)}", highlight=False)


@app.command()
def sweep(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(help="arithmetic, gsm8k, math, or a .jsonl/.csv file")] = "arithmetic",
    level: Annotated[int, typer.Option(help="arithmetic difficulty 1..5")] = 3,
    limit: Annotated[Optional[int], typer.Option(help="use the first N problems")] = 20,
    data: Annotated[Optional[str], typer.Option(help="dataset file for --task gsm8k/math")] = None,
    strategies: Annotated[str, typer.Option(help="comma-separated: majority, bon, weighted, bom, beam, pf, epf, ...")] = "majority,bon,weighted,bom,beam,pf",
    budgets: Annotated[str, typer.Option(help="comma-separated N (samples, beams or particles per problem)")] = "1,2,4,8",
    verifier: Annotated[Optional[str], typer.Option(help="arithmetic (default), oracle, judge, reward")] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="--verifier judge: the judging model (default: the model under test)")] = None,
    backend: Annotated[str, typer.Option(help="llamacpp (embedded default) or openai")] = "llamacpp",
    model: Annotated[Optional[str], typer.Option(help="embedded model name / .gguf path, or the server's model name")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1")] = None,
    max_n: Annotated[Optional[int], typer.Option(help="samples per request ('n'); 1 for servers that ignore n")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="requests in flight (default: 2 embedded, 8 openai)")] = None,
    input_price: Annotated[Optional[float], typer.Option(help="USD per 1M prompt tokens")] = None,
    output_price: Annotated[Optional[float], typer.Option(help="USD per 1M completion tokens")] = None,
    usd_per_hour: Annotated[Optional[float], typer.Option(help="USD per hour of machine time (local models)")] = None,
    max_tokens: Annotated[int, typer.Option(help="completion token limit per sample (per step for beam/pf)")] = 256,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    store: Annotated[Path, typer.Option(help="SQLite sample store")] = Path("infereco.db"),
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="write sweep.png and sweep.json here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the points as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress lines")] = False,
) -> None:
    """Run several strategies at several budgets and compare accuracy against full cost (verifier calls included).

    Example: infereco sweep --level 3 --limit 20 --strategies majority,bon,weighted,bom,beam,pf --budgets 1,2,4,8 --out sweep/
    """
    try:
        ns = [int(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--budgets must be comma-separated integers, got {budgets!r}") from None

    def show(p: Any) -> None:
        if not quiet and not as_json:
            console.print(f"{p.strategy} N={p.n}: accuracy {p.accuracy:.2f}, ${p.usd_per_problem:.3g}/problem, "
                          f"{p.tokens_per_problem:.0f} tokens/problem", highlight=False)  # fmt: skip

    points = api.sweep(
        task, strategies=strategies.split(","), budgets=ns, store=store, out_dir=out_dir, on_point=show,
        # --level left off is not given: a task without levels is not handed the default to refuse
        level=level if ctx.get_parameter_source("level") == click_core.ParameterSource.COMMANDLINE else None,
        limit=limit, data=data, verifier=verifier, judge_model=judge_model, backend=backend, model=model,
        base_url=base_url, max_n=max_n, concurrency=concurrency, input_price=input_price, output_price=output_price, usd_per_hour=usd_per_hour,
        max_tokens=max_tokens, seed=seed,
    )  # fmt: skip
    if as_json:
        out.print_json(data=[p.as_dict() for p in points])
        return
    table = Table(title="Accuracy against cost per problem (verifier calls included)", title_justify="left")
    for col in ("strategy", "N", "accuracy [95% CI]", "$/problem", "verifier $/problem", "tokens/problem", "$/correct"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for p in points:
        per_correct = f"${p.usd_per_problem / p.accuracy:.3g}" if p.accuracy > 0 else "–"
        table.add_row(p.strategy, str(p.n), f"{p.accuracy:.2f} [{p.accuracy_lo:.2f}, {p.accuracy_hi:.2f}]",
                      f"${p.usd_per_problem:.3g}", f"${p.verifier_usd_per_problem:.3g}", f"{p.tokens_per_problem:,.0f}",
                      per_correct)  # fmt: skip
    out.print(table)
    if out_dir is not None:
        console.print(f"wrote {out_dir / 'sweep.png'} and {out_dir / 'sweep.json'}", highlight=False)


@app.command()
def tasks() -> None:
    """List the built-in tasks.

    Example: infereco tasks
    """
    from infereco.tasks import task_names

    for line in task_names():
        out.print(line)


@app.command()
def models(
    hosted: Annotated[Optional[str], typer.Option("--hosted", help="list hosted models genai-prices prices; a provider id, or 'all'")] = None,
) -> None:
    """List the embedded models, and with --hosted the hosted models whose prices infereco knows.

    Example: infereco models --hosted openai
    """
    from infereco.backends.models import DEFAULT_MODEL, EMBEDDED_MODELS

    for name, m in EMBEDDED_MODELS.items():
        mark = " (default)" if name == DEFAULT_MODEL else ""
        out.print(f"{name}{mark}: {m.description}")
    try:
        from genai_prices import data_snapshot
    except ImportError:
        return
    providers = data_snapshot.get_snapshot().providers
    if hosted is None:
        count = sum(len(p.models) for p in providers)
        out.print(f"hosted: {count} models of {len(providers)} providers priced from genai-prices (--hosted PROVIDER|all)")
        return
    chosen = [p for p in providers if hosted in ("all", p.id)]
    if not chosen:
        raise UserError(f"--hosted {hosted!r}: no such provider; one of: all, {', '.join(sorted(p.id for p in providers))}")
    for provider in chosen:
        for model in provider.models:
            out.print(f"{provider.id}/{model.id}", highlight=False)


@app.command()
def plan(
    target_loss: Annotated[float, typer.Option("--target-loss", help="the loss the model must reach (above E)")],
    inference_tokens: Annotated[float, typer.Option("--inference-tokens", help="lifetime tokens the model will process (prompt + output)")] = 0.0,
    E: Annotated[float, typer.Option("--E", help="irreducible loss (Chinchilla: 1.69)")] = 1.69,
    A: Annotated[float, typer.Option("--A", help="parameter term coefficient (Chinchilla: 406.4)")] = 406.4,
    B: Annotated[float, typer.Option("--B", help="data term coefficient (Chinchilla: 410.7)")] = 410.7,
    alpha: Annotated[float, typer.Option("--alpha", help="parameter exponent (Chinchilla: 0.34)")] = 0.34,
    beta: Annotated[float, typer.Option("--beta", help="data exponent (Chinchilla: 0.28)")] = 0.28,
    usd_per_flop_train: Annotated[Optional[float], typer.Option("--usd-per-flop-train", help="USD per training FLOP")] = None,
    usd_per_flop_inference: Annotated[Optional[float], typer.Option("--usd-per-flop-inference", help="USD per inference FLOP")] = None,
    minimize: Annotated[str, typer.Option("--minimize", help="flops, or usd (needs both prices)")] = "flops",
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    """Model size and training tokens that minimise training + inference compute at a target loss.

    Loss L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla constants by default); minimises
    6*N*D_train + 2*N*D_inference subject to L = target ("Beyond Chinchilla-Optimal").

    Example: infereco plan --target-loss 2.0 --inference-tokens 1e12
    """

    p = api.plan(
        target_loss, inference_tokens, E=E, A=A, B=B, alpha=alpha, beta=beta,
        usd_per_flop_train=usd_per_flop_train, usd_per_flop_inference=usd_per_flop_inference, minimize=minimize,
    )  # fmt: skip
    if as_json:
        print(json.dumps(p.to_dict(), indent=2))
        return
    priced = p.cost_usd is not None
    table = Table(
        title=f"Plan for loss {p.target_loss:g} with {p.inference_tokens:.3g} inference tokens (minimising {p.minimize})",
        title_justify="left",
    )
    for header in ["", "params (B)", "train tokens (B)", "tokens/param", "train FLOPs", "inference FLOPs", "total FLOPs"] + (["$"] if priced else []):
        table.add_column(header, justify="left" if not header else "right")
    for name, pt in (("inference-aware", p.optimal), ("Chinchilla-optimal", p.chinchilla)):
        cells = [name, f"{pt.n_params / 1e9:.3f}", f"{pt.train_tokens / 1e9:,.1f}", f"{pt.tokens_per_param:,.1f}",
                 f"{pt.train_flops:.3e}", f"{pt.inference_flops:.3e}", f"{pt.total_flops:.3e}"]  # fmt: skip
        if priced:
            cells.append(f"{pt.cost_usd:,.2f}")
        table.add_row(*cells)
    out.print(table)
    saving = f"saves {p.flops_saving:.1%} of total FLOPs"
    if priced and p.chinchilla.cost_usd:
        saving += f" and {1 - p.cost_usd / p.chinchilla.cost_usd:.1%} of dollars"  # type: ignore[operator]
    out.print(f"vs Chinchilla-optimal: {saving}", highlight=False)


@app.command()
def frontier(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    run_ids: Annotated[Optional[list[str]], typer.Option("--run", help="run id (prefix); repeat; default all")] = None,
    human_cost: Annotated[Optional[float], typer.Option(help="USD a human expert costs per (always right) answer")] = None,
    family: Annotated[Optional[list[str]], typer.Option("--family", help="MODEL=FAMILY, repeat: counterfactuals per family")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="write frontier.png and frontier.json here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print options and contributions as JSON")] = False,
) -> None:
    """Cost-of-pass of every (model, strategy, N) in the store, the frontier, and what each model adds.

    Example: infereco frontier runs.db --human-cost 2.50 --out frontier/
    """

    from infereco import report as rep
    from infereco.cost_frontier import by_task, contributions, frontier as best_option, options_from_summaries

    summaries = [r.summary for r in api.load_results(store, run_ids)]
    families: dict[str, str] = {}
    for item in family or []:
        model_name, sep, family_name = item.partition("=")
        if not sep or not model_name.strip() or not family_name.strip():
            raise UserError(f"--family {item!r}: expected MODEL=FAMILY, e.g. --family qwen2.5-coder-0.5b-instruct-q4=small")
        families[model_name.strip()] = family_name.strip()
    options = options_from_summaries(summaries, human_cost, families)
    groups = by_task(options)
    payload = {
        "tasks": [
            {
                "task": task,
                "frontier": (lambda b: b.to_dict() if b else None)(best_option(group)),
                "contributions": contributions(group),
                "options": [o.to_dict() for o in group],
            }
            for task, group in groups.items()
        ]
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, (task, group) in enumerate(groups.items()):
            rep.plot_frontier(group, out_dir / ("frontier.png" if i == 0 else f"frontier-{i + 1}.png"))
        (out_dir / "frontier.json").write_text(json.dumps(rep.to_jsonable(payload), indent=2))
    if as_json:
        print(json.dumps(rep.to_jsonable(payload), indent=2))
        return
    for task, group in groups.items():
        best = best_option(group)
        table = Table(
            title=f"Cost-of-pass on {task or 'the task'}: USD per correct answer (majority@k), cheapest first",
            title_justify="left",
        )
        for header in ("", "run", "k", "accuracy", "$ per problem", "$ per pass [95% CI]"):
            table.add_column(header, justify="left" if header in ("", "run") else "right")
        for o in sorted(group, key=lambda o: (o.cost_of_pass, o.usd_per_problem)):
            ci = f"{rep._usd(o.cost_of_pass)} [{rep._usd(o.cop_lo)}, {rep._usd(o.cop_hi)}]"
            table.add_row("★" if o == best else "", o.label, str(o.k), f"{o.accuracy:.2f}", rep._usd(o.usd_per_problem), ci)
        out.print(table)
        for row in contributions(group):
            out.print(
                f"without {row['kind']} {row['name']}: frontier {rep._usd(row['without'])} per pass "
                f"(+{rep._usd(row['contribution'])} over {rep._usd(row['frontier'])})",
                highlight=False,
            )
    out.print(f"the least cost-of-pass whatever its accuracy; for the cheapest way to a given accuracy: "
              f"infereco recommend {store} --target-accuracy A", highlight=False)  # fmt: skip
    if out_dir is not None:
        out.print(f"wrote {out_dir / 'frontier.png'} and {out_dir / 'frontier.json'}")


@app.command("verifier-limits")
def verifier_limits(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    run_id: Annotated[Optional[str], typer.Option("--run", help="run id (prefix); default: the only run")] = None,
    verifier: Annotated[str, typer.Option(help="which verifier judges the stored samples")] = "arithmetic",
    penalty: Annotated[Optional[list[float]], typer.Option(help="cost of a wrong answer vs abstaining; repeat")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """What resample-until-pass with an imperfect verifier can reach on a stored run: TPR/FPR, ceiling, optimal N.

    Example: infereco verifier-limits runs.db --run a084 --penalty 0 --penalty 1
    """

    from infereco import report as rep

    result = api.verifier_limits(store, run_id, verifier=verifier, penalties=penalty or [0.0, 1.0])
    if as_json:
        print(json.dumps(rep.to_jsonable(result), indent=2))
        return
    out.print(
        f"{result['label']}: verifier {result['verifier']} on {result['samples']} samples: passes "
        f"{result['pass_rate']:.2f}, TPR {result['tpr']:.2f}, FPR {result['fpr']:.2f}; "
        f"accuracy ceiling p/(p+q) = {result['ceiling']:.3f} however many samples",
        highlight=False,
    )
    table = Table(title="Resample until the verifier passes, at most N tries", title_justify="left")
    for header in ("N", "right", "wrong", "abstain"):
        table.add_column(header, justify="right")
    curve = result["curve"]
    for i, n in enumerate(curve["n"]):
        table.add_row(f"{n:g}", f"{curve['accuracy'][i]:.3f}", f"{curve['wrong'][i]:.3f}", f"{curve['abstain'][i]:.3f}")
    out.print(table)
    for pen, best in result["optimal_n"].items():
        out.print(f"wrong answer costs {pen} (abstaining 0, right 1): best N = {best['n']}, utility {best['utility']:.3f}")


@app.command()
def allocate(
    store: Annotated[Path, typer.Argument(help="SQLite sample store")],
    budgets: Annotated[list[float], typer.Option("--budget", help="average budget per problem; repeat for a curve")],
    run_id: Annotated[Optional[str], typer.Option("--run", help="run id (prefix); default: the only run")] = None,
    unit: Annotated[str, typer.Option(help="samples or usd")] = "samples",
    pilot: Annotated[int, typer.Option(help="pilot samples per problem that estimate its difficulty")] = 2,
    bins: Annotated[int, typer.Option(help="difficulty bins")] = 3,
    seed: Annotated[int, typer.Option(help="seed of the calibration / held-out split")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> None:
    """Compute-optimal allocation: N per difficulty bin under a budget, vs uniform majority@k, on held-out problems.

    Evaluated offline on a stored pool (no model is called). Example: infereco allocate runs.db --budget 4 --budget 8
    """

    from infereco import report as rep
    from infereco.allocation import allocation_curve
    from infereco.store import Store

    if not store.is_file():
        raise UserError(f"no such store: {store}")
    with Store(store) as db:
        runs = db.runs()
        if run_id is None and len(runs) != 1:
            raise UserError(f"{store} holds {len(runs)} runs; choose one with --run ({', '.join(r['run_id'] for r in runs)})")
        pool = db.load_pool(run_id or runs[0]["run_id"])
    results = allocation_curve(pool, budgets, unit=unit, pilot=pilot, bins=bins, seed=seed)
    if as_json:
        print(json.dumps(rep.to_jsonable([r.to_dict() for r in results]), indent=2))
        return
    table = Table(title=f"Allocation vs uniform majority@k on held-out problems: {pool.label}", title_justify="left")
    for header in ("budget", "k per bin (hard → easy)", "allocation", "cost", "uniform k", "uniform", "gain [95% CI]"):
        table.add_column(header, justify="right")
    for r in results:
        table.add_row(
            f"{r.budget:g} {r.unit}", ", ".join(map(str, r.bin_k)),
            f"{r.heldout_accuracy:.3f} [{r.heldout_ci[0]:.2f}, {r.heldout_ci[1]:.2f}]", f"{r.cost:.3g}",
            str(r.baseline_k), f"{r.baseline_accuracy:.3f} [{r.baseline_ci[0]:.2f}, {r.baseline_ci[1]:.2f}]",
            f"{r.gain:+.3f} [{r.gain_ci[0]:+.2f}, {r.gain_ci[1]:+.2f}]",
        )  # fmt: skip
    out.print(table)
    out.print(f"{results[0].n_calibration} calibration / {results[0].n_heldout} held-out problems, pilot {pilot}")


INTERRUPTED = "interrupted: everything received so far is stored; rerun with --resume to finish"


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (kill, systemd, a job scheduler) stops a run as Ctrl-C does: answers received are
    stored, the run is marked interrupted, exit 130. While a run's event loop is going, the loop's
    own handler cancels it cleanly (`infereco.api.execute`); elsewhere this one raises KeyboardInterrupt."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread)
        pass


def _print_ledger(summary: dict[str, Any]) -> None:
    """Spend beyond the stored answers (lost tries, requests lost in flight) and a run's incidents."""
    ledger = summary.get("ledger") or {}
    if ledger.get("unconfirmed_tokens") or ledger.get("unconfirmed_usd"):
        out.print(
            f"{summary.get('run_id')}: ledger also charges ${ledger['unconfirmed_usd']:.6g} / {ledger['unconfirmed_tokens']} "
            f"tokens for answers that may have been billed but never arrived ({ledger.get('lost_requests', 0)} requests "
            f"failed or were in flight when a process stopped, {ledger.get('inflight_requests', 0)} in flight now)",
            highlight=False,
        )
    for event in summary.get("events") or []:
        out.print(f"{summary.get('run_id')}: {event['kind']}: {event['message']}", highlight=False)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one-line errors with exit code 2 for bad input; 130 on Ctrl-C."""
    command = typer.main.get_command(app)
    _terminate_like_ctrl_c()
    try:
        code = command.main(args=argv, prog_name="infereco", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into a returned exit code when not standalone
            console.print(INTERRUPTED)
            sys.exit(130)
        return code
    except UserError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except sqlite3.Error as exc:  # the store file itself failed (damaged, foreign, full): one line
        from infereco.store import Store, store_error

        console.print(f"[red]error:[/red] {escape(str(store_error(Store.last_path, exc)))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        console.print(INTERRUPTED)
        sys.exit(130)
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        sys.exit(130)
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.format_message())  # `infereco` alone: the help is the answer, not an error
        sys.exit(0)
    except click_exc.ClickException as exc:
        console.print(f"[red]error:[/red] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
