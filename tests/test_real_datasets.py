"""The five real dataset cards: they load, match the counts and md5s recorded in the shared
SOURCES.md (datasets/<name>/PROVENANCE.md), keep their splits disjoint and name every class."""

from __future__ import annotations

import hashlib

import pytest

from fsar_bench.data.cards import SPLITS, get_card, list_cards

# name: (classes, videos per split (train, val, test), modality, flip, layout, reported name)
EXPECTED = {
    "ssv2_full": ((64, 12, 24), (67_013, 1_926, 2_857), "temporal", False, ("video", "{id}.webm"), "ssv2_full"),
    "ssv2_small": ((64, 12, 24), (6_400, 1_200, 2_400), "temporal", False, ("video", "{id}.webm"), "ssv2_small"),
    "kinetics100": ((64, 12, 24), (6_400, 1_200, 2_400), "spatial", True, ("video", "{cls}/{id}.mp4"), "kinetics"),
    "hmdb51": ((31, 10, 10), (4_280, 1_194, 1_292), "spatial", True, ("video", "{cls}/{id}.avi"), "hmdb51"),
    "ucf101": ((70, 10, 21), (9_154, 1_421, 2_745), "spatial", True, ("video", "{cls}/{id}.avi"), "ucf101"),
}
# md5 of the split lists as recorded in SOURCES.md: the copies must be byte-for-byte.
MD5 = {
    "ssv2_full": {"trainlist07.txt": "bab33dd7a351740305a76527b99df726", "vallist07.txt": "488fcb18fcb73caf28be598237828fc0",
                  "testlist07.txt": "5a8e014f4126728d453f9936f1cf2763"},
    "ssv2_small": {"train.list": "f5e8d7692df52f2a1da6fded9e23a38f", "val.list": "8dc8f5f3af0bcb91f050d9a25e53804b",
                   "test.list": "0bdd4c08ba6f617fbd6844f857f4e5fe"},
    "kinetics100": {"train.list": "96cc2043637980ceae4966ad30716451", "val.list": "bf4bc6627bd4d3211ac253e64a7ff713",
                    "test.list": "98c8ed5ef1a3a5bf932f78cf35929f97"},
    "hmdb51": {"trainlist03.txt": "1e52ef93c09381bb8d8dd8dcd64a7e21", "vallist03.txt": "96c1b6a72c255a709803c3151dd1654f",
               "testlist03.txt": "07759a51f1526a077bcb61e03bf76934"},
    "ucf101": {"trainlist03.txt": "e74a539253f5adb5b77707d499f80b63", "vallist03.txt": "d607d77ff4517fa5252f4bb7c1e7313d",
               "testlist03.txt": "0d4fe05e9f41d02fb250fbe414e8b7be"},
}
NAMES = list(EXPECTED)


def test_all_real_cards_are_listed():
    assert set(NAMES) <= set(list_cards())


@pytest.mark.parametrize("name", NAMES)
def test_card_loads_with_expected_fields(name):
    classes, videos, modality, flip, (kind, pattern), reported = EXPECTED[name]
    card = get_card(name)
    assert card.name == name and not card.is_toy
    assert card.modality == modality and card.flip is flip
    assert (card.layout.kind, card.layout.pattern) == (kind, pattern)
    assert card.reported_name == reported
    assert card.seeds == {"test": f"fsar-bench/{name}/test/v1", "val": f"fsar-bench/{name}/val/v1"}
    assert card.class_map_file == "class_map.tsv" and card.text_column == "clipfsar_text_name"
    assert card.provenance.strip() and card.notes.strip()
    assert (card.folder / "PROVENANCE.md").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_split_counts_match_sources(name):
    classes, videos = EXPECTED[name][:2]
    card = get_card(name)
    assert tuple(len(card.split(s).by_class) for s in SPLITS) == classes
    assert tuple(len(card.split(s)) for s in SPLITS) == videos
    for s in SPLITS:  # no duplicate lines
        assert len(set(card.split(s).entries)) == len(card.split(s))


@pytest.mark.parametrize("name", NAMES)
def test_split_lists_are_byte_copies(name):
    card = get_card(name)
    assert set(card.split_files.values()) == set(MD5[name])
    for file, md5 in MD5[name].items():
        assert hashlib.md5((card.folder / file).read_bytes()).hexdigest() == md5, file


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_disjoint(name):
    card = get_card(name)
    card.check_disjoint()
    videos = [{v for _, v in card.split(s).entries} for s in SPLITS]
    assert not (videos[0] & videos[1] or videos[0] & videos[2] or videos[1] & videos[2])


@pytest.mark.parametrize("name", NAMES)
def test_every_class_has_a_text_name(name):
    card = get_card(name)
    for s in ("train", "test"):  # from the CLIP-FSAR configs
        for cls in card.split(s).classes:
            assert card.text_names.get(cls, "").strip(), (s, cls)
    for cls in card.split("val").classes:  # the configs name no val class: fall back to the class
        assert cls not in card.text_names
        assert card.text_name(cls) == cls.replace("_", " ")
        if name == "ssv2_full":  # anonymised: the fallback is the pseudo-label
            assert cls.startswith("val")
        else:
            assert not cls.startswith("val")


def test_ssv2_full_notes_record_the_count_mismatch():
    notes = get_card("ssv2_full").notes
    for number in ("67,013", "1,926", "2,857", "77,500", "1,925", "2,854"):
        assert number in notes
    assert "val class names are unknown" in notes


def test_kinetics_notes_explain_the_underscore_layout():
    assert "{cls_}/{id}.mp4" in get_card("kinetics100").notes


# the frame-folder layouts of the public releases (docs/datasets.md "Frame folders"): real ids
# (spaces in Kinetics classes, SSv2's flat ids) through the data check; one line per case
FRAME_LAYOUTS = [
    ("ucf101", "{cls}/{id}", "img_{:05d}.jpg"),  # MMAction2 rawframes
    ("hmdb51", "{cls}/{id}", "{:08d}.jpg"),  # TRX
    ("kinetics100", "{cls_}/{id}", "frame{:04d}.png"),
    ("ssv2_small", "{id}", "{:08d}.jpg"),
]


@pytest.mark.parametrize(("name", "pattern", "frame_name"), FRAME_LAYOUTS)
def test_real_cards_read_frame_folders(tmp_path, name, pattern, frame_name):
    import numpy as np
    from PIL import Image

    from fsar_bench.data.cards import Layout
    from fsar_bench.data.check import check_dataset
    from fsar_bench.data.source import VideoSource

    card = get_card(name)
    source = VideoSource(card, tmp_path / "frames", Layout("frames", pattern))
    present = card.split("test").entries[:2]
    for i, (cls, vid) in enumerate(present):
        folder = source.path(cls, vid)
        folder.mkdir(parents=True)
        for t in range(9 + i):
            Image.fromarray(np.full((16, 20, 3), 20 * t, np.uint8)).save(folder / frame_name.format(t + 1))
    report = check_dataset(source, splits=["test"], frames=8, write=False, workers=1)
    assert report.available == 2 and not report.corrupt
    assert set(report.missing) == {f"{c}/{v}" for c, v in card.split("test").entries} - {f"{c}/{v}" for c, v in present}
