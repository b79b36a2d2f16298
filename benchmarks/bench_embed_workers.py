"""Embedding throughput (videos/s) with 0, 1 and 2 DataLoader workers (issue #19 §4).

Decode-bound case: the toy-appearance test videos with the in-process frame cache off (every
video decoded each time) and a trivial model (the mean of each clip), so the figure is the input
pipeline's. Goal: >= 1.7x with 2 workers over 0 on 2 cores. On a CUDA machine it also prints
videos/s for ResNet-50 and ViT-B/16 (timm, random init) at 224 px, autocast as --precision says.
The features are checked identical for every worker count.

    python benchmarks/bench_embed_workers.py [--videos 200] [--frames 8] [--precision fp32]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch


def _source():
    from fsar_bench.config import load_config
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.source import VideoSource

    card = get_card("toy-appearance")
    return VideoSource.open(card, load_config())


def measure(model, stand_in, keys, workers: int, device: str, precision: str, batch: int = 16):
    """(videos/s, features) of embedding `keys` through the evaluation's DataLoader path."""
    from fsar_bench.engine.evaluate import EvalOptions, autocast, clip_batches, clip_transform

    src = _source()
    opts = EvalOptions(device=device, num_workers=workers, precision=precision)
    batches = [keys[i:i + batch] for i in range(0, len(keys), batch)]
    t0 = time.perf_counter()
    feats = []
    with torch.no_grad():
        for clips in clip_batches(stand_in, src, batches, clip_transform(stand_in, src), opts):
            with autocast(device, precision):
                feats.append(model(clips.to(device, non_blocking=True)).float().cpu())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(keys) / (time.perf_counter() - t0), torch.cat(feats)


def _keys(n: int) -> list:
    card = _source().card
    entries = card.split("test").entries
    return [(c, v, "video") for c, v in (entries * (n // len(entries) + 1))[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = ap.parse_args()
    from fsar_bench.data import video

    video._CACHE_LIMIT = 0  # decode-bound: no in-process frame cache
    torch.set_num_threads(1)
    keys = _keys(args.videos)
    stand_in = SimpleNamespace(frames=args.frames, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    trivial = lambda clips: clips.mean(dim=(2, 3, 4))  # noqa: E731
    base, ref = None, None
    for workers in (0, 1, 2):
        rate, feats = measure(trivial, stand_in, keys, workers, "cpu", "fp32")
        ref = feats if ref is None else ref
        assert torch.equal(feats, ref), f"features differ with {workers} workers"
        base = base or rate
        print(f"trivial model, cpu, {workers} workers: {rate:7.1f} videos/s  ({rate / base:.2f}x; features identical)")
    if not torch.cuda.is_available():
        print("no CUDA device: ResNet-50 / ViT-B/16 at 224 px skipped")
        return
    import timm

    big = SimpleNamespace(frames=args.frames, image_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    for name in ("resnet50", "vit_base_patch16_224"):
        net = timm.create_model(name, pretrained=False, num_classes=0).cuda().eval()
        model = lambda clips, net=net: net(clips.flatten(0, 1)).unflatten(0, clips.shape[:2])  # noqa: E731
        for workers in (0, 2, 4, 8):
            rate, _ = measure(model, big, keys, workers, "cuda", args.precision)
            print(f"{name}, cuda, {args.precision}, 224 px, {workers} workers: {rate:7.1f} videos/s")


if __name__ == "__main__":
    main()
