"""The nb201 recipe in PyTorch, on a folder of CIFAR-10 binary files.

The reference side of the learning test and of the training benchmark:
the same network as nader (tests/py/nader_ref.py), the same data files,
and the recipe of spec/training-protocol.md as nader's engine runs it
(docs/engine.md):

  - SGD, Nesterov momentum 0.9, weight decay 5e-4 on all parameters;
    lr(e) = lr/2 * (1 + cos(pi * e / E)), set once per epoch;
  - cross-entropy; batches in a fresh random order each epoch, the last
    partial batch trained on (a lone last sample dropped, as nader does);
  - random crop with 4 px of zero padding and a random horizontal flip,
    then scaling to [0, 1] and the CIFAR-10 normalisation;
  - evaluation on the test files after every epoch.

Random choices come from torch's generator seeded with the seed: the
same recipe and seed, not the same random numbers as nader (its streams
are its own), so the two agree in distribution, not sample for sample.
"""
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import nader_ref

MEAN = np.array([125.3, 123.0, 113.9], np.float32) / 255.0
STD = np.array([63.0, 62.1, 66.7], np.float32) / 255.0


def read_cifar10(folder):
    """(train_x, train_y, test_x, test_y): uint8 (n, 3, 32, 32), int64."""
    counts = {}
    manifest = os.path.join(folder, "nader-data.json")
    if os.path.exists(manifest):
        counts = json.load(open(manifest))["records"]

    def part(names):
        xs, ys = [], []
        for name in names:
            raw = np.fromfile(os.path.join(folder, name), np.uint8)
            n = counts.get(name, 10000)
            rec = raw.reshape(n, 3073)
            ys.append(rec[:, 0].astype(np.int64))
            xs.append(rec[:, 1:].reshape(n, 3, 32, 32))
        return np.concatenate(xs), np.concatenate(ys)

    tx, ty = part(["data_batch_%d.bin" % i for i in range(1, 6)])
    vx, vy = part(["test_batch.bin"])
    return tx, ty, vx, vy


def normalise(x):
    x = x.float() / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(STD).view(1, 3, 1, 1)


def augment(x, gen, pad=4):
    """Random crop with zero padding and horizontal flip of uint8
    (n, 3, h, w), vectorised."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    rows = dy[:, None] + ar_h[None, :]
    cols = torch.where(flip[:, None], dx[:, None] + (w - 1 - ar_w)[None, :],
                       dx[:, None] + ar_w[None, :])
    return padded[torch.arange(n)[:, None, None, None],
                  torch.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def build(design_path, width, cells, classes=10, seed=777):
    design = nader_ref.parse_design(open(design_path).read())
    torch.manual_seed(seed)
    return nader_ref.build_network(
        design, "darts" if design.two_input else "nb201", width,
        classes=classes, cells_per_stage=cells)


def evaluate(net, x, y, batch=256):
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = normalise(torch.from_numpy(x[i:i + batch]))
            yb = torch.from_numpy(y[i:i + batch])
            out = net(xb)
            loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    return loss / len(x), 100.0 * correct / len(x)


def save_init(net, path):
    """Write net's weights as safetensors, for `nader train
    --init-weights` (so both sides start from the same weights)."""
    import st_numpy
    st_numpy.save(path, {k: v.detach().numpy()
                         for k, v in net.state_dict().items()})


def train(design_path, folder, width, cells=5, epochs=10, batch=256,
          seed=777, lr=0.1, threads=2, log=None, net=None):
    """Train (net, or a new one seeded with seed) and return
    {"epochs": [per-epoch figures]}."""
    torch.set_num_threads(threads)
    tx, ty, vx, vy = read_cifar10(folder)
    if net is None:
        net = build(design_path, width, cells, seed=seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9,
                          nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    n = len(tx) - (1 if len(tx) % batch == 1 and len(tx) > 1 else 0)
    txt, tyt = torch.from_numpy(tx), torch.from_numpy(ty)
    history = []
    for e in range(epochs):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * e / epochs))
        net.train()
        order = torch.randperm(len(tx), generator=gen)[:n]
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            xb = normalise(augment(txt[idx], gen))
            yb = tyt[idx]
            opt.zero_grad()
            out = net(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
        secs = time.perf_counter() - t0
        vl, va = evaluate(net, vx, vy)
        history.append({"epoch": e, "train_loss": loss_sum / seen,
                        "train_acc": 100.0 * correct / seen,
                        "valid_loss": vl, "valid_acc": va,
                        "images_per_s": seen / secs, "seconds": secs})
        if log:
            log("torch epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  "
                "%.0f img/s" % (e + 1, epochs, loss_sum / seen,
                                100.0 * correct / seen, va, seen / secs))
    return {"epochs": history}
