"""`--allow-missing` on a partial dataset (issue #19 §2): training and validation use the videos
present, the record holds per-split counts and digests, and the run is non-canonical and says
what fraction is present. Without the flag a missing training video is a one-line error."""

from __future__ import annotations

import json
import shutil

import pytest

from fsar_bench.data import cards as cards_mod
from fsar_bench.data.check import availability_digest

TEST = {"Archery": ["a1", "a2"], "Bowling": ["b1", "b2"]}
TRAIN = {"Diving": ["d1", "d2", "d3"], "Fencing": ["f1", "f2", "f3"]}
RUN = ["run", "protonet", "--dataset", "part_ucf", "--preset", "tiny", "--way", "2", "--shot", "1",
       "--episodes", "20", "--steps", "4"]


@pytest.fixture()
def partial(workdir, toy_data_root, monkeypatch):
    """Card 'part_ucf' (train and test splits) and a root with a copy of a toy video for every entry."""
    folder, root = workdir / "card", workdir / "videos"
    folder.mkdir()
    clip = next(iter(sorted((toy_data_root / "toy-appearance").rglob("*.mp4"))))
    for split, classes in (("train", TRAIN), ("test", TEST)):
        (folder / f"{split}.txt").write_text("".join(f"{c}/{v}\n" for c, vids in classes.items() for v in vids))
        for c, vids in classes.items():
            (root / c).mkdir(parents=True, exist_ok=True)
            for v in vids:
                shutil.copy(clip, root / c / f"{v}.mp4")
    (folder / "card.yaml").write_text(
        "name: part_ucf\nmodality: spatial\nsplits: {train: train.txt, test: test.txt}\n"
        'layout: {kind: video, pattern: "{cls}/{id}.mp4"}\nseeds: {test: part/test/v1, val: part/val/v1}\n')
    real = cards_mod._all_cards()
    card = cards_mod.load_card(folder / "card.yaml")
    monkeypatch.setattr(cards_mod, "_all_cards", lambda: {**real, "part_ucf": card})
    (root / "Diving" / "d3.mp4").unlink()
    return root


def test_missing_training_video_is_a_one_line_error(partial, workdir, cli):
    res = cli(*RUN, "--root", partial)
    assert res.code == 2, res.err
    line = [x for x in res.err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "1 videos of the train split of part_ucf" in line[0] and "--allow-missing" in line[0]
    assert not (workdir / "fsar-runs").exists() or not list((workdir / "fsar-runs").glob("protonet*"))


def test_allow_missing_trains_on_the_videos_present(partial, workdir, cli, one_thread):
    res = cli(*RUN, "--root", partial, "--allow-missing")
    assert res.code == 0, res.err
    assert "train 5/6 (83.3%) videos present" in res.out + res.err  # the user is told the fraction
    summary = json.loads(next((workdir / "fsar-runs").glob("protonet-part_ucf-*/summary.json")).read_text())
    ident = summary.get("identity", summary)
    avail = ident["data_availability"]
    present = [f"{c}/{v}" for c, vids in TRAIN.items() for v in vids if (c, v) != ("Diving", "d3")]
    assert avail == {"train.present": 5, "train.total": 6, "train.digest": "sha256:" + availability_digest(present)}
    assert ident["canonical"] is False and "83.3%" in ident["canonical_reason"]
    assert ident["trained"] is True
    assert summary["num_workers"] == 0  # the automatic value on CPU, recorded
