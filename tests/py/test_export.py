"""`nader export` against PyTorch and against nader's own engine.

For every example design (examples/blocks/*.txt, tests/blocks/good/*.txt)
in every skeleton that takes it, with the stem scale the file asks for
("# stem_scale: 4" for the ImageNet-style designs):

  - the exported module (--format pytorch) builds in Debian's torch with
    exactly the parameter count `nader graph check` reports at the
    budget width, and state_dict() keys and shapes equal to the
    parameters listed by --format json;
  - at a small width (the engine is slow on 2 shared cores), the engine
    (tests/tools/net_forward: random init, BN/LN affine drawn away from
    1 and 0, a training pass to move the BN statistics) and the exported
    module with the weights from `nader export --weights` give the same
    logits on the same batch of 5 images within 1e-4 - batch 5 because
    the exporter learns batch-dependent sizes from batches 2 and 3;
  - three designs (one per skeleton, one ImageNet-style) are also
    compared at the budget width;
  - weights from a real `nader train --save-weights` run (1 epoch on the
    generated colours data) exported with --weights-from give the
    engine's logits too.

And the other formats and the error paths: block text round-trips to the
same hash, DOT names every node and edge, weights of another design are
refused naming the tensor, an invalid design exits 1 and writes no file.

Prints the largest logit difference seen.  Takes about 60 s on 2 busy
cores (engine forward passes dominate).
"""

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import st_numpy  # noqa: E402

BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
NADER = os.path.join(BIN, "nader")
NET_FORWARD = os.path.join(BIN, "tools", "net_forward")
TOL = 1e-4
BATCH = 5
SMALL_WIDTHS = (8, 6, 12, 4, 16, 10, 24, 32)
FULL = ("examples/blocks/resnet_basic.txt", "examples/blocks/darts_sep.txt",
        "tests/blocks/good/imagenet_patchnext.txt")
DATASET = {"convnext_cell": "imagenet16-120", "se_residual": "cifar100",
           "imagenet_bottleneck": "imagenet16-120"}

torch.set_num_threads(1)


def run(cmd, ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=ROOT, universal_newlines=True)
    if ok and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(cmd),
                                                 p.returncode, p.stderr))
    return p


def stem_scale(rel):
    """The stem scale a file asks for ("# stem_scale: S"), or 1."""
    with open(os.path.join(ROOT, rel)) as f:
        m = re.search(r"^# stem_scale: (\d+)", f.read(), re.M)
    return int(m.group(1)) if m else 1


def stem_args(rel):
    return ["--stem-scale", str(stem_scale(rel))]


def check(path, skeleton, dataset, width=None):
    cmd = [NADER, "graph", "check", path, "--skeleton", skeleton,
           "--dataset", dataset, "--json"] + stem_args(path)
    if width:
        cmd += ["--width", str(width)]
    p = run(cmd, ok=False)
    return json.loads(p.stdout) if p.stdout.strip() else {"valid": False}


def load_module(path):
    name = "exported_%d" % abs(hash(path))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cases():
    files = sorted(glob.glob(os.path.join(ROOT, "examples/blocks/*.txt")) +
                   glob.glob(os.path.join(ROOT, "tests/blocks/good/*.txt")))
    out = []
    for f in files:
        rel = os.path.relpath(f, ROOT)
        ds = DATASET.get(os.path.basename(f)[:-4], "cifar10")
        for sk in ("nb201", "darts"):
            r = check(rel, sk, ds)
            if r["valid"]:
                out.append((rel, sk, ds, r["params"], r["width"]))
    return out


