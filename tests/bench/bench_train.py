#!/usr/bin/python3
"""Training throughput and memory: nader against PyTorch, in one run.

Trains the resnet_basic example design (examples/blocks/resnet_basic.txt,
nb201 skeleton, 5 cells per stage) at width 16 on 32x32 inputs, batch 64,
2 threads, with nader (`nader train`) and with PyTorch (the same network
from tests/py/nader_ref.py, tests/py/torch_recipe.py's recipe), each in
its own process on the same generated CIFAR-10 folder.  Both run two
epochs of STEPS steps; the figure is the second (warm) epoch's training
throughput, augmentation included, evaluation excluded.  Peak memory is
each process's peak resident set (VmHWM, read by each process itself:
wait4's figure would include the Python parent's size, inherited through
vfork), plus nader's own count of engine bytes; the PyTorch process's
size includes the torch library itself.  Prints images/s of each, their ratio, and the memory.

    bench_train.py [--steps N] [--threads N] [--width N] [--repeat N]

Figures taken on a shared machine are noisy; --repeat runs each side
several times, alternating, and reports the best of each.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))

BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
DESIGN = os.path.join(ROOT, "examples", "blocks", "resnet_basic.txt")
BATCH = 64


def make_data(folder, n_train, n_test):
    """Random images in the CIFAR-10 layout, with their manifest."""
    rng = np.random.default_rng(1)
    counts = {}
    os.makedirs(folder, exist_ok=True)
    parts = np.array_split(np.arange(n_train), 5)
    for i, p in enumerate(parts):
        rec = rng.integers(0, 256, (len(p), 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, len(p))
        name = "data_batch_%d.bin" % (i + 1)
        rec.tofile(os.path.join(folder, name))
        counts[name] = len(p)
    rec = rng.integers(0, 256, (n_test, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, n_test)
    rec.tofile(os.path.join(folder, "test_batch.bin"))
    counts["test_batch.bin"] = n_test
    json.dump({"records": counts},
              open(os.path.join(folder, "nader-data.json"), "w"))


def run(cmd):
    """Run cmd; return its exit code and wait4's peak RSS (unused for the
    figures, see above)."""
    with tempfile.TemporaryFile() as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        rc = p.returncode = os.waitstatus_to_exitcode(status)
        if rc != 0:
            log.seek(0)
            print(log.read().decode(errors="replace"))
    return rc, ru.ru_maxrss * 1024


def nader_side(data, a, tmp):
    res = os.path.join(tmp, "nader.json")
    rc, rss = run([os.path.join(BIN, "nader"), "train", DESIGN,
                      "--dataset", "cifar10", "--data", data, "--width",
                      str(a.width), "--batch", str(BATCH), "--threads",
                      str(a.threads), "--epochs", "2", "--quiet",
                      "--json-out", res])
    if rc != 0:
        raise RuntimeError("nader train failed")
    r = json.load(open(res))
    return {"images_per_s": r["epochs"][1]["images_per_s"],
            "rss": r["peak_rss_bytes"], "engine_bytes": r["peak_bytes"],
            "params": r["params"]}


def torch_side(data, a, tmp):
    res = os.path.join(tmp, "torch.json")
    rc, rss = run([sys.executable, os.path.abspath(__file__), "--torch",
                      data, res, "--threads", str(a.threads), "--width",
                      str(a.width)])
    if rc != 0:
        raise RuntimeError("the PyTorch side failed")
    r = json.load(open(res))
    return {"images_per_s": r["epochs"][1]["images_per_s"],
            "rss": r["peak_rss_bytes"], "params": r["params"]}


def torch_child(data, out, a):
    import torch_recipe
    r = torch_recipe.train(DESIGN, data, a.width, cells=5, epochs=2,
                           batch=BATCH, seed=777, threads=a.threads)
    net = torch_recipe.build(DESIGN, a.width, 5)
    r["params"] = sum(p.numel() for p in net.parameters())
    r["peak_rss_bytes"] = vm_hwm()
    json.dump(r, open(out, "w"))


def vm_hwm():
    """This process's peak resident set in bytes (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--torch", nargs=2, metavar=("DATA", "OUT"))
    a = ap.parse_args()
    if a.torch:
        torch_child(a.torch[0], a.torch[1], a)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        make_data(data, a.steps * BATCH, BATCH)
        best_n, best_t = None, None
        for _ in range(a.repeat):
            n = nader_side(data, a, tmp)
            t = torch_side(data, a, tmp)
            if not best_n or n["images_per_s"] > best_n["images_per_s"]:
                best_n = n
            if not best_t or t["images_per_s"] > best_t["images_per_s"]:
                best_t = t
    mib = 1048576.0
    print("resnet_basic, width %d (%d params), 32x32, batch %d, %d "
          "threads, %d steps/epoch, best of %d" % (
              a.width, best_n["params"], BATCH, a.threads, a.steps,
              a.repeat))
    print("  nader   %8.1f images/s   peak RSS %7.1f MiB   (engine %.1f MiB)"
          % (best_n["images_per_s"], best_n["rss"] / mib,
             best_n["engine_bytes"] / mib))
    print("  pytorch %8.1f images/s   peak RSS %7.1f MiB" % (
        best_t["images_per_s"], best_t["rss"] / mib))
    print("  nader/pytorch: speed %.2fx, peak RSS %.2fx" % (
        best_n["images_per_s"] / best_t["images_per_s"],
        best_n["rss"] / best_t["rss"]))
    if best_n["params"] != best_t["params"]:
        print("  WARNING: parameter counts differ (%d vs %d)" % (
            best_n["params"], best_t["params"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
