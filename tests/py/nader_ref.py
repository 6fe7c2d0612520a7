"""nader_ref - an independent PyTorch reference for nader's block format.

Reads block text (spec/graph-format.md), and builds the network that a
skeleton assembles from a design (docs/skeletons.md) as a torch.nn.Module
whose module paths are nader's node names, so that

    build_network(parse_design(text), "nb201", width=16).state_dict()

has exactly the keys and shapes of net_param_list() in C.  Shapes are not
inferred here by rules: each layer is created by running a zero tensor
through the blocks while they are built, so PyTorch itself decides what
fits.  Nothing in this file is shared with the C code; it exists to catch
the C code being wrong.

Used by tests/py/test_graph_params.py, and meant for reuse by the engine
parity tests and the PyTorch export test:

    import nader_ref
    design = nader_ref.parse_design(open("examples/blocks/se_residual.txt").read())
    net = nader_ref.build_network(design, "nb201", width=24, classes=10)
    logits = net(torch.randn(8, 3, 32, 32))

Run with Debian's /usr/bin/python3 (torch 1.13).
"""

import math
import re
from fractions import Fraction

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- table

# Operation -> (argument names in positional order, defaults).  Variadic
# operations (permute, repeat, reshape) take a list of values instead.
OPS = {
    "input": ([], {}),
    "input1": ([], {}),
    "input2": ([], {}),
    "output": ([], {}),
    "Conv2d": (["out_channels", "kernel_size", "stride", "dilation",
                "groups"], {"stride": 1, "dilation": 1, "groups": 1}),
    "Linear": (["out_channels"], {}),
    "AvgPool2d": (["kernel_size", "stride"], {}),
    "MaxPool2d": (["kernel_size", "stride"], {}),
    "AdaptiveAvgPool2d": (["output_size"], {}),
    "AdaptiveMaxPool2d": (["output_size"], {}),
    "Add": ([], {}),
    "Mul": ([], {}),
    "multiply": ([], {}),
    "concat": (["dim"], {}),
    "mean": (["dim"], {}),
    "max": (["dim"], {}),
    "sum": (["dim"], {}),
    "softmax": (["dim"], {}),
    "ReLU": ([], {}),
    "GELU": ([], {}),
    "Sigmoid": ([], {}),
    "BN": ([], {}),
    "LN": ([], {}),
    "permute": (None, {}),
    "repeat": (None, {}),
    "reshape": (None, {}),
    "DropPath": (["prob"], {"prob": Fraction(1, 5)}),
}
_CANON = {name.lower(): name for name in OPS}
INPUT_OPS = ("input", "input1", "input2")

# ---------------------------------------------------------- expressions

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|(dim|[BCHWbchw])(?![A-Za-z_])"
                    r"|([xX*/+\-()]))")


class Expr:
    """An arithmetic expression over B, C, dim, H, W, evaluated exactly."""

    def __init__(self, text):
        self.text = text.strip()
        pieces, pos = [], 0
        text = self.text
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                # A variable immediately followed by 'x' (Cx4, dimx2).
                m2 = re.compile(r"\s*(dim|[BCHWbchw])(?=[xX])").match(text, pos)
                if not m2:
                    raise ValueError("cannot read expression %r" % self.text)
                pieces.append("env[%r]" % _var(m2.group(1)))
                pos = m2.end()
                continue
            num, var, op = m.groups()
            if num is not None:
                pieces.append("Fraction(%r)" % num)
            elif var is not None:
                pieces.append("env[%r]" % _var(var))
            elif op in "xX":
                pieces.append("*")
            else:
                pieces.append(op)
            pos = m.end()
        self.code = compile(" ".join(pieces), "<expr>", "eval")

    def value(self, env):
        return eval(self.code, {"Fraction": Fraction, "env": env})

    def __repr__(self):
        return "Expr(%r)" % self.text


def _var(name):
    return "dim" if name.lower() == "dim" else name.upper()


def _whole(v, what):
    if not isinstance(v, Fraction):
        v = Fraction(v)
    if v.denominator != 1:
        raise ValueError("%s = %s is not a whole number" % (what, v))
    return int(v)


# ---------------------------------------------------------------- blocks

class Node:
    def __init__(self, index, op, args):
        self.index = index
        self.op = op
        self.args = args      # dict name -> Expr or tuple of Expr; or list
        self.inputs = []      # node indices in edge order


