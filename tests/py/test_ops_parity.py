#!/usr/bin/python3
"""PyTorch parity of every operation of the CPU backend.

Generates random cases for every operation of common/graph_ops.h (odd
sizes, stride 2, dilation, groups, crop, broadcasting, 5- and 6-D shape
ops, BN in training and evaluation, DropPath with a fixed key), plus the
loss (xent), the optimiser (sgd, several steps, Nesterov and weight decay)
and the batch builder.  The cases run through build/tools/op_runner, and
each output is compared with torch 1.13 computing in float64 on the same
float32 inputs.  The runner runs them five times: at 1 and 2 threads,
with the AVX2 and the generic convolution kernels forced, and with 2
threads asked for while OpenMP may give only 1.

Tolerance: |nader - torch| <= RTOL * |torch| + ATOL * max(1, max |torch|)
over each tensor, RTOL = 1e-4, ATOL = 1e-5.  The op runner fills every
buffer an operation must overwrite with NaN first, so an element left
unwritten fails the comparison.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

RTOL = 1e-4
ATOL = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
RUNNER = os.path.join(os.environ.get("NADER_BIN", os.path.join(ROOT, "build")),
                      "tools", "op_runner")

rng = np.random.default_rng(20261203)
torch.set_num_threads(1)

# ----------------------------------------------------------- rng.h, in Python
M64 = (1 << 64) - 1


def rng_mix(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def rng_uniform(key, i):
    """engine_rng_uniform(): exact, (z >> 40) / 2^24."""
    z = rng_mix((key + (i + 1) * 0x9e3779b97f4a7c15) & M64)
    return np.float32((z >> 40) / 16777216.0)


# ------------------------------------------------------------------ helpers
def rnd(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def distinct(*shape):
    """Values far apart from each other, so max has one winner."""
    n = int(np.prod(shape))
    v = rng.permutation(n).astype(np.float32) * 0.25 - n * 0.125
    return v.reshape(shape)


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def same_pad(k, s, d=1):
    """The format's 'same' rule: pad both sides, crop when p == e/2."""
    e = d * (k - 1) + 1
    p = max(math.ceil((e - s) / 2), 0)
    return p, 2 * p == e


