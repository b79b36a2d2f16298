"""Leaderboard rows that would mislead (issue #20) and the LaTeX output, from in-memory run records."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from fsar_bench.data.cards import get_card
from fsar_bench.episodes.locks import read_lock
from fsar_bench.results.record import Identity, Results, RunRecord

N = 10_000
DIGEST = read_lock(get_card("toy-motion"))["test-5w1s-1q-10000"]["digest"]


def _acc(seed: int, p: float) -> np.ndarray:
    return np.random.default_rng(seed).binomial(5, p, N) / 5.0


def rec(key: str, acc: np.ndarray, seed: str = "0", **ident) -> RunRecord:
    fields = dict(run_key=key, method="protonet", matcher="proto", dataset="toy-motion", train_dataset="toy-motion",
                  way=5, shot=1, episodes=N, episode_digest=DIGEST, canonical=True, train_seed=seed, train_steps=150,
                  trained=True, preset="tiny", backbone="test_resnet")
    fields.update(ident)
    return RunRecord(Identity(**fields), results=Results(accuracy=acc.mean() * 100, ci95=0.3, per_episode=acc,
                                                         episode_ids=np.arange(N)), mlflow_run_id=key)


def board(records: list[RunRecord], fmt: str = "md") -> str:
    from fsar_bench.leaderboard import make

    return make(records, ["toy-motion"], ["5w1s"], fmt=fmt)


def sections(records: list[RunRecord]):
    from fsar_bench.leaderboard.reproduced import classify

    return classify(records, "toy-motion", "5w1s")


def test_rescored_sweep_point_says_where_its_weights_come_from():
    """A re-scored sweep point has 0 training steps of its own: say 're-scored from <run>', never rank it."""
    trained = rec("trained", _acc(1, 0.8))
    point = rec("point", _acc(2, 0.8), train_steps=0, trained=False,
                init_from="/x/fsar-runs/protonet-toy-motion-5w3s-0123456789ab/final.pt")
    sec = sections([trained, point])
    assert [r.run.identity.run_key for r in sec.random_init] == ["trained"]
    (apart,) = sec.unranked
    assert "re-scored from protonet-toy-motion-5w3s-0123456789ab" in apart.reason
    text = board([trained, point])
    assert "re-scored from protonet-toy-motion-5w3s-0123456789ab" in text
    line = next(ln for ln in text.splitlines() if "re-scored from" in ln and ln.startswith("|"))
    assert "| none " not in line and "| 0 " not in line  # not shown as untrained


def test_same_config_twice_is_one_row():
    """The same configuration and seed logged under two run keys is one replicate (the latest), one row."""
    first = rec("old-key", _acc(3, 0.7))
    again = rec("new-key", _acc(4, 0.7))
    first.end_time, again.end_time = 1, 2
    sec = sections([first, again])
    assert len(sec.random_init) == 1 and sec.random_init[0].group.seeds == 1
    assert sec.random_init[0].run.identity.run_key == "new-key"
    text = board([first, again])
    assert sum(ln.startswith("| protonet (proto)") for ln in text.splitlines()) == 1


def test_seeds_of_one_config_are_one_group_row():
    runs = [rec(f"k{n}", _acc(10 + n, 0.7 + 0.02 * n), seed=str(n)) for n in range(3)]
    sec = sections(runs)
    (row,) = sec.random_init
    assert row.group.seeds == 3 and row.tier == 1 and row.group.seed_sd > 0


def test_below_chance_is_listed_apart_with_the_reason():
    """#20: ma_fsar at 18.8 % on 5-way (one class for every query) must not be ranked silently."""
    fine = rec("fine", _acc(5, 0.6))
    broken = rec("broken", _acc(6, 0.188), matcher="otam")
    sec = sections([fine, broken])
    assert [r.run.identity.run_key for r in sec.random_init] == ["fine"]
    (apart,) = sec.unranked
    assert apart.run.identity.run_key == "broken" and "below chance" in apart.reason and "20.0 %" in apart.reason
    assert "below chance" in board([fine, broken])


