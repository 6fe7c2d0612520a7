/*
 * export_pytorch.c - a design's network as one self-contained PyTorch
 * module file (see export.h).
 *
 * The file reads like code a person would write: a few helper modules
 * (nader's "same" padding, BN without a step counter, DropPath, the DARTS
 * preprocessing), then one class per distinct block instance - the cells
 * of one stage share a class - with straight-line forward code over
 * variables named after the block's nodes (v5 is node 5), then Network,
 * which places the instances as the skeleton does.  Classes are found by
 * generating each instance's class text and merging identical texts, so
 * two instances share a class exactly when they are the same module.
 *
 * Module paths are the net node names ("stage1.3.n5", "cells.7.pre0.conv",
 * "classifier"); each is checked against the name net_build gave the node
 * while the code is written, so state_dict() keys cannot drift from
 * net_param_list().
 */
#include "export.h"
#include "export_impl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Most inputs one node may have (Add, Mul, concat of many). */
#define S_MAX_INPUTS 256

/* One distinct block-instance class. */
typedef struct s_class {
    graph_role_t role;
    char name[32];
    char *body;               /* everything after "class NAME" */
    int n_users;
} s_class_t;

typedef struct s_gen {
    FILE *out;
    const graph_design_t *d;
    const export_nets_t *nets;
    graph_errors_t *errs;
    s_class_t *classes;
    int n_classes;
    int *inst_class;          /* instance -> class */
    bool darts;
} s_gen_t;

static const char s_helpers[] =
    "import json\n"
    "import struct\n"
    "\n"
    "import torch\n"
    "import torch.nn as nn\n"
    "import torch.nn.functional as F\n"
    "\n"
    "\n"
    "class SameConv2d(nn.Conv2d):\n"
    "    \"\"\"Conv2d with nader's \"same\" padding: pad both sides by pad, "
    "then\n"
    "    drop the last output row and column when crop is set (an even\n"
    "    effective kernel).\"\"\"\n"
    "\n"
    "    def __init__(self, cin, cout, kernel, stride=1, dilation=1, "
    "groups=1,\n"
    "                 bias=True, pad=0, crop=False):\n"
    "        super().__init__(cin, cout, kernel, stride=stride, "
    "padding=pad,\n"
    "                         dilation=dilation, groups=groups, bias=bias)\n"
    "        self.crop = crop\n"
    "\n"
    "    def forward(self, x):\n"
    "        y = super().forward(x)\n"
    "        return y[:, :, :-1, :-1] if self.crop else y\n"
    "\n"
    "\n"
    "class SamePool2d(nn.Module):\n"
    "    \"\"\"Average pooling (padded zeros counted) or max pooling (padding "
    "never\n"
    "    wins) with the padding rule of SameConv2d.\"\"\"\n"
    "\n"
    "    def __init__(self, kind, kernel, stride, pad=0, crop=False):\n"
    "        super().__init__()\n"
    "        self.kind, self.kernel, self.stride = kind, kernel, stride\n"
    "        self.pad, self.crop = pad, crop\n"
    "\n"
    "    def forward(self, x):\n"
    "        if self.kind == \"avg\":\n"
    "            y = F.avg_pool2d(x, self.kernel, self.stride, self.pad,\n"
    "                             count_include_pad=True)\n"
    "        else:\n"
    "            y = F.max_pool2d(x, self.kernel, self.stride, self.pad)\n"
    "        return y[:, :, :-1, :-1] if self.crop else y\n"
    "\n"
    "    def extra_repr(self):\n"
    "        return \"%s, kernel=%d, stride=%d, pad=%d, crop=%s\" % (\n"
    "            self.kind, self.kernel, self.stride, self.pad, self.crop)\n"
    "\n"
    "\n"
    "class BatchNorm2d(nn.BatchNorm2d):\n"
    "    \"\"\"BatchNorm2d (eps 1e-5, momentum 0.1) without the "
    "num_batches_tracked\n"
    "    counter, which nader does not keep: its state_dict() holds weight,"
    "\n"
    "    bias, running_mean and running_var, as nader's weight files do."
    "\"\"\"\n"
    "\n"
    "    def __init__(self, channels):\n"
    "        super().__init__(channels, eps=1e-5, momentum=0.1)\n"
    "        self.num_batches_tracked = None\n"
    "\n"
    "    def _load_from_state_dict(self, state_dict, prefix, *args):\n"
    "        state_dict.pop(prefix + \"num_batches_tracked\", None)\n"
    "        nn.Module._load_from_state_dict(self, state_dict, prefix, "
    "*args)\n"
    "\n"
    "\n"
    "class DropPath(nn.Module):\n"
    "    \"\"\"While training, zero each sample's path with probability p "
    "and\n"
    "    scale the kept ones by 1 / (1 - p); the identity in evaluation."
    "\"\"\"\n"
    "\n"
    "    def __init__(self, p):\n"
    "        super().__init__()\n"
    "        self.p = p\n"
    "\n"
    "    def forward(self, x):\n"
    "        if not self.training or self.p == 0.0:\n"
    "            return x\n"
    "        keep = 1.0 - self.p\n"
    "        shape = (x.shape[0],) + (1,) * (x.dim() - 1)\n"
    "        mask = (torch.rand(shape, device=x.device) < keep).to(x.dtype)\n"
    "        return x * mask / keep\n"
    "\n"
    "    def extra_repr(self):\n"
    "        return \"p=%g\" % self.p\n";

