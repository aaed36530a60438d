#!/usr/bin/env python3
"""The activator in the request path (`target-burst-capacity: "-1"`) against the
direct path (`"0"`: the activator only at zero), measured in one run.

One `weft up`; four hello functions, each pinned to one instance
(min-scale = max-scale = 1): with `containerConcurrency: 8` and unlimited, each
once in the path and once direct. wrk drives each in turn (two rounds,
alternating, to even out drift on a shared machine) with more connections than
the instance's limit, so in the path excess requests wait in the activator and
direct they wait in the instance's queue. Prints req/s, p50, p99 and the
in-path/direct ratios.

Usage: python3 bench/activator.py [seconds] [connections]   (default 8 s, 32)
"""
import os
import subprocess
import sys
import time

from platform_helpers import apply, guest, platform

HELLO = guest("hello")


def function(name, tbc, cc):
    return f"""apiVersion: serving.weft.dev/v1alpha1
kind: Function
metadata:
  name: {name}
spec:
  template:
    metadata:
      annotations:
        autoscaling.weft.dev/min-scale: "1"
        autoscaling.weft.dev/max-scale: "1"
        autoscaling.weft.dev/target-burst-capacity: "{tbc}"
    spec:
      containerConcurrency: {cc}
      wasm:
        path: {HELLO}
"""


CASES = [  # (name, target-burst-capacity, containerConcurrency)
    ("direct-cc8", 0, 8),
    ("inpath-cc8", -1, 8),
    ("direct-unl", 0, 0),
    ("inpath-unl", -1, 0),
]


def wrk(url, seconds, conns):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")))
    lat = {l.split()[0]: l.split()[1] for l in out.splitlines() if l.strip().startswith(("50%", "99%"))}
    bad = [l.strip() for l in out.splitlines() if "Non-2xx" in l or "Socket errors" in l]
    return rps, lat.get("50%", "?"), lat.get("99%", "?"), bad


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    with platform("--tick", "500ms") as (state, gateway):
        apply(state, "fns.yaml", "---\n".join(function(*c) for c in CASES))
        time.sleep(2)  # a few autoscaler ticks: each revision's path is decided
        results = {name: [] for name, _, _ in CASES}
        for _ in range(2):
            for name, _, _ in CASES:
                results[name].append(wrk(f"http://{gateway}/default/{name}/", seconds, conns))
        print(f"activator in the path vs direct: {seconds} s x 2 rounds, {conns} connections, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        print(f"{'function':12} {'req/s (2 rounds)':>22} {'p50':>9} {'p99':>9}")
        for name, runs in results.items():
            rps = [r[0] for r in runs]
            bad = "; ".join(b for r in runs for b in r[3])
            print(f"{name:12} {rps[0]:>10.0f} {rps[1]:>10.0f} {runs[-1][1]:>9} {runs[-1][2]:>9}  {bad}")
        mean = lambda n: sum(r[0] for r in results[n]) / len(results[n])
        for kind in ("cc8", "unl"):
            print(f"in-path/direct req/s ({kind}): {mean(f'inpath-{kind}') / mean(f'direct-{kind}'):.2f}")


if __name__ == "__main__":
    main()
