#!/usr/bin/python3
"""Whole searches with LLM agents against the scripted endpoint, then
the same search replayed from its exchange log.

The script makes every kind of trouble happen: the Proposer's first
requests get a 500, a 429 with Retry-After, a cut-off JSON body and a
stall past the timeout before an answer with chatter around the
ranking; the Modifier's ideas are answered with a block amid chatter
and fences (idea-gelu), an invalid block fixed after the validator's
feedback (idea-kernel), the parent unchanged (idea-dup, a duplicate),
garbage and then a valid block (idea-garbage), an invalid block every
time (idea-never), and a change that hurts (idea-sigmoid).  The ranking
puts the troublesome ideas first, so each is tried, and experience is
retrieved by the endpoint's embeddings.  The test then
checks that the tree and the experiences are the ones the script
implies, and that a replay of the exchange log, with no endpoint at
all, builds the same tree.  About 40 s on 2 cores.
"""
import json
import shutil

import search_fixture as sf

IDEAS = [
    "idea-gelu: replace the ReLU activations with GELU.",
    "idea-kernel: use 5x5 kernels in the convolutions.",
    "idea-dup: keep the block exactly as it is.",
    "idea-never: feed the sum back into the first convolution.",
    "idea-garbage: make the second convolution pointwise.",
    "idea-sigmoid: use sigmoid activations.",
]
TIP = "Join two tensors with Add before a Conv2d."
SUGGESTION = "Keep ReLU-like activations in the main path."
# The idea a Modifier conversation is about (not one quoted in lessons).
IDEA = r"## Inspiration\s+idea-%s"
ORDER = ["idea-never", "idea-dup", "idea-kernel", "idea-garbage",
         "idea-sigmoid", "idea-gelu"]

SCRIPT = {"rules": [
    {"name": "rank", "match": "Rank all candidates", "responses": [
        {"status": 500},
        {"status": 429, "retry_after": 1},
        {"raw": "{\"choices\": [{\"message\": {\"content\": \"<ranki"},
        {"delay": 2.5, "content": "<ranking>1</ranking>"},
        {"rank": ORDER}]},
    {"name": "tip", "match": "validator said", "responses": [
        {"content": "The edge gives node 2 two inputs.\n<tip>%s</tip>" % TIP}]},
    {"name": "reason", "match": "fell from", "responses": [
        {"content": "It squashes.\n<suggestion>%s</suggestion>" % SUGGESTION}]},
    {"name": "gelu", "match": IDEA % "gelu", "scope": "all", "responses": [
        {"echo_block": {"replace": [["ReLU", "GELU"]],
                        "before": "Sure! Here is the cell:\n",
                        "after": "\nIt keeps C channels."}}]},
    {"name": "kernel", "match": IDEA % "kernel", "scope": "all", "responses": [
        {"echo_block": {"replace": [["7->1", "7->99"]]}},
        {"echo_block": {"replace": [["kernel_size=3", "kernel_size=5"]],
                        "before": "Fixed:\n"}}]},
    {"name": "dup", "match": IDEA % "dup", "scope": "all",
     "responses": [{"echo_block": {}}]},
    {"name": "never", "match": IDEA % "never", "scope": "all", "responses": [
        {"echo_block": {"replace": [["0->2\n", "0->2\n8->2\n"]]}}]},
    {"name": "garbage", "match": IDEA % "garbage", "scope": "all",
     "responses": [
         {"content": "\u0001\u0002 I would rather not."},
         {"echo_block": {"replace": [[
             "5:Conv2d(out_channels=C,kernel_size=3",
             "5:Conv2d(out_channels=C,kernel_size=1"]]}}]},
    {"name": "sigmoid", "match": IDEA % "sigmoid", "scope": "all",
     "responses": [{"echo_block": {"replace": [["ReLU", "Sigmoid"]],
                                   "fence": False}}]},
]}


def check_tree(res, reqs):
    tree = res["tree"]
    by_name = {n["name"]: n for n in tree}
    sf.check(len(tree) == 5, "5 designs (base + 2 x 2), not %d" % len(tree))
    for n in tree[1:]:
        sf.check(n["inspiration"] in IDEAS, "odd inspiration %r" %
                 n["inspiration"])
        sf.check(not n["inspiration"].startswith(("idea-never", "idea-dup")),
                 "%s came from an idea that never gives a new valid design"
                 % n["name"])
        sf.check(n["state"] == "done", "%s was not trained" % n["name"])
        cell = n["design"].split("##" + n["name"] + "_stem##")[0]
        if n["inspiration"].startswith("idea-kernel"):
            sf.check("kernel_size=5" in cell, "idea-kernel without 5x5")
        if n["inspiration"].startswith("idea-gelu"):
            sf.check("GELU" in cell and "ReLU" not in cell, "idea-gelu")
    # Iteration 1 (parent d0): never and dup are tried first and fail,
    # then kernel (fixed after feedback) and garbage (after garbage).
    it1 = [n for n in tree if n["iteration"] == 1]
    sf.check([n["inspiration"].split(":")[0] for n in it1] ==
             ["idea-kernel", "idea-garbage"], "iteration 1 made %r" %
             [n["inspiration"] for n in it1])
    sf.check(all(n["parent"] == 0 for n in it1), "iteration 1 parent")
    # Hashes are distinct.
    sf.check(len({n["hash"] for n in tree}) == 5, "duplicate designs kept")

    # The kernel conversation got the validator's line back.
    fb = [r for r in reqs if r["rule"] == "kernel" and
          len(r["messages"]) >= 3]
    sf.check(fb and "uses node 99" in fb[0]["messages"][2]["content"],
             "idea-kernel feedback did not carry the validator's line")
    gb = [r for r in reqs if r["rule"] == "garbage" and
          len(r["messages"]) >= 3]
    sf.check(gb and "no block found" in gb[0]["messages"][2]["content"],
             "garbage answer got no feedback")
    # Transport trouble was met and survived.
    ranks = [r for r in reqs if r["rule"] == "rank"]
    sf.check([r["index"] for r in ranks[:5]] == [0, 1, 2, 3, 4],
             "the proposer's troubled requests")
    sf.check(res["summary"]["llm"]["retries"] >= 4, "retries counted")
    return by_name


