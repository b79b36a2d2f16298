"""Render a leaderboard as Markdown, HTML or CSV.

Markdown and HTML are rendered from the same list of blocks (headings, paragraphs, tables), so
they say the same thing; CSV is one flat table with a `kind` column (ranked-pretrained,
ranked-random-init, unranked, reported) and full-precision values, for machines.

The output depends only on the runs, the reported CSVs, the dataset locks and the method cards:
no timestamps, no paths, no MLflow run ids in Markdown/HTML (the run key identifies a run).
"""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from fsar_bench.leaderboard.build import Board, CardInfo, Leaderboard
from fsar_bench.leaderboard.reported import setting_title
from fsar_bench.episodes import CANONICAL_EPISODES
from fsar_bench.leaderboard.reproduced import TIER_ALPHA, RankedRow, UnrankedRow
from fsar_bench.results.record import RunRecord

DASH = "–"
FORMATS = ("md", "csv", "html")

RULES = (
    "**How to read this leaderboard.** One table group per dataset and setting (N-way K-shot). "
    "*Reproduced* rows are fsar-bench runs: mean accuracy over the test episodes ± the half-width of its 95% "
    "confidence interval (1.96 · std / √episodes), with the episode-set digest, the weights, the parameter "
    "counts and FLOPs when measured. "
    "**Only runs on the canonical episode set** (the digest locked in `datasets/<name>/episodes.lock.yaml`, "
    f"{CANONICAL_EPISODES:,} episodes, 1 query per class) that were trained on the dataset they are tested on "
    "**are ranked**; every other run is listed apart, unranked, with the reason. "
    "**Ranking is done within a weights class**: runs with pretrained weights are ranked in the main table; runs "
    "trained from random initialisation (`random-init`; every toy-dataset run, since the tiny backbones have no "
    "pretrained weights) are ranked in a separate table and never mixed into a table of pretrained runs. "
    "Rows that a paired comparison cannot separate share a **tier**: walking down by mean accuracy, a row opens "
    "a new tier only if a paired sign-flip permutation test on the per-episode accuracies "
    f"(α = {TIER_ALPHA}) finds it worse than the best row of the current tier. "
    "*Reported* rows are the numbers printed in the papers (`leaderboards/reported/`), marked as reported with "
    "their paper and source table; they are not ranked (other episodes, no per-episode results)."
)


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | table | note
    text: str = ""
    table: pd.DataFrame | None = None


# -- cell formatting ----------------------------------------------------------------------------

def _fmt_acc(rec: RunRecord) -> str:
    acc, ci = rec.results.accuracy, rec.results.ci95
    if not math.isfinite(acc):
        return DASH
    return f"{acc:.2f} ± {ci:.2f}" if math.isfinite(ci) else f"{acc:.2f}"


def _fmt_millions(n: float | None, scale: float = 1e6) -> str:
    if n is None or not math.isfinite(n):
        return DASH
    return f"{n / scale:.3g}"


def _fmt_plain(x: float | None) -> str:
    return DASH if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:g}"


def _digest(d: str) -> str:
    return f"`{d[:12]}`" if d else DASH


def _common(rec: RunRecord) -> dict[str, str]:
    i, e = rec.identity, rec.efficiency
    return {
        "method": i.method, "matcher": i.matcher or DASH, "preset": i.preset or DASH,
        "backbone": i.backbone or DASH, "frames": DASH if i.frames is None else str(i.frames),
        "weights": i.weights_source or i.weights,
        "train episodes": DASH if i.train_steps is None else f"{i.train_steps:,}",
        "accuracy (%) ± 95% CI": _fmt_acc(rec), "episodes": f"{i.episodes:,}", "digest": _digest(i.episode_digest),
        "params (M)": _fmt_millions(e.params_total), "trainable (M)": _fmt_millions(e.params_trainable),
        "GFLOPs/video": _fmt_millions(e.flops_per_video, 1e9), "run key": f"`{i.run_key}`",
    }


