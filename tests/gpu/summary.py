#!/usr/bin/env python3
"""summary.py OUT WORK [FAILED_STAGE...] - summarise a device check.

Reads OUT/results.jsonl (one JSON object per measurement, written by
tests/gpu/check.sh and gpu_train), OUT/parity-*.json (cuda_parity) and
WORK/nt-*.json (nader train --json-out), writes OUT/summary.json and prints
a table.  Only the standard library: the GPU machine's Python is whatever it
has.  Targets are reported as met or not; correctness failures are the
stages' own (check.sh), so this exits 0 unless it cannot run.
"""
import json
import os
import sys

TARGET_PROTOCOL_MIN = 10.0      # 200 epochs of the budget design
TARGET_CONV_FRACTION = 0.5      # of the binding ceiling, per Conv2d


def load_lines(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"kind": "unparsed", "text": line[:200]})
    return out


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def parity(out_dir):
    res = {}
    for p in ("fp32", "strict", "bf16", "nhwc"):
        j = load_json(os.path.join(out_dir, "parity-%s.json" % p))
        if not j:
            continue
        worst = max((c for c in j.get("cases", []) if c.get("rel", -1) >= 0),
                    key=lambda c: c["rel"] / c["tol"], default=None)
        res[p] = {
            "passed": j.get("passed"), "failed": j.get("failed"),
            "failed_cases": [c["case"] for c in j.get("cases", [])
                             if not c.get("ok")],
            "closest_to_tolerance": worst,
        }
    return res


def nader_train(rows, work):
    res = {}
    walls = {}
    for r in rows:
        if r.get("kind") == "nader-train":
            walls[(r["precision"], r["epochs"])] = r["wall_s"]
    for p in ("bf16", "fp32"):
        if (p, 1) not in walls or (p, 3) not in walls:
            continue
        per_epoch = (walls[(p, 3)] - walls[(p, 1)]) / 2.0
        est = walls[(p, 1)] + 199 * per_epoch
        j = load_json(os.path.join(work, "nt-%s-e3.json" % p)) or {}
        res[p] = {
            "wall_1_epoch_s": walls[(p, 1)], "wall_3_epochs_s": walls[(p, 3)],
            "per_epoch_s": per_epoch, "protocol_200_min": est / 60.0,
            "status": j.get("status"),
            "epochs": [{k: e.get(k) for k in ("epoch", "train_loss",
                                              "valid_acc", "images_per_s",
                                              "seconds")}
                       for e in j.get("epochs", [])],
        }
    return res


def main():
    out_dir, work = sys.argv[1], sys.argv[2]
    failed_stages = sys.argv[3:]
    rows = load_lines(os.path.join(out_dir, "results.jsonl"))
    runs = [r for r in rows if r.get("kind") == "run"]
    convs = [r for r in rows if r.get("kind") == "conv"]
    stages = [r for r in rows if r.get("kind") == "stage"]
    s = {
        "stages": stages, "failed_stages": failed_stages,
        "parity": parity(out_dir), "runs": runs, "convs": convs,
        "nader_train": nader_train(rows, work),
    }

    # Targets.
    targets = {}
    budget = [r for r in runs if r["label"].startswith("wbudget-")
              and r.get("protocol_200_min", 0) > 0]
    if budget:
        best = min(budget, key=lambda r: r["protocol_200_min"])
        targets["protocol_200_min_gpu_train"] = {
            "value": best["protocol_200_min"], "label": best["label"],
            "target": TARGET_PROTOCOL_MIN,
            "ok": best["protocol_200_min"] < TARGET_PROTOCOL_MIN}
    if s["nader_train"]:
        p, best = min(s["nader_train"].items(),
                      key=lambda kv: kv[1]["protocol_200_min"])
        targets["protocol_200_min_nader_train"] = {
            "value": best["protocol_200_min"], "precision": p,
            "target": TARGET_PROTOCOL_MIN,
            "ok": best["protocol_200_min"] < TARGET_PROTOCOL_MIN}
    for prec in ("fp32", "bf16"):
        cs = [c for c in convs if c["precision"] == prec]
        if cs:
            under = [c["node"] for c in cs
                     if c["of_bound"] < TARGET_CONV_FRACTION]
            targets["conv_of_bound_%s" % prec] = {
                "min": min(c["of_bound"] for c in cs),
                "target": TARGET_CONV_FRACTION, "under_target": under,
                "ok": not under}
    traj = {r["label"]: {"worst_rel": r.get("traj_worst_rel"),
                         "tol": r.get("traj_tol"),
                         "ok": 0 <= r.get("traj_worst_rel", -1)
                         <= r.get("traj_tol", 0)}
            for r in runs if "traj_tol" in r}
    s["targets"] = targets
    s["trajectories"] = traj

    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(s, f, indent=1)

    print("parity (cases passed/failed):")
    for p, v in s["parity"].items():
        c = v["closest_to_tolerance"]
        print("  %-7s %3s/%-3s  closest: %s" % (
            p, v["passed"], v["failed"],
            "%s rel %.2e of tol %.0e" % (c["case"], c["rel"], c["tol"])
            if c else "-"))
        if v["failed_cases"]:
            print("          failed: %s" % ", ".join(v["failed_cases"]))
    print("training (gpu_train, batch 256):")
    print("  %-22s %9s %8s %8s %8s %7s %8s %7s %9s" % (
        "run", "img/s", "ms/step", "MiB", "TFLOP/s", "of peak", "GB/s",
        "of peak", "200 ep"))
    for r in runs:
        print("  %-22s %9.0f %8.2f %8.0f %8.1f %6.1f%% %8.0f %6.1f%% %8.1fm"
              % (r["label"], r["images_per_s"], r["step_ms"],
                 r["peak_bytes"] / 2**20, r["tflops"],
                 100 * r["tflops_fraction"], r["gbs_model"],
                 100 * r["gbs_fraction"], r.get("protocol_200_min", 0)))
    print("loss over 20 steps against the CPU backend:")
    for k, v in traj.items():
        print("  %-22s worst rel %.2e  tol %.0e  %s" % (
            k, v["worst_rel"] if v["worst_rel"] is not None else -1,
            v["tol"], "ok" if v["ok"] else "OUTSIDE"))
    if s["nader_train"]:
        print("nader train (1 and 3 epochs, generated CIFAR-10 layout):")
        for p, v in s["nader_train"].items():
            print("  %-5s %.2f s/epoch -> 200 epochs %.1f min (status %s)" % (
                p, v["per_epoch_s"], v["protocol_200_min"], v["status"]))
    print("targets (reported; the check fails on correctness only):")
    for k, v in targets.items():
        print("  %-32s %-7s %s" % (k, "MET" if v["ok"] else "NOT MET",
                                   json.dumps(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
