"""`fsar-bench compare A B`: two runs or replicate groups on the same episodes, seeds as the unit."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass
class Side:
    """One side of a comparison: a replicate group (or a single run) on the shared episodes."""

    ref: str
    summaries: list[dict[str, Any]]
    episodes: list[Any]  # per-episode results of each replicate (DataFrames sorted by episode)
    label: str = ""

    @property
    def seeds(self) -> list[str]:
        return [str(s.get("train_seed", "?")) for s in self.summaries]

    @property
    def trained(self) -> bool:
        """False only when every replicate says it did not train (then seeds cannot matter)."""
        return any(s.get("trained", True) is not False for s in self.summaries)


def load_side(ref: str, tracking_uri: Optional[str], config: Optional[Path]) -> Side:
    """A run folder or MLflow run id (one replicate), a group folder (its group.json lists the
    replicates) or a comma-separated list of runs; the replicates must share a group key."""
    from fsar_bench.engine.replicates import GROUP_FILE
    from fsar_bench.results.runs import load_run

    path = Path(ref).expanduser()
    folder = path.parent if path.name == GROUP_FILE else path
    if (folder / GROUP_FILE).is_file():
        try:
            refs = [r["run_dir"] for r in json.loads((folder / GROUP_FILE).read_text())["replicates"]]
        except (OSError, ValueError, KeyError, TypeError):
            raise FsarError(f"{folder / GROUP_FILE} is not a readable group file",
                            "re-run the group (fsar-bench run ... --seeds N) to rewrite it") from None
    elif "," in ref and not path.exists():
        refs = [r.strip() for r in ref.split(",") if r.strip()]
    else:
        refs = [ref]
    loaded = [load_run(r, tracking_uri, config) for r in refs]
    keys = {s.get("group_key") for s, _ in loaded if s.get("group_key")}
    if len(keys) > 1:
        raise FsarError(f"the runs of {ref!r} are not replicates of one command (group keys {', '.join(sorted(keys))})",
                        "put only runs of the same command, with different --seed, on one side")
    return Side(ref, [s for s, _ in loaded], [df for _, df in loaded])


def side_labels(a: Side, b: Side) -> tuple[str, str]:
    """Labels that tell the sides apart: the run's description with its seed(s), and when that is
    not enough, the run key."""
    def label(side: Side, extra: str = "") -> str:
        seeds = side.seeds
        what = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds: {', '.join(seeds)}"
        return f"{_label(side.summaries[0])} [{what}{extra}]"

    la, lb = label(a), label(b)
    if la == lb and a.ref != b.ref:
        la, lb = (label(s, f"; run {s.summaries[0].get('run_key') or s.ref}") for s in (a, b))
    return la, lb


def matrices(a: Side, b: Side):
    """[R_a, E] and [R_b, E] per-episode accuracies, every replicate aligned with A's first."""
    import numpy as np

    ref_s, ref_df = a.summaries[0], a.episodes[0]
    rows_a = [align(ref_s, ref_df, s, df)[1] for s, df in zip(a.summaries, a.episodes)]
    rows_b = [align(ref_s, ref_df, s, df)[1] for s, df in zip(b.summaries, b.episodes)]
    return np.stack(rows_a), np.stack(rows_b)


def decide(group: Any, res: dict[str, Any], a: Side, b: Side, alpha: float) -> tuple[bool, str]:
    """(significant, verdict): the seed-aware test of the group means (docs/statistics.md §3); the
    paired episode test only when neither side trained (no seed variance to account for)."""
    if group.testable:
        return group.significant(alpha), group.verdict(alpha)
    if not a.trained and not b.trained:
        significant = bool(res["p_value"] < alpha and res["diff"] != 0)
        return significant, verdict(res, alpha) + " (neither side trained: no training-seed variance)"
    return False, group.verdict(alpha)


def comparison_document(a: Side, b: Side, res: dict[str, Any], group: Any, alpha: float) -> dict[str, Any]:
    """What `compare --json` prints: the paired episode statistics of the group means (A - B, pp;
    for these trained models), the seed-aware group test, each side's label, seeds and summaries,
    and the verdict at `alpha`."""
    significant, text = decide(group, res, a, b, alpha)
    la, lb = side_labels(a, b)
    side = (lambda s, lab: {"label": lab, "seeds": s.seeds, "replicates": len(s.summaries), "summary": s.summaries[0],
                            "summaries": s.summaries})
    return {**res, "alpha": alpha, "significant": significant, "verdict": text, "group": group.as_dict(),
            "episode_digest": a.summaries[0].get("episode_digest"), "a": side(a, la), "b": side(b, lb)}


