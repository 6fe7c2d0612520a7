#!/usr/bin/python3
"""A scripted OpenAI-compatible endpoint on loopback, for tests only.

nader's agents talk to language models over HTTP; the tests drive them
against this server, which answers from a script instead of a model:

    llm_server.py --script S.json --port-file P [--log L.jsonl]

It binds 127.0.0.1 on a port chosen by the OS, writes that port to P
once it listens, and serves until killed.  Every request is appended to
the log as one JSON line (route, messages or inputs, which rule answered
and how), so a test can count what was asked.

The script is JSON:

    {"rules": [
        {"name": "rank",                  # for the log
         "match": "REGEX",                # searched in the last user
                                          # message (chat) or the inputs
         "scope": "all",                  # search the whole conversation
         "route": "chat",                 # "chat" (default) or "embed"
         "responses": [RESPONSE, ...],    # used in order, one per request
         "then": "repeat"}                # after the last: "repeat" it
     ],                                   # (default) or "fall" through
     "default": RESPONSE,                 # when no rule answers
     "embeddings": true}                  # false: /embeddings is a 404

A RESPONSE is an object with any of:

    "content": TEXT        answer with this message content
    "rank": [PATTERN, ...] answer a Proposer's ranking: the candidates
                           ("N: text" lines of the prompt) matching the
                           patterns, in pattern order, then the rest,
                           as <ranking>...</ranking> amid chatter
    "echo_block": {        answer with the first block found in the
        "replace": [[OLD, NEW], ...],     prompt, after these string
        "before": TEXT, "after": TEXT,    replacements, between chatter
        "fence": true}                    (and inside a ``` fence)
    "status": 500          answer with this HTTP status and an error body
    "retry_after": 1       with a Retry-After header (seconds)
    "raw": TEXT            send this body as is (garbage, cut-off JSON)
    "delay": 2.5           wait this long first (stalls past a timeout)
    "usage": {"prompt_tokens": N, "completion_tokens": M}
    "no_usage": true       leave usage out of the answer

Token counts default to a quarter of the characters, like a rough
tokenizer.  Embeddings are a deterministic bag of words hashed into 64
dimensions, so similar texts get similar vectors.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK_LINE = re.compile(r"^\s*(##.+##|\d+\s*:.*|[\d\s,]+->\s*\d+|#.*|)\s*$")


def first_block(text):
    """The first block (a ##NAME## header and its lines) in text."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if re.match(r"^\s*##[^#].*##\s*$", line):
            out = [line.strip()]
            for nxt in lines[i + 1:]:
                if re.match(r"^\s*##[^#].*##\s*$", nxt):
                    break
                if not nxt.strip():
                    if len(out) > 1:
                        break
                    continue
                if not BLOCK_LINE.match(nxt):
                    break
                out.append(nxt.strip())
            return "\n".join(out)
    return None


def rank_answer(prompt, patterns):
    """A ranking of the numbered candidates in prompt, by patterns."""
    cands = re.findall(r"^(\d+): (.*)$", prompt.split("## Candidates")[-1],
                       re.M)
    order = []
    for pat in patterns:
        for num, text in cands:
            if num not in order and re.search(pat, text):
                order.append(num)
    order += [num for num, _ in cands if num not in order]
    return "My ranking, most promising first:\n<ranking>%s</ranking>" % (
        ", ".join(order))


def embed(text, dim=64):
    vec = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        h = int(hashlib.sha1(word.encode()).hexdigest(), 16)
        vec[h % dim] += 1.0 if (h >> 8) & 1 else -1.0
    if not any(vec):
        vec[0] = 1.0
    return vec


class Script:
    def __init__(self, spec):
        self.rules = spec.get("rules", [])
        self.default = spec.get("default", {"content": "I have nothing."})
        self.embeddings = spec.get("embeddings", True)
        self.next = [0] * len(self.rules)
        self.lock = threading.Lock()

    def pick(self, route, text, whole=None):
        """The (rule name, index, response) that answers a request."""
        with self.lock:
            for i, rule in enumerate(self.rules):
                if rule.get("route", "chat") != route:
                    continue
                hay = whole if rule.get("scope") == "all" and whole else text
                if not re.search(rule.get("match", ""), hay, re.S):
                    continue
                resps = rule.get("responses", [])
                k = self.next[i]
                if k < len(resps):
                    self.next[i] += 1
                    return rule.get("name", str(i)), k, resps[k]
                if resps and rule.get("then", "repeat") == "repeat":
                    return rule.get("name", str(i)), k, resps[-1]
            return "default", 0, self.default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, extra=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        srv = self.server
        with srv.log_lock:
            srv.inflight += 1
            self.inflight = srv.inflight
        try:
            self.post()
        finally:
            with srv.log_lock:
                srv.inflight -= 1

    def post(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            self.send(400, json.dumps({"error": {"message": "bad JSON"}}))
            return
        path = self.path.rstrip("/")
        if path.endswith("/chat/completions"):
            self.chat(req)
        elif path.endswith("/embeddings"):
            self.embeddings(req)
        else:
            self.send(404, json.dumps({"error": {"message": "no route"}}))

    def record(self, entry):
        srv = self.server
        entry["inflight"] = self.inflight
        entry["auth"] = self.headers.get("Authorization", "")
        with srv.log_lock:
            if srv.log:
                srv.log.write(json.dumps(entry) + "\n")
                srv.log.flush()

    def common(self, resp):
        """Delay and error statuses; True when the response was sent."""
        if resp.get("delay"):
            time.sleep(float(resp["delay"]))
        if "raw" in resp:
            self.send(resp.get("status", 200), resp["raw"])
            return True
        status = resp.get("status", 200)
        if status != 200:
            extra = {}
            if "retry_after" in resp:
                extra["Retry-After"] = str(resp["retry_after"])
            body = json.dumps({"error": {"message": "scripted %d" % status}})
            self.send(status, body, extra)
            return True
        return False

    def chat(self, req):
        msgs = req.get("messages", [])
        users = [m.get("content", "") for m in msgs if m.get("role") == "user"]
        last = users[-1] if users else ""
        whole = "\n".join(m.get("content", "") for m in msgs)
        name, k, resp = self.server.script.pick("chat", last, whole)
        self.record({"route": "chat", "rule": name, "index": k,
                     "messages": msgs, "time": time.time()})
        if self.common(resp):
            return
        if "rank" in resp:
            content = rank_answer(last, resp["rank"])
        elif "echo_block" in resp:
            spec = resp["echo_block"]
            block = first_block(whole) or ""
            for old, new in spec.get("replace", []):
                block = block.replace(old, new)
            if spec.get("fence", True):
                block = "```text\n" + block + "\n```"
            content = spec.get("before", "") + block + spec.get("after", "")
        else:
            content = resp.get("content", "")
        prompt_chars = sum(len(m.get("content", "")) for m in msgs)
        usage = resp.get("usage", {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": max(1, len(content) // 4)})
        body = {"id": "scripted", "object": "chat.completion",
                "model": req.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant",
                                         "content": content}}]}
        if not resp.get("no_usage"):
            usage["total_tokens"] = (usage["prompt_tokens"] +
                                     usage["completion_tokens"])
            body["usage"] = usage
        self.send(200, json.dumps(body))

    def embeddings(self, req):
        inputs = req.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not self.server.script.embeddings:
            self.record({"route": "embed", "rule": "absent",
                         "inputs": inputs, "time": time.time()})
            self.send(404, json.dumps({"error": {"message": "no model"}}))
            return
        name, k, resp = self.server.script.pick("embed", "\n".join(inputs))
        self.record({"route": "embed", "rule": name, "index": k,
                     "inputs": inputs, "time": time.time()})
        if name != "default" and self.common(resp):
            return
        data = [{"object": "embedding", "index": i, "embedding": embed(t)}
                for i, t in enumerate(inputs)]
        toks = max(1, sum(len(t) for t in inputs) // 4)
        self.send(200, json.dumps({
            "object": "list", "data": data, "model": req.get("model", ""),
            "usage": {"prompt_tokens": toks, "total_tokens": toks}}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--script", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    args = ap.parse_args()
    with open(args.script) as f:
        script = Script(json.load(f))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.script = script
    srv.log = open(args.log, "a") if args.log else None
    srv.log_lock = threading.Lock()
    srv.inflight = 0
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
