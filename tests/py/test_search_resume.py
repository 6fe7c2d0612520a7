#!/usr/bin/python3
"""A search killed with SIGKILL in the middle of an iteration, and run
again, finishes with no design lost and no LLM call repeated that had
already been answered.

`nader run` (coordinator, worker and agents together) is killed while the
Modifier's conversations of an iteration are under way; its workers go
with it.  The design records in the store just after the kill are read
with `nader tree`; the second run must end with every one of them, and
the exchanges it stored before the kill must each have reached the
endpoint exactly once (the endpoint's log of requests is compared with
the stored exchanges).  About 40 s on 2 cores.
"""
import json
import subprocess
import time

import search_fixture as sf

# Seven independent edits: each still applies after any of the others,
# so every iteration reaches its width.
REPLACE = [("2:Conv2d(out_channels=C,kernel_size=3",
            "2:Conv2d(out_channels=C,kernel_size=5"),
           ("5:Conv2d(out_channels=C,kernel_size=3",
            "5:Conv2d(out_channels=C,kernel_size=1"),
           ("4:ReLU", "4:GELU"), ("7:ReLU", "7:GELU"),
           ("2:Conv2d(out_channels=C,", "2:Conv2d(out_channels=C,dilation=2,"),
           ("5:Conv2d(out_channels=C,", "5:Conv2d(out_channels=C,groups=2,"),
           ("6:BN", "6:LN")]
IDEAS = ["idea-%d: change number %d." % (i, i) for i in range(len(REPLACE))]
SCRIPT = {"rules": [
    {"name": "rank", "match": "Rank all candidates", "responses": [
        {"content": "I would try them in order: <ranking>1, 2, 3</ranking>"}]},
    {"name": "tip", "match": "validator said",
     "responses": [{"content": "<tip>Check the edges.</tip>"}]},
    {"name": "reason", "match": "fell from",
     "responses": [{"content": "<suggestion>Be gentle.</suggestion>"}]},
] + [{"name": "idea-%d" % i, "match": r"## Inspiration\s+idea-%d:" % i,
      "scope": "all", "responses": [
          {"delay": 0.6, "echo_block": {"replace": [[a, b]]}}]}
     for i, (a, b) in enumerate(REPLACE)]}


def tree_json(exp):
    p = subprocess.run([sf.NADER, "tree", exp, "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    sf.check(p.returncode == 0, "nader tree failed: " + p.stderr)
    return json.loads(p.stdout)


def main():
    ws = sf.Workspace()
    try:
        url = ws.start_server(SCRIPT)
        ideas = ws.experiment("ideas.json", json.dumps(IDEAS))
        extra = "  inspirations: %s\n  candidates: 4\n" % ideas
        exp = sf.experiment_yaml(ws, "resume", ws.dir + "/state", extra,
                                 llm_url=url, embed=True)
        proc = sf.start(exp, sets=["search.iterations=3"])
        # Wait for the Modifier of the second iteration to be under way.
        deadline = time.time() + 150
        killed_at = None
        while time.time() < deadline:
            reqs = ws.requests()
            mods = [r for r in reqs if r["rule"].startswith("idea-")]
            ranks = [r for r in reqs if r["rule"] == "rank"]
            if len(ranks) >= 2 and \
                    any(r["time"] > ranks[1]["time"] for r in mods):
                killed_at = time.time()
                out = sf.kill9(proc)
                break
            if proc.poll() is not None:
                sf.fail("the search ended before it could be killed:\n" +
                        proc.stdout.read())
            time.sleep(0.1)
        sf.check(killed_at is not None, "never reached the second iteration")
        time.sleep(0.5)
        before = tree_json(exp)
        asked_before = len(ws.requests())
        print("killed with %d designs stored and %d requests made" %
              (len(before), asked_before))
        sf.check(len(before) >= 3, "the kill came too early")

        rc, out = sf.run(exp, sets=["search.iterations=3"])
        sf.check(rc == 0, "the second run failed:\n" + out)
        sf.check("finished: all 3 iterations done" in out, out)
        res = sf.results(ws, "resume")
        tree = res["tree"]
        sf.check(len(tree) == 7, "7 designs, not %d" % len(tree))
        final = {n["name"]: n["hash"] for n in tree}
        for n in before:
            sf.check(final.get(n["name"]) == n["hash"],
                     "design %s was lost or changed" % n["name"])
        for n in tree:
            sf.check(n["state"] == "done", "%s not trained (%s: %s)" %
                     (n["name"], n["state"], n.get("reason")))

        # No answered call repeated: every exchange stored before the
        # kill reached the endpoint once.
        reqs = ws.requests()
        def key(msgs):
            return json.dumps(msgs, sort_keys=True)
        count = {}
        for r in reqs:
            k = key(r.get("messages", r.get("inputs")))
            count[k] = count.get(k, 0) + 1
        early = [x for x in res["llm"] if x["time"] < killed_at]
        sf.check(len(early) >= 3, "too few exchanges before the kill")
        for x in early:
            n = count.get(key(x["request"]), 0)
            sf.check(n == 1, "an exchange answered before the kill was asked "
                     "%d times: %s" % (n, x["agent"]))
        sf.check(res["summary"]["llm"]["memo_hits"] >= 1,
                 "the resumed iteration found none of its stored answers")
        later = [x for x in res["llm"] if x["time"] >= killed_at]
        print("ok: %d designs kept across the kill, %d exchanges before it "
              "not asked again, %d after" % (len(before), len(early),
                                             len(later)))
    finally:
        ws.close()


if __name__ == "__main__":
    main()
