#!/usr/bin/python3
"""Budget caps stop a search at the cap, cleanly, and say why.

  - designs: no design beyond the cap is made; those made are trained;
  - tokens: the search stops once the LLM calls used the cap, and no call
    begins after the one that reached it has answered;
  - cost: likewise in USD, from the configured prices;
  - GPU hours: once the training time adds up to the cap, nothing new is
    started;
  - deadline: the search ends soon after it, queued runs cancelled.

An endpoint that answers nothing for a whole iteration ends the search
too.  The offline designer is used where the LLM is beside the point.  About
30 s on 2 cores.
"""
import json
import time

import search_fixture as sf

SCRIPT = {"rules": [
    {"name": "rank", "match": "Rank all candidates",
     "responses": [{"content": "<ranking>1, 2</ranking>"}]},
    {"name": "reason", "match": "fell from",
     "responses": [{"content": "<suggestion>Be gentle.</suggestion>"}]},
    {"name": "a", "match": r"## Inspiration\s+idea-a", "scope": "all",
     "responses": [{"echo_block": {"replace": [["4:ReLU", "4:GELU"]]}}]},
    {"name": "b", "match": r"## Inspiration\s+idea-b", "scope": "all",
     "responses": [{"echo_block": {"replace": [["7:ReLU", "7:GELU"]]}}]},
    {"name": "c", "match": r"## Inspiration\s+idea-c", "scope": "all",
     "responses": [{"echo_block": {"replace": [["6:BN", "6:LN"]]}}]},
]}


# Short training runs: the budgets are the point here, not accuracy.
QUICK = ["train.max_steps=12"]


def designs_cap(ws):
    exp = sf.experiment_yaml(ws, "cap-designs", ws.dir + "/s1")
    rc, out = sf.run(exp, sets=QUICK + ["search.iterations=5",
                                        "budget.designs=3"])
    sf.check(rc == 0, out)
    res = sf.results(ws, "cap-designs")
    sf.check(len(res["tree"]) == 4, "base + 3 designs, not %d" %
             len(res["tree"]))
    sf.check(res["summary"]["stop_reason"] ==
             "design budget reached: 3 designs", res["summary"]["stop_reason"])
    sf.check(all(n["state"] == "done" for n in res["tree"]),
             "a design made before the cap was not trained")
    sf.check("offline" in out, "the offline designer says what it is")


def tokens_cap(ws, url, ideas):
    extra = "  inspirations: %s\n  candidates: 3\n" % ideas
    exp = sf.experiment_yaml(ws, "cap-tokens", ws.dir + "/s2", extra,
                             llm_url=url)
    cap = 4000
    rc, out = sf.run(exp, sets=QUICK + ["search.iterations=6",
                                        "budget.tokens=%d" % cap])
    sf.check(rc == 0, out)
    res = sf.results(ws, "cap-tokens")
    reason = res["summary"]["stop_reason"]
    sf.check(reason.startswith("token budget reached: "), reason)
    used = [x["prompt_tokens"] + x["completion_tokens"] for x in res["llm"]]
    total = sum(used)
    sf.check(total >= cap, "stopped at %d tokens, below the cap" % total)
    # No call began after the one that reached the cap had answered
    # (calls already in flight then may finish: llm.concurrency is 2).
    run_sum, reached = 0, None
    for x, u in zip(res["llm"], used):
        run_sum += u
        if run_sum >= cap:
            reached = x["time"]
            break
    sf.check(reached is not None, "the cap was never reached")
    for x in res["llm"]:
        began = x["time"] - x["latency_ms"] / 1000.0
        sf.check(began <= reached + 0.005,
                 "a call began %.3f s after the cap was reached" %
                 (began - reached))
    sf.check(("%d of %d tokens" % (total, cap)) in reason, reason)
    sf.check(len(ws.requests()) == len(res["llm"]),
             "the endpoint was asked more than the calls stored")
    sf.check(all(n["state"] == "done" for n in res["tree"]),
             "a design made before the cap was not trained")
    print("tokens: stopped at %d of %d after %d calls, %d designs" %
          (total, cap, len(used), len(res["tree"])))


