"""The papers' published numbers (`leaderboards/reported/`), filtered to one dataset and setting.

The CSVs are copies of the extraction described in `leaderboards/reported/README.md`: one row per
accuracy cell of the DMGAL, MA-FSAR and I2ST papers. A leaderboard shows, by default, the rows of
the papers' main comparison tables (`MAIN_TABLES`); ablation tables repeat the headline numbers
many times and are shown only with `all_tables=True`. The same number printed in two tables of
one paper (e.g. I2ST Table 2 and the 5-way column of Table 6) is one row whose `source_table`
names both; the same method cited by two papers stays two rows, one per source.

Dataset names: the leaderboard uses the dataset card names (`ucf101`, `kinetics100`, ...); a
card's `reported_name` is the `test_dataset` value of the CSVs (`kinetics100` -> `kinetics`).
`test_dataset` values with no card (the SSv2-Full short-clip subsets `ssv2_full_3s`/`_5s`) are
leaderboard datasets of their own, with reported rows only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from fsar_bench import episodes
from fsar_bench.errors import FsarError, unknown


@dataclass(frozen=True)
class Paper:
    key: str
    short: str
    citation: str


PAPERS: dict[str, Paper] = {
    "dmgal": Paper("dmgal", "DMGAL",
                   "Guo, Yu, Que, Du, Yan, Wang. Video-to-Task Learning via Motion-Guided Attention for "
                   "Few-Shot Action Recognition (DMGAL). arXiv:2411.11335"),
    "ma_fsar": Paper("ma_fsar", "MA-FSAR",
                     "Xing, Zhao, Xu, Wang, Dai, Liu, Wang, Li. MA-FSAR: Multimodal Adaptation of CLIP for "
                     "few-shot action recognition"),
    "i2st": Paper("i2st", "I2ST",
                  "Qian, Zhang, Huang, Wang, Ying. Joint Image-Instance Spatial-Temporal Attention for "
                  "Few-shot Action Recognition (I2ST)"),
}

# The papers' comparison-with-the-state-of-the-art tables (README "To keep only the headline
# comparisons"), plus I2ST Table 6 (N-way 1-shot comparison, the only source of 6..10-way rows).
MAIN_TABLES: tuple[str, ...] = (
    "DMGAL Table II", "DMGAL Table III", "DMGAL Table IV",
    "MA-FSAR Table 1", "MA-FSAR Table 2",
    "I2ST Table 1", "I2ST Table 2", "I2ST Table 6",
)

ACCURACY_COLUMNS = ["source_paper", "source_table", "method", "backbone", "pretraining", "finetune", "matcher",
                    "train_dataset", "test_dataset", "way", "shot", "frames", "accuracy", "own_implementation",
                    "note"]


def reported_dir() -> Path:
    """`leaderboards/reported/` (installed as part of the namespace package `fsar_leaderboards`)."""
    spec = importlib.util.find_spec("fsar_leaderboards")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if (Path(loc) / "reported" / "accuracy.csv").exists():
                return Path(loc) / "reported"
    here = Path(__file__).resolve().parents[2] / "leaderboards" / "reported"
    if (here / "accuracy.csv").exists():
        return here
    raise FsarError("the reported results (leaderboards/reported/accuracy.csv) are not installed",
                    "reinstall fsar-bench, or pass --no-reported")


def parse_setting(text: str) -> tuple[int, int]:
    parsed = episodes.parse_setting(text)
    if parsed is None:
        raise FsarError(f"setting {text!r} is not of the form <way>w<shot>s", "write e.g. --setting 5w1s")
    return parsed


setting_name = episodes.setting_name


def setting_title(setting: str) -> str:
    way, shot = parse_setting(setting)
    return f"{way}-way {shot}-shot" if shot else f"{way}-way zero-shot"


def _bool(series: pd.Series) -> pd.Series:
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


@lru_cache(maxsize=4)
def _load(folder: str) -> pd.DataFrame:
    base = Path(folder)
    try:
        acc = pd.read_csv(base / "accuracy.csv", dtype=str, keep_default_na=False)
        eff = pd.read_csv(base / "efficiency.csv", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise FsarError(f"cannot read the reported results in {base} ({type(exc).__name__})",
                        "restore leaderboards/reported/ from git, or pass --no-reported") from None
    missing = set(ACCURACY_COLUMNS) - set(acc.columns)
    if missing:
        raise FsarError(f"{base / 'accuracy.csv'} lacks the columns {sorted(missing)}",
                        "restore leaderboards/reported/ from git")
    for col in ("way", "shot", "frames"):
        acc[col] = pd.to_numeric(acc[col]).astype(int)
    acc["accuracy"] = pd.to_numeric(acc["accuracy"]).astype(float)
    acc["own_implementation"] = _bool(acc["own_implementation"])
    # Efficiency figures of the same cell (efficiency tables repeat their accuracy rows exactly).
    eff = eff[eff["accuracy"] != ""].copy()
    for col in ("way", "shot"):
        eff[col] = pd.to_numeric(eff[col]).astype(int)
    eff["accuracy"] = pd.to_numeric(eff["accuracy"]).astype(float)
    keys = ["source_table", "method", "backbone", "test_dataset", "way", "shot", "accuracy"]
    eff = eff.rename(columns={"dataset": "test_dataset"})
    eff = eff[keys + ["params_total_m", "params_trainable_m", "gflops"]].drop_duplicates(keys)
    out = acc.merge(eff, on=keys, how="left")
    for col in ("params_total_m", "params_trainable_m", "gflops"):
        out[col] = pd.to_numeric(out[col].replace("", None), errors="coerce").astype(float)
    out["setting"] = [setting_name(w, s) for w, s in zip(out["way"], out["shot"])]
    return out


def load_reported(folder: Path | None = None) -> pd.DataFrame:
    """Every accuracy row, with `setting` and (from efficiency.csv) params/GFLOPs where printed."""
    return _load(str(folder or reported_dir())).copy()


# -- dataset names ------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@lru_cache(maxsize=1)
def _datasets(folder: str) -> tuple[dict[str, str], dict[str, str]]:
    """(board name -> reported test_dataset name, alias -> board name)."""
    from fsar_bench.data.cards import get_card, list_cards

    to_reported: dict[str, str] = {}
    for name in list_cards():
        to_reported[name] = get_card(name).reported_name or name
    taken = set(to_reported.values())
    try:
        names = sorted(set(_load(folder)["test_dataset"]))
    except FsarError:
        names = []
    for rep in names:
        if rep not in taken:  # a reported-only dataset (SSv2-Full short-clip subsets)
            to_reported[rep] = rep
    aliases: dict[str, str] = {}
    for board, rep in to_reported.items():
        aliases.setdefault(_norm(rep), board)
    for board in to_reported:
        aliases[_norm(board)] = board
    return to_reported, aliases


def _folder_or_none() -> str:
    try:
        return str(reported_dir())
    except FsarError:
        return ""


def board_datasets() -> list[str]:
    """Leaderboard dataset names: the dataset cards, then reported-only test datasets."""
    from fsar_bench.data.cards import list_cards

    cards = list_cards()
    rest = sorted(set(_datasets(_folder_or_none())[0]) - set(cards))
    return [*cards, *rest]


def resolve_dataset(name: str) -> str:
    """The leaderboard name of `name`: a card name, or a reported name (`kinetics` -> `kinetics100`);
    case, `_` and `-` are not significant."""
    to_reported, aliases = _datasets(_folder_or_none())
    board = aliases.get(_norm(name))
    if board is None:
        raise unknown("dataset", name, to_reported, "run `fsar-bench list datasets`")
    return board


def reported_name(board: str) -> str:
    return _datasets(_folder_or_none())[0].get(board, board)


def has_reported(board: str) -> bool:
    """Whether the papers report any number on `board` (false for the toy datasets)."""
    folder = _folder_or_none()
    return bool(folder) and reported_name(board) in set(_load(folder)["test_dataset"])


# -- rows of one dataset ------------------------------------------------------------------------

def _flags(row: pd.Series) -> str:
    flags = []
    if row["own_implementation"]:
        flags.append("re-run by the citing paper")
    train, test = row["train_dataset"], row["test_dataset"]
    if train == "none":
        flags.append("no meta-training")
    elif train and not test.startswith(train):  # ssv2_full_3s is a test subset of ssv2_full
        flags.append(f"trained on {train}")
    note = row["note"]
    if "re-split" in note and "NOT the standard" in note:
        flags.append("random class re-split, not the standard split")
    for marker in ("DOUBTFUL:", "INCONSISTENT in paper:"):
        if marker in note:  # the flag runs to the end of the note (README: flags close the note)
            flags.append(note[note.index(marker):].strip())
    return "; ".join(flags)


def reported_rows(board: str, settings: list[str] | None = None, all_tables: bool = False,
                  folder: Path | None = None) -> pd.DataFrame:
    """The reported rows of leaderboard dataset `board`, best first per setting.

    Columns: setting, method, backbone, pretraining, finetune, matcher, train_dataset, accuracy,
    source_paper, paper, source_table, own_implementation, flags, note, params_total_m,
    params_trainable_m, gflops.
    """
    df = load_reported(folder)
    df = df[df["test_dataset"] == reported_name(board)]
    if not all_tables:
        df = df[df["source_table"].isin(MAIN_TABLES)]
    if settings:
        df = df[df["setting"].isin(settings)]
    if df.empty:
        return df.assign(paper=pd.Series(dtype=str), flags=pd.Series(dtype=str))
    # One row per number within a paper: tables of one paper that print the same cell are merged.
    order = {t: i for i, t in enumerate(df["source_table"].drop_duplicates())}
    df = df.assign(_t=df["source_table"].map(order)).sort_values(["_t"], kind="stable")
    key = ["source_paper", "method", "backbone", "train_dataset", "test_dataset", "way", "shot", "accuracy"]
    tables = df.groupby(key, sort=False)["source_table"].agg(
        lambda s: ", ".join(dict.fromkeys(s)))
    df = df.drop_duplicates(key).set_index(key)
    df["source_table"] = tables
    df = df.reset_index()
    df["paper"] = df["source_paper"].map(lambda k: PAPERS[k].short if k in PAPERS else k)
    df["flags"] = df.apply(_flags, axis=1)
    df = df.sort_values(["way", "shot", "accuracy", "source_paper", "source_table", "method", "backbone"],
                        ascending=[True, True, False, True, True, True, True], kind="stable")
    return df.drop(columns=["_t"]).reset_index(drop=True)
