"""Render a leaderboard as Markdown, HTML, LaTeX or CSV.

Markdown fits a page: the methods x settings table first (the table the papers print), then the
reproduced groups of each setting; numbers are right-aligned, flags are numbered notes. HTML
renders the same blocks plus the details (digests, parameter counts, FLOPs, run keys, every
reported row with its sources); LaTeX (booktabs) renders the methods x settings table and the
ranked groups, for papers; CSV is one flat table with a `kind` column (ranked-pretrained,
ranked-random-init, unranked, reported), one line per run, full precision, for machines.

The output depends only on the runs, the reported CSVs, the dataset locks and the method cards:
no timestamps, no paths, no MLflow run ids in Markdown/HTML/LaTeX.
"""

from __future__ import annotations

import html
import io
import math
import re
import textwrap
from dataclasses import dataclass, field

import pandas as pd
from tabulate import tabulate

from fsar_bench.episodes import CANONICAL_EPISODES
from fsar_bench.leaderboard.build import Board, CardInfo, Leaderboard
from fsar_bench.leaderboard.reported import setting_title
from fsar_bench.leaderboard.reproduced import TIER_ALPHA, RankedRow, UnrankedRow, rescored_from
from fsar_bench.leaderboard.summary import ONE_SEED_MARK, Summary, summarize
from fsar_bench.results.groups import ONE_SEED
from fsar_bench.results.record import RunRecord

DASH = "–"
FORMATS = ("md", "csv", "html", "latex")
WRAP = 100  # Markdown paragraphs are wrapped here (tables are as wide as their cells)

RULES = (
    "A reproduced row is a *replicate group*: the runs of one configuration "
    "that differ only in the training seed. Its accuracy is the mean over seeds and test episodes ± the "
    "half-width of its 95% CI: the hierarchical CI (seeds + episodes, docs/statistics.md eq. (6)) when the "
    f"group has 2 or more seeds; with one seed only the episode-sampling CI is known, and the row is flagged "
    f"\"{ONE_SEED}\" ({ONE_SEED_MARK} in the methods x settings table). "
    "**Only groups on the canonical episode set** (the digest locked in `datasets/<name>/episodes.lock.yaml`, "
    f"{CANONICAL_EPISODES:,} episodes, 1 query per class), trained on the dataset they are tested on, above "
    "chance, using the supports and trained at the setting they are scored at **are ranked**; every other "
    "group is listed apart with the reason. **Ranking is done within a weights class**: pretrained groups in "
    "the main table, groups trained from random initialisation (`random-init`; every toy-dataset run) in a "
    "separate one. Groups that the seed-aware test cannot separate share a **tier**: walking down by mean "
    "accuracy, a group opens a new tier only if the Welch-Satterthwaite test of the group means (seed + "
    f"paired-episode variance, docs/statistics.md eq. (7)-(9), α = {TIER_ALPHA}) finds it worse than the "
    "best group of the current tier; single-seed groups get no tier. *Reported* numbers are printed in the "
    "papers (`leaderboards/reported/`): one row per method, backbone and training set, with every table "
    "that prints it; they are not ranked (other episodes, no per-episode results). In the methods x "
    "settings table, a reproduced row (↳) under a reported row is the method hosted here that its card "
    "names as that row; its cells add the difference reproduced − reported, in points."
)


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | note | list | table
    text: str = ""
    table: pd.DataFrame | None = None
    right: list[str] = field(default_factory=list)  # right-aligned columns
    details: list[str] = field(default_factory=list)  # columns left out of Markdown
    items: list[str] = field(default_factory=list)
    md: bool = True  # False: HTML only (details)
    html: bool = True  # False: Markdown only (a compact copy of an HTML table)


# -- cell formatting ----------------------------------------------------------------------------

def _fmt_millions(n: float | None, scale: float = 1e6) -> str:
    if n is None or not math.isfinite(n):
        return DASH
    return f"{n / scale:.3g}"


def _fmt_plain(x: float | None) -> str:
    return DASH if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:g}"


def _digest(d: str) -> str:
    return f"`{d[:12]}`" if d else DASH


def _training(rec: RunRecord) -> str:
    """What the weights went through: N episodes, none, or the run they were re-scored from."""
    src = rescored_from(rec)
    if src:
        return f"re-scored from {src}"
    steps = rec.identity.train_steps
    return DASH if steps is None else (f"{steps:,} episodes" if steps else "none")