def cost_cap(ws, url, ideas):
    extra = "  inspirations: %s\n  candidates: 3\n" % ideas
    exp = sf.experiment_yaml(ws, "cap-cost", ws.dir + "/s6", extra,
                             llm_url=url)
    # 1,000 USD per million tokens both ways: $4 is 4,000 tokens.
    rc, out = sf.run(exp, sets=QUICK + ["search.iterations=6",
                                        "llm.price_prompt=1000",
                                        "llm.price_completion=1000",
                                        "budget.cost=4"])
    sf.check(rc == 0, out)
    res = sf.results(ws, "cap-cost")
    reason = res["summary"]["stop_reason"]
    sf.check(reason.startswith("cost budget reached: $"), reason)
    cost = sum(x["cost"] for x in res["llm"])
    sf.check(cost >= 4.0, "stopped at $%.4f, below the cap" % cost)
    sf.check(abs(cost - res["summary"]["llm"]["cost"]) < 1e-6,
             "summary and exchanges disagree on the cost")


def gpu_cap(ws):
    exp = sf.experiment_yaml(ws, "cap-gpu", ws.dir + "/s3")
    rc, out = sf.run(exp, sets=QUICK + ["search.iterations=20",
                                        "budget.gpu_hours=0.0005"])
    sf.check(rc == 0, out)
    res = sf.results(ws, "cap-gpu")
    reason = res["summary"]["stop_reason"]
    sf.check(reason.startswith("GPU-hour budget reached"), reason)
    hours = res["summary"]["gpu_hours"]
    sf.check(hours >= 0.0005, "stopped below the cap: %f" % hours)
    # Every run but those in flight when the cap was crossed came before.
    sf.check(len(res["tree"]) < 20 * 2 + 1, "did not stop")


def deadline(ws):
    exp = sf.experiment_yaml(ws, "cap-deadline", ws.dir + "/s4")
    t0 = time.time()
    rc, out = sf.run(exp, sets=QUICK + ["search.iterations=100",
                                        "budget.deadline=6s"])
    took = time.time() - t0
    sf.check(rc == 0, out)
    res = sf.results(ws, "cap-deadline")
    reason = res["summary"]["stop_reason"]
    sf.check(reason.startswith("deadline reached"), reason)
    sf.check(took < 30, "a 6 s deadline ended after %.0f s" % took)
    sf.check(res["summary"]["phase"] == "done", "not finished")


def endpoint_down(ws, ideas):
    extra = "  inspirations: %s\n" % ideas
    exp = sf.experiment_yaml(ws, "down", ws.dir + "/s5", extra,
                             llm_url="http://127.0.0.1:1/v1")
    rc, out = sf.run(exp, sets=QUICK + ["llm.retries=0",
                                        "search.iterations=5"])
    sf.check(rc == 0, out)
    res = sf.results(ws, "down")
    reason = res["summary"]["stop_reason"]
    sf.check(reason.startswith("the LLM endpoint did not answer"), reason)
    sf.check(len(res["tree"]) == 1, "designs from a dead endpoint")


def main():
    ws = sf.Workspace()
    try:
        url = ws.start_server(SCRIPT)
        ideas = ws.experiment("ideas.txt",
                              "idea-a: one.\nidea-b: two.\nidea-c: three.\n")
        designs_cap(ws)
        tokens_cap(ws, url, ideas)
        cost_cap(ws, url, ideas)
        gpu_cap(ws)
        deadline(ws)
        endpoint_down(ws, ideas)
        print("ok: design, token, cost, GPU-hour and deadline budgets; a dead "
              "endpoint ends the search")
    finally:
        ws.close()


if __name__ == "__main__":
    main()
