"""Whole-network parameter counts, parameter names and shapes, block node
shapes and MACs of nader's assembly agree with PyTorch's for the same
network built independently by tests/py/nader_ref.py, for several blocks
and widths in both skeletons - ImageNet-style designs whose stem reduces
the input 4 times (stem_scale 4) on 32x32 and 16x16 inputs among them -
and `nader graph check --json` reports the same counts.

Runs in about 15 s (torch import and ~40 small networks).
"""

import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import nader_ref  # noqa: E402

BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
NADER = os.path.join(BIN, "nader")
NET_DUMP = os.path.join(BIN, "tools", "net_dump")

# (file, skeleton, dataset, forced widths; None = the searched width)
CASES = [
    ("examples/blocks/resnet_basic.txt", "nb201", "cifar10", [None, 7]),
    ("examples/blocks/se_residual.txt", "nb201", "cifar100", [None, 12]),
    ("examples/blocks/shuffle_unit.txt", "nb201", "cifar10", [None, 8]),
    ("examples/blocks/convnext_cell.txt", "nb201", "imagenet16-120",
     [None, 5]),
    ("examples/blocks/nasbench201_seed777.txt", "nb201", "cifar10", [None]),
    ("examples/blocks/darts_sep.txt", "darts", "cifar10", [None, 6]),
    ("tests/blocks/good/darts_cell_only.txt", "darts", "cifar100",
     [None, 4]),
    ("tests/blocks/good/darts_reduction.txt", "darts", "imagenet16-120",
     [None]),
    ("tests/blocks/good/self_attention.txt", "nb201", "cifar10", [None, 16]),
    ("tests/blocks/good/spatial_gate.txt", "nb201", "cifar10", [None]),
    ("tests/blocks/good/pooling_mix.txt", "nb201", "cifar10", [None, 3]),
    ("tests/blocks/good/grouped_dilated.txt", "nb201", "cifar10", [None]),
    ("tests/blocks/good/shuffle_down.txt", "nb201", "cifar100", [None]),
    ("tests/blocks/good/bottleneck.txt", "nb201", "cifar10", [None, 4]),
    ("tests/blocks/good/se_conv_gate.txt", "nb201", "cifar10", [None]),
    ("tests/blocks/good/cell_only.txt", "nb201", "cifar10", [None]),
]

# Skeletons whose stem reduces the resolution: (file, skeleton, data set,
# forced widths, stem_scale).
SCALED = [
    ("tests/blocks/good/imagenet_patchnext.txt", "nb201", "cifar10",
     [None, 6], 4),
    ("tests/blocks/good/imagenet_patchnext.txt", "nb201", "imagenet16-120",
     [None], 4),
    ("tests/blocks/good/imagenet_bottleneck.txt", "nb201", "cifar100",
     [None, 8], 4),
    ("tests/blocks/good/imagenet_bottleneck.txt", "nb201", "imagenet16-120",
     [None], 4),
    ("tests/blocks/good/imagenet_basic.txt", "nb201", "cifar10",
     [None, 5], 4),
    ("tests/blocks/good/imagenet_basic.txt", "nb201", "imagenet16-120",
     [None], 4),
    ("tests/blocks/good/darts_strided_stem.txt", "darts", "cifar10",
     [None, 6], 2),
    ("examples/blocks/se_residual.txt", "nb201", "cifar10", [None], 1),
]

SIZES = {"cifar10": (10, 32), "cifar100": (100, 32),
         "imagenet16-120": (120, 16)}


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=ROOT, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


