#!/usr/bin/env python3
"""Cold starts through weft's activator, measured in one run.

Starts `weft up` (release build) with functions allowed to start at zero,
applies N copies of the hello function with `initial-scale: "0"`, then:
  1. cold:  one request to each function, one after another: the time from the
            request to the response while the revision is at zero (activator
            holds it, an instance process starts, the request is released);
  2. warm:  the same requests again, each function now has an instance;
  3. burst: another N functions at zero, all requested at once: cold starts/s.
Prints p50/p99 of each and the cold/warm ratio.

Usage: python3 bench/coldstart.py [N]    (N defaults to 100)
"""
import concurrent.futures as cf
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weft-target"))
WEFT = os.path.join(TARGET, "release", "weft")
HELLO = os.path.join(ROOT, "functions/guests/build/hello.wasm")


def manifest(names):
    docs = []
    for n in names:
        docs.append(f"""apiVersion: serving.weft.dev/v1alpha1
kind: Function
metadata:
  name: {n}
spec:
  template:
    metadata:
      annotations:
        autoscaling.weft.dev/initial-scale: "0"
    spec:
      wasm:
        path: {HELLO}
""")
    return "---\n".join(docs)


def get(gateway, path):
    host, port = gateway.split(":")
    start = time.perf_counter()
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, time.perf_counter() - start


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1000:.2f} ms"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    state = tempfile.mkdtemp(prefix="weft-cold-")
    env = dict(os.environ, WEFT_LOG="warn")
    up = subprocess.Popen(
        [WEFT, "up", "--state", state, "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0",
         "--allow-zero-initial-scale"],
        stderr=open(os.path.join(state, "up.log"), "w"), env=env)
    try:
        runtime = os.path.join(state, "runtime.json")
        for _ in range(200):
            if os.path.exists(runtime):
                break
            time.sleep(0.05)
        gateway = json.load(open(runtime))["gateway"]
        cold_names = [f"cold-{i:03}" for i in range(n)]
        burst_names = [f"burst-{i:03}" for i in range(n)]
        path = os.path.join(state, "fns.yaml")
        with open(path, "w") as f:
            f.write(manifest(cold_names + burst_names))
        subprocess.run([WEFT, "--state", state, "apply", "-f", path], check=True, capture_output=True)

        cold = []
        for name in cold_names:
            status, t = get(gateway, f"/default/{name}/")
            assert status == 200, (name, status)
            cold.append(t)
        warm = []
        for name in cold_names:
            status, t = get(gateway, f"/default/{name}/")
            assert status == 200, (name, status)
            warm.append(t)
        start = time.perf_counter()
        with cf.ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(lambda name: get(gateway, f"/default/{name}/"), burst_names))
        wall = time.perf_counter() - start
        ok = sum(1 for s, _ in results if s == 200)

        print(f"weft cold-start benchmark: {n} functions, {os.cpu_count()} cores, "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        print(f"{'':8} {'p50':>10} {'p99':>10} {'mean':>10}")
        for label, xs in (("cold", cold), ("warm", warm), ("burst", [t for _, t in results])):
            print(f"{label:8} {ms(pct(xs, 50)):>10} {ms(pct(xs, 99)):>10} {ms(statistics.mean(xs)):>10}")
        print(f"burst: {ok}/{n} answered 200 in {wall:.3f} s = {n / wall:.0f} cold starts/s")
        print(f"cold/warm p50 = {pct(cold, 50) / pct(warm, 50):.1f}   (targets: cold p50 <= 2 ms, p99 <= 10 ms, >= 1000 cold starts/s)")
    finally:
        up.terminate()
        up.wait(timeout=60)


if __name__ == "__main__":
    main()
