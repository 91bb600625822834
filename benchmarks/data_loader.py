"""Data loader throughput: clips/s of one loader worker, cold and warm episode cache.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_loader.py --dataset data/mt10 --clips 512

Runs the pretraining ClipDataset (frames o_t and o_{t+n}, instruction, point tracks; configs/
pretrain/care_tiny.yaml) in this process, which is what one DataLoader worker does:
  - cold: an empty episode cache, clips drawn at random over the training episodes (as the
    sampler draws them): most clips decode a whole episode's video first;
  - warm: the same clips again, every episode already decoded and cached (the cache holds
    `clip.cache_episodes` episodes; the benchmark raises it to hold them all, as a long run's
    workers end up holding their share);
  - LRU: the configured cache (256 episodes) after a pass that filled it: what a run on a
    dataset larger than the cache sees (it misses on most clips and decodes whole episodes);
  - frames: `clip.decode=frames`, each clip decodes only its own frames (a seek to the keyframe
    before o_t, then up to o_{t+n}); what `auto` picks when the episodes do not fit the cache.
Also collates batches (collate_pretrain) to include that cost. Compare with the samples/s a
pretraining step consumes (benchmarks/train_throughput.py): a loader whose clips/s per worker is
above it keeps training fed with `num_workers` of 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=REPO / "configs/pretrain/care_tiny.yaml")
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)

    from care.cli import parse_config
    from care.configs import PretrainConfig
    from care.training.pretrain import build_datasets, collate_pretrain

    base = parse_config(PretrainConfig, ["--config", str(args.config), "--dataset", str(args.dataset)])

    def dataset(**clip):
        cfg = dataclasses.replace(base, clip=dataclasses.replace(base.clip, **clip))
        return build_datasets(cfg, needs_tracks=True)[0]

    def one_pass(train, idx):
        decoded, t = train.decode_count, time.perf_counter()
        for i in range(0, len(idx), args.batch_size):
            collate_pretrain([train[j] for j in idx[i:i + args.batch_size]])
        return args.clips / (time.perf_counter() - t), train.decode_count - decoded

    rng = np.random.default_rng(0)
    rows = []
    all_cached = dataset(decode="episode", cache_episodes=100_000)
    idx = rng.integers(0, len(all_cached), size=args.clips).tolist()
    rows.append(("episode, cold (empty cache)", *one_pass(all_cached, idx)))
    rows.append(("episode, warm (every episode cached)", *one_pass(all_cached, idx)))
    del all_cached
    lru = dataset(decode="episode")  # the default LRU, after a pass that fills it
    one_pass(lru, rng.integers(0, len(lru), size=args.clips).tolist())
    rows.append((f"episode, LRU of {base.clip.cache_episodes} after a pass", *one_pass(lru, idx)))
    del lru
    frames = dataset(decode="frames")
    rows.append(("frames (no frame cache)", *one_pass(frames, idx)))
    n_eps = len(frames.episodes)
    print(f"{n_eps} training episodes, {args.clips} random clips per pass, batches of {args.batch_size}, "
          f"one process; clip.decode=auto picks {'episode' if n_eps <= base.clip.cache_episodes else 'frames'}")
    print("\n| clip.decode | clips/s (one worker) | episodes (frames: spans) decoded |")
    print("|---|---:|---:|")
    for name, rate, dec in rows:
        print(f"| {name} | {rate:.0f} | {dec} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
