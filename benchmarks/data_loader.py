"""Data loader throughput: clips/s of one loader worker, cold and warm episode cache.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_loader.py --dataset data/mt10 --clips 512

Runs the pretraining ClipDataset (frames o_t and o_{t+n}, instruction, point tracks; configs/
pretrain/care_tiny.yaml) in this process, which is what one DataLoader worker does:
  - cold: an empty episode cache, clips drawn at random over the training episodes (as the
    sampler draws them): most clips decode a whole episode's video first;
  - warm: the same clips again, every episode already decoded and cached (the cache holds
    `clip.cache_episodes` episodes; the benchmark raises it to hold them all, as a long run's
    workers end up holding their share).
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

    cfg = parse_config(PretrainConfig, ["--config", str(args.config), "--dataset", str(args.dataset)])
    cfg = dataclasses.replace(cfg, clip=dataclasses.replace(cfg.clip, cache_episodes=100_000))
    train, _ = build_datasets(cfg, needs_tracks=True)
    idx = np.random.default_rng(0).integers(0, len(train), size=args.clips).tolist()
    rows = []
    for name in ("cold", "warm"):
        decoded = train.decode_count
        t = time.perf_counter()
        for i in range(0, len(idx), args.batch_size):
            collate_pretrain([train[j] for j in idx[i:i + args.batch_size]])
        dt = time.perf_counter() - t
        rows.append((name, args.clips / dt, train.decode_count - decoded))
    print(f"{len(train.episodes)} training episodes, {len(train)} clips, {args.clips} random clips per pass, "
          f"batches of {args.batch_size}, one process")
    print("\n| episode cache | clips/s (one worker) | episodes decoded |")
    print("|---|---:|---:|")
    for name, rate, dec in rows:
        print(f"| {name} | {rate:.0f} | {dec} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