def check_experiences(res, by_name):
    exps = res["experiences"]
    dev = [e for e in exps if e["kind"] == "development"]
    sf.check(len(dev) == 2, "one development experience per iteration "
             "(idea-never), not %d" % len(dev))
    for e in dev:
        sf.check(e["inspiration"].startswith("idea-never"), "dev idea")
        sf.check(e["text"] == TIP, "tip %r" % e["text"])
        sf.check(e["error"] and "two" not in "" and "(Conv2d)" in e["error"],
                 "the validator's line kept: %r" % e["error"])
    # Research and success experiences are exactly the drops and gains.
    hashes = {n["hash"]: n for n in res["tree"]}
    research = {e["design_hash"] for e in exps if e["kind"] == "research"}
    success = {e["design_hash"] for e in exps if e["kind"] == "success"}
    for n in res["tree"][1:]:
        parent = res["tree"][n["parent"]]
        delta = n["screen_acc"] - parent["screen_acc"]
        sf.check((n["hash"] in research) == (delta < -0.5),
                 "%s: delta %.2f vs research experience" % (n["name"], delta))
        sf.check((n["hash"] in success) == (delta > 0),
                 "%s: delta %.2f vs success experience" % (n["name"], delta))
    for e in exps:
        if e["kind"] == "research":
            sf.check(e["text"] == SUGGESTION, "suggestion %r" % e["text"])
            sf.check(e["design_hash"] in hashes, "research design")


def main():
    ws = sf.Workspace()
    try:
        url = ws.start_server(SCRIPT)
        ideas = ws.experiment("ideas.json", json.dumps(
            [{"id": i + 1, "paper_id": "test", "inspiration": t}
             for i, t in enumerate(IDEAS)]))
        extra = "  inspirations: %s\n  candidates: 6\n" % ideas
        exp = sf.experiment_yaml(ws, "scripted", ws.dir + "/state1", extra,
                                 llm_url=url, embed=True)
        rc, out = sf.run(exp)
        sf.check(rc == 0, "nader run failed:\n" + out)
        sf.check("finished: all 2 iterations done" in out, out)
        sf.check("leaderboard" in out and "synthetic data" in out, out)
        res = sf.results(ws, "scripted")
        reqs = ws.requests()
        by_name = check_tree(res, reqs)
        check_experiences(res, by_name)
        sf.check(len(res["llm"]) == res["summary"]["llm"]["calls"],
                 "llm.jsonl holds every call")
        # Experience was retrieved by embeddings, each text embedded once.
        embeds = [x for x in res["llm"] if x["kind"] == "embed"]
        sf.check(len(embeds) >= 2, "no embedding calls")
        texts = [t for x in embeds for t in x["request"]]
        sf.check(any("Keep ReLU-like" in t for t in texts),
                 "research lessons were not embedded")

        # Replay: a fresh store, no endpoint, the same tree.
        shutil.move(res["dir"], ws.dir + "/recorded")
        log = ws.dir + "/recorded/llm.jsonl"
        asked = len(reqs)
        exp2 = sf.experiment_yaml(ws, "scripted", ws.dir + "/state2", extra)
        rc, out = sf.run(exp2, replay=log)
        sf.check(rc == 0, "replay failed:\n" + out)
        sf.check("replaying a recorded log" in out, out)
        rep = sf.results(ws, "scripted")
        sf.check(sf.shape(rep["tree"]) == sf.shape(res["tree"]),
                 "the replayed tree differs:\n%s\n%s" %
                 (sf.shape(rep["tree"]), sf.shape(res["tree"])))
        sf.check(len(ws.requests()) == asked, "the replay asked the endpoint")
        sf.check(rep["summary"]["llm"]["memo_hits"] ==
                 rep["summary"]["llm"]["calls"], "replay answered from log")
        # Every recorded exchange, embeddings included, was asked again.
        sf.check(rep["summary"]["llm"]["calls"] ==
                 res["summary"]["llm"]["calls"],
                 "the replay made %d calls, the recording %d" %
                 (rep["summary"]["llm"]["calls"],
                  res["summary"]["llm"]["calls"]))
        same_acc = [a["screen_acc"] for a in rep["tree"]] == \
                   [a["screen_acc"] for a in res["tree"]]
        print("replayed tree identical; accuracies %s" %
              ("identical" if same_acc else "differ (training)"))
        print("ok: scripted search and its replay")
    finally:
        ws.close()


if __name__ == "__main__":
    main()