def ranked_table(rows: list[RankedRow]) -> pd.DataFrame:
    return pd.DataFrame([{"rank": str(r.rank), "tier": str(r.tier) if r.tier is not None else DASH,
                          **_common(r.run)} for r in rows])


def unranked_table(rows: list[UnrankedRow]) -> pd.DataFrame:
    return pd.DataFrame([{**_common(u.run), "why not ranked": u.reason} for u in rows])


def reported_table(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "row": "reported",
        "method": df["method"],
        "backbone": df["backbone"].replace("", DASH),
        "pretraining": df["pretraining"].replace("", DASH),
        "fine-tuning": df["finetune"].replace("", DASH),
        "matcher": df["matcher"].replace("", DASH),
        "accuracy (%)": [f"{a:.1f}" for a in df["accuracy"]],
        "params (M)": [_fmt_plain(x) for x in df["params_total_m"]],
        "trainable (M)": [_fmt_plain(x) for x in df["params_trainable_m"]],
        "GFLOPs": [_fmt_plain(x) for x in df["gflops"]],
        "paper": df["paper"],
        "source table": df["source_table"],
        "hosted as": df["hosted_as"].replace("", DASH) if "hosted_as" in df else DASH,
        "flags": df["flags"].replace("", DASH),
    })
    # Columns with no value in any row (efficiency figures outside the efficiency tables) are dropped.
    for col in ("params (M)", "trainable (M)", "GFLOPs"):
        if (out[col] == DASH).all():
            out = out.drop(columns=col)
    return out


def cards_table(cards: list[CardInfo]) -> pd.DataFrame:
    rows = []
    for info in cards:
        c = info.card
        if c is None:
            rows.append({"method": info.name, "paper": f"card unavailable: {info.error}"})
            continue
        rows.append({"method": info.name, "paper": c.paper, "backbone": c.backbone, "pretraining": c.pretraining,
                     "fine-tuning": c.finetune, "text at test time": "yes" if c.text_at_test else "no",
                     "default matcher": c.default_matcher, "reported as": ", ".join(map(str, c.reported_as))})
    df = pd.DataFrame(rows, columns=["method", "paper", "backbone", "pretraining", "fine-tuning", "text at test time",
                                     "default matcher", "reported as"])
    return df.fillna("").replace("", DASH)


# -- blocks -------------------------------------------------------------------------------------

def _title(lb: Leaderboard) -> str:
    names = list(dict.fromkeys(b.dataset for b in lb.boards))
    return f"Leaderboard: {', '.join(names)}" if 0 < len(names) <= 3 else "fsar-bench leaderboard"


def _board_blocks(b: Board, lb: Leaderboard) -> list[Block]:
    alias = f" (reported as `{b.reported_name}`)" if b.reported_name and b.reported_name != b.dataset else ""
    if not b.setting:
        hint = " (reported rows: the papers' main tables; `--all-reported` adds the others)" if (
            lb.reported and not lb.all_reported and b.reported is not None) else ""
        return [Block("h2", f"{b.dataset}{alias}"), Block("note", f"No reproduced run and no reported row{hint}.")]
    s = b.sections
    out = [Block("h2", f"{b.dataset} · {setting_title(b.setting)} ({b.setting}){alias}")]
    if s.canonical_digest:
        out.append(Block("p", f"Canonical episode set `{s.lock_key}`, digest `{s.canonical_digest[:12]}` "
                              f"(full: `{s.canonical_digest}`)."))
    else:
        out.append(Block("p", "No locked episode set for this dataset and setting: no reproduced run can be ranked."))
    out.append(Block("h3", "Ranked: pretrained weights"))
    if s.pretrained:
        out.append(Block("table", table=ranked_table(s.pretrained)))
    else:
        out.append(Block("note", "No canonical run with pretrained weights."))
    if s.random_init:
        out.append(Block("h3", "Ranked separately: trained from random initialisation"))
        out.append(Block("p", "These runs start from random weights (`random-init`). They are ranked among "
                              "themselves only: not comparable with pretrained runs or with the papers' numbers."))
        out.append(Block("table", table=ranked_table(s.random_init)))
    if s.unranked:
        out.append(Block("h3", "Listed apart (not ranked)"))
        out.append(Block("table", table=unranked_table(s.unranked)))
    for note in s.notes:
        out.append(Block("note", note))
    if b.reported is not None:
        out.append(Block("h3", "Reported in the papers (not reproduced here; not ranked)"))
        if b.reported.empty:
            out.append(Block("note", "No reported number for this dataset and setting"
                                     + ("" if lb.all_reported else " in the papers' main comparison tables")
                                     + "."))
        else:
            out.append(Block("table", table=reported_table(b.reported)))
    return out


