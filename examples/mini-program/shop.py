"""Runs the mini-program demo end to end and writes its report.

Starts `weft up` with every function at zero, deploys the shop (shop.yaml),
makes revision 2 of `order` a 10 % canary (canary.yaml), visits each function
once (cold starts), drives a scripted shopping session (N users, concurrent),
waits for the asynchronous side effects, and reports. --check asserts on the
report (the short mode CI runs).
"""
import argparse
import concurrent.futures
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import weftdemo  # noqa: E402

FUNCTIONS = ["shop-service", "web", "menu", "order", "notify", "loyalty", "audit", "store"]
SKUS = ["tea", "bun", "noodles", "mango"]
CANARY_PERCENT = 10
VISITS = 5  # per function (per revision of order) before the session: one cold, then warm


class Shopper:
    """HTTP to the gateway, timing every call by function."""

    def __init__(self, gateway):
        self.base = f"http://{gateway}"
        self.lock = threading.Lock()
        self.calls = []  # (function, status, seconds, body)
        self.session_from = 0

    def call(self, function, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"} if data else {})
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except OSError as e:
            status, raw = None, str(e).encode()
        took = time.perf_counter() - start
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        with self.lock:
            self.calls.append((function, status, took, parsed))
        return status, parsed, took


def render(name, run):
    text = open(os.path.join(HERE, name)).read().replace("@DEMO@", HERE)
    path = os.path.join(run, name)  # its folder is the processes' working directory
    with open(path, "w") as f:
        f.write(text)
    return path


def cold_starts(shop):
    """The first visit to each function, in the order a user's first visit
    reaches them: the legacy service first (through the bridge), then the page
    and the API. Each was at zero instances. The median of the next few
    identical visits is the warm latency. {function: (cold seconds, warm seconds)}."""
    visits = {
        "shop-service": ("POST", "/_rpc/dubbo/com.example.shop.PriceService/catalog?version=1.0.0", []),
        "web": ("GET", "/default/web/", None),
        "menu": ("GET", "/default/menu/", None),
        "order": ("POST", "/default/order/", {"user": "first-visitor", "items": [{"sku": "tea", "qty": 1}]}),
    }
    out = {}
    for fn, (method, path, body) in visits.items():
        # `order` has two revisions, each starting at zero: visit until each
        # has answered twice (the split is random, so this takes a few tries).
        by_revision = {}
        for _ in range(300 if fn == "order" else VISITS):
            status, answer, took = shop.call(fn, method, path, body)
            if status not in (200, 201):
                raise RuntimeError(f"the first visit to {fn} failed ({status}): {answer}")
            key = f"{fn} ({answer['revision']})" if fn == "order" else fn
            by_revision.setdefault(key, []).append(took)
            if len(by_revision) == (2 if fn == "order" else 1) and all(len(t) >= VISITS for t in by_revision.values()):
                break
        out.update({k: (t[0], weftdemo.percentile(t[1:], 50)) for k, t in sorted(by_revision.items()) if len(t) >= 2})
    return out


def session(shop, users, orders_per_user, concurrency, seed):
    """Each user opens the page, reads the menu and places orders; a few
    orders are invalid on purpose (qty 0) and must be refused with 400."""
    def user(i):
        rnd = random.Random(seed * 1000 + i)
        shop.call("web", "GET", "/default/web/")
        shop.call("menu", "GET", "/default/menu/")
        for _ in range(orders_per_user):
            items = [{"sku": s, "qty": rnd.randint(1, 2)} for s in rnd.sample(SKUS, rnd.randint(1, 3))]
            if rnd.random() < 0.05:
                items[0]["qty"] = 0
            shop.call("order", "POST", "/default/order/", {"user": f"user{i}", "items": items})
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(user, range(users)))


def wait_for_side_effects(store_url, orders, timeout):
    """What the store kept, and whether every order's records are there."""
    deadline = time.time() + timeout
    while True:
        got = {c: fetch_json(f"{store_url}/{c}") for c in ("notifications", "points", "dead-letters")}
        ids = {c: {r.get("eventId") or r.get("attributes", {}).get("id") for r in v} for c, v in got.items()}
        if all(orders <= ids[c] for c in ids) or time.time() > deadline:
            return got, all(orders <= ids[c] for c in ids)
        time.sleep(0.5)


def fetch_json(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)
    except (OSError, ValueError):
        return []


