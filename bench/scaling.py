#!/usr/bin/env python3
"""Instances against offered load over time, for a step-up / step-down run.

Starts `weft up` (release build) with short scaling periods (stable window 6 s,
grace 1 s, tick 0.5 s), deploys the `stress` guest in slow mode (each request
sleeps 50 ms) with `target: 1` (one request in flight per instance, 70 %
utilization) and `max-scale: 10`, then drives closed-loop clients in steps
(0 -> 2 -> 6 -> 12 -> 4 -> 0). Every 0.5 s it records the clients, the
throughput, and the revision's desired / actual instances. Writes
bench/reports/scaling.csv and bench/reports/scaling.png and prints a summary.

Usage: python3 bench/scaling.py
"""
import csv
import http.client
import json
import os
import subprocess
import threading
import time

from platform_helpers import ROOT, WEFT, apply, guest, platform

STRESS = guest("stress")
REPORTS = os.path.join(ROOT, "bench/reports")
STEPS = [(0, 4), (2, 12), (6, 12), (12, 14), (4, 14), (0, 16)]  # (clients, seconds)

MANIFEST = f"""apiVersion: serving.weft.dev/v1alpha1
kind: Function
metadata:
  name: slow
spec:
  template:
    metadata:
      annotations:
        autoscaling.weft.dev/window: "6s"
        autoscaling.weft.dev/target: "1"
        autoscaling.weft.dev/max-scale: "10"
    spec:
      wasm:
        path: {STRESS}
"""


class Load:
    def __init__(self, gateway):
        self.host, self.port = gateway.split(":")
        self.clients = 0
        self.done = 0
        self.failed = 0
        self.stop = False
        self.lock = threading.Lock()
        self.threads = []

    def client(self, index):
        while not self.stop:
            if index >= self.clients:
                time.sleep(0.02)
                continue
            try:
                c = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
                c.request("GET", "/default/slow/?mode=sleep&ms=50")
                r = c.getresponse()
                r.read()
                c.close()
                ok = r.status == 200
            except OSError:
                ok = False
            with self.lock:
                self.done += 1
                self.failed += 0 if ok else 1

    def start(self, most):
        for i in range(most):
            t = threading.Thread(target=self.client, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)


def revision_counts(state):
    out = subprocess.run([WEFT, "--state", state, "get", "rev", "slow-00001", "-o", "json"],
                         capture_output=True, text=True)
    st = json.loads(out.stdout).get("status", {}) if out.returncode == 0 else {}
    return st.get("desiredReplicas", 0), st.get("actualReplicas", 0)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r["t"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step(t, [r["clients"] for r in rows], where="post", label="offered load (clients)", color="tab:gray")
    ax.plot(t, [r["desired"] for r in rows], label="desired instances", color="tab:orange")
    ax.plot(t, [r["actual"] for r in rows], label="actual instances", color="tab:blue", linewidth=2)
    ax.set_xlabel("seconds")
    ax.set_ylabel("clients / instances")
    ax2 = ax.twinx()
    ax2.plot(t, [r["rps"] for r in rows], label="throughput (req/s)", color="tab:green", alpha=0.5)
    ax2.set_ylabel("req/s")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    ax.set_title("weft: instances vs offered load (50 ms requests, target 1 in flight, window 6 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    with platform("--scale-to-zero-grace", "1s", "--tick", "500ms") as (state, gateway):
        apply(state, "slow.yaml", MANIFEST)
        load = Load(gateway)
        load.start(max(c for c, _ in STEPS))
        rows, start, last_done = [], time.perf_counter(), 0
        for clients, secs in STEPS:
            load.clients = clients
            end = time.perf_counter() + secs
            while time.perf_counter() < end:
                time.sleep(0.5)
                desired, actual = revision_counts(state)
                with load.lock:
                    done = load.done
                rows.append({"t": round(time.perf_counter() - start, 2), "clients": clients,
                             "desired": desired, "actual": actual, "rps": (done - last_done) * 2})
                last_done = done
        load.stop = True
        os.makedirs(REPORTS, exist_ok=True)
        with open(os.path.join(REPORTS, "scaling.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        plot(rows, os.path.join(REPORTS, "scaling.png"))
        peak = max(r["actual"] for r in rows)
        print(f"requests: {load.done}, failed: {load.failed}; peak instances {peak}; "
              f"final instances {rows[-1]['actual']}")
        print("wrote bench/reports/scaling.csv and bench/reports/scaling.png")


if __name__ == "__main__":
    main()
