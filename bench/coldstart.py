#!/usr/bin/env python3
"""Cold starts through weft's activator, measured in one run.

Starts `weft up` (release build) with functions allowed to start at zero,
applies N copies of the hello function with `initial-scale: "0"`, then:
  1. cold:  one request to each function, one after another: the time from the
            request to the response while the revision is at zero (activator
            holds it, an instance process starts, the request is released);
  2. warm:  the same requests again, each function now has an instance;
  cold-ka, warm-ka: the same on another N functions over one keep-alive client
            connection, so the client's connection setup is not in the time;
  3. burst: another N functions at zero, all requested at once: cold starts/s.
Prints p50/p99 of each and the cold/warm ratios.

Usage: python3 bench/coldstart.py [N]    (N defaults to 100)
"""
import concurrent.futures as cf
import http.client
import os
import statistics
import sys
import time

from platform_helpers import apply, guest, platform

HELLO = guest("hello")


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


class KeepAlive:
    """One client connection reused for every request, as a load tool or an
    HTTP client library does: no connection setup inside the measured time."""

    def __init__(self, gateway):
        host, port = gateway.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def get(self, path):
        start = time.perf_counter()
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - start


def sequential(fetch, names):
    times = []
    for name in names:
        status, t = fetch(f"/default/{name}/")
        assert status == 200, (name, status)
        times.append(t)
    return times


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1000:.2f} ms"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with platform("--allow-zero-initial-scale") as (state, gateway):
        cold_names = [f"cold-{i:03}" for i in range(n)]
        burst_names = [f"burst-{i:03}" for i in range(n)]
        apply(state, "fns.yaml", manifest(cold_names + burst_names))

        ka_names = [f"ka-{i:03}" for i in range(n)]
        apply(state, "ka.yaml", manifest(ka_names))

        fresh = lambda path: get(gateway, path)
        cold = sequential(fresh, cold_names)
        warm = sequential(fresh, cold_names)
        ka = KeepAlive(gateway)
        cold_ka = sequential(ka.get, ka_names)
        warm_ka = sequential(ka.get, ka_names)
        start = time.perf_counter()
        with cf.ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(lambda name: get(gateway, f"/default/{name}/"), burst_names))
        wall = time.perf_counter() - start
        ok = sum(1 for s, _ in results if s == 200)

        print(f"weft cold-start benchmark: {n} functions, {os.cpu_count()} cores, "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        print(f"{'':8} {'p50':>10} {'p99':>10} {'mean':>10}")
        series = (("cold", cold), ("warm", warm), ("cold-ka", cold_ka), ("warm-ka", warm_ka),
                  ("burst", [t for _, t in results]))
        for label, xs in series:
            print(f"{label:8} {ms(pct(xs, 50)):>10} {ms(pct(xs, 99)):>10} {ms(statistics.mean(xs)):>10}")
        print(f"burst: {ok}/{n} answered 200 in {wall:.3f} s = {n / wall:.0f} cold starts/s")
        print(f"cold/warm p50 = {pct(cold, 50) / pct(warm, 50):.1f}, keep-alive {pct(cold_ka, 50) / pct(warm_ka, 50):.1f}   (targets: cold p50 <= 2 ms, p99 <= 10 ms, >= 1000 cold starts/s)")


if __name__ == "__main__":
    main()
