"""Protocol guards: training never reads the test split; selection uses val; cross-dataset runs."""

from __future__ import annotations

from fsar_bench.config import load_config
from fsar_bench.data.source import VideoSource
from fsar_bench.engine.runner import RunSpec, execute


def test_fit_reads_train_and_val_only_and_cross_dataset_is_logged(workdir, monkeypatch):
    seen: list[tuple[str, str, str]] = []
    original = VideoSource.load

    def spy(self, cls, vid, *args, **kwargs):
        seen.append((self.card.name, cls, vid))
        return original(self, cls, vid, *args, **kwargs)

    monkeypatch.setattr(VideoSource, "load", spy)
    import fsar_bench.data.source as source_mod

    reads: list[tuple[str, str]] = []
    real_read = source_mod.read_frames

    def spy_read(path, select):
        reads.append((path.parent.parent.name, path.parent.name))  # (dataset folder, class)
        return real_read(path, select)

    monkeypatch.setattr(source_mod, "read_frames", spy_read)
    spec = RunSpec(method="protonet", dataset="toy-appearance", train_dataset="toy-motion", episodes=20,
                   train={"steps": 3, "val_every": 3, "val_episodes": 5})
    result = execute(spec, load_config(), log=lambda s: None)
    from fsar_bench.data.cards import get_card

    motion, appearance = get_card("toy-motion"), get_card("toy-appearance")
    motion_test = set(motion.split("test").by_class)
    train_classes = set(motion.split("train").by_class)
    val_classes = set(motion.split("val").by_class)
    motion_read = {c for d, c in reads if d == "toy-motion"}
    assert motion_read & train_classes and motion_read & val_classes  # trained, and selected on val
    assert not motion_read & motion_test  # the training dataset's test split is never read
    validation = {c for d, c, _ in seen if d == "toy-motion"}  # load() = deterministic (val/test) clips
    assert validation and validation <= val_classes
    appearance_read = {c for d, c in reads if d == "toy-appearance"}
    assert appearance_read <= set(appearance.split("test").by_class)  # only test episodes of the test set
    assert result.summary["train_dataset"] == "toy-motion" and result.summary["dataset"] == "toy-appearance"