static const char s_preprocess[] =
    "\n"
    "\n"
    "class Preprocess(nn.Module):\n"
    "    \"\"\"ReLU, 1x1 convolution without bias, BN: brings a cell input "
    "to the\n"
    "    cell's width (stride 2 after a reduction cell).\"\"\"\n"
    "\n"
    "    def __init__(self, cin, cout, stride):\n"
    "        super().__init__()\n"
    "        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)\n"
    "        self.bn = BatchNorm2d(cout)\n"
    "\n"
    "    def forward(self, x):\n"
    "        return self.bn(self.conv(torch.relu(x)))\n";

static const char s_weights[] =
    "\n"
    "\n"
    "def load_safetensors(module, path, strict=True):\n"
    "    \"\"\"Load float32 weights from a safetensors file (`nader export\n"
    "    --weights`, `nader train --save-weights`, a nader checkpoint) into\n"
    "    module, by state_dict() name.  A checkpoint's SGD momenta\n"
    "    (momentum.*) are skipped.  Returns the file's metadata.\"\"\"\n"
    "    with open(path, \"rb\") as f:\n"
    "        blob = f.read()\n"
    "    size = struct.unpack(\"<Q\", blob[:8])[0]\n"
    "    header = json.loads(blob[8:8 + size].decode(\"utf-8\"))\n"
    "    meta = header.pop(\"__metadata__\", None) or {}\n"
    "    state = {}\n"
    "    for name, t in header.items():\n"
    "        if name.startswith(\"momentum.\"):\n"
    "            continue\n"
    "        if t[\"dtype\"] != \"F32\":\n"
    "            raise ValueError(\"%s: %s is %s, not F32\" % (path, name,\n"
    "                                                       t[\"dtype\"]))\n"
    "        begin, end = t[\"data_offsets\"]\n"
    "        data = bytearray(blob[8 + size + begin:8 + size + end])\n"
    "        state[name] = torch.frombuffer(data, dtype=torch.float32)"
    ".reshape(\n"
    "            t[\"shape\"])\n"
    "    module.load_state_dict(state, strict=strict)\n"
    "    return meta\n"
    "\n"
    "\n"
    "def save_safetensors(module, path, metadata=None):\n"
    "    \"\"\"Write module's state_dict() as float32 safetensors, which "
    "`nader\n"
    "    train --init-weights` reads back.\"\"\"\n"
    "    header, blobs, at = {}, [], 0\n"
    "    if metadata:\n"
    "        header[\"__metadata__\"] = {str(k): str(v)\n"
    "                                  for k, v in metadata.items()}\n"
    "    for name, t in module.state_dict().items():\n"
    "        data = t.detach().to(\"cpu\", torch.float32).contiguous()"
    ".numpy()\n"
    "        data = data.tobytes()\n"
    "        header[name] = {\"dtype\": \"F32\", \"shape\": list(t.shape),\n"
    "                        \"data_offsets\": [at, at + len(data)]}\n"
    "        blobs.append(data)\n"
    "        at += len(data)\n"
    "    text = json.dumps(header).encode(\"utf-8\")\n"
    "    text += b\" \" * (-len(text) % 8)\n"
    "    with open(path, \"wb\") as f:\n"
    "        f.write(struct.pack(\"<Q\", len(text)))\n"
    "        f.write(text)\n"
    "        for data in blobs:\n"
    "            f.write(data)\n";