def compare(
    run_a: str = typer.Argument(..., help="run folder (fsar-runs/<name>-<key>), MLflow run id, group folder "
                                "(fsar-runs/<name>-group-<key>-<id>) or comma-separated runs"),
    run_b: str = typer.Argument(..., help="the same kinds as RUN_A"),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (for run ids)"),
    config: Optional[Path] = typer.Option(None, help="bench.yaml to read (tracking URI, results dir)"),
    n_boot: int = typer.Option(10_000, "--n-boot", help="paired-bootstrap resamples for the CI"),
    n_perm: int = typer.Option(10_000, "--n-perm", help="random sign flips of the permutation test"),
    seed: int = typer.Option(0, help="seed of the bootstrap and the permutation test"),
    alpha: float = typer.Option(0.05, help="significance level of the verdict"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document on stdout instead of the table "
                                  "(the statistics, both sides' summaries and the verdict)"),
) -> None:
    """Compare two runs or replicate groups on the same episodes.

    The verdict tests the difference of the group means with the training seeds as the unit
    (Welch-Satterthwaite t, docs/statistics.md §3). With one seed on a side, training variance is
    unmeasured: the verdict says "not testable" and the episode-only test (paired bootstrap CI,
    sign-flip permutation test) describes these trained models only. Runs that did not train
    (zero-shot, --no-train) have no seed variance: the paired episode test decides.

    Examples:

    \b
      fsar-bench compare fsar-runs/protonet-toy-appearance-5w1s-group-0c003b1b671c-f715b4 fsar-runs/protonet+otam-toy-appearance-5w1s-group-8e1f7a2b9c0d-1a2b3c
      fsar-bench compare fsar-runs/RUN_A1,fsar-runs/RUN_A2 fsar-runs/RUN_B1,fsar-runs/RUN_B2
      fsar-bench compare 3f2a...e1 9b7c...04 --tracking-uri sqlite:///fsar-runs/mlflow.db
      fsar-bench compare fsar-runs/RUN_A fsar-runs/RUN_B --json > comparison.json
    """
    from rich.console import Console
    from rich.table import Table

    from fsar_bench.results.groups import compare_groups
    from fsar_bench.results.stats import paired_comparison

    if n_boot < 1 or n_perm < 1 or not 0 < alpha < 1:
        raise FsarError(f"--n-boot {n_boot} --n-perm {n_perm} --alpha {alpha} is not valid",
                        "use --n-boot >= 1, --n-perm >= 1, 0 < --alpha < 1")
    if tracking_uri:
        from fsar_bench.validate import check_tracking_uri

        check_tracking_uri(tracking_uri, write=False)
    from fsar_bench.ui import json_document, stdout_to_stderr

    with stdout_to_stderr(json_out):  # with --json, stdout carries the document alone
        a, b = load_side(run_a, tracking_uri, config), load_side(run_b, tracking_uri, config)
        acc_a, acc_b = matrices(a, b)
        res = paired_comparison(acc_a.mean(axis=0), acc_b.mean(axis=0), n_boot=n_boot, seed=seed, n_perm=n_perm)
        group = compare_groups(acc_a, acc_b, confidence=1 - alpha)
    doc = comparison_document(a, b, res, group, alpha)
    if json_out:
        json_document(doc)
        return

    sa, sb = a.summaries[0], b.summaries[0]
    setting = f"{sa.get('dataset', '?')} {sa.get('setting', '')}".strip()
    canon = "canonical" if sa.get("canonical") and sb.get("canonical") else "NON-CANONICAL"
    table = Table(title=f"comparison on {setting}, {res['episodes']} episodes ({canon}, digest "
                  f"{str(sa['episode_digest'])[:16]})", show_header=False)
    for name, side, mean in (("A", a, res["mean_a"]), ("B", b, res["mean_b"])):
        table.add_row(name, f"{doc[name.lower()]['label']}: {mean:.2f} %" + _spread(side))
    pct = f"{(1 - alpha) * 100:g}%"
    if group.testable:
        lo, hi = group.ci
        table.add_row("A - B (seeds)", f"{group.diff:+.2f} pp, {pct} CI [{lo:+.2f}, {hi:+.2f}], p = "
                      f"{group.p_value:.3g} ({group.replicates_a} vs {group.replicates_b} seeds; seed + episode "
                      "variance)")
    table.add_row("A - B (episodes)", f"{res['diff']:+.2f} pp, 95% CI [{res['ci_low']:+.2f}, {res['ci_high']:+.2f}] "
                  f"(paired bootstrap, {res['n_boot']} resamples; these trained models only)")
    table.add_row("p (episodes)", f"{_p_text(res)[2:]} (two-sided sign-flip permutation test, {res['n_perm']} flips); "
                  f"paired t = {res['t_stat']:.2f}, p ≈ {res['p_value_t']:.3g}")
    table.add_row("episodes", f"A better {res['a_better']}, tie {res['ties']}, B better {res['b_better']}")
    from fsar_bench.results.per_class import compare_rows

    for label, text in compare_rows(sa, a.episodes[0], sb, b.episodes[0]):  # the classes that differ most (#20)
        table.add_row(label, text)
    Console().print(table)
    typer.echo(f"verdict: {doc['verdict']}")


def _spread(side: Side) -> str:
    """± of one side: a single run's episode CI (with its caveat), or the seeds' SD."""
    import statistics

    if len(side.summaries) == 1:
        s = side.summaries[0]
        return f" ± {s['ci95']:.2f} (episodes only)" if "ci95" in s else ""
    means = [float(s.get("accuracy", float("nan"))) for s in side.summaries]
    return f" (between-seed SD {statistics.stdev(means):.2f} pp over {len(means)} seeds)"


def register(app: typer.Typer) -> None:
    app.command(name="compare")(compare)