def screenshot(gateway, run):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        return None, "chromium is not installed (apt-get install chromium)"
    path = os.path.join(run, "page.png")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=480,820",
           "--virtual-time-budget=10000", f"--screenshot={path}", f"http://{gateway}/default/web/?demo=grace"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not os.path.exists(path):
        return None, f"chromium failed: {out.stderr.strip()[-300:]}"
    return path, None


def summarize(shop, firsts, metrics, side, complete, trace, shot):
    m = lambda name, **l: int(weftdemo.metric(metrics, name, **l))  # noqa: E731
    by_fn = {}
    for fn, status, took, _ in shop.calls[shop.session_from:]:
        by_fn.setdefault(fn, []).append((status, took))
    latency = {fn: {"requests": len(v), "p50_ms": round(weftdemo.percentile([t for _, t in v], 50) * 1000, 1),
                    "p99_ms": round(weftdemo.percentile([t for _, t in v], 99) * 1000, 1)}
               for fn, v in by_fn.items()}
    orders = [(s, b) for fn, s, _, b in shop.calls if fn == "order"]
    placed = [b for s, b in orders if s == 201]
    by_rev = {}
    for b in placed:
        by_rev[b["revision"]] = by_rev.get(b["revision"], 0) + 1
    statuses = {}
    for s, _ in orders:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    gateway_series = {}
    for (name, labels), v in metrics.items():
        if name == "weft_gateway_requests_total" and v:
            d = dict(labels)
            key = f"{d['function']} {d['revision']} {d['code']}"
            gateway_series[key] = int(v)
    triggers = {t: {"delivered": m("weft_eventbus_delivered_total", trigger=f"default/{t}"),
                    "retries": m("weft_eventbus_retried_total", trigger=f"default/{t}"),
                    "dead_lettered": m("weft_eventbus_dead_lettered_total", trigger=f"default/{t}")}
                for t in ("notify", "loyalty", "audit")}
    dead = side["dead-letters"]
    reasons = {}
    for r in dead:
        key = r["attributes"].get("deadletterreason", "?") + " " + r["attributes"].get("deadletterstatus", "")
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "cold_start_ms": {fn: round(cold * 1000, 1) for fn, (cold, _) in firsts.items()},
        "warm_ms": {fn: round(warm * 1000, 1) for fn, (_, warm) in firsts.items()},
        "latency": latency,
        "orders": {"sent": len(orders), "answered": sum(1 for s, _ in orders if s is not None),
                   "by_status": statuses, "placed": len(placed), "by_revision": by_rev},
        "gateway_requests": gateway_series,
        "rpc_dubbo_requests": m("weft_rpc_requests_total", protocol="dubbo"),
        "triggers": triggers,
        "side_effects": {"complete": complete,
                         "notifications": len({r["eventId"] for r in side["notifications"]}),
                         "points_records": len({r["eventId"] for r in side["points"]}),
                         "points_total": sum(r["points"] for r in side["points"]),
                         "dead_letters": len(dead), "dead_letter_reasons": reasons},
        "trace": trace, "screenshot": shot,
    }


def text_report(r):
    o, s = r["orders"], r["side_effects"]
    lines = ["# weft mini-program report", "",
             "## cold starts (first visit, every function at zero instances)", "",
             "| function | first visit (cold start) | warm (median of the next visits) |", "|---|---|---|"]
    for fn, ms in r["cold_start_ms"].items():
        lines.append(f"| {fn} | {ms} ms | {r['warm_ms'][fn]} ms |")
    lines += ["", "shop-service is the legacy Node process (called through the Dubbo bridge); the",
              "others are wasm functions. `order`'s first visit also makes two Dubbo calls and",
              "publishes an event; each of its revisions has its own cold start."]
    lines += ["", f"## the session ({r['users']} users, {r['concurrency']} at a time)", "",
              "| function | requests | p50 | p99 |", "|---|---|---|---|"]
    for fn, l in sorted(r["latency"].items()):
        lines.append(f"| {fn} | {l['requests']} | {l['p50_ms']} ms | {l['p99_ms']} ms |")
    placed = max(o["placed"], 1)
    split = ", ".join(f"{rev}: {n} ({100 * n / placed:.1f} %)" for rev, n in sorted(o["by_revision"].items()))
    lines += ["", f"orders: {o['sent']} sent, {o['answered']} answered, by status {o['by_status']}; "
              f"{o['placed']} placed", f"canary split (spec.traffic 90/10): {split}",
              f"Dubbo calls through the sidecar (menu + order -> shop-service): {r['rpc_dubbo_requests']}", "",
              "requests by function, revision and status (gateway metrics):", "```"]
    lines += [f"{k}: {v}" for k, v in sorted(r["gateway_requests"].items())]
    lines += ["```", "", "## events (order.created)", "",
              "| trigger | delivered | retries | dead-lettered |", "|---|---|---|---|"]
    for t, v in r["triggers"].items():
        lines.append(f"| {t} | {v['delivered']} | {v['retries']} | {v['dead_lettered']} |")
    lines += ["", f"store: {s['notifications']} notifications, {s['points_records']} loyalty records "
              f"({s['points_total']} points), {s['dead_letters']} dead letters {s['dead_letter_reasons']}"
              + ("" if s["complete"] else " -- INCOMPLETE at the timeout"), "",
              "`weft events trace` of one order:", "```", r["trace"].strip(), "```", ""]
    lines.append(f"screenshot: {r['screenshot']['path'] or r['screenshot']['why']}")
    return "\n".join(lines)