static const char s_main[] =
    "\n"
    "\n"
    "if __name__ == \"__main__\":\n"
    "    import sys\n"
    "\n"
    "    net = Network()\n"
    "    if len(sys.argv) > 1:\n"
    "        load_safetensors(net, sys.argv[1])\n"
    "    net.eval()\n"
    "    with torch.no_grad():\n"
    "        logits = net(torch.zeros(2, *INPUT_SHAPE))\n"
    "    print(\"%d parameters, logits %s\" % (\n"
    "        sum(p.numel() for p in net.parameters()), tuple(logits.shape)))"
    "\n";

/* ------------------------------------------------------------ node text */

/* The Python name of block node pos as a forward() variable. */
static void s_var(const graph_block_t *b, int pos, char *buf, size_t len)
{
    const graph_node_t *nd = &b->nodes[pos];

    switch (nd->op) {
    case GRAPH_OP_INPUT:
        snprintf(buf, len, "x");
        break;
    case GRAPH_OP_INPUT1:
        snprintf(buf, len, "s0");
        break;
    case GRAPH_OP_INPUT2:
        snprintf(buf, len, "s1");
        break;
    default:
        snprintf(buf, len, "v%d", nd->index);
        break;
    }
}

/* Write text (one paragraph) wrapped at 76 columns, indent on every
 * line but the first. */
static void s_wrap(FILE *f, const char *text, const char *indent)
{
    int col = 0;

    while (*text) {
        size_t w = strcspn(text, " ");
        if (col && col + 1 + (int)w > 76) {
            fprintf(f, "\n%s", indent);
            col = (int)strlen(indent);
        } else if (col) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)w, text);
        col += (int)w;
        text += w;
        while (*text == ' ')
            text++;
    }
    fputc('\n', f);
}

