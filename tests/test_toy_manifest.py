"""A prepared toy dataset is checked against its manifest before it is used (#15): sizes on
every run (a stat per file), SHA-256 digests in `data prepare` and `data check`. A bad file or a
root that is a file is a one-line error naming it and the fix, exit code 2, nothing written."""

from __future__ import annotations

import shutil

import pytest

from fsar_bench.data import toy
from fsar_bench.data.cards import get_card

CARD = get_card("toy-appearance")


def _video(root):
    cls, vid = CARD.split("test").entries[0]
    return root / f"{cls}/{vid}.mp4"


def _missing(root):
    _video(root).unlink()
    return "is missing"


def _truncated(root):
    data = _video(root).read_bytes()
    _video(root).write_bytes(data[: len(data) // 2])
    return f"has {len(data) // 2} bytes, not the {len(data)} of its manifest"


def _missing_mask(root):
    cls, vid = CARD.split("train").entries[-1]
    (root / "masks" / cls / f"{vid}.png").unlink()
    return "is missing"


def _bad_manifest(root):
    (root / toy.MANIFEST).write_text("not a manifest\n")
    return "is not a manifest of toy-appearance"


@pytest.fixture()
def toy_copy(tmp_path, toy_data_root):
    """A private copy of the session's toy-appearance, to damage."""
    return shutil.copytree(toy_data_root / "toy-appearance", tmp_path / "toy-appearance")


def _one_line_error(res, *needles):
    assert res.code == 2, (res.out, res.err)
    lines = [line for line in res.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("damage", [_missing, _truncated, _missing_mask, _bad_manifest])
def test_run_on_a_damaged_toy_dataset_is_a_one_line_error(damage, toy_copy, workdir, cli):
    expected = damage(toy_copy)
    res = cli("run", "protonet", "--dataset", "toy-appearance", "--root", toy_copy, "--no-train", "--episodes", "10")
    line = _one_line_error(res, expected, f"delete {toy_copy}")
    assert "fsar-bench data prepare toy-appearance" in line
    assert not (workdir / "fsar-runs").exists() or not any((workdir / "fsar-runs").glob("protonet-*"))


def test_same_size_modification_is_found_by_data_check(toy_copy, workdir, cli):
    data = bytearray(_video(toy_copy).read_bytes())
    data[len(data) // 2] ^= 0xFF
    _video(toy_copy).write_bytes(bytes(data))
    toy.verify(toy_copy, CARD)  # sizes: what a run checks, cheaply, passes
    for args in (("data", "check", "toy-appearance"), ("data", "prepare", "toy-appearance")):
        res = cli(*args, "--root", toy_copy)
        _one_line_error(res, str(_video(toy_copy)), "does not match its SHA-256")


@pytest.mark.parametrize("args", [("run", "protonet", "--dataset", "toy-appearance", "--no-train", "--episodes", "10"),
                                  ("data", "prepare", "toy-appearance"), ("data", "check", "toy-appearance")])
def test_toy_root_that_is_a_file_is_a_one_line_error(args, tmp_path, workdir, cli):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    res = cli(*args, "--root", target)
    _one_line_error(res, f"{target} is a file, not a folder")
    assert target.read_text() == "x"


def test_intact_copy_passes_every_check(toy_copy):
    toy.verify(toy_copy, CARD, digests=True)
    assert toy.ensure(CARD, toy_copy) == toy_copy