def _group_cells(g) -> dict[str, str]:  # g: RunGroup
    rec = g.run
    i, e = rec.identity, rec.efficiency
    acc = DASH if not math.isfinite(g.accuracy) else (
        f"{g.accuracy:.2f} ± {g.ci95:.2f}" if math.isfinite(g.ci95) else f"{g.accuracy:.2f}")
    sd = g.seed_sd
    return {
        "method": i.method, "matcher": i.matcher or DASH, "backbone": i.backbone or DASH,
        "weights": i.weights_source or i.weights, "training": _training(rec), "seeds": str(g.seeds),
        "accuracy (%) ± 95% CI": acc, "seed SD": DASH if sd is None else f"{sd:.2f}",
        "hardware": g.hardware or DASH, "flags": "; ".join(g.flags) or DASH,
        # details (HTML and CSV only)
        "preset": i.preset or DASH, "frames": DASH if i.frames is None else str(i.frames),
        "episodes": f"{i.episodes:,}", "digest": _digest(i.episode_digest),
        "params (M)": _fmt_millions(e.params_total), "trainable (M)": _fmt_millions(e.params_trainable),
        "GFLOPs/video": _fmt_millions(e.flops_per_video, 1e9),
        "run keys": ", ".join(f"`{r.identity.run_key}`" for r in g.runs),
    }


DETAILS = ["preset", "frames", "episodes", "digest", "params (M)", "trainable (M)", "GFLOPs/video", "run keys"]
RIGHT = ["rank", "tier", "seeds", "accuracy (%) ± 95% CI", "seed SD", "frames", "episodes", "params (M)",
         "trainable (M)", "GFLOPs/video", "accuracy (%)", "GFLOPs"]


def ranked_table(rows: list[RankedRow]) -> pd.DataFrame:
    return pd.DataFrame([{"rank": str(r.rank), "tier": str(r.tier) if r.tier is not None else DASH,
                          **_group_cells(r.group)} for r in rows])


def unranked_table(rows: list[UnrankedRow]) -> pd.DataFrame:
    return pd.DataFrame([{**_group_cells(u.group), "why not ranked": u.reason} for u in rows])