/* A tuple or single value for dims: "(2, 3)" or "1". */
static void s_dims(FILE *f, const int *dims, int n)
{
    if (n == 1) {
        fprintf(f, "%d", dims[0]);
        return;
    }
    fputc('(', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", dims[i]);
    fputc(')', f);
}

/* Whether a node's op is a module (it may own parameters or settings)
 * rather than a function of its inputs. */
static bool s_is_module(graph_op_t op)
{
    switch (op) {
    case GRAPH_OP_CONV2D:
    case GRAPH_OP_LINEAR:
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
    case GRAPH_OP_BN:
    case GRAPH_OP_LN:
    case GRAPH_OP_DROPPATH:
        return true;
    default:
        return false;
    }
}

/* The constructor of the module of a node (s_is_module). */
static void s_module(FILE *f, const net_node_t *x)
{
    char p[32];

    switch (x->op) {
    case GRAPH_OP_CONV2D:
        fprintf(f, "SameConv2d(%lld, %lld, %lld", (long long)x->in_ch,
                (long long)x->out_ch, (long long)x->kernel);
        if (x->stride != 1)
            fprintf(f, ", stride=%lld", (long long)x->stride);
        if (x->dilation != 1)
            fprintf(f, ", dilation=%lld", (long long)x->dilation);
        if (x->groups != 1)
            fprintf(f, ", groups=%lld", (long long)x->groups);
        if (!x->bias)
            fprintf(f, ", bias=False");
        if (x->pad)
            fprintf(f, ", pad=%lld", (long long)x->pad);
        if (x->crop)
            fprintf(f, ", crop=True");
        fputc(')', f);
        return;
    case GRAPH_OP_LINEAR:
        fprintf(f, "nn.Linear(%lld, %lld%s)", (long long)x->in_ch,
                (long long)x->out_ch, x->bias ? "" : ", bias=False");
        return;
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
        fprintf(f, "SamePool2d(\"%s\", %lld, %lld",
                x->op == GRAPH_OP_AVGPOOL2D ? "avg" : "max",
                (long long)x->kernel, (long long)x->stride);
        if (x->pad)
            fprintf(f, ", pad=%lld", (long long)x->pad);
        if (x->crop)
            fprintf(f, ", crop=True");
        fputc(')', f);
        return;
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
        fprintf(f, "nn.Adaptive%sPool2d((%lld, %lld))",
                x->op == GRAPH_OP_ADAPTIVEAVGPOOL2D ? "Avg" : "Max",
                (long long)x->out_size, (long long)x->out_size_w);
        return;
    case GRAPH_OP_BN:
        fprintf(f, "BatchNorm2d(%lld)", (long long)x->out_ch);
        return;
    case GRAPH_OP_LN:
        fprintf(f, "nn.LayerNorm(%lld, eps=1e-5)", (long long)x->out_ch);
        return;
    case GRAPH_OP_DROPPATH:
        export_float(x->prob, p, sizeof p);
        fprintf(f, "DropPath(%s)", p);
        return;
    default:
        return;
    }
}

/*
 * The sizes of a reshape or repeat at node id, with every entry that
 * follows the batch written in terms of B.  Returns 0, or -1 with an
 * error when an entry depends on the batch in a way Python cannot say.
 */
static int s_sizes(s_gen_t *g, int id, bool allow_infer, FILE *f,
                   bool *uses_b)
{
    const net_node_t *x = &g->nets->net->nodes[id];
    int inferred = 0;

    for (int i = 0; i < x->n_sizes; i++) {
        char text[48];
        int kind = export_size(g->nets, id, i, text, sizeof text);

        if (kind < 0 && allow_infer && inferred++ == 0) {
            snprintf(text, sizeof text, "-1");
        } else if (kind < 0) {
            graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                             "export: %s: size %d of %s depends on the "
                             "batch in a way the module cannot express",
                             x->name, i, graph_op_name(x->op));
            return -1;
        }
        if (kind == 1)
            *uses_b = true;
        fprintf(f, "%s%s", i ? ", " : "", text);
    }
    return 0;
}

/* The forward expression of a function node, its inputs named in ins. */
static int s_expr(s_gen_t *g, int id, char ins[][16], FILE *f, bool *uses_b)
{
    const net_node_t *x = &g->nets->net->nodes[id];
    const char *sep = " + ";

    switch (x->op) {
    case GRAPH_OP_MUL:
        sep = " * ";
        /* fall through */
    case GRAPH_OP_ADD:
        for (int i = 0; i < x->n_inputs; i++)
            fprintf(f, "%s%s", i ? sep : "", ins[i]);
        return 0;
    case GRAPH_OP_MULTIPLY:
        fprintf(f, "torch.matmul(%s, %s)", ins[0], ins[1]);
        return 0;
    case GRAPH_OP_CONCAT:
        fputs("torch.cat((", f);
        for (int i = 0; i < x->n_inputs; i++)
            fprintf(f, "%s%s", i ? ", " : "", ins[i]);
        fprintf(f, "), dim=%d)", x->dims[0]);
        return 0;
    case GRAPH_OP_MEAN:
    case GRAPH_OP_SUM:
        fprintf(f, "%s.%s(dim=", ins[0],
                x->op == GRAPH_OP_MEAN ? "mean" : "sum");
        s_dims(f, x->dims, x->n_dims);
        fputs(", keepdim=True)", f);
        return 0;
    case GRAPH_OP_MAX:
        fprintf(f, "torch.amax(%s, dim=", ins[0]);
        s_dims(f, x->dims, x->n_dims);
        fputs(", keepdim=True)", f);
        return 0;
    case GRAPH_OP_SOFTMAX:
        fprintf(f, "torch.softmax(%s, dim=%d)", ins[0], x->dims[0]);
        return 0;
    case GRAPH_OP_RELU:
        fprintf(f, "torch.relu(%s)", ins[0]);
        return 0;
    case GRAPH_OP_GELU:
        fprintf(f, "F.gelu(%s)", ins[0]);
        return 0;
    case GRAPH_OP_SIGMOID:
        fprintf(f, "torch.sigmoid(%s)", ins[0]);
        return 0;
    case GRAPH_OP_PERMUTE:
        fprintf(f, "%s.permute(", ins[0]);
        for (int i = 0; i < x->n_dims; i++)
            fprintf(f, "%s%d", i ? ", " : "", x->dims[i]);
        fputc(')', f);
        return 0;
    case GRAPH_OP_REPEAT:
    case GRAPH_OP_RESHAPE:
        fprintf(f, "%s.%s(", ins[0],
                x->op == GRAPH_OP_REPEAT ? "repeat" : "reshape");
        if (s_sizes(g, id, x->op == GRAPH_OP_RESHAPE, f, uses_b) < 0)
            return -1;
        fputc(')', f);
        return 0;
    default:
        graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: %s: no PyTorch form for %s", x->name,
                         graph_op_name(x->op));
        return -1;
    }
}

