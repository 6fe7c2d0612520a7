"""Helpers for the search tests (tests/py/test_search_*.py).

Each test runs whole searches with the real binaries: `nader run` (a
coordinator, a CPU worker and the agents in one process tree) against the
scripted endpoint tests/py/llm_server.py, on a small generated data set,
in a temporary folder that is removed afterwards.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
NADER = os.path.join(BIN, "nader")
BASE = os.path.join(ROOT, "examples", "blocks", "resnet_basic.txt")
SERVER = os.path.join(ROOT, "tests", "py", "llm_server.py")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Workspace:
    """A temporary folder with a data set, and perhaps a scripted server."""

    def __init__(self, data=None):
        self.dir = tempfile.mkdtemp(prefix="nader-search-")
        self.server = None
        self.data = data or os.path.join(self.dir, "data")

    def start_server(self, script):
        path = os.path.join(self.dir, "script.json")
        with open(path, "w") as f:
            json.dump(script, f)
        port_file = os.path.join(self.dir, "port")
        self.log = os.path.join(self.dir, "requests.jsonl")
        self.server = subprocess.Popen(
            ["/usr/bin/python3", SERVER, "--script", path, "--port-file",
             port_file, "--log", self.log])
        for _ in range(400):
            if os.path.exists(port_file):
                with open(port_file) as f:
                    return "http://127.0.0.1:%d/v1" % int(f.read())
            time.sleep(0.025)
        fail("the scripted server did not start")

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def experiment(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def close(self):
        if self.server:
            self.server.terminate()
            self.server.wait()
        if not os.environ.get("NADER_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept " + self.dir)


def experiment_yaml(ws, name, state, extra="", llm_url=None, replay=None,
                    embed=False):
    """An experiment file for a small, quick search."""
    llm = ""
    if llm_url:
        llm = ("llm:\n  base_url: %s\n  model: scripted\n  timeout: 1s\n"
               "  backoff: 50ms\n  backoff_max: 200ms\n  concurrency: 2\n"
               % llm_url)
        if embed:
            llm += "  embed_model: scripted-embed\n"
    elif replay:
        llm = "llm:\n  replay: %s\n  concurrency: 2\n" % replay
    text = """state_dir: %(state)s
log:
  level: warn
search:
  name: %(name)s
  base: %(base)s
  iterations: 2
  width: 2
  retries: 2
%(extra_search)s
train:
  screen_epochs: 2
  full_fraction: 0
  final_seeds: ""
  budget: 20000
  cells_per_stage: 1
  batch: 64
%(llm)s
run:
  results: %(results)s
data:
  dir: %(data)s
  generate: synthetic
  train_images: 1200
  test_images: 300
""" % {"state": state, "name": name, "base": BASE, "llm": llm,
       "results": os.path.join(ws.dir, "results"), "data": ws.data,
       "extra_search": extra}
    return ws.experiment(name + "-" + os.path.basename(state) + ".yaml", text)


def run(exp, timeout=240, sets=(), replay=None):
    """Run `nader run` to its end; returns (exit code, output)."""
    cmd = [NADER, "run", exp, "--quiet"]
    if replay:
        cmd += ["--llm-replay", replay]
    for kv in sets:
        cmd += ["--set", kv]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, text=True)
    return p.returncode, p.stdout


def start(exp, sets=()):
    cmd = [NADER, "run", exp, "--quiet"]
    for kv in sets:
        cmd += ["--set", kv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def kill9(proc):
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return out


def results(ws, name):
    d = os.path.join(ws.dir, "results", name)

    def jsonl(f):
        with open(os.path.join(d, f)) as fh:
            return [json.loads(line) for line in fh if line.strip()]

    with open(os.path.join(d, "tree.json")) as f:
        tree = json.load(f)
    with open(os.path.join(d, "summary.json")) as f:
        summary = json.load(f)
    return {"tree": tree, "summary": summary,
            "designs": jsonl("designs.jsonl"),
            "experiences": jsonl("experiences.jsonl"),
            "llm": jsonl("llm.jsonl"), "results": jsonl("results.jsonl"),
            "dir": d}


def shape(tree):
    """What a tree is, accuracies left out: name, parent, hash, idea."""
    return [(n["name"], n["parent"], n["hash"], n["inspiration"])
            for n in tree]