class Block:
    def __init__(self, name):
        self.name = name
        self.role = role_of(name)
        self.nodes = {}       # index -> Node, in definition order
        self.edges = []

    @property
    def two_input(self):
        return any(n.op in ("input1", "input2") for n in self.nodes.values())

    def topo(self):
        """Node indices in a topological order."""
        deg = {i: len(n.inputs) for i, n in self.nodes.items()}
        users = {i: [] for i in self.nodes}
        for i, n in self.nodes.items():
            for j in n.inputs:
                users[j].append(i)
        ready = [i for i in self.nodes if deg[i] == 0]
        order = []
        while ready:
            i = ready.pop(0)
            order.append(i)
            for u in users[i]:
                deg[u] -= 1
                if deg[u] == 0:
                    ready.append(u)
        if len(order) != len(self.nodes):
            raise ValueError("block %s has a cycle" % self.name)
        return order


def role_of(name):
    low = name.lower()
    if low.endswith("_stem"):
        return "stem"
    if low.endswith("_downsample"):
        return "downsample"
    return "cell"


def _split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _value(text):
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        inner = text[1:-1]
        items = [p for p in _split_top(inner)]
        if text[0] == "[" or len(items) > 1:
            return tuple(Expr(p) for p in items if p.strip())
    return Expr(text)


def _parse_node(index, rest):
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", rest)
    if not m:
        raise ValueError("cannot read node %d: %r" % (index, rest))
    op = _CANON.get(m.group(1).lower())
    if op is None:
        raise ValueError("unknown operation %r" % m.group(1))
    names, defaults = OPS[op]
    raw = m.group(2)
    pieces = [p for p in _split_top(raw)] if raw and raw.strip() else []
    if names is None:
        values = []
        for p in pieces:
            v = _value(p.split("=", 1)[1] if re.match(r"\s*\w+\s*=[^=]", p)
                       else p)
            values.extend(v if isinstance(v, tuple) else [v])
        return Node(index, op, values)
    args, pos = {}, 0
    for p in pieces:
        km = re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)(.*)$", p, re.S)
        if km:
            key = km.group(1).lower()
            if key == "out_features":
                key = "out_channels"
            args[key] = _value(km.group(2))
        else:
            args[names[pos]] = _value(p)
            pos += 1
    for k, v in defaults.items():
        args.setdefault(k, v)
    return Node(index, op, args)


def parse_blocks(text):
    """Every block of a file, in order."""
    blocks, cur = [], None
    for line in text.splitlines():
        s = line.strip()
        hm = re.match(r"^##([^#]+)##\s*(#.*)?$", s)
        if hm:
            cur = Block(hm.group(1).strip())
            blocks.append(cur)
            continue
        s = s.split("#", 1)[0].strip()
        if not s:
            continue
        nm = re.match(r"^(\d+)\s*:(.*)$", s)
        if nm:
            idx = int(nm.group(1))
            cur.nodes[idx] = _parse_node(idx, nm.group(2))
            continue
        parts = [[int(x) for x in p.split(",")] for p in s.split("->")]
        for a, b in zip(parts, parts[1:]):
            for t in b:
                for f in a:
                    cur.edges.append((f, t))
    for b in blocks:
        for f, t in b.edges:
            b.nodes[t].inputs.append(f)
    return blocks


# The skeletons' default blocks (docs/skeletons.md).
NB201_STEM = """##Default_stem##
0:input
1:output
2:Conv2d(out_channels=dim,kernel_size=3,stride=1)
3:BN
4:ReLU
0->2
2->3
3->4
4->1
"""
NB201_DOWNSAMPLE = """##Default_downsample##
0:input
1:output
2:Conv2d(out_channels=dim,kernel_size=3,stride=2)
3:BN
4:ReLU
5:Conv2d(out_channels=dim,kernel_size=3,stride=1)
6:BN
7:ReLU
8:AvgPool2d(kernel_size=2,stride=2)
9:Conv2d(out_channels=dim,kernel_size=1,stride=1)
10:Add
0->2
2->3
3->4
4->5
5->6
0->8
8->9
9->10
6->10
10->7
7->1
"""
DARTS_STEM = """##Default_stem##
0:input
1:output
2:Conv2d(out_channels=dim,kernel_size=3,stride=1)
3:BN
0->2
2->3
3->1
"""
DARTS_DOWNSAMPLE = """##Default_downsample##
0:input1
1:input2
2:output
3:MaxPool2d(kernel_size=3,stride=2)
4:MaxPool2d(kernel_size=3,stride=2)
5:ReLU
6:Conv2d(out_channels=dim,kernel_size=3,stride=2,groups=dim)
7:Conv2d(out_channels=dim,kernel_size=1,stride=1)
8:BN
9:DropPath
10:Add
11:AvgPool2d(kernel_size=3,stride=2)
12:Add
13:concat(dim=1)
14:ReLU
15:Conv2d(out_channels=dim,kernel_size=1,stride=1)
16:BN
0->3
1->4
1->5
5->6
6->7
7->8
8->9
3->10
9->10
0->11
4->12
11->12
10->13
12->13
13->14
14->15
15->16
16->2
"""