/* ------------------------------------------------------------- classes */

/* The DARTS preprocessing of input k of an instance, if any. */
typedef struct s_pre {
    bool on;
    int64_t cin, cout, stride;
} s_pre_t;

static int s_pre_find(s_gen_t *g, const net_instance_t *in, s_pre_t pre[2])
{
    const net_t *n = g->nets->net;
    size_t len = strlen(in->name);

    memset(pre, 0, 2 * sizeof *pre);
    for (int id = in->first_node; id < in->end_node; id++) {
        const net_node_t *x = &n->nodes[id];
        int k;

        if (x->block_node >= 0)
            continue;
        if (strncmp(x->name, in->name, len) != 0 ||
            strncmp(x->name + len, ".pre", 4) != 0 ||
            (k = x->name[len + 4] - '0') < 0 || k > 1) {
            graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                             "export: node %s of %s is not one the "
                             "exporter knows", x->name, in->name);
            return -1;
        }
        if (x->op != GRAPH_OP_CONV2D)
            continue;
        if (x->kernel != 1 || x->pad || x->crop || x->bias ||
            x->groups != 1) {
            graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                             "export: %s is not a plain 1x1 convolution",
                             x->name);
            return -1;
        }
        pre[k] = (s_pre_t){true, x->in_ch, x->out_ch, x->stride};
    }
    return 0;
}