def reported_table(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
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


def _has_runs(b: Board) -> bool:
    s = b.sections
    return bool(s.pretrained or s.random_init or s.unranked)


def _board_blocks(b: Board, lb: Leaderboard) -> list[Block]:
    alias = f" (reported as `{b.reported_name}`)" if b.reported_name and b.reported_name != b.dataset else ""
    if not b.setting:
        hint = " (reported rows: the papers' main tables; `--all-reported` adds the others)" if (
            lb.reported and not lb.all_reported and b.reported is not None) else ""
        return [Block("h2", f"{b.dataset}{alias}"), Block("note", f"No reproduced run and no reported row{hint}.")]
    s = b.sections
    runs = _has_runs(b)  # Markdown shows a setting's section only when it has reproduced runs
    out = [Block("h2", f"{b.dataset} · {setting_title(b.setting)} ({b.setting}){alias}", md=runs)]
    if s.canonical_digest:
        out.append(Block("p", f"Canonical episode set `{s.lock_key}`, digest `{s.canonical_digest[:12]}`.", md=runs))
    else:
        out.append(Block("p", "No locked episode set for this dataset and setting: no reproduced run can be "
                              "ranked.", md=runs))
    out.append(Block("h3", "Ranked: pretrained weights", md=runs))
    if s.pretrained:
        out.append(_table(ranked_table(s.pretrained)))
    else:
        out.append(Block("note", "No canonical run with pretrained weights.", md=runs))
    if s.random_init:
        out.append(Block("h3", "Ranked separately: trained from random initialisation"))
        out.append(Block("p", "Random initial weights (`random-init`): ranked among themselves only, not comparable "
                              "with pretrained runs or with the papers' numbers."))
        out.append(_table(ranked_table(s.random_init)))
    if s.unranked:
        out.append(Block("h3", "Listed apart (not ranked)"))
        out.append(_table(unranked_table(s.unranked)))
    out += [Block("note", note) for note in s.notes]
    if b.reported is not None:
        out.append(Block("h3", "Reported in the papers (not reproduced here; not ranked)", md=False))
        if b.reported.empty:
            out.append(Block("note", "No reported number for this dataset and setting"
                             + ("" if lb.all_reported else " in the papers' main comparison tables") + ".", md=False))
        else:
            out.append(_table(reported_table(b.reported), md=False))
    return out


def _table(df: pd.DataFrame, md: bool = True) -> Block:
    return Block("table", table=df, right=[c for c in RIGHT if c in df.columns],
                 details=[c for c in DETAILS if c in df.columns], md=md)


def _summary_blocks(summ: Summary | None, lb: Leaderboard) -> list[Block]:
    if summ is None:
        return []
    table = summ.table
    if (table["notes"] == DASH).all():
        table = table.drop(columns="notes")
    out = [Block("h2", "Methods × settings: accuracy (%)"), Block("table", table=table, right=summ.numeric)]
    items = [f"[{n}] {text}" for n, text in enumerate(summ.notes, 1)]
    if summ.one_seed:
        items.insert(0, f"{ONE_SEED_MARK} {ONE_SEED} (the ± is the episode-sampling CI only).")
    if items:
        out.append(Block("list", items=items))
    return out


def blocks(lb: Leaderboard) -> list[Block]:
    out = [Block("h1", _title(lb))]
    if lb.header:
        out.append(Block("note", lb.header))
    out.append(Block("p", "Reproduced fsar-bench runs (replicate groups over training seeds) and the numbers "
                          "printed in the papers; how to read it: the last section. Details (digests, parameter "
                          "counts, FLOPs, run keys, every reported row with its tables): `--format html` or "
                          "`--format csv`."))
    out += [Block("note", note) for note in lb.notes]
    if not lb.boards:
        out.append(Block("note", "Nothing to show: no reproduced run and no reported row matches."))
    out += _summary_blocks(summarize(lb), lb)
    if lb.boards and not any(_has_runs(b) for b in lb.boards if b.setting):
        out.append(Block("note", "No reproduced run for these settings yet.", ))
    for b in lb.boards:
        out.extend(_board_blocks(b, lb))
    if lb.cards:
        out.append(Block("h2", "Method cards"))
        out.append(Block("p", "The hosted methods of the rows above (`card.yaml` beside each method; "
                              "`fsar-bench list methods`); `--format html` adds the papers and the names of "
                              "their rows in the papers' tables (\"reported as\")."))
        cards = cards_table(lb.cards)
        compact = ["method", "pretraining", "fine-tuning", "text at test time"]
        if any(info.card is None for info in lb.cards):  # the "paper" cell says why a card is unavailable
            compact.insert(1, "paper")
        out.append(Block("table", table=cards[compact], html=False))
        out.append(Block("table", table=cards, md=False))
        for info in lb.cards:
            if info.card is not None and str(info.card.notes).strip():
                out.append(Block("p", f"**{info.name}**: {' '.join(str(info.card.notes).split())}", md=False))
    if lb.papers:
        out.append(Block("h2", "Sources of the reported rows"))
        out.append(Block("list", items=[f"{p.short}: {p.citation}" for p in lb.papers]))
        out.append(Block("p", "Extracted from the papers' result tables (main comparison tables by default; "
                              "`--all-reported` adds the ablations); `leaderboards/reported/README.md` gives the "
                              "columns, the rules for metadata not printed in a table and the doubtful cells."))
    out.append(Block("h2", "How to read this leaderboard"))
    out.append(Block("p", RULES))
    return out


# -- Markdown -----------------------------------------------------------------------------------

_SPANS = re.compile(r"(`[^`]*`)")


def _md_text(text: str) -> str:
    """`<...>` outside code spans as entities: a Markdown renderer would drop it as an HTML tag
    (`datasets.<name>.masks` would show as `datasets..masks`)."""
    parts = _SPANS.split(str(text))
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in parts)


def _md_cell(value: object) -> str:
    return _md_text(str(value)).replace("|", "\\|").replace("\n", " ")


def _md_table(b: Block) -> str:
    df = b.table.drop(columns=b.details)
    rows = [[_md_cell(v) for v in row] for row in df.itertuples(index=False)]
    align = ["right" if c in b.right else "left" for c in df.columns]
    return tabulate(rows, headers=[_md_cell(c) for c in df.columns], tablefmt="pipe", disable_numparse=True,
                    colalign=align)


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, WRAP, break_long_words=False, break_on_hyphens=False))


def to_markdown(lb: Leaderboard) -> str:
    parts = []
    for b in blocks(lb):
        if not b.md:
            continue
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"{'#' * int(b.kind[1])} {_md_text(b.text)}")
        elif b.kind == "note":
            parts.append(_wrap(f"_{_md_text(b.text)}_"))
        elif b.kind == "table":
            parts.append(_md_table(b))
        elif b.kind == "list":
            parts.append("\n".join(_wrap(f"- {_md_text(i)}").replace("\n", "\n  ") for i in b.items))
        else:
            parts.append(_wrap(_md_text(b.text)))
    return "\n\n".join(parts) + "\n"


