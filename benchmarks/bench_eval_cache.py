"""Cached evaluation against the reference protocol (re-embed every episode), on the same episodes.

Prints the wall time of both, their ratio, and the floor: embedding each distinct video once plus
the matcher time. Run from the repo root:

    python benchmarks/bench_eval_cache.py --episodes 1000 [--dataset toy-appearance] [--matcher proto]

The toy videos are small enough for the in-process frame cache (fsar_bench/data/video.py); real
dataset videos are not, so by default the frame cache is disabled here (FSAR_BENCH_FRAME_CACHE_MB=0)
to measure what a real dataset costs. Pass --frame-cache to keep it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="toy-appearance")
    ap.add_argument("--method", default="protonet")
    ap.add_argument("--matcher", default=None)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--frame-cache", action="store_true")
    args = ap.parse_args()
    if not args.frame_cache:
        os.environ["FSAR_BENCH_FRAME_CACHE_MB"] = "0"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    import fsar_bench
    from fsar_bench.config import load_config
    from fsar_bench.data.cards import get_card
    from fsar_bench.data.source import VideoSource
    from fsar_bench.engine.cache import FeatureStore
    from fsar_bench.engine.evaluate import EvalOptions, _score_chunk, embed_into, episode_keys, evaluate
    from fsar_bench.episodes.locks import make_set
    from fsar_bench.episodes.sampler import EpisodeSpec

    card = get_card(args.dataset)
    src = VideoSource.open(card, load_config())
    torch.manual_seed(0)
    method = fsar_bench.create_method(args.method, preset="tiny", matcher=args.matcher).eval()
    episodes = make_set(card, EpisodeSpec(card.name, "test", 5, 1, 1, args.episodes, card.seeds["test"]))
    episodes.episodes  # noqa: B018  (sample outside the timings)
    opts = EvalOptions()

    t = time.perf_counter()
    cached = evaluate(method, src, episodes, options=EvalOptions(cache=True))
    t_cached = time.perf_counter() - t

    # the floor: each distinct video embedded once, then the matcher over all episodes
    keys = list(dict.fromkeys(k for ep in episodes for part in episode_keys(method, ep) for k in part))
    store = FeatureStore()
    t = time.perf_counter()
    rows = embed_into(method, src, keys, store, opts)
    t_embed = time.perf_counter() - t
    t = time.perf_counter()
    eps = list(episodes)
    for start in range(0, len(eps), opts.batch_episodes):
        _score_chunk(method, store, rows, eps[start:start + opts.batch_episodes], "cpu", card.text_name)
    t_match = time.perf_counter() - t

    t = time.perf_counter()
    reference = evaluate(method, src, episodes, options=EvalOptions(cache=False))
    t_ref = time.perf_counter() - t
    same = list(cached["preds"].map(tuple)) == list(reference["preds"].map(tuple))

    floor = t_embed + t_match
    print(f"{args.method} ({method.matcher_name}) on {card.name}, {args.episodes} 5-way 1-shot episodes, "
          f"{len(keys)} distinct videos, frame cache {'on' if args.frame_cache else 'off'}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"  reference protocol (--no-cache): {t_ref:8.2f} s")
    print(f"  cached evaluation:               {t_cached:8.2f} s   speed-up x{t_ref / t_cached:.1f}")
    print(f"  floor (embed once {t_embed:.2f} s + matcher {t_match:.2f} s): {floor:.2f} s   "
          f"cached / floor = {t_cached / floor:.2f}")
    print(f"  identical per-episode predictions: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