def test_zero_shot_method_is_not_ranked_at_k_shot():
    """clip_zeroshot never looks at the supports: a 5w1s run of it is not ranked as 1-shot."""
    zs = rec("zs", _acc(7, 0.6), method="clip_zeroshot", matcher="proto", train_steps=0, trained=False)
    other = rec("other", _acc(8, 0.5))
    sec = sections([zs, other])
    assert [r.run.identity.run_key for r in sec.random_init] == ["other"]
    assert "zero-shot method (supports unused)" in sec.unranked[0].reason and "5w0s" in sec.unranked[0].reason


def test_leakage_flag_on_cross_dataset_rows(monkeypatch):
    """#17 item 6: the class-overlap audit's flag is shown on the row (recorded by the run, or audited)."""
    from fsar_bench.leaderboard import reproduced

    cross = rec("cross", _acc(9, 0.7), train_dataset="toy-appearance")
    cross.identity.leakage = {"flag": "7 of 21 test classes seen in training"}
    text = board([cross])
    assert "7 of 21 test classes seen in training" in text and "cross-dataset" in text
    monkeypatch.setattr(reproduced, "leakage_flag", lambda r: "3 of 24 test classes seen in training")
    assert "3 of 24 test classes seen in training" in board([rec("x", _acc(9, 0.7), train_dataset="other")])


def _latex(records: list[RunRecord]) -> str:
    return board(records, fmt="latex")


def test_latex_is_booktabs_and_escaped():
    runs = [rec(f"k{n}", _acc(20 + n, 0.7), seed=str(n), matcher="my_matcher") for n in range(2)]
    runs.append(rec("single", _acc(30, 0.5), matcher="otam"))
    text = _latex(runs)
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") >= 2
    assert text.count(r"\begin{table}") == text.count(r"\end{table}")
    assert r"\toprule" in text and r"\midrule" in text and r"\bottomrule" in text
    for spec, body in re.findall(r"\\begin\{tabular\}\{([lr]+)\}\n(.*?)\\end\{tabular\}", text, re.S):
        rows = [ln for ln in body.splitlines() if ln.endswith(r"\\")]
        assert rows and all(ln.replace(r"\&", "").count("&") == len(spec) - 1 for ln in rows)
    assert r"my\_matcher" in text and "my_matcher" not in text.replace(r"my\_matcher", "")
    assert r"$\pm$" in text and "±" not in text and "%" not in text.replace(r"\%", "").split("\n", 1)[1]
    assert r"$^{\dagger}$" in text  # the single-seed mark
    assert all(ord(ch) < 128 for ch in text)


def test_ucf101_latex_renders_with_pdflatex(tmp_path):
    from fsar_bench.leaderboard import make

    text = make([], ["ucf101"], fmt="latex")
    assert all(ord(ch) < 128 for ch in text) and "OTAM" in text
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (the LaTeX-free checks above ran)")
    (tmp_path / "board.tex").write_text(text)
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n"
                                      "\\begin{document}\n\\input{board.tex}\n\\end{document}\n")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_rescored_point_survives_a_snapshot(tmp_path):
    """Committed boards render from snapshots: a re-scored point must still say where its weights came from."""
    from fsar_bench.leaderboard import load_snapshot, save_snapshot

    point = rec("point", _acc(2, 0.8), train_steps=0, trained=False, init_from="runs/protonet-a-0123/final.pt")
    save_snapshot([point], tmp_path / "s.json")
    (again,) = load_snapshot(tmp_path / "s.json")
    assert again.identity.init_from == "runs/protonet-a-0123/final.pt"
    assert "re-scored from protonet-a-0123" in board([again])


@pytest.mark.parametrize(("ident", "reason"), [({"evaluated_only": True}, "evaluated, not trained here"),
                                               ({"precision": "bf16"}, "bf16 arithmetic")])
def test_evaluated_checkpoints_and_reduced_precision_are_listed_apart(ident, reason):
    """#19: weights evaluated with `fsar-bench eval` are never ranked as reproduced training runs, and
    bf16/fp16 runs are not ranked with fp32 ones; both are listed apart with the reason."""
    trained = rec("trained", _acc(1, 0.8))
    other = rec("other", _acc(2, 0.8), seed="1", **ident)
    sec = sections([trained, other])
    assert [r.run.identity.run_key for r in sec.random_init] == ["trained"]
    (apart,) = sec.unranked
    assert reason in apart.reason
    assert reason in board([trained, other])