# -- HTML ----------------------------------------------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_EM = re.compile(r"(?<![*\w])\*([^*]+)\*(?![*\w])")

CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}"
       "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
       "th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}"
       "td.num{text-align:right}th{background:#f3f3f3}p.note{font-style:italic;color:#555}")


def _inline(text: str) -> str:
    out = html.escape(text.replace("&lt;", "<").replace("&gt;", ">"), quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _EM.sub(r"<em>\1</em>", out)


def _html_table(b: Block) -> str:
    df = b.table
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    cls = [' class="num"' if c in b.right else "" for c in df.columns]
    body = "\n".join("<tr>" + "".join(f"<td{k}>{_inline(str(v))}</td>" for k, v in zip(cls, row)) + "</tr>"
                     for row in df.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def to_html(lb: Leaderboard) -> str:
    title = _title(lb)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    for b in blocks(lb):
        if not b.html:
            continue
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "note":
            parts.append(f'<p class="note">{_inline(b.text)}</p>')
        elif b.kind == "table":
            parts.append(_html_table(b))
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        else:
            parts.append(f"<p>{_inline(b.text)}</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# -- CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = ["dataset", "setting", "kind", "rank", "tier", "method", "matcher", "preset", "backbone",
               "pretraining", "finetune", "frames", "weights", "weights_source", "train_steps", "init_from",
               "accuracy", "ci95", "episodes", "episode_digest", "canonical_digest", "params_total",
               "params_trainable", "flops_per_video", "flops_per_episode", "gflops", "run_key", "mlflow_run_id",
               "group_key", "train_seed", "hardware_class", "seeds", "group_accuracy", "group_ci95", "seed_sd",
               "reason", "source_paper", "source_table", "own_implementation", "train_dataset", "hosted_as", "flags",
               "note"]


def _nan(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _group_rows(b: Board, kind: str, g, rank: int | None = None, tier: int | None = None,
                reason: str = "") -> list[dict]:
    """One CSV line per run of group `g`, each with the group's statistics."""
    from fsar_bench.leaderboard.replicates import group_key, hardware_class

    out = []
    for rec in g.runs:
        i, r, e = rec.identity, rec.results, rec.efficiency
        out.append({
            "dataset": b.dataset, "setting": b.setting, "kind": kind, "rank": rank, "tier": tier,
            "method": i.method, "matcher": i.matcher, "preset": i.preset, "backbone": i.backbone, "frames": i.frames,
            "weights": i.weights, "weights_source": i.weights_source, "train_steps": i.train_steps,
            "init_from": i.init_from, "accuracy": _nan(r.accuracy), "ci95": _nan(r.ci95), "episodes": i.episodes,
            "episode_digest": i.episode_digest, "canonical_digest": b.sections.canonical_digest or "",
            "params_total": _nan(e.params_total), "params_trainable": _nan(e.params_trainable),
            "flops_per_video": _nan(e.flops_per_video), "flops_per_episode": _nan(e.flops_per_episode),
            "run_key": i.run_key, "mlflow_run_id": rec.mlflow_run_id, "group_key": group_key(rec),
            "train_seed": i.train_seed, "hardware_class": hardware_class(rec), "seeds": g.seeds,
            "group_accuracy": _nan(g.accuracy), "group_ci95": _nan(g.ci95), "seed_sd": g.seed_sd,
            "reason": reason, "train_dataset": i.train_dataset, "flags": "; ".join(g.flags)})
    return out


def to_csv(lb: Leaderboard) -> str:
    rows = []
    for b in lb.boards:
        s = b.sections
        for r in s.pretrained:
            rows += _group_rows(b, "ranked-pretrained", r.group, r.rank, r.tier)
        for r in s.random_init:
            rows += _group_rows(b, "ranked-random-init", r.group, r.rank, r.tier)
        for u in s.unranked:
            rows += _group_rows(b, "unranked", u.group, reason=u.reason)
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
    for col in ("rank", "tier", "episodes", "train_steps", "frames", "seeds"):
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
    if fmt == "latex":
        from fsar_bench.leaderboard.latex import to_latex

        return to_latex(lb)
    raise ValueError(f"unknown format {fmt!r}")