def check(r):
    bad = []
    o, s = r["orders"], r["side_effects"]
    if o["answered"] != o["sent"]:
        bad.append(f"{o['sent'] - o['answered']} orders got no answer")
    if any(code.startswith("5") or code == "None" for code in o["by_status"]):
        bad.append(f"orders failed: {o['by_status']}")
    n, canary, share = o["placed"], o["by_revision"].get("order-00002", 0), CANARY_PERCENT / 100
    sd = math.sqrt(n * share * (1 - share))
    if abs(canary - share * n) > 4 * sd + 1:  # four standard deviations: a real skew, not chance
        bad.append(f"canary got {canary} of {n} orders, expected {share * n:.0f} ± {4 * sd + 1:.0f}")
    if not s["complete"] or s["notifications"] != n or s["points_records"] != n or s["dead_letters"] != n:
        bad.append(f"side effects: {s['notifications']} notifications, {s['points_records']} points, "
                   f"{s['dead_letters']} dead letters for {n} orders")
    if r["triggers"]["audit"]["retries"] != 3 * n:
        bad.append(f"audit retries {r['triggers']['audit']['retries']}, expected 3 per order ({3 * n})")
    return bad


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--orders-per-user", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the side effects")
    weftdemo.add_run_args(p, "CI mode: 20 users, then --check")
    args = p.parse_args()
    if args.short:
        args.users, args.check = 20, True
    run = weftdemo.run_folder(args.out, HERE)
    platform = weftdemo.Platform(os.path.join(run, "state"), "--initial-scale", "0", "--allow-zero-initial-scale",
                                 "--tick", "500ms")
    try:
        report = drive(args, run, platform)
    finally:
        platform.stop()
    failures = check(report) if args.check else []
    weftdemo.finish(run, text_report(report), report, failures, args.check)

def drive(args, run, platform):
    gateway = platform.addr("gateway")
    print(f"weft up: gateway http://{gateway}  (the page: http://{gateway}/default/web/)", flush=True)
    platform.apply(render("shop.yaml", run))
    platform.apply(render("canary.yaml", run))
    shop = Shopper(gateway)
    firsts = cold_starts(shop)
    print("cold / warm (ms):", {k: (round(c * 1000), round(w * 1000)) for k, (c, w) in firsts.items()}, flush=True)
    shop.session_from = len(shop.calls)  # the session's latencies are the warm ones
    session(shop, args.users, args.orders_per_user, args.concurrency, args.seed)
    placed = {b["orderId"] for fn, s, _, b in shop.calls if fn == "order" and s == 201}
    print(f"session done: {len(shop.calls)} requests, {len(placed)} orders placed; waiting for events", flush=True)
    side, complete = wait_for_side_effects(f"http://{gateway}/default/store", placed, args.timeout)
    metrics = platform.metrics()
    trace = platform.cli("events", "trace", sorted(placed)[0], check=False) if placed else ""
    path, why = screenshot(gateway, run)
    report = summarize(shop, firsts, metrics, side, complete, trace, {"path": path, "why": why})
    report.update(users=args.users, concurrency=args.concurrency)
    return report


if __name__ == "__main__":
    main()