def blocks(lb: Leaderboard) -> list[Block]:
    out = [Block("h1", _title(lb))]
    if lb.header:
        out.append(Block("note", lb.header))
    out.append(Block("p", RULES))
    if lb.reported and not lb.all_reported and any(b.reported is not None for b in lb.boards):
        out.append(Block("p", "Reported rows come from the papers' main comparison tables (DMGAL Tables II-IV, "
                              "MA-FSAR Tables 1-2, I2ST Tables 1, 2 and 6); `--all-reported` adds the ablation "
                              "tables. A number printed in two tables of one paper is one row."))
    for note in lb.notes:
        out.append(Block("note", note))
    if not lb.boards:
        out.append(Block("note", "Nothing to show: no reproduced run and no reported row matches."))
    for b in lb.boards:
        out.extend(_board_blocks(b, lb))
    if lb.cards:
        out.append(Block("h2", "Method cards"))
        out.append(Block("p", "The methods of the rows above, from the `card.yaml` beside each hosted method "
                              "(`fsar-bench list methods`); \"reported as\" names their rows in the papers' "
                              "tables. A card describes the method as published (its `full` preset); the rows "
                              "above say what each run used (preset, backbone, weights)."))
        out.append(Block("table", table=cards_table(lb.cards)))
        for info in lb.cards:
            if info.card is not None and str(info.card.notes).strip():
                out.append(Block("p", f"**{info.name}**: {' '.join(str(info.card.notes).split())}"))
    if lb.papers:
        out.append(Block("h2", "Sources of the reported rows"))
        out.append(Block("p", "Extracted from the papers' result tables; see `leaderboards/reported/README.md` "
                              "for the columns, the rules for metadata not printed in a table and the doubtful "
                              "cells."))
        out.append(Block("table", table=pd.DataFrame([{"paper": p.short, "reference": p.citation}
                                                      for p in lb.papers])))
    return out


# -- Markdown -----------------------------------------------------------------------------------

def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(df: pd.DataFrame) -> str:
    rows = [[_md_cell(v) for v in row] for row in df.itertuples(index=False)]
    return tabulate(rows, headers=[_md_cell(c) for c in df.columns], tablefmt="pipe", disable_numparse=True)


def to_markdown(lb: Leaderboard) -> str:
    parts = []
    for b in blocks(lb):
        if b.kind == "h1":
            parts.append(f"# {b.text}")
        elif b.kind == "h2":
            parts.append(f"## {b.text}")
        elif b.kind == "h3":
            parts.append(f"### {b.text}")
        elif b.kind == "note":
            parts.append(f"_{b.text}_")
        elif b.kind == "table":
            parts.append(_md_table(b.table))
        else:
            parts.append(b.text)
    return "\n\n".join(parts) + "\n"


# -- HTML ---------------------------------------------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_EM = re.compile(r"(?<![*\w])\*([^*]+)\*(?![*\w])")

CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}"
       "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
       "th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}"
       "th{background:#f3f3f3}p.note{font-style:italic;color:#555}")


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _EM.sub(r"<em>\1</em>", out)


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_inline(str(v))}</td>" for v in row) + "</tr>"
                     for row in df.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def to_html(lb: Leaderboard) -> str:
    title = _title(lb)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    for b in blocks(lb):
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "note":
            parts.append(f'<p class="note">{_inline(b.text)}</p>')
        elif b.kind == "table":
            parts.append(_html_table(b.table))
        else:
            parts.append(f"<p>{_inline(b.text)}</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# -- CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = ["dataset", "setting", "kind", "rank", "tier", "method", "matcher", "preset", "backbone",
               "pretraining", "finetune", "frames", "weights", "weights_source", "train_steps", "accuracy", "ci95",
               "episodes",
               "episode_digest", "canonical_digest", "params_total", "params_trainable", "flops_per_video",
               "flops_per_episode", "gflops", "run_key", "mlflow_run_id", "reason", "source_paper", "source_table",
               "own_implementation", "train_dataset", "hosted_as", "flags", "note"]


def _nan(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _run_row(b: Board, kind: str, rec: RunRecord, rank: int | None = None, tier: int | None = None,
             reason: str = "") -> dict:
    i, r, e = rec.identity, rec.results, rec.efficiency
    return {"dataset": b.dataset, "setting": b.setting, "kind": kind, "rank": rank, "tier": tier,
            "method": i.method, "matcher": i.matcher, "preset": i.preset, "backbone": i.backbone, "frames": i.frames,
            "weights": i.weights, "weights_source": i.weights_source, "train_steps": i.train_steps,
            "accuracy": _nan(r.accuracy), "ci95": _nan(r.ci95), "episodes": i.episodes,
            "episode_digest": i.episode_digest, "canonical_digest": b.sections.canonical_digest or "",
            "params_total": _nan(e.params_total), "params_trainable": _nan(e.params_trainable),
            "flops_per_video": _nan(e.flops_per_video), "flops_per_episode": _nan(e.flops_per_episode),
            "run_key": i.run_key, "mlflow_run_id": rec.mlflow_run_id, "reason": reason,
            "train_dataset": i.train_dataset}


def to_csv(lb: Leaderboard) -> str:
    rows = []
    for b in lb.boards:
        s = b.sections
        rows += [_run_row(b, "ranked-pretrained", r.run, r.rank, r.tier) for r in s.pretrained]
        rows += [_run_row(b, "ranked-random-init", r.run, r.rank, r.tier) for r in s.random_init]
        rows += [_run_row(b, "unranked", u.run, reason=u.reason) for u in s.unranked]
        if b.reported is not None:
            for r in b.reported.itertuples(index=False):
                rows.append({
                    "dataset": b.dataset, "setting": b.setting, "kind": "reported", "method": r.method,
                    "matcher": r.matcher, "backbone": r.backbone, "pretraining": r.pretraining,
                    "finetune": r.finetune, "frames": r.frames, "accuracy": r.accuracy,
                    "params_total": _nan(r.params_total_m * 1e6),
                    "params_trainable": _nan(r.params_trainable_m * 1e6), "gflops": _nan(r.gflops),
                    "source_paper": r.source_paper, "source_table": r.source_table,
                    "own_implementation": bool(r.own_implementation), "train_dataset": r.train_dataset,
                    "hosted_as": getattr(r, "hosted_as", ""), "flags": r.flags, "note": r.note,
                })
    df = pd.DataFrame(rows, columns=CSV_COLUMNS)
    for col in ("rank", "tier", "episodes", "train_steps", "frames"):
        df[col] = df[col].astype("Int64")
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def render(lb: Leaderboard, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(lb)
    if fmt == "html":
        return to_html(lb)
    if fmt == "csv":
        return to_csv(lb)
    raise ValueError(f"unknown format {fmt!r}")
