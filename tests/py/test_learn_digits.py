#!/usr/bin/python3
"""nader learns real data: sklearn's handwritten digits.

tests/py/fixtures/make_digits.py writes the 1,797 digits of Debian's
python3-sklearn into the CIFAR-10 binary layout (upsampled to 32x32,
three channels, 1,437 training and 360 test images).  `nader train`
trains the ResNet basic design on them with the nb201 recipe at a small
size (see WIDTH, CELLS, EPOCHS, BATCH), and must reach at
least 95 % test accuracy; PyTorch trains the same network
(tests/py/nader_ref.py) with the same recipe and seed
(tests/py/torch_recipe.py), and nader must be within 2 points of it.
Both start from the same weights (PyTorch's initialisation, handed to
nader with --init-weights), so what differs is only the training: the
order, crops and flips come from each side's own random stream.
The two train at the same time, one thread each (thread counts do not
change what is learnt, and PyTorch's two-thread OpenMP loops slow down
tenfold when other work shares the cores).  Prints both accuracies and
times; under a minute here.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import torch_recipe  # noqa: E402

BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
DESIGN = os.path.join(ROOT, "examples", "blocks", "resnet_basic.txt")
WIDTH, CELLS, EPOCHS, BATCH, SEED, THREADS = 8, 1, 10, 64, 777, 1
TORCH_THREADS = 1
MIN_ACC, MAX_GAP = 95.0, 2.0


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "digits")
        subprocess.run([sys.executable, os.path.join(
            HERE, "fixtures", "make_digits.py"), data], check=True)
        out = os.path.join(tmp, "result.json")
        init = os.path.join(tmp, "init.safetensors")
        net = torch_recipe.build(DESIGN, WIDTH, CELLS, seed=SEED)
        torch_recipe.save_init(net, init)
        cmd = [os.path.join(BIN, "nader"), "train", DESIGN, "--dataset",
               "cifar10", "--data", data, "--width", str(WIDTH), "--cells",
               str(CELLS), "--epochs", str(EPOCHS), "--batch", str(BATCH),
               "--seed", str(SEED), "--threads", str(THREADS), "--json-out",
               out, "--init-weights", init]
        print(" ".join(cmd))
        # both sides at once, one thread each, on the two cores
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        ref = torch_recipe.train(DESIGN, data, WIDTH, cells=CELLS,
                                 epochs=EPOCHS, batch=BATCH, seed=SEED,
                                 threads=TORCH_THREADS, log=print, net=net)
        torch_s = time.perf_counter() - t0
        rc = proc.wait()
        nader_s = time.perf_counter() - t0
        if rc != 0:
            print("nader train failed with exit code %d" % rc)
            return 1
        r = json.load(open(out))
        nader_acc = r["final_test_acc"]
        torch_acc = ref["epochs"][-1]["valid_acc"]

    print("nader: %.2f %% test accuracy in %.1f s (%d params); "
          "pytorch: %.2f %% in %.1f s; gap %.2f points" % (
              nader_acc, nader_s, r["params"], torch_acc, torch_s,
              nader_acc - torch_acc))
    ok = nader_acc >= MIN_ACC and abs(nader_acc - torch_acc) <= MAX_GAP
    if nader_acc < MIN_ACC:
        print("FAIL: nader below %.0f %%" % MIN_ACC)
    if abs(nader_acc - torch_acc) > MAX_GAP:
        print("FAIL: more than %.0f points from PyTorch" % MAX_GAP)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