class Design:
    def __init__(self, cell, stem, downsample):
        self.cell, self.stem, self.downsample = cell, stem, downsample
        self.two_input = cell.two_input


def parse_design(text):
    """The design of a file: its cell, and its stem and downsample blocks
    or the skeleton defaults."""
    by_role = {}
    for b in parse_blocks(text):
        if b.role in by_role:
            raise ValueError("two %s blocks" % b.role)
        by_role[b.role] = b
    cell = by_role["cell"]
    two = cell.two_input
    stem = by_role.get("stem") or parse_blocks(
        DARTS_STEM if two else NB201_STEM)[0]
    down = by_role.get("downsample") or parse_blocks(
        DARTS_DOWNSAMPLE if two else NB201_DOWNSAMPLE)[0]
    return Design(cell, stem, down)


# --------------------------------------------------------------- modules

def same_padding(k, s, d=1):
    """(pad, crop) of nader's "same" padding for one spatial dimension."""
    e = d * (k - 1) + 1
    p = max(math.ceil((e - s) / 2), 0)
    return p, 2 * p == e


class Cropped(nn.Module):
    """A window op with symmetric padding, dropping the last row and column
    when the padding rule says so."""

    def __init__(self, inner, crop):
        super().__init__()
        self.inner = inner
        self.crop = crop

    def forward(self, x):
        y = self.inner(x)
        return y[:, :, :-1, :-1] if self.crop else y


class SameConv2d(nn.Conv2d):
    def __init__(self, cin, cout, k, s, d, g, bias=True):
        p, crop = same_padding(k, s, d)
        super().__init__(cin, cout, k, stride=s, padding=p, dilation=d,
                         groups=g, bias=bias)
        self.crop = crop

    def forward(self, x):
        y = super().forward(x)
        return y[:, :, :-1, :-1] if self.crop else y


class BN(nn.BatchNorm2d):
    """BatchNorm2d without the num_batches_tracked buffer (nader keeps
    weight, bias, running_mean and running_var only)."""

    def __init__(self, c):
        super().__init__(c, eps=1e-5, momentum=0.1)
        self.num_batches_tracked = None


class DropPath(nn.Module):
    def __init__(self, prob):
        super().__init__()
        self.prob = float(prob)

    def forward(self, x):
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1),
                           dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x / keep * mask


def _ints(v, env, what):
    if isinstance(v, tuple):
        return tuple(_whole(e.value(env), what) for e in v)
    if isinstance(v, Expr):
        return _whole(v.value(env), what)
    return _whole(v, what)


