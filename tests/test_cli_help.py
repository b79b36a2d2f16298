"""`--help` uses the terminal's width and never wraps an example command mid-token (issue #20):
every example printed in a wide terminal is printed whole, on one line, in narrow and wide ones."""

from __future__ import annotations

import pytest

PAGES = [[], ["run"], ["sweep"], ["profile"], ["compare"], ["check-plugin"], ["leaderboard"], ["list"],
         ["list", "methods"], ["data"], ["data", "check"], ["data", "prepare"], ["episodes"], ["episodes", "show"],
         ["episodes", "export"]]


def _help(cli, monkeypatch, page: list[str], columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    res = cli(*page, "--help")
    assert res.code == 0, res.err
    return res.out


def _examples(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("fsar-bench ")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: " ".join(p) or "top")
def test_examples_are_whole_at_any_width(cli, monkeypatch, page):
    reference = _examples(_help(cli, monkeypatch, page, 1000))
    assert reference, f"`fsar-bench {' '.join(page)} --help` shows no example"
    for columns in (60, 100, 160):
        lines = {line.strip() for line in _help(cli, monkeypatch, page, columns).splitlines()}
        cut = [example for example in reference if example not in lines]
        assert not cut, f"{columns} columns: examples wrapped: {cut}"


def test_help_uses_a_wide_terminal(cli, monkeypatch):
    wide = _help(cli, monkeypatch, ["run"], 160)
    assert max(len(line) for line in wide.splitlines()) > 100  # click alone stops at 80
    narrow = _help(cli, monkeypatch, ["run"], 80)
    prose = [line for line in narrow.splitlines() if not line.strip().startswith("fsar-bench ")]
    assert max(len(line) for line in prose) <= 80
