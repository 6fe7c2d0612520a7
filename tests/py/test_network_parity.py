#!/usr/bin/python3
"""Whole networks: nader's engine against PyTorch, same weights, same data.

For every design in examples/blocks/ (ResNet basic, the NAS-Bench-201
cell, squeeze-and-excitation, channel shuffle, ConvNeXt-style and a
DARTS-style two-input cell with DropPath), the network is built in
PyTorch by tests/py/nader_ref.py (an independent builder whose state_dict
names are nader's parameter names), initialised by PyTorch, and its
weights and 20 random batches are handed to build/tools/net_run, which
runs the same network in nader's engine on the CPU.  The PyTorch side
computes in float64 from the same float32 values.  DropPath masks are
those of nader's counter-based generator (rng.h), re-implemented here, so
training-mode steps match sample for sample.

Checks, per design (relative errors are over whole tensors,
||nader - torch|| / ||torch||):
  - step 0 in training mode: logits and loss within 1e-4, and every
    parameter gradient within 1e-4;
  - 20 SGD steps (lr 0.1, Nesterov momentum 0.9, weight decay 5e-4):
    each step's loss within a relative 2e-3 of PyTorch's (float32
    against float64, BN amplifying rounding step after step), the final
    weights and BN statistics within 2e-3, and the evaluation-mode logits
    after them within 5e-3.
Prints the largest error of each kind per design.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import nader_ref  # noqa: E402
import st_numpy  # noqa: E402

BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
NET_RUN = os.path.join(BIN, "tools", "net_run")
STEPS = 20
BATCH = 8
SIZE = 16
LR, MOMENTUM, WD = 0.1, 0.9, 5e-4
TOL_STEP0 = 1e-4     # step 0: logits, loss, gradients (relative)
ABS_FLOOR = 1e-7     # gradients that should be zero: |g| / largest |g|
ONSET = 1e-5         # reported: steps with losses this close
DRIFT = 10.0         # 20 steps: at most this times rounding drift ...
TOL_STATE = 1e-3     # ... or this, whichever is larger

M64 = (1 << 64) - 1


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def rng_key(seed, step, node):
    """engine_rng_key() of rng.h."""
    return (_mix((_mix(seed ^ 0x6e61646572) + step) & M64) ^
            _mix((node + 0x9e3779b97f4a7c15) & M64))


def rng_uniform(key, i):
    z = _mix((key + (i + 1) * 0x9e3779b97f4a7c15) & M64)
    return np.float32((z >> 40) / 16777216.0)


class EngineDropPath(torch.nn.Module):
    """DropPath with nader's masks: sample i kept when
    engine_rng_uniform(engine_rng_key(seed, step, node), i) >= prob."""

    def __init__(self, prob, node, clock):
        super().__init__()
        self.prob, self.node, self.clock = float(prob), node, clock

    def forward(self, x):
        if not self.training or self.prob <= 0:
            return x
        key = rng_key(self.clock["seed"], self.clock["step"], self.node)
        p = np.float32(self.prob)
        keep = [1.0 if rng_uniform(key, i) >= p else 0.0
                for i in range(x.shape[0])]
        scale = float(np.float32(1.0) / (np.float32(1.0) - p))
        m = torch.tensor(keep, dtype=x.dtype).reshape(
            (-1,) + (1,) * (x.dim() - 1))
        return x * m * scale


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (den if den > 0 else 1.0))


def pick_width(design, skeleton, widths=(8, 12, 16, 24)):
    for w in widths:
        try:
            nader_ref.build_network(design, skeleton, w, classes=10,
                                    in_shape=(3, SIZE, SIZE),
                                    cells_per_stage=1)
            return w
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
    raise RuntimeError("no width in %s fits" % (widths,))


def run_design(path, tmp):
    text = open(path).read()
    design = nader_ref.parse_design(text)
    skeleton = "darts" if design.two_input else "nb201"
    width = pick_width(design, skeleton)
    torch.manual_seed(1234)
    net = nader_ref.build_network(design, skeleton, width, classes=10,
                                  in_shape=(3, SIZE, SIZE),
                                  cells_per_stage=1)
    # the float32 weights both sides start from
    start = {k: v.detach().numpy().astype(np.float32)
             for k, v in net.state_dict().items()}
    rng = np.random.default_rng(99)
    batches = [(rng.standard_normal((BATCH, 3, SIZE, SIZE)).astype(
        np.float32), rng.integers(0, 10, BATCH)) for _ in range(STEPS)]
    tensors = {}
    for s, (x, y) in enumerate(batches):
        tensors["x.%d" % s] = x
        tensors["labels.%d" % s] = y.astype(np.float32)
    fw = os.path.join(tmp, "weights.safetensors")
    fin = os.path.join(tmp, "batches.safetensors")
    fout = os.path.join(tmp, "out.safetensors")
    st_numpy.save(fw, start)
    st_numpy.save(fin, tensors)
    cmd = [NET_RUN, path, fw, fin, fout, "--width", str(width), "--classes",
           "10", "--size", str(SIZE), "--cells", "1", "--batch",
           str(BATCH), "--steps", str(STEPS), "--lr", str(LR),
           "--momentum", str(MOMENTUM), "--weight-decay", str(WD),
           "--threads", "2", "--seed", "777", "--skeleton", skeleton]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("net_run failed: %s" % p.stderr.strip())
    out, meta = st_numpy.load(fout)

    ids = json.loads(meta.get("droppath", "{}"))
    r64 = torch_run(design, skeleton, width, start, batches, ids,
                    torch.float64)
    r32 = torch_run(design, skeleton, width, start, batches, ids,
                    torch.float32)
    # float64 again from weights moved by float32 rounding noise: where
    # this run leaves the first, the steps amplify rounding (chaos)
    noise = np.random.default_rng(5)
    nudged = {k: v * (1 + 6e-8 * noise.standard_normal(v.shape))
              for k, v in start.items()}
    rn = torch_run(design, skeleton, width, nudged, batches, ids,
                   torch.float64, cast=False)
    errs = {"logits": rel(out["logits"], r64["logits"]),
            "loss": abs(float(out["loss"][0]) - r64["losses"][0]) /
            abs(r64["losses"][0])}
    # gradients: within TOL_STEP0 relative; where PyTorch's own float32
    # gradient is further off (cancellation in tiny gradients), within 3x
    # its error; gradients that are analytically zero (a bias before BN)
    # within ABS_FLOOR of the largest gradient.  Reported as the ratio to
    # that allowance (1 = at tolerance).
    gmax = max(np.linalg.norm(g) for g in r64["grads"].values())
    worst = (0.0, "-")
    for k, g in r64["grads"].items():
        allowed = max(TOL_STEP0 * np.linalg.norm(g),
                      3 * np.linalg.norm(r32["grads"][k] - g),
                      ABS_FLOOR * gmax)
        e = np.linalg.norm(out["grad." + k] - g) / allowed
        worst = max(worst, (float(e), k))
    errs["grad"], errs["worst_grad"] = worst
    # 20 steps: no further from float64 than a multiple of how far
    # float32 rounding alone takes PyTorch (its float32 run, and float64
    # from weights nudged by rounding noise), or TOL_STATE
    n, r64l = np.array(out["losses"], np.float64), np.array(r64["losses"])
    dn = np.abs(n - r64l) / np.abs(r64l)
    drift = max(np.max(np.abs(np.array(r32["losses"]) - r64l) /
                       np.abs(r64l)),
                np.max(np.abs(np.array(rn["losses"]) - r64l) /
                       np.abs(r64l)))
    errs["torch32"] = float(drift)
    errs["steps_exact"] = int(np.argmax(dn > ONSET)) if np.any(
        dn > ONSET) else STEPS
    errs["trajectory"] = float(np.max(dn) / max(TOL_STATE, DRIFT * drift))
    final32 = max(max(rel(r32["final"][k], v), rel(rn["final"][k], v))
                  for k, v in r64["final"].items())
    fin, errs["worst_final"] = max(
        (rel(out["final." + k], v), k) for k, v in r64["final"].items())
    errs["final"] = fin / max(TOL_STATE, DRIFT * final32)
    eval32 = max(rel(r32["eval"], r64["eval"]), rel(rn["eval"],
                                                     r64["eval"]))
    errs["eval"] = rel(out["eval_logits"], r64["eval"]) / max(
        TOL_STATE, DRIFT * eval32)
    return skeleton, width, errs, r64["losses"]


def torch_run(design, skeleton, width, start, batches, ids, dtype,
              cast=True):
    """The steps of net_run in PyTorch at dtype from the same weights
    (taken as float32 unless cast is False), with nader's DropPath
    masks."""
    torch.set_default_dtype(dtype)
    try:
        net = nader_ref.build_network(design, skeleton, width, classes=10,
                                      in_shape=(3, SIZE, SIZE),
                                      cells_per_stage=1)
    finally:
        torch.set_default_dtype(torch.float32)
    clock = {"seed": 777, "step": 0}
    for name, mod in list(net.named_modules()):
        if isinstance(mod, nader_ref.DropPath):
            parent = net.get_submodule(name.rsplit(".", 1)[0]) \
                if "." in name else net
            setattr(parent, name.rsplit(".", 1)[-1],
                    EngineDropPath(mod.prob, ids[name], clock))
    sd = net.state_dict()   # references to the tensors themselves
    assert sorted(sd) == sorted(start), "state_dict keys differ"
    with torch.no_grad():
        for k, v in sd.items():
            w = start[k].astype(np.float32) if cast else start[k]
            v.copy_(torch.tensor(w, dtype=dtype))
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM,
                          nesterov=True, weight_decay=WD)
    r = {"losses": []}
    for s, (x, y) in enumerate(batches):
        clock["step"] = s
        opt.zero_grad()
        logits = net(torch.tensor(x, dtype=dtype))
        loss = F.cross_entropy(logits, torch.tensor(y))
        loss.backward()
        r["losses"].append(loss.item())
        if s == 0:
            r["logits"] = logits.detach().numpy().astype(np.float64)
            r["grads"] = {k: p.grad.numpy().astype(np.float64)
                          for k, p in net.named_parameters()}
        opt.step()
    r["final"] = {k: v.numpy().astype(np.float64)
                  for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad():
        r["eval"] = net(torch.tensor(batches[-1][0], dtype=dtype)).numpy()
    return r


def main():
    if not os.access(NET_RUN, os.X_OK):
        print("net_run not built (%s)" % NET_RUN)
        return 1
    torch.set_num_threads(1)
    designs = sorted(glob.glob(os.path.join(ROOT, "examples", "blocks",
                                            "*.txt")))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in designs:
            name = os.path.basename(path)
            try:
                skel, width, e, losses = run_design(path, tmp)
            except Exception as ex:  # report every design, then fail
                print("FAIL %-28s %s" % (name, ex))
                failed += 1
                continue
            bad = (e["logits"] > TOL_STEP0 or e["loss"] > TOL_STEP0 or
                   e["grad"] > 1 or e["trajectory"] > 1 or
                   e["final"] > 1 or e["eval"] > 1)
            failed += bad
            print("%s %-24s %s w=%-2d step 0: logits %.1e loss %.1e grads "
                  "%.2f | 20 steps: within 1e-5 for %d, then (1 = at "
                  "tolerance) loss %.2f weights %.2f eval %.2f; rounding "
                  "drift %.1e | loss %.3f -> %.3f" % (
                      "FAIL" if bad else "ok  ", name, skel, width,
                      e["logits"], e["loss"], e["grad"], e["steps_exact"],
                      e["trajectory"], e["final"], e["eval"], e["torch32"],
                      losses[0], losses[-1]))
    print("%d designs, %d failed" % (len(designs), failed))
    return 1 if failed or not designs else 0


if __name__ == "__main__":
    sys.exit(main())