def t64(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


class Case:
    """One operation case: inputs, parameters, dy and the torch function."""

    def __init__(self, name, op, inputs, fn, params=(), args=None,
                 training=True, need=None, accumulate=None, rng_key=0,
                 trainable=None):
        self.name = name
        self.op = op
        self.inputs = [np.asarray(x, dtype=np.float32) for x in inputs]
        self.params = [np.asarray(p, dtype=np.float32) for p in params]
        self.fn = fn
        self.args = args or {}
        self.training = training
        self.need = need or [True] * len(inputs)
        self.accumulate = accumulate or [False] * len(inputs)
        self.rng_key = rng_key
        self.trainable = (trainable if trainable is not None
                          else [True] * len(self.params))
        self.reference()

    def reference(self):
        xs = [t64(x) for x in self.inputs]
        ps = [t64(p, grad=tr) for p, tr in zip(self.params, self.trainable)]
        y = self.fn(xs, ps)
        self.y = y.detach().numpy()
        self.dy = rnd(*self.y.shape)
        self.dx_init = [rnd(*x.shape) if a else None
                        for x, a in zip(self.inputs, self.accumulate)]
        y.backward(torch.tensor(self.dy, dtype=torch.float64))
        self.dx = []
        for x, init in zip(xs, self.dx_init):
            g = x.grad.numpy() if x.grad is not None else np.zeros(x.shape)
            self.dx.append(g + init if init is not None else g)
        self.dw = [p.grad.numpy() if p.grad is not None else None
                   for p in ps]
        self.params_after = [p.detach().numpy() for p in ps]

    def spec(self):
        return {
            "name": self.name, "op": self.op, "args": self.args,
            "inputs": [{"shape": list(x.shape), "data": flat(x)}
                       for x in self.inputs],
            "out_shape": list(self.y.shape),
            "params": [flat(p) for p in self.params],
            "dy": flat(self.dy), "training": self.training,
            "rng_key": str(self.rng_key), "need_dx": self.need,
            "accumulate": self.accumulate,
            "dx_init": [flat(d) if d is not None else None
                        for d in self.dx_init],
        }

    def check(self, out, fails):
        if "error" in out:
            fails.append(f"{self.name}: {out['error']}")
            return
        compare(fails, self.name, "y", out["y"], self.y)
        for i, (got, want) in enumerate(zip(out["dx"], self.dx)):
            if self.need[i]:
                compare(fails, self.name, f"dx{i}", got, want)
        for i, want in enumerate(self.dw):
            if want is not None:
                compare(fails, self.name, f"dw{i}", out["dw"][i], want)
        for i, want in enumerate(self.params_after):
            compare(fails, self.name, f"param{i} after forward",
                    out["params_after"][i], want)


def compare(fails, name, what, got, want):
    want = np.asarray(want, dtype=np.float64).ravel()
    got = np.asarray([np.nan if v is None else v for v in got],
                     dtype=np.float64)
    if got.shape != want.shape:
        fails.append(f"{name} {what}: {got.size} values, want {want.size}")
        return
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = np.abs(got - want)
    bad = ~(err <= RTOL * np.abs(want) + ATOL * scale)
    if bad.any():
        i = int(np.argmax(np.where(bad, err, -1)))
        fails.append(f"{name} {what}: {int(bad.sum())} of {want.size} off, "
                     f"worst [{i}] {got[i]!r} vs {want[i]!r}")


# ------------------------------------------------------------ op cases
def conv_case(name, n, ci, h, w, co, k, s=1, d=1, g=1, pad=None, crop=None,
              bias=True, acc=False, need=True):
    if pad is None:
        pad, crop = same_pad(k, s, d)
    x = rnd(n, ci, h, w)
    wt = rnd(co, ci // g, k, k, scale=1.0 / math.sqrt(ci // g * k * k))
    params = [wt] + ([rnd(co)] if bias else [])

    def fn(xs, ps):
        y = F.conv2d(F.pad(xs[0], (pad, pad, pad, pad)), ps[0],
                     ps[1] if bias else None, stride=s, dilation=d,
                     groups=g)
        return y[:, :, :-1, :-1] if crop else y
    return Case(name, "Conv2d", [x], fn, params,
                {"in_ch": ci, "out_ch": co, "kernel": k, "stride": s,
                 "dilation": d, "groups": g, "pad": pad, "crop": crop,
                 "bias": bias}, accumulate=[acc], need=[need])


def conv_cases():
    return [
        conv_case("conv odd 3x3", 2, 3, 7, 9, 4, 3),
        conv_case("conv stride 2", 2, 4, 8, 8, 6, 3, s=2),
        conv_case("conv stride 2 odd", 3, 4, 9, 7, 5, 3, s=2, acc=True),
        conv_case("conv dilation 2", 2, 4, 9, 7, 4, 3, d=2),
        conv_case("conv groups 2", 2, 6, 8, 8, 4, 3, g=2),
        conv_case("conv groups 3 5x5", 2, 6, 7, 7, 9, 5, g=3),
        conv_case("conv depthwise", 2, 4, 8, 8, 4, 3, g=4, acc=True),
        conv_case("conv depthwise x2 s2", 2, 4, 9, 9, 8, 3, s=2, g=4),
        conv_case("conv depthwise dilated", 2, 3, 9, 8, 3, 3, d=2, g=3),
        conv_case("conv pointwise", 2, 4, 8, 8, 6, 1, acc=True),
        conv_case("conv pointwise groups", 2, 4, 5, 7, 6, 1, g=2),
        conv_case("conv 1x1 stride 2", 2, 4, 9, 9, 6, 1, s=2),
        conv_case("conv 2x2 stride 2", 2, 4, 8, 8, 4, 2, s=2),
        conv_case("conv 2x2 crop", 2, 4, 7, 7, 4, 2),
        conv_case("conv 4x4 crop", 2, 3, 8, 6, 4, 4),
        conv_case("conv 4x4 stride 2", 2, 3, 8, 8, 4, 4, s=2),
        conv_case("conv no bias", 2, 3, 6, 6, 4, 3, bias=False),
        conv_case("conv many images", 9, 3, 12, 12, 8, 3),
        conv_case("conv many images s2", 7, 5, 11, 11, 6, 3, s=2, acc=True),
        conv_case("conv no dx", 2, 3, 6, 6, 4, 3, need=False),
        # Rows of 16, 17 to 34 outputs: the vector paths of stride 2,
        # their whole vectors and their tails.
        conv_case("conv stride 2 rows of 16", 2, 3, 4, 32, 4, 3, s=2),
        conv_case("conv stride 2 wide", 2, 3, 5, 67, 4, 3, s=2, acc=True),
        conv_case("conv stride 2 dilated wide", 2, 2, 6, 49, 3, 3, s=2,
                  d=2),
        conv_case("conv 5x5 stride 2 wide", 3, 2, 7, 41, 3, 5, s=2),
        conv_case("conv stride 2 width 33", 2, 3, 3, 33, 2, 3, s=2,
                  pad=0, crop=False),
        conv_case("conv pad 0", 2, 3, 6, 7, 4, 3, pad=0, crop=False),
        # Stride-1 "same" convolutions (the in-place AVX-512 kernels,
        # the padded-grid ones elsewhere): planes that end inside a
        # vector, are narrower than one, or hold several register tiles;
        # taps that fall off most of the plane; channel counts that leave
        # single-channel rows; accumulating dx.
        conv_case("conv same tail acc", 2, 5, 7, 9, 9, 3, acc=True),
        conv_case("conv same tiny plane", 3, 4, 2, 3, 5, 3, acc=True),
        conv_case("conv same 7x7 on 5x5", 2, 3, 5, 5, 6, 7),
        conv_case("conv same many tiles", 3, 6, 16, 13, 9, 3, d=2),
        conv_case("conv same 8x8 groups", 4, 8, 8, 8, 8, 3, g=2, acc=True),
    ]


def linear_cases():
    out = []
    for name, shape, o, acc in [("linear 2-D", (5, 7), 3, False),
                                ("linear 4-D", (2, 3, 4, 6), 5, True)]:
        x = rnd(*shape)
        params = [rnd(o, shape[-1], scale=0.3), rnd(o)]
        out.append(Case(name, "Linear", [x],
                        lambda xs, ps: F.linear(xs[0], ps[0], ps[1]),
                        params, {"in_ch": shape[-1], "out_ch": o,
                                 "bias": True}, accumulate=[acc]))
    return out


def pool_cases():
    out = []
    for kind in ("AvgPool2d", "MaxPool2d"):
        for shape, k, s, p, crop in [((2, 3, 8, 8), 2, 2, 0, False),
                                     ((2, 3, 8, 8), 3, 1, 1, False),
                                     ((2, 3, 7, 9), 3, 2, 1, False),
                                     ((2, 3, 7, 7), 2, 1, 1, True),
                                     ((2, 2, 9, 9), 4, 1, 2, True),
                                     ((1, 2, 10, 10), 5, 3, 2, False)]:
            x = distinct(*shape) if kind == "MaxPool2d" else rnd(*shape)

            def fn(xs, ps, kind=kind, k=k, s=s, p=p, crop=crop):
                if kind == "AvgPool2d":
                    y = F.avg_pool2d(xs[0], k, s, padding=p,
                                     count_include_pad=True)
                else:
                    y = F.max_pool2d(xs[0], k, s, padding=p)
                return y[..., :-1, :-1] if crop else y
            out.append(Case(f"{kind} {shape} k{k} s{s} p{p}"
                            f"{' crop' if crop else ''}", kind, [x], fn,
                            args={"kernel": k, "stride": s, "pad": p,
                                  "crop": crop},
                            accumulate=[shape[3] == 9]))
    for kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        for shape, o in [((2, 3, 7, 9), 3), ((2, 3, 8, 8), 1),
                         ((2, 2, 5, 5), 4), ((3, 7, 9), 2),
                         ((2, 2, 7, 9), (3, 2))]:
            x = distinct(*shape) if "Max" in kind else rnd(*shape)

            def fn(xs, ps, kind=kind, o=o):
                if "Avg" in kind:
                    return F.adaptive_avg_pool2d(xs[0], o)
                return F.adaptive_max_pool2d(xs[0], o)
            oh, ow = o if isinstance(o, tuple) else (o, o)
            out.append(Case(f"{kind} {shape} -> {o}", kind, [x], fn,
                            args={"out_size": oh, "out_size_w": ow},
                            accumulate=[len(shape) == 3]))
    return out


def addmul_cases():
    out = []
    shapes = [[(2, 3, 4, 5), (2, 3, 4, 5)],
              [(2, 3, 4, 5), (2, 3, 1, 1)],
              [(2, 1, 4, 1), (3, 1, 5), (5,)],
              [(4, 5), (2, 3, 4, 5), (2, 3, 4, 5)],
              [(1, 3, 1, 2, 1), (2, 1, 4, 2, 3)],
              [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]]
    for kind in ("Add", "Mul"):
        for i, sh in enumerate(shapes):
            xs = [rnd(*s) for s in sh]

            def fn(ts, ps, kind=kind):
                y = ts[0]
                for t in ts[1:]:
                    y = y + t if kind == "Add" else y * t
                return y
            acc = [j == 1 and i % 2 == 0 for j in range(len(xs))]
            need = [not (j == 0 and i == 3) for j in range(len(xs))]
            out.append(Case(f"{kind} {sh}", kind, xs, fn, accumulate=acc,
                            need=need))
    return out


def multiply_cases():
    out = []
    for sa, sb in [((2, 3, 4, 5), (2, 3, 5, 6)), ((4, 5), (2, 3, 5, 6)),
                   ((2, 1, 4, 5), (3, 5, 2)), ((5,), (2, 5, 3)),
                   ((2, 4, 5), (5,)), ((6, 7), (7, 3)),
                   ((2, 2, 40, 24), (2, 2, 24, 40))]:
        out.append(Case(f"multiply {sa} {sb}", "multiply",
                        [rnd(*sa), rnd(*sb)],
                        lambda ts, ps: torch.matmul(ts[0], ts[1]),
                        accumulate=[len(sa) == 2, False]))
    return out


def concat_cases():
    out = []
    for shapes, dim in [([(2, 3, 4, 5), (2, 2, 4, 5)], 1),
                        ([(2, 3, 4, 1), (2, 3, 4, 2), (2, 3, 4, 3)], 3),
                        ([(1, 3, 2), (2, 3, 2)], 0)]:
        out.append(Case(f"concat {shapes} dim {dim}", "concat",
                        [rnd(*s) for s in shapes],
                        lambda ts, ps, dim=dim: torch.cat(ts, dim),
                        args={"dims": [dim]},
                        accumulate=[True] + [False] * (len(shapes) - 1)))
    return out


def reduce_cases():
    out = []
    for kind in ("mean", "sum", "max"):
        for shape, dims in [((2, 3, 4, 5), [1]), ((2, 3, 4, 5), [2, 3]),
                            ((2, 3, 4, 5), [0, 2]),
                            ((2, 3, 4, 5), [0, 1, 2, 3]),
                            ((2, 3, 2, 4, 3), [1, 3]), ((3, 70), [1])]:
            x = distinct(*shape) if kind == "max" else rnd(*shape)

            def fn(ts, ps, kind=kind, dims=dims):
                if kind == "mean":
                    return ts[0].mean(dim=dims, keepdim=True)
                if kind == "sum":
                    return ts[0].sum(dim=dims, keepdim=True)
                return torch.amax(ts[0], dim=dims, keepdim=True)
            out.append(Case(f"{kind} {shape} dims {dims}", kind, [x], fn,
                            args={"dims": dims},
                            accumulate=[len(dims) == 2]))
    # Ties: amax shares the gradient among equal maxima.
    x = np.maximum(rnd(2, 3, 4), 0.0).astype(np.float32)
    x[0, :, 1] = 0.0
    out.append(Case("max ties", "max", [x],
                    lambda ts, ps: torch.amax(ts[0], dim=[1], keepdim=True),
                    args={"dims": [1]}))
    for shape, dim in [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3),
                       ((3, 4), 0)]:
        out.append(Case(f"softmax {shape} dim {dim}", "softmax",
                        [rnd(*shape, scale=3.0)],
                        lambda ts, ps, dim=dim: torch.softmax(ts[0], dim),
                        args={"dims": [dim]}, accumulate=[dim == 3]))
    return out


def activation_cases():
    fns = {"ReLU": F.relu, "GELU": F.gelu, "Sigmoid": torch.sigmoid}
    return [Case(f"{k} {i}", k, [rnd(2, 3, 4, 5, scale=3.0)],
                 lambda ts, ps, f=f: f(ts[0]), accumulate=[i == 1])
            for k, f in fns.items() for i in range(2)]


def norm_cases():
    out = []
    for shape, training, acc in [((4, 3, 5, 5), True, False),
                                 ((4, 3, 5, 5), False, False),
                                 ((6, 4, 3, 7), True, True),
                                 ((8, 3), True, False),
                                 ((2, 5, 3, 2, 2), False, True)]:
        c = shape[1]
        x = rnd(*shape, scale=2.0) + 1.5
        params = [rnd(c) + 1.0, rnd(c), rnd(c),
                  np.abs(rnd(c)).astype(np.float32) + 0.5]

        def fn(ts, ps, training=training):
            rm, rv = ps[2].detach(), ps[3].detach()
            y = F.batch_norm(ts[0], rm, rv, ps[0], ps[1], training=training,
                             momentum=0.1, eps=1e-5)
            ps[2].data, ps[3].data = rm, rv
            return y
        out.append(Case(f"BN {shape} {'train' if training else 'eval'}",
                        "BN", [x], fn, params, {"in_ch": c},
                        training=training, accumulate=[acc],
                        trainable=[True, True, False, False]))
    for shape, acc in [((2, 3, 4, 5), False), ((6, 16), True),
                       ((2, 4, 3, 2, 7), False)]:
        d = shape[-1]
        params = [rnd(d) + 1.0, rnd(d)]
        out.append(Case(f"LN {shape}", "LN", [rnd(*shape) + 0.5],
                        lambda ts, ps, d=d: F.layer_norm(ts[0], (d,), ps[0],
                                                         ps[1], eps=1e-5),
                        params, {"in_ch": d}, accumulate=[acc]))
    return out


def shape_cases():
    out = []
    for shape, order in [((2, 3, 4, 5), [0, 2, 3, 1]),
                         ((2, 3, 4, 2, 3), [4, 0, 3, 1, 2]),
                         ((2, 1, 3, 2, 2, 3), [5, 1, 0, 4, 2, 3]),
                         ((3, 4), [1, 0])]:
        out.append(Case(f"permute {shape} {order}", "permute",
                        [rnd(*shape)],
                        lambda ts, ps, o=order: ts[0].permute(*o),
                        args={"dims": order},
                        accumulate=[len(shape) == 5]))
    for shape, sizes in [((2, 3, 4), [2, 1, 3]), ((3, 4), [2, 1, 2]),
                         ((2, 3), [1, 2, 1, 2]),
                         ((2, 1, 3, 2, 2), [1, 3, 1, 2, 1]),
                         ((2, 3, 1, 2, 1, 2), [1, 1, 2, 1, 3, 1])]:
        out.append(Case(f"repeat {shape} {sizes}", "repeat", [rnd(*shape)],
                        lambda ts, ps, s=sizes: ts[0].repeat(*s),
                        args={"sizes": sizes},
                        accumulate=[len(sizes) == 3]))
    for shape, to in [((2, 3, 4, 5), [2, 3, 20]),
                      ((2, 12, 5), [2, 3, 4, 5, 1]),
                      ((2, 3, 4, 5, 2), [2, 3, 40])]:
        out.append(Case(f"reshape {shape} {to}", "reshape", [rnd(*shape)],
                        lambda ts, ps, to=to: ts[0].reshape(*to),
                        args={"sizes": to}, accumulate=[len(to) == 3]))
    return out


def droppath_cases():
    out = []
    for prob, training, key in [(0.3, True, 0x1234567890abcdef),
                                (0.5, True, 42), (0.3, False, 7),
                                (0.0, True, 9)]:
        x = rnd(16, 3, 2, 2)
        if training and prob > 0:
            keep = np.array([rng_uniform(key, i) >= np.float32(prob)
                             for i in range(16)], dtype=np.float64)
            scale = keep / (1.0 - float(np.float32(prob)))
        else:
            scale = np.ones(16)

        def fn(ts, ps, scale=scale):
            return ts[0] * torch.tensor(scale).reshape(-1, 1, 1, 1)
        out.append(Case(f"DropPath p{prob} {'train' if training else 'eval'}",
                        "DropPath", [x], fn, args={"prob": prob},
                        training=training, rng_key=key,
                        accumulate=[prob == 0.5]))
    return out


# ------------------------------------------------ xent, sgd, batch
class Special:
    """A non-operation case (xent, sgd, batch) with its expected outputs."""

    def __init__(self, name, spec, want):
        self.name = name
        self.spec_ = dict(spec, name=name)
        self.want = want

    def spec(self):
        return self.spec_

    def check(self, out, fails):
        if "error" in out:
            fails.append(f"{self.name}: {out['error']}")
            return
        for k, v in self.want.items():
            got = out[k] if isinstance(out[k], list) else [out[k]]
            compare(fails, self.name, k, got, np.ravel(v))


def xent_cases():
    out = []
    for n, k in [(7, 10), (64, 100), (5, 3)]:
        z = rnd(n, k, scale=3.0)
        labels = rng.integers(0, k, n)
        zt = t64(z)
        loss = F.cross_entropy(zt, torch.tensor(labels), reduction="mean")
        loss.backward()
        correct = float((np.argmax(z, 1) == labels).sum())
        out.append(Special(f"xent {n}x{k}",
                           {"op": "xent", "logits": flat(z), "n": n,
                            "classes": k, "labels": labels.tolist()},
                           {"loss": loss.item() * n, "correct": correct,
                            "dlogits": zt.grad.numpy()}))
    return out


def sgd_cases():
    out = []
    for mom, wd, nest in [(0.9, 5e-4, True), (0.9, 5e-4, False),
                          (0.0, 1e-2, False), (0.5, 0.0, True)]:
        w0 = rnd(37)
        steps = [(0.1 * (0.9 ** s), rnd(37)) for s in range(5)]
        p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=0.1, momentum=mom, weight_decay=wd,
                              nesterov=nest)
        for lr, g in steps:
            opt.param_groups[0]["lr"] = lr
            p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
        want = {"w": p.detach().numpy()}
        if mom:
            want["m"] = opt.state[p]["momentum_buffer"].numpy()
        out.append(Special(f"sgd mom {mom} wd {wd} nesterov {nest}",
                           {"op": "sgd", "w": flat(w0), "momentum": mom,
                            "weight_decay": wd, "nesterov": nest,
                            "steps": [{"lr": lr, "g": flat(g)}
                                      for lr, g in steps]},
                           want))
    return out


