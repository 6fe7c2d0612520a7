#!/usr/bin/python3
"""Operation speed of nader's CPU backend against PyTorch, in one run.

Runs build/bench/bench_ops (the CPU backend on the operations of the
resnet_basic design at width 16, 32x32 inputs) and times PyTorch 1.13 on
the same shapes with the same thread count, then prints both side by
side with the ratio of times (PyTorch / nader: above 1 means nader is
faster) and, at the end, the totals weighted by how often each operation
occurs in the network, forward plus backward.

  bench_ops_torch.py [--threads N] [--batch B] [--reps R] [--rounds K]

Each figure is the best of R runs, taken in K alternating rounds of the
two (so both see the same background load); timings on a shared machine
are noisy all the same, and the load average is printed with them.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
BENCH = os.path.join(os.environ.get("NADER_BIN", os.path.join(ROOT, "build")),
                     "bench", "bench_ops")

# name -> (kind, in channels, size, out channels, kernel, stride, pad,
# input needs a gradient[, groups]); the names match bench_ops.c.
CASES = {
    "conv stem 3->16 32x32": ("conv", 3, 32, 16, 3, 1, 1, False),
    "conv 16->16 32x32": ("conv", 16, 32, 16, 3, 1, 1, True),
    "conv 16->32 s2 32x32": ("conv", 16, 32, 32, 3, 2, 1, True),
    "conv 32->32 16x16": ("conv", 32, 16, 32, 3, 1, 1, True),
    "conv 1x1 16->32 16x16": ("conv", 16, 16, 32, 1, 1, 0, True),
    "conv 32->64 s2 16x16": ("conv", 32, 16, 64, 3, 2, 1, True),
    "conv 64->64 8x8": ("conv", 64, 8, 64, 3, 1, 1, True),
    "conv 1x1 32->64 8x8": ("conv", 32, 8, 64, 1, 1, 0, True),
    "BN 16x32x32": ("bn", 16, 32, 16, 0, 0, 0, True),
    "ReLU 16x32x32": ("relu", 16, 32, 16, 0, 0, 0, True),
    "Add 16x32x32": ("add", 16, 32, 16, 0, 0, 0, True),
    "AvgPool2d 2/2 16x32x32": ("avgpool", 16, 32, 16, 2, 2, 0, True),
    "dwconv 7x7 64 16x16": ("conv", 64, 16, 64, 7, 1, 3, True, 64),
    "dwconv 3x3 128 8x8": ("conv", 128, 8, 128, 3, 1, 1, True, 128),
    "conv g4 64->64 16x16": ("conv", 64, 16, 64, 3, 1, 1, True, 4),
}


def best_of(reps, fn):
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def torch_case(spec, batch, reps):
    kind, ci, h, co, k, s, p, need_dx = spec[:8]
    groups = spec[8] if len(spec) > 8 else 1
    x = torch.randn(batch, ci, h, h, requires_grad=need_dx)
    params = []
    if kind == "conv":
        w = torch.randn(co, ci // groups, k, k, requires_grad=True)
        b = torch.randn(co, requires_grad=True)
        params = [w, b]
        fwd = lambda: F.conv2d(x, w, b, stride=s, padding=p, groups=groups)
    elif kind == "bn":
        w = torch.randn(ci, requires_grad=True)
        b = torch.randn(ci, requires_grad=True)
        rm, rv = torch.zeros(ci), torch.ones(ci)
        params = [w, b]
        fwd = lambda: F.batch_norm(x, rm, rv, w, b, training=True)
    elif kind == "relu":
        fwd = lambda: F.relu(x)
    elif kind == "add":
        x2 = torch.randn(batch, ci, h, h, requires_grad=True)
        params = [x2]
        fwd = lambda: x + x2
    else:
        fwd = lambda: F.avg_pool2d(x, k, s, padding=p)
    wrt = ([x] if need_dx else []) + params
    with torch.no_grad():
        tf = best_of(reps, fwd)
    y = fwd()
    dy = torch.randn_like(y)
    tb = best_of(reps, lambda: torch.autograd.grad(y, wrt, dy,
                                                   retain_graph=True))
    return tf, tb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    if not os.access(BENCH, os.X_OK):
        print(f"bench_ops not built at {BENCH}", file=sys.stderr)
        return 1
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()[0]
    # Alternate the two in rounds, keeping each one's best, so that both
    # see the same background load.
    nader, ref = {}, {}
    per = max(1, a.reps // a.rounds)
    for _ in range(a.rounds):
        out = subprocess.run([BENCH, "--threads", str(a.threads), "--batch",
                              str(a.batch), "--reps", str(per), "--json"],
                             check=True, capture_output=True,
                             text=True).stdout
        for r in map(json.loads, out.splitlines()):
            old = nader.get(r["name"])
            if old:
                r["fwd_ms"] = min(r["fwd_ms"], old["fwd_ms"])
                r["bwd_ms"] = min(r["bwd_ms"], old["bwd_ms"])
            nader[r["name"]] = r
        for name, spec in CASES.items():
            tf, tb = torch_case(spec, a.batch, per)
            of, ob = ref.get(name, (tf, tb))
            ref[name] = (min(tf, of), min(tb, ob))

    print(f"operations of resnet_basic width 16, batch {a.batch}, "
          f"{a.threads} threads, best of {a.reps}; "
          f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{'':24} {'nader fwd':>10} {'torch fwd':>10} {'ratio':>6}  "
          f"{'nader bwd':>10} {'torch bwd':>10} {'ratio':>6}  "
          f"{'GF/s n/t fwd':>13} {'bwd':>11}")
    tot_n = tot_t = 0.0
    for name, spec in CASES.items():
        r = nader[name]
        tf, tb = ref[name]
        nf, nb = r["fwd_ms"] / 1e3, r["bwd_ms"] / 1e3
        tot_n += r["count"] * (nf + nb)
        tot_t += r["count"] * (tf + tb)
        gf = ""
        if spec[0] == "conv":
            flops, bflops = r["flops"], r["bwd_flops"]
            gf = (f"{flops / nf * 1e-9:5.0f}/{flops / tf * 1e-9:<5.0f}  "
                  f"{bflops / nb * 1e-9:5.0f}/{bflops / tb * 1e-9:<5.0f}")
        print(f"{name:24} {nf * 1e3:8.3f}ms {tf * 1e3:8.3f}ms "
              f"{tf / nf:6.2f}  {nb * 1e3:8.3f}ms {tb * 1e3:8.3f}ms "
              f"{tb / nb:6.2f}  {gf}")
    print(f"weighted by occurrences in the network (fwd+bwd): nader "
          f"{tot_n * 1e3:.1f} ms, torch {tot_t * 1e3:.1f} ms, "
          f"ratio {tot_t / tot_n:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