class ParamParity(unittest.TestCase):
    def check_case(self, path, skeleton, dataset, width, stem_scale=None):
        cmd = [NET_DUMP, path, "--skeleton", skeleton, "--dataset", dataset]
        if width:
            cmd += ["--width", str(width)]
        if stem_scale:
            cmd += ["--stem-scale", str(stem_scale)]
        rc, out, err = run(cmd)
        self.assertEqual(rc, 0, err)
        c = json.loads(out)
        classes, res = SIZES[dataset]

        with open(os.path.join(ROOT, path)) as f:
            design = nader_ref.parse_design(f.read())
        torch.manual_seed(0)
        net = nader_ref.build_network(design, skeleton, c["width"], classes,
                                      (3, res, res),
                                      stem_scale=stem_scale or 1)
        what = "%s %s w=%d s=%d" % (path, skeleton, c["width"],
                                    stem_scale or 1)

        # Whole-network trainable parameters, then every tensor.
        self.assertEqual(c["params"], nader_ref.count_params(net), what)
        ref = {k: list(v.shape) for k, v in net.state_dict().items()}
        mine = {p["name"]: p["shape"] for p in c["parameters"]}
        self.assertEqual(sorted(ref), sorted(mine), what)
        for k in ref:
            self.assertEqual(ref[k], mine[k], "%s %s" % (what, k))
        trainable = {k for k, _ in net.named_parameters()}
        for p in c["parameters"]:
            self.assertEqual(p["trainable"], p["name"] in trainable, p["name"])

        # Output shape of every block node at batch 2.
        shapes = nader_ref.block_shapes(net)
        nodes = {n["name"]: n["shape"] for n in c["nodes"]}
        for name, shape in shapes.items():
            self.assertIn(name, nodes, what)
            self.assertEqual(list(shape), nodes[name], "%s %s" % (what, name))

        # MACs per image, counted by running the network.
        self.assertEqual(c["macs"],
                         nader_ref.count_macs(net, (3, res, res)), what)
        logits = net.eval()(torch.randn(3, 3, res, res))
        self.assertEqual(tuple(logits.shape), (3, classes))
        return c

    def test_networks(self):
        for path, skeleton, dataset, widths in CASES:
            for w in widths:
                with self.subTest(path=path, width=w):
                    c = self.check_case(path, skeleton, dataset, w)
                    if w is None:
                        self.check_cli(path, skeleton, dataset, c)

    def test_stem_scales(self):
        for path, skeleton, dataset, widths, scale in SCALED:
            for w in widths:
                with self.subTest(path=path, dataset=dataset, width=w):
                    c = self.check_case(path, skeleton, dataset, w, scale)
                    if w is None:
                        self.check_cli(path, skeleton, dataset, c, scale)
            # The reference refuses the stem at any other scale, as
            # nader does.
            other = 1 if scale != 1 else 4
            with open(os.path.join(ROOT, path)) as f:
                design = nader_ref.parse_design(f.read())
            classes, res = SIZES[dataset]
            with self.assertRaises(ValueError):
                nader_ref.build_network(design, skeleton, 8, classes,
                                        (3, res, res), stem_scale=other)
            rc, _, err = run([NET_DUMP, path, "--skeleton", skeleton,
                              "--dataset", dataset, "--stem-scale",
                              str(other)])
            self.assertEqual(rc, 1)
            self.assertIn("stem node", err)

    def check_cli(self, path, skeleton, dataset, c, stem_scale=None):
        cmd = [NADER, "graph", "check", path, "--skeleton", skeleton,
               "--dataset", dataset, "--json"]
        if stem_scale:
            cmd += ["--stem-scale", str(stem_scale)]
        rc, out, err = run(cmd)
        self.assertEqual(rc, 0, out + err)
        j = json.loads(out)
        self.assertTrue(j["valid"])
        self.assertEqual(j["stem_scale"], stem_scale or 1)
        self.assertEqual(j["errors"], [])
        self.assertEqual(j["width"], c["width"])
        self.assertEqual(j["params"], c["params"])
        self.assertEqual(j["macs"], c["macs"])
        self.assertEqual(j["hash"], c["hash"])
        self.assertIsInstance(j["within_tolerance"], bool)


if __name__ == "__main__":
    if not (os.path.exists(NET_DUMP) and os.path.exists(NADER)):
        print("skip: build nader and build/tools/net_dump first (make)")
        sys.exit(77)
    unittest.main(verbosity=2)
