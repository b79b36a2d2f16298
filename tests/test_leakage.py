"""Class-overlap (leakage) audit, fsar_bench/leakage.py: name normalisation, the overlap rules, the
cross-dataset cases of issue #17 on the shipped split lists, pretraining label sets, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsar_bench.data.cards import get_card, list_cards
from fsar_bench.errors import FsarError
from fsar_bench.leakage import (audit, class_names, load_tables, name_key, normalise, overlap, resolve_pretraining,
                                stem_key, tables)


def test_normalise_case_separators_camelcase_articles_plurals():
    assert normalise("ApplyEyeMakeup") == "apply eye makeup"
    assert normalise("Blow DryHair") == "blow dry hair"  # UCF101's text name with a missing space
    assert normalise("ride_bike") == "ride bike" and normalise("riding a bike") == "riding bike"
    assert normalise("Poking a hole into [something soft]") == normalise("Poking a hole into something soft")
    assert normalise("hurling (sport)") == "hurling sport"
    assert name_key("PushUps") == name_key("push up") == name_key("pushup")
    assert name_key("SkyDiving") == name_key("skydiving")
    assert name_key("glass") == "glass" and name_key("discus") == "discus"  # ss/us endings are not plurals
    assert stem_key("smoke") == stem_key("smoking") and stem_key("run") == stem_key("running")
    assert stem_key("ride_bike") == stem_key("riding a bike")
    assert stem_key("string") != stem_key("str")  # "-ing" only comes off when a syllable is left


def test_overlap_rules_strongest_first():
    train = ["playing guitar", "riding a bike", "skipping rope", "surfing crowd", "smoking"]
    test = ["PlayingGuitar", "ride_bike", "JumpRope", "Surfing", "smoke", "Fencing"]
    assert sorted(overlap(train, test)) == [
        ("JumpRope", "skipping rope", "synonym: jumping rope"),
        ("PlayingGuitar", "playing guitar", "name"),
        ("ride_bike", "riding a bike", "stem"),
        ("smoke", "smoking", "stem"),
    ]  # crowd surfing is not surfing; fencing has no counterpart
    # name variants per class (folder class + text name): an anonymised id matches through its text name
    assert overlap({"train5": ["Dropping [something] into [something]"]},
                   {"Dropping something into something": "Dropping something into something"}) == [
        ("Dropping something into something", "train5", "name")]


def _class_ids_with_shared_videos(train_ds: str, test_ds: str) -> set[str]:
    train_ids = {v for _, v in get_card(train_ds).split("train").entries}
    return {c for c, v in get_card(test_ds).split("test").entries if v in train_ids}


def test_ssv2_full_to_small_overlap_agrees_with_shared_videos():
    rep = audit("ssv2_full", "ssv2_small")
    seen = {m.test_class for m in rep.seen_in_training}
    # Independent evidence: SSv2-Small test videos that are SSv2-Full training videos (one SSv2 pool)
    # belong to exactly the classes the name audit finds.
    assert seen == _class_ids_with_shared_videos("ssv2_full", "ssv2_small")
    assert len(seen) == 7 and rep.test_classes == 24 and all(m.rule == "name" for m in rep.seen_in_training)
    assert rep.shared_videos == 568 and rep.test_videos == 2400
    assert rep.flag() == "7 of 24 test classes seen in training (568 of 2,400 test videos are training videos)"
    d = rep.as_dict()
    assert {"test_class": "Squeezing something", "test_name": "Squeezing [something]", "train_class": "train51",
            "train_name": "Squeezing [something]", "rule": "name"} in d["seen_in_training"]
    back = audit("ssv2_small", "ssv2_full")  # anonymised test classes audited through their names
    assert back.training_flag() == "9 of 24 test classes seen in training"
    # no shared video in a class the names missed (the Small train / Full test lists share no video at all)
    assert _class_ids_with_shared_videos("ssv2_small", "ssv2_full") <= {m.test_class for m in back.seen_in_training}


def test_kinetics100_to_ucf101_and_hmdb51():
    ucf = audit("kinetics100", "ucf101")
    assert [(m.test_class, m.train_class) for m in ucf.seen_in_training] == [("BlowingCandles", "blowing out candles")]
    assert ucf.flag() == "1 of 21 test classes seen in training"
    hmdb = audit("kinetics100", "hmdb51")
    assert hmdb.seen_in_training == () and hmdb.flag() == "0 of 10 test classes seen in training"
    # Kinetics-400 pretraining covers most UCF101 test classes and some HMDB51 ones.
    ucf_k400 = audit("kinetics100", "ucf101", "Kinetics-400")
    covered = {m.test_class for m in ucf_k400.seen_in_pretraining}
    assert {"CleanAndJerk", "SkyDiving", "BlowingCandles", "Surfing", "JumpRope"} <= covered
    assert not covered & {"CuttingInKitchen", "HandstandWalking", "HorseRace", "PommelHorse", "StillRings"}
    assert ucf_k400.pretraining_flag() == f"{len(covered)} of 21 test classes in pretraining labels (Kinetics-400)"
    assert {m.test_class for m in audit("kinetics100", "hmdb51", "Kinetics-400").seen_in_pretraining} == {
        "kick_ball", "pushup", "smoke"}


def test_same_dataset_run_has_no_cross_dataset_flag():
    rep = audit("ucf101", "ucf101")
    assert not rep.cross_dataset and rep.seen_in_training == ()
    assert rep.training_flag() is None and rep.flag() is None
    assert audit("ucf101", "ucf101", "ImageNet").flag() is None  # object labels: nothing to match
    assert audit("hmdb51", "hmdb51", "CLIP").flag() == "pretraining CLIP: not auditable"
    # Kinetics-400 pretraining then Kinetics-100 testing: every test class was a pretraining class.
    k = audit("kinetics100", "kinetics100", "Kinetics-400")
    assert k.training_flag() is None and k.flag() == "24 of 24 test classes in pretraining labels (Kinetics-400)"


def test_kinetics400_list_holds_every_kinetics100_class():
    labels = {name_key(n) for s in tables().pretraining if s.name == "kinetics-400" for n in s.labels}
    assert len(labels) == 400
    card = get_card("kinetics100")
    assert all(name_key(c) in labels for split in ("train", "val", "test") for c in card.split(split).classes)


def test_pretraining_declarations():
    def names(decl: str) -> list[str]:
        return [s if isinstance(s, str) else s.name for s in resolve_pretraining(decl)]

    assert names("CLIP") == ["clip"] and names("CLIP-ViT-B/32") == ["clip"]
    assert names("ImageNet") == ["imagenet"] and names("IN21K") == ["imagenet-21k"]
    assert names("ImageNet-21k + Kinetics-400") == ["imagenet-21k", "kinetics-400"]
    assert names("JFT-300M") == ["JFT-300M"]  # unknown: returned as text
    rep = audit("ucf101", "ucf101", "JFT-300M")
    assert rep.pretraining_auditable is False and rep.flag() == "pretraining JFT-300M: not auditable"
    assert any("unknown pretraining source 'JFT-300M'" in n for n in rep.notes)
    both = audit("ucf101", "ucf101", "CLIP + Kinetics-400")  # partially auditable: still flagged as not auditable
    assert both.pretraining_auditable is False and len(both.seen_in_pretraining) > 0


def test_synonym_table_names_are_real_classes_and_each_entry_adds_a_match():
    known = set()
    for ds in list_cards():
        card = get_card(ds)
        for split in card.split_files:
            for variants in class_names(card, split)[0].values():
                known |= {stem_key(v) for v in variants}
    known |= {stem_key(n) for s in tables().pretraining for n in s.labels}
    import yaml

    from fsar_bench.data.cards import datasets_dir

    data = yaml.safe_load((datasets_dir() / "leakage" / "synonyms.yaml").read_text())
    for concept, names in data["synonyms"].items():
        assert all(stem_key(n) in known for n in names), (concept, [n for n in names if stem_key(n) not in known])
        assert len({stem_key(n) for n in names}) >= 2, f"{concept!r}: the normalisation rules already match it"


def test_bad_table_is_a_one_line_error(tmp_path: Path):
    bad = tmp_path / "synonyms.yaml"
    bad.write_text("synonyms: {skiing: [Skiing]}\n")
    with pytest.raises(FsarError, match="at least 2 class names") as exc:
        load_tables(bad)
    assert "\n" not in str(exc.value)
    bad.write_text("synonyms: {}\npretraining: {k400: {aliases: [k400], labels: missing.txt}}\n")
    with pytest.raises(FsarError, match="missing"):
        load_tables(bad)
