"""Load test of `care serve` on localhost: N concurrent clients, a bounded number of requests.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_load.py --policy runs/x_ft --clients 1 4 --requests 200

Each client is a thread with its own session (PolicyClient) sending `act` requests with the
policy's frame size; every request re-plans (`predict_chunk`), so each one costs a forward pass,
the worst case for a server (with chunked execution most `select_action` calls are queue pops).
Reports p50/p99 latency and requests/s, against calling the same policy in-process, all in one
run (ratios are what to trust on a shared machine). Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np


def in_process(policy, frame, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        policy.predict_chunk(frame[None], ["close the drawer"])
        out.append(time.perf_counter() - t)
    return out


def served(port: int, frame, clients: int, n: int) -> tuple[list[float], float, int]:
    from care.serve import PolicyClient

    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def run():
        with PolicyClient("127.0.0.1", port) as c:
            mine = []
            for _ in range(n):
                t = time.perf_counter()
                try:
                    c.predict_chunk(frame, "close the drawer")
                except Exception:
                    with lock:
                        errors[0] += 1
                mine.append(time.perf_counter() - t)
            with lock:
                lat.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, time.perf_counter() - t0, errors[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    p.add_argument("--requests", type=int, default=100, help="per client")
    args = p.parse_args(argv)

    import torch

    from care.policy import CarePolicy
    from care.serve.server import PolicyServer

    torch.set_num_threads(1)
    policy = CarePolicy.from_pretrained(args.policy)
    h, w = policy.meta["frame_hw"]
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    in_process(policy, frame, 5)  # warm-up
    base = in_process(policy, frame, args.requests)
    server = PolicyServer(policy, port=0).start_in_thread()
    rows = [("in-process", 1, base, sum(base), 0)]
    try:
        for c in args.clients:
            lat, wall, errors = served(server.port, frame, c, args.requests)
            rows.append(("served", c, lat, wall, errors))
    finally:
        server.stop()
    ms = lambda xs, q: 1000 * float(np.quantile(xs, q))  # noqa: E731
    print(f"policy {args.policy}, frames {w}x{h}, {args.requests} requests per client, one forward each")
    print("| path | clients | p50 (ms) | p99 (ms) | requests/s | vs in-process | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base_rate = len(base) / sum(base)
    for name, c, lat, wall, errors in rows:
        rate = len(lat) / wall
        print(f"| {name} | {c} | {ms(lat, 0.5):.1f} | {ms(lat, 0.99):.1f} | {rate:.1f} | {rate / base_rate:.2f}x | {errors} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