class BlockModule(nn.Module):
    """One block instance.  Layers are children named n<index>; a
    two-input cell of the darts skeleton also holds pre0/pre1."""

    def __init__(self, block, env, inputs):
        super().__init__()
        self.block = block
        self.env = dict(env)
        self.order = block.topo()
        self.layers = {}
        self._build(inputs)

    def _layer(self, node, x):
        """Create the module of node for input x (a tensor), if any."""
        op, a, env = node.op, node.args, self.env
        if op == "Conv2d":
            return SameConv2d(x.shape[1], _ints(a["out_channels"], env, "c"),
                              _ints(a["kernel_size"], env, "k"),
                              _ints(a["stride"], env, "s"),
                              _ints(a["dilation"], env, "d"),
                              _ints(a["groups"], env, "g"))
        if op == "Linear":
            return nn.Linear(x.shape[-1], _ints(a["out_channels"], env, "c"))
        if op in ("AvgPool2d", "MaxPool2d"):
            k, s = _ints(a["kernel_size"], env, "k"), _ints(a["stride"], env, "s")
            p, crop = same_padding(k, s)
            if op == "AvgPool2d":
                inner = nn.AvgPool2d(k, s, padding=p, count_include_pad=True)
            else:
                inner = nn.MaxPool2d(k, s, padding=p)
            return Cropped(inner, crop)
        if op in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
            size = _ints(a["output_size"], env, "output_size")
            cls = (nn.AdaptiveAvgPool2d if op == "AdaptiveAvgPool2d"
                   else nn.AdaptiveMaxPool2d)
            return cls(size)
        if op == "BN":
            return BN(x.shape[1])
        if op == "LN":
            return nn.LayerNorm(x.shape[-1], eps=1e-5)
        if op == "ReLU":
            return nn.ReLU()
        if op == "GELU":
            return nn.GELU()
        if op == "Sigmoid":
            return nn.Sigmoid()
        if op == "DropPath":
            return DropPath(a["prob"].value(env) if isinstance(a["prob"], Expr)
                            else a["prob"])
        return None

    def _run_node(self, node, xs, batch):
        """The functional operations (no module)."""
        op, a = node.op, node.args
        env = dict(self.env, B=batch)
        if op == "Add":
            y = xs[0]
            for x in xs[1:]:
                y = y + x
            return y
        if op == "Mul":
            y = xs[0]
            for x in xs[1:]:
                y = y * x
            return y
        if op == "multiply":
            y = torch.matmul(xs[0], xs[1])
            k = xs[0].shape[-1]
            MAC_COUNTER[0] += y.numel() * k
            return y
        if op == "concat":
            return torch.cat(xs, dim=_ints(a["dim"], env, "dim"))
        if op in ("mean", "max", "sum"):
            dims = _ints(a["dim"], env, "dim")
            dims = dims if isinstance(dims, tuple) else (dims,)
            if op == "mean":
                return xs[0].mean(dim=dims, keepdim=True)
            if op == "sum":
                return xs[0].sum(dim=dims, keepdim=True)
            return torch.amax(xs[0], dim=dims, keepdim=True)
        if op == "softmax":
            return F.softmax(xs[0], dim=_ints(a["dim"], env, "dim"))
        if op == "permute":
            return xs[0].permute(*[_ints(e, env, "dim") for e in a])
        if op == "repeat":
            return xs[0].repeat(*[_ints(e, env, "count") for e in a])
        if op == "reshape":
            return xs[0].reshape(*[_ints(e, env, "size") for e in a])
        raise ValueError("no function for %s" % op)

    def _run(self, inputs, build):
        vals = {}
        batch = inputs[0].shape[0]
        if build:
            self.shapes = {}
        for i in self.order:
            node = self.block.nodes[i]
            if node.op in INPUT_OPS:
                vals[i] = inputs[1] if node.op == "input2" else inputs[0]
                continue
            xs = [vals[j] for j in node.inputs]
            if node.op == "output":
                vals[i] = xs[0]
                self.out_index = i
                continue
            if build:
                layer = self._layer(node, xs[0])
                if layer is not None:
                    self.add_module("n%d" % i, layer)
                    self.layers[i] = "n%d" % i
            if i in self.layers:
                vals[i] = getattr(self, self.layers[i])(xs[0])
            else:
                vals[i] = self._run_node(node, xs, batch)
            if build:
                self.shapes[i] = tuple(vals[i].shape)
        return vals[self.out_index]

    def _build(self, inputs):
        with torch.no_grad():
            self.out_shape = tuple(self._run(inputs, True).shape)

    def forward(self, *inputs):
        return self._run(list(inputs), False)