/* Write the class body of instance i (after "class NAME") to f. */
static int s_class_body(s_gen_t *g, int i, FILE *f)
{
    const net_t *n = g->nets->net;
    const net_instance_t *in = &n->instances[i];
    const graph_block_t *b = export_block_of(g->d, in->role);
    bool two = false, uses_b = false;
    char *fwd = NULL, ins[S_MAX_INPUTS][16], out[16] = "x";
    size_t fwd_len = 0;
    char doc[400];
    s_pre_t pre[2];
    FILE *ff;
    int rc = -1;

    for (int p = 0; p < b->n_nodes; p++) {
        if (b->nodes[p].op == GRAPH_OP_INPUT1 ||
            b->nodes[p].op == GRAPH_OP_INPUT2)
            two = true;
        if (b->nodes[p].op == GRAPH_OP_OUTPUT)
            s_var(b, b->nodes[p].inputs[0], out, sizeof out);
    }
    if (s_pre_find(g, in, pre) < 0)
        return -1;
    snprintf(doc, sizeof doc, "\"\"\"The %s \"%s\" at C=%lld, dim=%lld, "
             "H=%lld, W=%lld.\"\"\"", graph_role_name(in->role),
             b->name ? b->name : "", (long long)in->bind.C,
             (long long)in->bind.dim, (long long)in->bind.H,
             (long long)in->bind.W);
    fputs("(nn.Module):\n    ", f);
    s_wrap(f, doc, "    ");
    fputs("\n    def __init__(self):\n        super().__init__()\n", f);
    for (int k = 0; k < 2; k++)
        if (pre[k].on)
            fprintf(f, "        self.pre%d = Preprocess(%lld, %lld, %lld)\n",
                    k, (long long)pre[k].cin, (long long)pre[k].cout,
                    (long long)pre[k].stride);

    if (!(ff = open_memstream(&fwd, &fwd_len)))
        return -1;
    for (int k = 0; k < 2; k++)
        if (pre[k].on)
            fprintf(ff, "        s%d = self.pre%d(s%d)\n", k, k, k);
    for (int id = in->first_node; id < in->end_node; id++) {
        const net_node_t *x = &n->nodes[id];
        const graph_node_t *nd;
        char want[64];
        int pos;

        if (x->block_node < 0)
            continue;
        pos = graph_block_find(b, x->block_node);
        snprintf(want, sizeof want, "%s.n%d", in->name, x->block_node);
        if (pos < 0 || strcmp(want, x->name) != 0 ||
            x->n_inputs > S_MAX_INPUTS) {
            graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                             "export: node %s does not match its block",
                             x->name);
            goto out;
        }
        nd = &b->nodes[pos];
        for (int k = 0; k < nd->n_inputs; k++)
            s_var(b, nd->inputs[k], ins[k], sizeof ins[k]);
        fprintf(ff, "        v%d = ", x->block_node);
        if (s_is_module(x->op)) {
            fprintf(f, "        self.n%d = ", x->block_node);
            s_module(f, x);
            fputc('\n', f);
            fprintf(ff, "self.n%d(%s)\n", x->block_node, ins[0]);
        } else {
            if (s_expr(g, id, ins, ff, &uses_b) < 0)
                goto out;
            fputc('\n', ff);
        }
    }
    if (fclose(ff) != 0) {
        ff = NULL;
        goto out;
    }
    ff = NULL;
    fprintf(f, "\n    def forward(self, %s):\n", two ? "s0, s1" : "x");
    if (uses_b)
        fprintf(f, "        B = %s.shape[0]\n", two ? "s1" : "x");
    fputs(fwd, f);
    fprintf(f, "        return %s\n", out);
    rc = 0;

out:
    if (ff)
        fclose(ff);
    free(fwd);
    return rc;
}

/* Find or add the class of instance i. */
static int s_class_of(s_gen_t *g, int i)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    int rc;

    if (!f) {
        graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: out of memory");
        return -1;
    }
    rc = s_class_body(g, i, f);
    if (fclose(f) != 0 || rc < 0) {
        free(body);
        return -1;
    }
    for (int c = 0; c < g->n_classes; c++) {
        if (g->classes[c].role == g->nets->net->instances[i].role &&
            strcmp(g->classes[c].body, body) == 0) {
            free(body);
            g->classes[c].n_users++;
            return c;
        }
    }
    s_class_t *c = &g->classes[g->n_classes];
    c->role = g->nets->net->instances[i].role;
    c->body = body;
    c->n_users = 1;
    return g->n_classes++;
}

/* Name the classes "Stem", "Cell", "Downsample", numbered when a role
 * has several ("Cell1", "Cell2", ...) in order of first use. */
static void s_class_names(s_gen_t *g)
{
    static const char *base[] = {"Cell", "Stem", "Downsample"};

    for (int c = 0; c < g->n_classes; c++) {
        int same = 0, before = 0;
        for (int o = 0; o < g->n_classes; o++) {
            if (g->classes[o].role != g->classes[c].role)
                continue;
            same++;
            if (o < c)
                before++;
        }
        if (same == 1)
            snprintf(g->classes[c].name, sizeof g->classes[c].name, "%s",
                     base[g->classes[c].role]);
        else
            snprintf(g->classes[c].name, sizeof g->classes[c].name, "%s%d",
                     base[g->classes[c].role], before + 1);
    }
}

/* Write the classes, each with the instances that use it. */
static void s_classes_write(s_gen_t *g)
{
    const net_t *n = g->nets->net;

    for (int c = 0; c < g->n_classes; c++) {
        int col;

        fputs("\n\n# ", g->out);
        col = 2;
        for (int i = 0, k = 0; i < n->n_instances; i++) {
            if (g->inst_class[i] != c)
                continue;
            int w = (int)strlen(n->instances[i].name) + 2;
            if (k && col + w > 78) {
                fputs(",\n# ", g->out);
                col = 2;
            } else if (k) {
                fputs(", ", g->out);
            }
            fputs(n->instances[i].name, g->out);
            col += w;
            k++;
        }
        fprintf(g->out, "\nclass %s%s", g->classes[c].name,
                g->classes[c].body);
    }
}

