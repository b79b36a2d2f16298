"""LaTeX (booktabs) for papers: the methods x settings table and each setting's ranked groups.

The output is a fragment to `\\input` in a document that loads booktabs (`\\usepackage{booktabs}`);
every cell is escaped (`%`, `_`, `&`, `#`, `$`, `{`, `}`, `~`, `^`, `\\`), `±` and `Δ` are math, en
dashes are `--`. Numbers are right-aligned (`r` columns).
"""

from __future__ import annotations

import pandas as pd

from fsar_bench.leaderboard.build import Leaderboard
from fsar_bench.leaderboard.reported import setting_title
from fsar_bench.leaderboard.summary import ONE_SEED_MARK, summarize
from fsar_bench.results.groups import ONE_SEED

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--",
            "−": "--", "×": r"$\times$", "↳": r"$\hookrightarrow$", "α": r"$\alpha$", "·": r"$\cdot$",
            "†": r"$^{\dagger}$", "`": ""}


def escape(text: object) -> str:
    """`text` safe in a LaTeX cell (no other non-ASCII is produced by the leaderboard)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def tabular(df: pd.DataFrame, right: list[str]) -> str:
    """A booktabs `tabular` of `df` (header row, \\midrule, one row per line)."""
    spec = "".join("r" if c in right else "l" for c in df.columns)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def _table(body: str, caption: str, notes: list[str]) -> str:
    out = [r"\begin{table}[t]", r"\centering", r"\footnotesize", body]
    if notes:  # one paragraph per note (`\\` would take a following `[n]` as its optional argument)
        out.append(r"\par\smallskip\raggedright" + "".join(f"\n\\par {escape(n)}" for n in notes))
    out += [rf"\caption{{{escape(caption)}}}", r"\end{table}"]
    return "\n".join(out)


def to_latex(lb: Leaderboard) -> str:
    from fsar_bench.leaderboard.render import ranked_table

    parts = ["% fsar-bench leaderboard (LaTeX, booktabs): \\input this file; the document needs \\usepackage{booktabs}"]
    summ = summarize(lb)
    if summ is not None:
        notes = [f"[{n}] {t}" for n, t in enumerate(summ.notes, 1)]
        if summ.one_seed:
            notes.insert(0, f"{ONE_SEED_MARK} {ONE_SEED}.")
        names = ", ".join(dict.fromkeys(b.dataset for b in lb.boards))
        parts.append(_table(tabular(summ.table, summ.numeric),
                            f"Accuracy (%) on {names}: methods × settings (reproduced ↳ with the difference to the "
                            "reported number).", notes))
    for b in lb.boards:
        for name, rows in (("pretrained weights", b.sections.pretrained),
                           ("random initialisation", b.sections.random_init)):
            if rows:
                df = ranked_table(rows)[["rank", "tier", "method", "matcher", "seeds", "accuracy (%) ± 95% CI",
                                         "seed SD", "hardware"]]
                parts.append(_table(tabular(df, ["rank", "tier", "seeds", "accuracy (%) ± 95% CI", "seed SD"]),
                                    f"{b.dataset}, {setting_title(b.setting)}: ranked groups, {name}.", []))
    return "\n\n".join(parts) + "\n"
