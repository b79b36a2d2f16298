"""`fsar-bench compare RUN_A RUN_B`: paired comparison of two runs on the same episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from fsar_bench.errors import FsarError


def _label(summary: dict[str, Any]) -> str:
    parts = [summary.get("matcher"), summary.get("preset"), summary.get("weights_source"),
             f"{summary['frames']} frames" if summary.get("frames") else None,
             f"trained on {summary['train_dataset']}" if summary.get("train_dataset") not in (None, "",
                                                                                           summary.get("dataset")) else None]
    extra = ", ".join(str(p) for p in parts if p)
    return f"{summary.get('method', '?')} ({extra})" if extra else str(summary.get("method", "?"))


def align(summary_a: dict[str, Any], df_a, summary_b: dict[str, Any], df_b):
    """Per-episode accuracies of both runs, aligned by episode index; FsarError when not comparable."""
    da, db = summary_a.get("episode_digest"), summary_b.get("episode_digest")
    if not da or not db:
        raise FsarError("a run has no episode_digest in its summary.json", "compare runs written by fsar-bench run")
    if da != db:
        raise FsarError(f"runs were evaluated on different episodes (digest {da[:16]} vs {db[:16]})",
                        "compare runs on the same canonical set")
    ia, ib = df_a["episode"].tolist(), df_b["episode"].tolist()
    if ia != ib:
        only_a, only_b = len(set(ia) - set(ib)), len(set(ib) - set(ia))
        raise FsarError(f"runs have different episode lists ({len(ia)} vs {len(ib)} episodes; {only_a} only in A, "
                        f"{only_b} only in B)", "compare finished runs of the same episode count")
    if "query_ids" in df_a.columns and "query_ids" in df_b.columns:
        qa = [list(q) for q in df_a["query_ids"]]
        qb = [list(q) for q in df_b["query_ids"]]
        if qa != qb:
            first = next(i for i, (x, y) in enumerate(zip(qa, qb)) if x != y)
            raise FsarError(f"runs share an episode digest but episode {ia[first]} has different query videos",
                            "one of the result files was modified; re-run it")
    return df_a["accuracy"].to_numpy(dtype=float), df_b["accuracy"].to_numpy(dtype=float)


def _p_text(res: dict[str, Any]) -> str:
    p = res["p_value"]
    if p <= 1.0 / (1 + res["n_perm"]) * (1 + 1e-9):  # no sign flip reached the observed difference
        return f"p <= {p:.1g}"
    return f"p = {p:.2g}"


def verdict(res: dict[str, Any], alpha: float = 0.05) -> str:
    ptxt = _p_text(res)
    p = res["p_value"]
    if p < alpha and res["diff"] != 0:
        better, worse = ("A", "B") if res["diff"] > 0 else ("B", "A")
        return (f"{better} is significantly better than {worse} by {abs(res['diff']):.2f} pp "
                f"({ptxt}, paired sign-flip test, {res['episodes']} episodes)")
    return (f"no significant difference at the {alpha:.0%} level ({ptxt}); the difference "
            f"{res['diff']:+.2f} pp is within what episode sampling explains")


def comparison_document(sa: dict[str, Any], sb: dict[str, Any], res: dict[str, Any], alpha: float) -> dict[str, Any]:
    """What `compare --json` prints: the paired statistics (A - B, in percentage points), each run's
    label and summary, and the verdict at `alpha`."""
    return {**res, "alpha": alpha, "significant": bool(res["p_value"] < alpha and res["diff"] != 0),
            "verdict": verdict(res, alpha), "episode_digest": sa.get("episode_digest"),
            "a": {"label": _label(sa), "summary": sa}, "b": {"label": _label(sb), "summary": sb}}


def compare(
    run_a: str = typer.Argument(..., help="run folder (fsar-runs/<name>-<key>) or MLflow run id"),
    run_b: str = typer.Argument(..., help="run folder or MLflow run id"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (for run ids)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (tracking URI, results dir)"),
    n_boot: int = typer.Option(10_000, "--n-boot", help="paired-bootstrap resamples for the CI"),
    n_perm: int = typer.Option(10_000, "--n-perm", help="random sign flips of the permutation test"),
    seed: int = typer.Option(0, help="seed of the bootstrap and the permutation test"),
    alpha: float = typer.Option(0.05, help="significance level of the verdict"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document on stdout instead of the table "
                                  "(the statistics, both runs' summaries and the verdict)"),
) -> None:
    """Compare two runs episode by episode (paired bootstrap CI, sign-flip permutation test).

    Both runs must have been evaluated on the same episodes (same episode digest).

    Examples:

    \b
      fsar-bench compare fsar-runs/protonet-toy-motion-5w1s-1a2b3c4d5e6f fsar-runs/protonet-toy-motion-5w1s-0f9e8d7c6b5a
      fsar-bench compare 3f2a...e1 9b7c...04 --tracking-uri sqlite:///fsar-runs/mlflow.db
      fsar-bench compare fsar-runs/RUN_A fsar-runs/RUN_B --json > comparison.json
    """
    from rich.console import Console
    from rich.table import Table

    from fsar_bench.results.runs import load_run
    from fsar_bench.results.stats import paired_comparison

    if n_boot < 1 or n_perm < 1 or not 0 < alpha < 1:
        raise FsarError(f"--n-boot {n_boot} --n-perm {n_perm} --alpha {alpha} is not valid",
                        "use --n-boot >= 1, --n-perm >= 1, 0 < --alpha < 1")
    if tracking_uri:
        from fsar_bench.validate import check_tracking_uri

        check_tracking_uri(tracking_uri, write=False)
    from fsar_bench.ui import json_document, stdout_to_stderr

    with stdout_to_stderr(json_out):  # with --json, stdout carries the document alone
        sa, dfa = load_run(run_a, tracking_uri, config)
        sb, dfb = load_run(run_b, tracking_uri, config)
        acc_a, acc_b = align(sa, dfa, sb, dfb)
        res = paired_comparison(acc_a, acc_b, n_boot=n_boot, seed=seed, n_perm=n_perm)
    if json_out:
        json_document(comparison_document(sa, sb, res, alpha))
        return

    setting = f"{sa.get('dataset', '?')} {sa.get('setting', '')}".strip()
    canon = "canonical" if sa.get("canonical") and sb.get("canonical") else "NON-CANONICAL"
    table = Table(title=f"paired comparison on {setting}, {res['episodes']} episodes ({canon}, digest "
                  f"{str(sa['episode_digest'])[:16]})", show_header=False)
    table.add_row("A", f"{_label(sa)}: {res['mean_a']:.2f} %" + (f" ± {sa['ci95']:.2f}" if "ci95" in sa else ""))
    table.add_row("B", f"{_label(sb)}: {res['mean_b']:.2f} %" + (f" ± {sb['ci95']:.2f}" if "ci95" in sb else ""))
    table.add_row("A - B", f"{res['diff']:+.2f} pp, 95% CI [{res['ci_low']:+.2f}, {res['ci_high']:+.2f}] "
                  f"(paired bootstrap, {res['n_boot']} resamples)")
    table.add_row("p-value", f"{_p_text(res)[2:]} (two-sided sign-flip permutation test, {res['n_perm']} flips); "
                  f"paired t = {res['t_stat']:.2f}, p ≈ {res['p_value_t']:.3g}")
    table.add_row("episodes", f"A better {res['a_better']}, tie {res['ties']}, B better {res['b_better']}")
    from fsar_bench.results.per_class import compare_rows

    for label, text in compare_rows(sa, a.episodes[0], sb, b.episodes[0]):  # the classes that differ most (#20)
        table.add_row(label, text)
    Console().print(table)
    typer.echo(f"verdict: {verdict(res, alpha)}")


def register(app: typer.Typer) -> None:
    app.command(name="compare")(compare)