/* The instance's place in Network: "stem", or list "stage0" item 3. */
static void s_place(const char *name, char *group, size_t len, int *item)
{
    const char *dot = strchr(name, '.');

    if (!dot) {
        snprintf(group, len, "%s", name);
        *item = -1;
        return;
    }
    snprintf(group, len, "%.*s", (int)(dot - name), name);
    *item = atoi(dot + 1);
}

/* Network.__init__: one attribute or ModuleList per group. */
static int s_network_init(s_gen_t *g)
{
    const net_t *n = g->nets->net;
    const net_node_t *cls = &n->nodes[n->output];
    int i = 0;

    while (i < n->n_instances) {
        char group[24], other[24];
        int item, j = i + 1, it, c = g->inst_class[i];
        bool same = true;

        s_place(n->instances[i].name, group, sizeof group, &item);
        if (item < 0) {
            fprintf(g->out, "        self.%s = %s()\n", group,
                    g->classes[c].name);
            i++;
            continue;
        }
        for (; j < n->n_instances; j++) {
            s_place(n->instances[j].name, other, sizeof other, &it);
            if (strcmp(group, other) != 0)
                break;
            if (it != j - i) {
                graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1,
                                 0, "export: instance %s is out of order",
                                 n->instances[j].name);
                return -1;
            }
            same = same && g->inst_class[j] == c;
        }
        if (same) {
            fprintf(g->out, "        self.%s = nn.ModuleList([%s() for _ "
                    "in range(%d)])\n", group, g->classes[c].name, j - i);
        } else {
            fprintf(g->out, "        self.%s = nn.ModuleList([\n", group);
            for (int k = i; k < j; k++)
                fprintf(g->out, "            %s(),  # %s\n",
                        g->classes[g->inst_class[k]].name,
                        n->instances[k].name);
            fprintf(g->out, "        ])\n");
        }
        i = j;
    }
    if (cls->op != GRAPH_OP_LINEAR || strcmp(cls->name, "classifier") != 0) {
        graph_errors_add(g->errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: the network does not end in its "
                         "classifier");
        return -1;
    }
    fprintf(g->out, "        self.classifier = nn.Linear(%lld, %lld)\n",
            (long long)cls->in_ch, (long long)cls->out_ch);
    return 0;
}

/* Network.forward, wired as the skeleton wires the instances. */
static void s_network_forward(s_gen_t *g)
{
    const net_t *n = g->nets->net;
    const char *last = "x";
    int i = 0;

    fputs("\n    def forward(self, x):\n", g->out);
    if (g->darts) {
        fputs("        s0 = s1 = self.stem(x)\n"
              "        for cell in self.cells:\n"
              "            s0, s1 = s1, cell(s0, s1)\n", g->out);
        last = "s1";
    }
    while (!g->darts && i < n->n_instances) {
        char group[24], other[24];
        int item, it, j = i + 1;

        s_place(n->instances[i].name, group, sizeof group, &item);
        if (item < 0) {
            fprintf(g->out, "        x = self.%s(x)\n", group);
            i++;
            continue;
        }
        for (; j < n->n_instances; j++) {
            s_place(n->instances[j].name, other, sizeof other, &it);
            if (strcmp(group, other) != 0)
                break;
        }
        fprintf(g->out, "        for cell in self.%s:\n"
                "            x = cell(x)\n", group);
        i = j;
    }
    fprintf(g->out, "        x = torch.flatten(F.adaptive_avg_pool2d(%s, 1), "
            "1)\n        return self.classifier(x)\n", last);
}