def batch_reference(images, labels, index, sx, sy, flip, pad, mean, std):
    n, (h, w) = len(index), images.shape[2:]
    out = np.zeros((n, 3, h, w), dtype=np.float64)
    for i, j in enumerate(index):
        padded = np.pad(images[j].astype(np.float64),
                        ((0, 0), (pad, pad), (pad, pad)))
        crop = padded[:, pad + sy[i]:pad + sy[i] + h,
                      pad + sx[i]:pad + sx[i] + w]
        if flip[i]:
            crop = crop[:, :, ::-1]
        out[i] = (crop / 255.0 - np.array(mean)[:, None, None]) / \
            np.array(std)[:, None, None]
    return out, labels[index]


def batch_cases():
    out = []
    for total, n, h, w, pad in [(6, 5, 8, 8, 4), (4, 4, 7, 5, 2),
                                (3, 3, 6, 6, 0)]:
        images = rng.integers(0, 256, (total, 3, h, w), dtype=np.uint8)
        labels = rng.integers(0, 10, total)
        index = rng.integers(0, total, n)
        sx = rng.integers(-pad, pad + 1, n)
        sy = rng.integers(-pad, pad + 1, n)
        flip = rng.integers(0, 2, n)
        mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
        ref, lab = batch_reference(images, labels, index, sx, sy, flip, pad,
                                   mean, std)
        out.append(Special(f"batch {total} {h}x{w} pad {pad}",
                           {"op": "batch",
                            "images": images.ravel().tolist(),
                            "labels": labels.tolist(), "h": h, "w": w,
                            "index": index.tolist(),
                            "shift_x": sx.tolist(), "shift_y": sy.tolist(),
                            "flip": flip.tolist(), "pad": pad,
                            "mean": mean, "std": std},
                           {"out": ref, "labels_out": lab}))
    return out