class Preprocess(nn.Module):
    """ReLU -> Conv2d 1x1 (no bias, stride 1 or 2) -> BN."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.bn = BN(cout)

    def forward(self, x):
        return self.bn(self.conv(self.relu(x)))


class DartsCell(BlockModule):
    def __init__(self, block, env, inputs, pre):
        nn.Module.__init__(self)
        self.block = block
        self.env = dict(env)
        self.order = block.topo()
        self.layers = {}
        ins = []
        for k, (spec, x) in enumerate(zip(pre, inputs)):
            if spec is not None:
                setattr(self, "pre%d" % k, Preprocess(*spec))
                with torch.no_grad():
                    x = getattr(self, "pre%d" % k)(x)
            ins.append(x)
        self.n_pre = [spec is not None for spec in pre]
        self._build(ins)

    def forward(self, a, b):
        ins = []
        for k, x in enumerate((a, b)):
            ins.append(getattr(self, "pre%d" % k)(x) if self.n_pre[k] else x)
        return self._run(ins, False)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, x):
        return self.flatten(self.pool(x))


def _env(c, dim, h, w):
    return {"C": Fraction(c), "dim": Fraction(dim), "H": Fraction(h),
            "W": Fraction(w), "B": Fraction(2)}


def _stem(design, width, in_shape, stem_scale):
    """The stem module; its output must be (2, width, ceil(H/s),
    ceil(W/s)) for the skeleton's stem scale s."""
    if stem_scale not in (1, 2, 4, 8):
        raise ValueError("stem_scale %r is not 1, 2, 4 or 8" % stem_scale)
    c, h, w = in_shape
    stem = BlockModule(design.stem, _env(c, width, h, w),
                       [torch.zeros(2, c, h, w)])
    want = (2, width, -(-h // stem_scale), -(-w // stem_scale))
    if tuple(stem.out_shape) != want:
        raise ValueError("the stem returns %r, stem_scale %d wants %r"
                         % (tuple(stem.out_shape), stem_scale, want))
    return stem


class NB201Net(nn.Module):
    def __init__(self, design, width, classes, in_shape, cells_per_stage,
                 stem_scale=1):
        super().__init__()
        self.stem = _stem(design, width, in_shape, stem_scale)
        x = torch.zeros(*self.stem.out_shape)
        ch, h, w = width, x.shape[2], x.shape[3]
        for s in range(3):
            cells = nn.ModuleList()
            for _ in range(cells_per_stage):
                cells.append(BlockModule(design.cell, _env(ch, ch, h, w), [x]))
                x = torch.zeros(*cells[-1].out_shape)
            setattr(self, "stage%d" % s, cells)
            if s < 2:
                down = BlockModule(design.downsample,
                                   _env(ch, 2 * ch, h, w), [x])
                setattr(self, "down%d" % s, down)
                x = torch.zeros(*down.out_shape)
                ch, h, w = 2 * ch, x.shape[2], x.shape[3]
        self.head = Head()
        self.classifier = nn.Linear(x.shape[1], classes)

    def forward(self, x):
        x = self.stem(x)
        for s in range(3):
            for cell in getattr(self, "stage%d" % s):
                x = cell(x)
            if s < 2:
                x = getattr(self, "down%d" % s)(x)
        return self.classifier(self.head(x))


class DartsNet(nn.Module):
    def __init__(self, design, width, classes, in_shape, cells_per_stage,
                 stem_scale=1):
        super().__init__()
        n_cells = 3 * cells_per_stage + 2
        reductions = (n_cells // 3, 2 * n_cells // 3)
        self.stem = _stem(design, width, in_shape, stem_scale)
        s0 = s1 = torch.zeros(*self.stem.out_shape)
        ch, prev_red = width, False
        self.cells = nn.ModuleList()
        for k in range(n_cells):
            red = k in reductions
            if red:
                ch *= 2
            pre0 = ((s0.shape[1], ch, 2) if prev_red else
                    (s0.shape[1], ch, 1) if s0.shape[1] != ch else None)
            pre1 = (s1.shape[1], ch, 1) if s1.shape[1] != ch else None
            block = design.downsample if red else design.cell
            env = _env(ch, ch, s1.shape[2], s1.shape[3])
            cell = DartsCell(block, env, [s0, s1], [pre0, pre1])
            self.cells.append(cell)
            s0, s1 = s1, torch.zeros(*cell.out_shape)
            prev_red = red
        self.head = Head()
        self.classifier = nn.Linear(s1.shape[1], classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.head(s1))


def build_network(design, skeleton, width, classes=10, in_shape=(3, 32, 32),
                  cells_per_stage=5, stem_scale=1):
    """The whole network of a design, as nader assembles it; the stem
    reduces the input stem_scale times and the stages run from there."""
    if skeleton == "nb201":
        return NB201Net(design, width, classes, in_shape, cells_per_stage,
                        stem_scale)
    if skeleton == "darts":
        return DartsNet(design, width, classes, in_shape, cells_per_stage,
                        stem_scale)
    raise ValueError("unknown skeleton %r" % skeleton)


MAC_COUNTER = [0]


def count_macs(net, in_shape=(3, 32, 32), batch=2):
    """Multiply-accumulates per image as nader counts them: Conv2d,
    Linear and multiply only, measured by running the network."""
    total = [0]

    def conv_hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    def linear_hook(mod, inp, out):
        total[0] += out.numel() * mod.in_features

    hooks = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    MAC_COUNTER[0] = 0
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(batch, *in_shape))
    net.train(was_training)
    for h in hooks:
        h.remove()
    return (total[0] + MAC_COUNTER[0]) // batch


def block_shapes(net):
    """{node name: output shape} of every block node, as recorded while
    the network was built (batch 2)."""
    out = {}
    for name, mod in net.named_modules():
        if isinstance(mod, BlockModule):
            for i, shape in mod.shapes.items():
                node = mod.block.nodes[i]
                if node.op not in INPUT_OPS and node.op != "output":
                    out["%s.n%d" % (name, i)] = shape
    return out


def count_params(net):
    """Trainable parameters, as nader counts them."""
    return sum(p.numel() for p in net.parameters())