class Export(unittest.TestCase):
    max_diff = 0.0
    compared = 0

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="nader-export-")
        cls.cases = cases()
        rng = np.random.RandomState(7)
        cls.inputs = {}
        for side in (32, 16):
            path = os.path.join(cls.tmp, "x%d.st" % side)
            x = rng.randn(BATCH, 3, side, side).astype(np.float32)
            st_numpy.save(path, {"x": x})
            cls.inputs[side] = (path, torch.from_numpy(x))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        print("\nlogits compared for %d networks; largest difference "
              "%.3g (tolerance %g)" % (cls.compared, cls.max_diff, TOL))

    def export(self, rel, sk, ds, tag, extra=()):
        out = os.path.join(self.tmp, "%s.py" % tag)
        run([NADER, "export", rel, "--skeleton", sk, "--dataset", ds,
             "-o", out] + stem_args(rel) + list(extra))
        return out

    def test_every_design_counts_and_names(self):
        self.assertGreaterEqual(len(self.cases), 16)
        scaled = {rel for rel, *_ in self.cases if stem_scale(rel) > 1}
        self.assertGreaterEqual(len(scaled), 4, scaled)
        for rel, sk, ds, params, width in self.cases:
            with self.subTest(design=rel, skeleton=sk):
                tag = "full_" + os.path.basename(rel)[:-4]
                mod = load_module(self.export(rel, sk, ds, tag))
                net = mod.Network()
                n = sum(p.numel() for p in net.parameters())
                self.assertEqual(n, params)
                self.assertEqual(mod.PARAMETERS, params)
                js = json.loads(run([NADER, "export", rel, "--skeleton", sk,
                                     "--dataset", ds, "--format", "json"] +
                                    stem_args(rel)).stdout)
                self.assertEqual(js["params"], params)
                self.assertEqual(js["stem_scale"], stem_scale(rel))
                self.assertEqual(js["width"], width)
                want = {p["name"]: tuple(p["shape"])
                        for p in js["parameters"]}
                have = {k: tuple(v.shape)
                        for k, v in net.state_dict().items()}
                self.assertEqual(have, want)
                side = mod.INPUT_SHAPE[1]
                with torch.no_grad():
                    y = net.eval()(torch.zeros(3, 3, side, side))
                self.assertEqual(tuple(y.shape), (3, mod.CLASSES))

    def compare(self, rel, sk, ds, width, tag):
        side = 16 if ds == "imagenet16-120" else 32
        xpath, x = self.inputs[side]
        ypath = os.path.join(self.tmp, tag + ".y.st")
        wpath = os.path.join(self.tmp, tag + ".engine.st")
        epath = os.path.join(self.tmp, tag + ".export.st")
        run([NET_FORWARD, rel, "--skeleton", sk, "--dataset", ds,
             "--width", str(width), "--input", xpath, "--out", ypath,
             "--save-weights", wpath, "--warmup", "1", "--seed", "3"] +
            stem_args(rel))
        mod = load_module(self.export(rel, sk, ds, tag,
                                      ["--width", str(width), "--weights",
                                       epath, "--weights-from", wpath]))
        net = mod.Network()
        meta = mod.load_safetensors(net, epath)
        self.assertEqual(meta["format"], "nader-weights")
        self.assertEqual(meta["width"], str(width))
        net.eval()
        with torch.no_grad():
            y = net(x).numpy()
        ref = st_numpy.load(ypath)[0]["logits"]
        self.assertEqual(y.shape, ref.shape)
        self.assertGreater(float(np.abs(ref).max()), 1e-3)
        diff = float(np.abs(y - ref).max())
        Export.max_diff = max(Export.max_diff, diff)
        Export.compared += 1
        self.assertLessEqual(diff, TOL, "%s %s width %d" % (rel, sk, width))

    def test_logits_match_engine_small_width(self):
        for rel, sk, ds, _, _ in self.cases:
            with self.subTest(design=rel, skeleton=sk):
                width = next((w for w in SMALL_WIDTHS
                              if check(rel, sk, ds, w)["valid"]), None)
                self.assertIsNotNone(width, "no small width for " + rel)
                self.compare(rel, sk, ds, width,
                             "small_" + os.path.basename(rel)[:-4])

    def test_logits_match_engine_budget_width(self):
        for rel, sk, ds, _, width in self.cases:
            if rel in FULL:
                with self.subTest(design=rel):
                    self.compare(rel, sk, ds, width,
                                 "budget_" + os.path.basename(rel)[:-4])

    def test_trained_weights_from_nader_train(self):
        """Weights `nader train --save-weights` wrote (a real training run
        on the generated colours data) give the engine's logits."""
        data = os.path.join(self.tmp, "colours")
        run([sys.executable, os.path.join(HERE, "fixtures",
                                          "make_colours.py"), data])
        rel = "examples/blocks/se_residual.txt"
        trained = os.path.join(self.tmp, "trained.st")
        p = run([NADER, "train", rel, "--dataset", "cifar10", "--data",
                 data, "--epochs", "1", "--width", "4", "--cells", "1",
                 "--batch", "32", "--threads", "1", "--quiet",
                 "--save-weights", trained])
        xpath, x = self.inputs[32]
        ypath = os.path.join(self.tmp, "trained.y.st")
        run([NET_FORWARD, rel, "--width", "4", "--cells", "1", "--input",
             xpath, "--out", ypath, "--weights", trained, "--warmup", "0"])
        epath = os.path.join(self.tmp, "trained.export.st")
        mod = load_module(self.export(rel, "nb201", "cifar10", "trained",
                                      ["--width", "4", "--cells", "1",
                                       "--weights", epath,
                                       "--weights-from", trained]))
        net = mod.Network()
        mod.load_safetensors(net, epath)
        net.eval()
        with torch.no_grad():
            y = net(x).numpy()
        ref = st_numpy.load(ypath)[0]["logits"]
        diff = float(np.abs(y - ref).max())
        Export.max_diff = max(Export.max_diff, diff)
        Export.compared += 1
        self.assertLessEqual(diff, TOL)
        # The weights are trained ones: BN statistics have moved.
        var = [v for k, v in net.state_dict().items()
               if k.endswith("running_var")]
        self.assertTrue(any(bool((v != 1).any()) for v in var), p.stdout)

    def test_block_roundtrip_and_dot(self):
        for rel, sk, ds, _, _ in self.cases:
            with self.subTest(design=rel):
                text = run([NADER, "export", rel, "--skeleton", sk,
                            "--format", "block"] + stem_args(rel)).stdout
                path = os.path.join(self.tmp, "round.txt")
                with open(path, "w") as f:
                    f.write(text)
                h1 = run([NADER, "graph", "hash", rel]).stdout
                h2 = run([NADER, "graph", "hash", path]).stdout
                self.assertEqual(h1, h2)
                dot = run([NADER, "export", rel, "--skeleton", sk,
                           "--format", "dot"] + stem_args(rel)).stdout
                js = json.loads(run([NADER, "export", rel, "--skeleton", sk,
                                     "--format", "json"] +
                                    stem_args(rel)).stdout)
                declared = set(re.findall(r"^\s*(x\d+) \[label=", dot, re.M))
                edges = re.findall(r"^\s*(x\d+) -> (x\d+)", dot, re.M)
                self.assertEqual(len(declared), len(js["nodes"]))
                self.assertTrue(dot.startswith("digraph network {"))
                self.assertTrue(dot.rstrip().endswith("}"))
                for a, b in edges:
                    self.assertIn(a, declared)
                    self.assertIn(b, declared)
                self.assertEqual(len(edges), sum(len(n["inputs"])
                                                 for n in js["nodes"]))

    def test_wrong_weights_and_invalid_design(self):
        rel = "examples/blocks/resnet_basic.txt"
        xpath, _ = self.inputs[32]
        wpath = os.path.join(self.tmp, "resnet8.st")
        run([NET_FORWARD, rel, "--width", "8", "--input", xpath, "--out",
             os.path.join(self.tmp, "y.st"), "--save-weights", wpath,
             "--warmup", "0"])
        out = os.path.join(self.tmp, "wrong.st")
        p = run([NADER, "export", "examples/blocks/se_residual.txt",
                 "--width", "8", "--weights", out, "--weights-from", wpath],
                ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(wpath, p.stderr)
        self.assertFalse(os.path.exists(out))
        p = run([NADER, "export", rel, "--width", "12", "--weights", out,
                 "--weights-from", wpath], ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"shape|expected")
        self.assertFalse(os.path.exists(out))

        bad = "tests/blocks/bad/add_channels.txt"
        dest = os.path.join(self.tmp, "bad.py")
        p = run([NADER, "export", bad, "-o", dest], ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("node", p.stderr)
        self.assertEqual(os.listdir(self.tmp).count("bad.py"), 0)
        self.assertFalse(any(n.startswith("bad.py.tmp")
                             for n in os.listdir(self.tmp)))
        p = run([NADER, "export", rel, "--format", "onnx"], ok=False)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