# ----------------------------------------------------------------- main
def main():
    if not os.access(RUNNER, os.X_OK):
        print(f"op_runner not built at {RUNNER}", file=sys.stderr)
        return 1
    cases = (conv_cases() + linear_cases() + pool_cases() + addmul_cases() +
             multiply_cases() + concat_cases() + reduce_cases() +
             activation_cases() + norm_cases() + shape_cases() +
             droppath_cases() + xent_cases() + sgd_cases() + batch_cases())
    covered = {c.spec()["op"] for c in cases}
    from_table = {"Conv2d", "Linear", "AvgPool2d", "MaxPool2d",
                  "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Add", "Mul",
                  "multiply", "concat", "mean", "max", "sum", "softmax",
                  "ReLU", "GELU", "Sigmoid", "BN", "LN", "permute", "repeat",
                  "reshape", "DropPath"}
    fails = [f"no case for {op}" for op in sorted(from_table - covered)]

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "cases.json")
        with open(src, "w") as f:
            json.dump({"cases": [c.spec() for c in cases]}, f)
        # The kernels split work by thread and exist per instruction set
        # (the backend falls back to what the CPU has); OpenMP may give a
        # team fewer threads than asked for (limit 1).
        runs = [(1, "", ""), (2, "", ""), (2, "avx2", ""),
                (2, "generic", ""), (2, "", "1")]
        for threads, isa, limit in runs:
            dst = os.path.join(tmp, f"out{threads}{isa}{limit}.json")
            env = dict(os.environ, NADER_CPU_ISA=isa)
            if limit:
                env["OMP_THREAD_LIMIT"] = limit
            subprocess.run([RUNNER, "--threads", str(threads), src, dst],
                           check=True, env=env)
            with open(dst) as f:
                res = json.load(f)
            if res["bytes_in_use"] != 0:
                fails.append(f"{res['bytes_in_use']} bytes leaked")
            n0 = len(fails)
            for c, out in zip(cases, res["cases"]):
                c.check(out, fails)
            for i in range(n0, len(fails)):
                fails[i] = (f"[{threads} thread(s) {isa} limit {limit}] "
                            f"{fails[i]}")

    for f in fails:
        print("FAIL", f)
    print(f"{len(cases)} cases x {len(runs)} runs, {len(fails)} failures "
          f"(rtol {RTOL}, atol {ATOL})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
