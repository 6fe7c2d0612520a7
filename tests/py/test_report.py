"""`nader report` renders in a real browser, fetches nothing, and keeps
hostile text inert.

A results folder in the layout `nader run` writes (summary.json,
designs.jsonl, results.jsonl) is made here for a search of 12 designs in
a tree, two fidelities and a failed run, with design names and
inspirations holding HTML, a closing </script> and non-ASCII text.  The
page is checked as text (no external URL, the data cannot close its
<script> element) and then opened in Debian's headless Chromium: the
script must draw all four charts (body data-rendered="4"), raise no
error (no data-error, no "Uncaught" on the console), and the DOM must
hold the tree's nodes, an edge per parent link and a table row per
design.  Bad folders are refused with exit 2 naming the file.

Chromium absent: the text checks still run, then exit 77 saying so.
About 5 s.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
NADER = os.path.join(BIN, "nader")
HOSTILE = '</script><script>document.title="owned"</script> & "q" \u00e9'


def make_folder(d):
    names = ["base"] + ["d%d" % i for i in range(1, 12)]
    parent = {"base": None}
    for i, n in enumerate(names[1:], 1):
        parent[n] = names[(i - 1) // 2]
    designs, results, job = [], [], 1
    for i, n in enumerate(names):
        h = "%032x" % (0xabc000 + i)
        insp = None if n == "base" else "idea %d %s" % (i, HOSTILE)
        designs.append({"name": n if i != 11 else n + HOSTILE, "hash": h,
                        "parent": parent[n],
                        "iteration": i // 3, "inspiration": insp,
                        "state": "done", "screen_acc": 40.0 + i,
                        "full_acc": None, "seed_acc": [],
                        "params": 20000 + 900 * i, "width": 8 + i,
                        "design": "##x##"})
        fids = [("screen", 4)] + ([("full", 8)] if i % 4 == 0 else [])
        for fid, epochs in fids:
            acc = 35.0 + 2.5 * i + (10 if fid == "full" else 0)
            log = [{"epoch": e, "train_loss": 2.3 - 0.2 * e,
                    "train_acc": 15.0 + 6 * e,
                    "valid_acc": acc * (e + 1) / epochs,
                    "images_per_s": 900.0, "seconds": 1.0}
                   for e in range(epochs)]
            results.append({"job": job, "design_hash": h,
                            "dataset": "cifar10", "seed": 777,
                            "epochs": epochs, "status": "ok",
                            "final_valid_acc": acc, "best_valid_acc": acc,
                            "final_test_acc": None, "width": 8 + i,
                            "params": 20000 + 900 * i, "macs": 1000,
                            "images_per_s": 900.0, "seconds": 4.0,
                            "device": "cpu", "load_test": False,
                            "epochs_log": log, "design": n,
                            "fidelity": fid})
            job += 1
    results.append({"job": job, "design_hash": designs[3]["hash"],
                    "dataset": "cifar10", "seed": 1, "epochs": 4,
                    "status": "diverged", "final_valid_acc": None,
                    "best_valid_acc": None, "final_test_acc": None,
                    "width": 11, "params": 22700, "macs": 1000,
                    "images_per_s": 0.0, "seconds": 1.0, "device": "cpu",
                    "load_test": False, "epochs_log": [],
                    "design": "d3", "fidelity": "seed"})
    with open(os.path.join(d, "designs.jsonl"), "w") as f:
        f.write("".join(json.dumps(x) + "\n" for x in designs))
    with open(os.path.join(d, "results.jsonl"), "w") as f:
        f.write("".join(json.dumps(x) + "\n" for x in results))
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"name": "tree" + HOSTILE, "dataset": "cifar10",
                   "skeleton": "nb201",
                   "designer": "offline designer (no LLM)",
                   "best": {"name": "d11", "hash": designs[11]["hash"]},
                   "llm": {"calls": 7, "prompt_tokens": 5000,
                           "completion_tokens": 1200, "cost": 0.042}}, f)
    return names


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="nader-report-")
    try:
        folder = os.path.join(tmp, "results")
        os.mkdir(folder)
        names = make_folder(folder)
        page = os.path.join(tmp, "report.html")
        p = run([NADER, "report", folder, "-o", page])
        assert p.returncode == 0, p.stderr
        text = open(page, encoding="utf-8").read()

        # Inline only: the one URL is the SVG namespace.
        urls = set(re.findall(r"https?://[^\s\"'<>]+", text))
        assert urls == {"http://www.w3.org/2000/svg"}, urls
        assert not re.search(r"<(link|img|iframe)\b|\bsrc=", text), \
            "the page loads something"
        # The data cannot close its element: two scripts, two closings.
        assert text.count("</script>") == 2, text.count("</script>")
        assert text.count("<script") == 2

        # Bad folders.
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        p = run([NADER, "report", empty])
        assert p.returncode == 2 and "neither" in p.stderr, p.stderr
        with open(os.path.join(folder, "results.jsonl"), "a") as f:
            f.write("{not json\n")
        p = run([NADER, "report", folder, "-o", os.path.join(tmp, "x.html")])
        assert p.returncode == 2 and "results.jsonl:" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(tmp, "x.html"))

        browser = chromium()
        if not browser:
            print("chromium is not installed (apt-get install chromium): "
                  "page not rendered")
            return 77
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--user-data-dir=" +
               os.path.join(tmp, "profile"), "--enable-logging=stderr",
               "--v=0", "--virtual-time-budget=10000", "--dump-dom",
               "file://" + page]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=120)
        dom = p.stdout
        assert p.returncode == 0, p.stderr[-2000:]
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:2000]
        assert 'data-rendered="4"' in body.group(0), body.group(0)
        assert "data-error" not in body.group(0), body.group(0)
        assert "Uncaught" not in p.stderr, p.stderr[-2000:]
        title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
        assert title.startswith("nader report: tree&lt;/script&gt;"), title
        tree = dom[dom.index('id="tree"'):dom.index('id="curve-design"')]
        for n in names:
            assert ">%s" % n in tree, "tree lacks " + n
        assert tree.count("<path") == len(names) - 1, tree.count("<path")
        table = dom[dom.index('id="designs"'):]
        assert table.count("<tr>") == len(names) + 1, table.count("<tr>")
        curves = dom[dom.index('id="curves"'):dom.index('id="designs"')]
        assert curves.count("<path") >= 2, "no training curve drawn"
        assert dom.count("<svg") == 4, dom.count("<svg")
        print("rendered: 4 charts, %d designs, %d edges" %
              (len(names), len(names) - 1))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