static void s_header(s_gen_t *g, const export_meta_t *meta)
{
    const net_t *n = g->nets->net;
    const net_config_t *c = &n->config;
    char hash[33] = "?", para[2048], scale[64] = "keeps the resolution";
    const char *name = g->d->cell->name ? g->d->cell->name : "design";

    if (c->stem_scale > 1)
        snprintf(scale, sizeof scale, "reduces the resolution %d times "
                 "(stem_scale %d)", c->stem_scale, c->stem_scale);

    graph_design_hash(g->d, hash);
    fprintf(g->out, "\"\"\"%s: a network designed with nader, as a PyTorch "
            "module.\n\n", name);
    snprintf(para, sizeof para,
             "Design %s%s%s, assembled by the %s skeleton for %s (%d "
             "classes, input %dx%dx%d) at base width %d with %d cells per "
             "stage and a stem that %s: %lld parameters, %lld "
             "multiply-accumulates per image.%s%s",
             hash, meta && meta->source ? " from " : "",
             meta && meta->source ? meta->source : "",
             net_skeleton_name(c->skeleton),
             meta && meta->dataset ? meta->dataset : "the data set",
             c->classes, c->in_c, c->in_h, c->in_w, n->width,
             c->cells_per_stage, scale, (long long)n->params,
             (long long)n->macs,
             meta && meta->note ? " " : "",
             meta && meta->note ? meta->note : "");
    s_wrap(g->out, para, "");
    fprintf(g->out,
            "\nWritten by `nader export`; it needs only torch (and numpy "
            "to save weights).\nModule paths are nader's node names, so "
            "state_dict() keys are the names in\nnader's weight files:\n\n"
            "    net = Network()\n"
            "    load_safetensors(net, \"model.safetensors\")  # nader "
            "export --weights\n"
            "    net.eval()\n"
            "    logits = net(images)  # (B, %d, %d, %d), normalised as in "
            "training\n\n"
            "Convolutions and pools use nader's \"same\" padding: both "
            "sides padded by\nmax(ceil((e - s) / 2), 0) for effective "
            "kernel e = dilation * (k - 1) + 1\nand stride s, and the last "
            "output row and column dropped when that padding\nis e / 2 "
            "(an even e at stride 1).\n\"\"\"\n",
            c->in_c, c->in_h, c->in_w);
}

int export_pytorch(FILE *out, const graph_design_t *d,
                   const net_config_t *cfg, const export_meta_t *meta,
                   graph_errors_t *errs)
{
    export_nets_t nets;
    s_gen_t g = {.out = out, .d = d, .nets = &nets, .errs = errs};
    const net_t *n;
    int rc = -1;

    if (export_nets_build(d, cfg, &nets, errs) < 0)
        return -1;
    n = nets.net;
    g.darts = n->config.skeleton == NET_SKELETON_DARTS;
    g.classes = calloc((size_t)n->n_instances, sizeof *g.classes);
    g.inst_class = calloc((size_t)n->n_instances, sizeof *g.inst_class);
    if (!g.classes || !g.inst_class) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: out of memory");
        goto out;
    }
    for (int i = 0; i < n->n_instances; i++)
        if ((g.inst_class[i] = s_class_of(&g, i)) < 0)
            goto out;
    s_class_names(&g);

    s_header(&g, meta);
    fputs(s_helpers, out);
    if (g.darts)
        fputs(s_preprocess, out);
    s_classes_write(&g);
    fprintf(out, "\n\nINPUT_SHAPE = (%d, %d, %d)\nCLASSES = %d\n"
            "PARAMETERS = %lld\n", n->config.in_c, n->config.in_h,
            n->config.in_w, n->config.classes, (long long)n->params);
    fprintf(out, "\n\nclass Network(nn.Module):\n    \"\"\"The whole "
            "network: %s skeleton, width %d, %d classes.\"\"\"\n\n"
            "    def __init__(self):\n        super().__init__()\n",
            net_skeleton_name(n->config.skeleton), n->width,
            n->config.classes);
    if (s_network_init(&g) < 0)
        goto out;
    s_network_forward(&g);
    fputs(s_weights, out);
    fputs(s_main, out);
    if (fflush(out) != 0 || ferror(out)) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "export: cannot write the module");
        goto out;
    }
    rc = 0;

out:
    for (int c = 0; g.classes && c < g.n_classes; c++)
        free(g.classes[c].body);
    free(g.classes);
    free(g.inst_class);
    export_nets_free(&nets);
    return rc;
}
