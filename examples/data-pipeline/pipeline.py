"""Runs the data-pipeline demo end to end and writes its report.

For each backend (the embedded log; with --backend kafka also a real
Kafka-protocol broker, tansu): start `weft up`, apply pipeline.yaml, POST
clickstream CloudEvents (some malformed) to the broker, wait until the sink has
every result, then report what each stage did. --check asserts on the report
(the short mode CI runs).
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import weftdemo  # noqa: E402

STAGES = ["validate", "enrich", "sessionize", "count", "sink"]
MALFORMED = ["not-json", "missing-user", "bad-page", "missing-page", "not-an-object"]
PAGES = ["/", "/product/7", "/product/42", "/cart", "/search", "/checkout", "/help/returns"]
AGENTS = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120",
          "Googlebot/2.1", "Mozilla/5.0 (Linux; Android 14) Mobile"]


def clicks(n, malformed_share, seed, prefix):
    """n events: (id, kind, content type, body); kind is 'ok' or a malformed kind."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        cid = f"{prefix}-{i:06d}"
        good = {"user": f"u{rnd.randrange(50)}", "page": rnd.choice(PAGES), "ua": rnd.choice(AGENTS)}
        kind = MALFORMED[i % len(MALFORMED)] if rnd.random() < malformed_share else "ok"
        body, ctype = {
            "ok": (json.dumps(good), "application/json"),
            "not-json": ("{user: oops", "text/plain"),
            "missing-user": (json.dumps({k: v for k, v in good.items() if k != "user"}), "application/json"),
            "bad-page": (json.dumps(dict(good, page="product/7")), "application/json"),
            "missing-page": (json.dumps({k: v for k, v in good.items() if k != "page"}), "application/json"),
            "not-an-object": (json.dumps([1, 2, 3]), "application/json"),
        }[kind]
        out.append((cid, kind, ctype, body.encode()))
    return out


def post(url, click):
    cid, _, ctype, body = click
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "ce-specversion": "1.0", "ce-id": cid, "ce-source": "/demo/generator", "ce-type": "click.raw",
        "ce-time": now, "content-type": ctype})
    for attempt in range(5):  # the ingress answers 202 once durable; retry only what it did not take
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            time.sleep(0.2 * (attempt + 1))
    return None


def read_sink(run):
    """{file stem: [records]} from the sink's folder."""
    out = {}
    folder = os.path.join(run, "sink")
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name)) as f:
            out[name.removesuffix(".jsonl")] = [json.loads(line) for line in f if line.strip()]
    return out


def origin(event_id):
    """`click-000012.valid.enriched.counted` -> `click-000012`."""
    return event_id.split(".")[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tansu(run):
    """A real Kafka-protocol broker on a free loopback port (see TOOLCHAIN.md)."""
    exe = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(os.path.join(run, "tansu.log"), "w")
    proc = subprocess.Popen([exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"tansu did not listen; see {log.name}")


def run_backend(args, backend, root):
    run = os.path.join(root, backend)
    os.makedirs(run, exist_ok=True)
    tansu, flags = None, []
    if backend == "kafka":
        tansu, bootstrap = start_tansu(run)
        flags = ["--kafka-bootstrap", bootstrap]
    platform = weftdemo.Platform(os.path.join(run, "state"), "--tick", "500ms", "--scale-to-zero-grace", "5s", *flags)
    try:
        return drive(args, backend, run, platform)
    finally:
        platform.stop()
        if tansu:
            tansu.terminate()
            tansu.wait(timeout=30)


def render(run, backend, fail_percent):
    text = open(os.path.join(HERE, "pipeline.yaml")).read()
    text = text.replace("@DEMO@", HERE).replace("backend: embedded", f"backend: {backend}")
    text = re.sub(r'(name: FAIL_PERCENT\n\s+value: )"\d+"', rf'\g<1>"{fail_percent}"', text)
    path = os.path.join(run, "pipeline.yaml")  # its folder is the sink's working directory
    with open(path, "w") as f:
        f.write(text)
    return path


def instances_probe(platform, run):
    """Ready instances per function, and results at the sink so far."""
    counted = os.path.join(run, "sink", "click.counted.jsonl")

    def probe():
        by_fn = {}
        for rev, n in platform.ready_instances().items():
            fn = rev.rsplit("-", 1)[0]
            by_fn[fn] = by_fn.get(fn, 0) + n
        results = 0
        if os.path.exists(counted):
            with open(counted) as f:
                results = sum(1 for _ in f)
        return {"instances": by_fn, "results": results}
    return probe


def drive(args, backend, run, platform):
    print(f"[{backend}] weft up: gateway {platform.addr('gateway')}, events {platform.addr('events')}", flush=True)
    platform.apply(render(run, backend, args.fail_percent))
    events = clicks(args.events, args.malformed, args.seed, f"click-{backend}")
    url = f"http://{platform.addr('events')}/default/clicks"
    sampler = weftdemo.Sampler(instances_probe(platform, run))
    sampler.start()
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        statuses = list(pool.map(lambda c: post(url, c), events))
    sent_secs = time.time() - started
    accepted = [c for c, s in zip(events, statuses) if s == 202]
    print(f"[{backend}] sent {len(events)} clicks in {sent_secs:.1f}s; {len(accepted)} accepted", flush=True)
    valid = {c[0] for c in accepted if c[1] == "ok"}
    malformed = {c[0]: c[1] for c in accepted if c[1] != "ok"}
    done_at = wait_for_sink(run, valid, malformed, args.timeout)
    time.sleep(args.settle)  # late duplicates, if any, arrive now and are counted
    sink = read_sink(run)
    samples = sampler.stop()
    metrics = platform.metrics()
    trace = chain_trace(platform, sorted(valid)[0]) if valid else ""
    return summarize(backend, events, statuses, valid, malformed, sink, samples, metrics,
                     started, done_at, trace)


def chain_trace(platform, click_id):
    """`weft events trace` of one click and of each event derived from it."""
    ids = [click_id, f"{click_id}.valid", f"{click_id}.valid.enriched",
           f"{click_id}.valid.enriched.sessionized", f"{click_id}.valid.enriched.counted"]
    return "\n".join(platform.cli("events", "trace", i, check=False).strip() for i in ids)


def wait_for_sink(run, valid, malformed, timeout):
    """When the sink had every result and dead letter; None at the timeout."""
    deadline = time.time() + timeout
    while True:
        sink = read_sink(run)
        got = {stem: {origin(r["attributes"]["id"]) for r in sink.get(stem, [])}
               for stem in ("click.sessionized", "click.counted", "dead")}
        if valid <= got["click.sessionized"] and valid <= got["click.counted"] and set(malformed) <= got["dead"]:
            return time.time()
        if time.time() > deadline:
            print(f"timed out after {timeout}s waiting for the sink", flush=True)
            return None
        time.sleep(0.25)


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def summarize(backend, events, statuses, valid, malformed, sink, samples, metrics, started, done_at, trace):
    m = lambda name, **l: int(weftdemo.metric(metrics, name, **l))  # noqa: E731
    stages = {}
    for t in ["validate", "enrich", "sessionize", "count", "results"]:
        trig = f"default/{t}"
        stages[t] = {
            "delivered": m("weft_eventbus_delivered_total", trigger=trig),
            "replies": m("weft_eventbus_replies_total", trigger=trig),
            "retries": m("weft_eventbus_retried_total", trigger=trig),
            "dead_lettered": m("weft_eventbus_dead_lettered_total", trigger=trig),
        }
    results = {}
    for stem in ("click.sessionized", "click.counted"):
        records = sink.get(stem, [])
        ids = [r["attributes"]["id"] for r in records]
        origins = {origin(i) for i in ids}
        results[stem] = {"records": len(records), "distinct": len(set(ids)), "duplicates": len(ids) - len(set(ids)),
                         "missing": len(valid - origins), "unexpected": len(origins - valid)}
    dead = sink.get("dead", [])
    dead_by_reason, dead_ok = {}, 0
    for r in dead:
        detail = r["attributes"].get("deadletterdetail", "")
        reason = detail.split(":", 2)[1].strip() if detail.count(":") >= 2 else r["attributes"]["deadletterreason"]
        dead_by_reason[reason] = dead_by_reason.get(reason, 0) + 1
        dead_ok += malformed.get(r["attributes"]["id"]) == reason
    latencies = [r["received"] - parse_time(r["attributes"]["time"]) for r in sink.get("click.sessionized", [])
                 if "time" in r["attributes"]]
    peak = {}
    for _, s in samples:
        for fn, n in s.get("instances", {}).items():
            peak[fn] = max(peak.get(fn, 0), n)
    elapsed = (done_at or time.time()) - started
    return {
        "backend": backend,
        "sent": len(events), "accepted": statuses.count(202), "valid": len(valid), "malformed": len(malformed),
        "completed": done_at is not None, "seconds": round(elapsed, 2),
        "throughput_per_s": round(len(events) / elapsed, 1),
        "latency_ms": {"p50": round(weftdemo.percentile(latencies, 50) * 1000, 1),
                       "p99": round(weftdemo.percentile(latencies, 99) * 1000, 1)},
        "stages": stages, "results": results,
        "dead_letters": {"total": len(dead), "distinct": len({r["attributes"]["id"] for r in dead}),
                         "by_reason": dead_by_reason, "reason_matches_input": dead_ok},
        "heartbeats": len(sink.get("dev.knative.sources.ping", [])),
        "peak_instances": peak, "samples": samples, "trace": trace,
    }


def plot(reports, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no plot (pip install matplotlib)")
        return None
    fig, axes = plt.subplots(2, len(reports), figsize=(6 * len(reports), 7), squeeze=False)
    for col, rep in enumerate(reports):
        samples = [(t, s) for t, s in rep["samples"] if "instances" in s]
        ts = [t for t, _ in samples]
        for fn in STAGES:
            axes[0][col].step(ts, [s["instances"].get(fn, 0) for _, s in samples], where="post", label=fn)
        axes[0][col].set(title=f"{rep['backend']}: ready instances per stage", ylabel="instances")
        axes[0][col].legend(loc="upper right", fontsize="small")
        rates = [0] + [(b[1]["results"] - a[1]["results"]) / max(b[0] - a[0], 1e-3) for a, b in zip(samples, samples[1:])]
        axes[1][col].plot(ts, rates, color="tab:green")
        axes[1][col].set(title="results reaching the sink (click.counted / s)", xlabel="seconds", ylabel="events/s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def text_report(reports, png):
    lines = ["# weft data-pipeline report", ""]
    for r in reports:
        lines += [f"## backend: {r['backend']}", "",
                  f"clicks sent {r['sent']}, accepted {r['accepted']} ({r['valid']} valid, {r['malformed']} malformed); "
                  f"{'all results in' if r['completed'] else 'INCOMPLETE'} after {r['seconds']} s "
                  f"({r['throughput_per_s']} clicks/s)",
                  f"end-to-end latency (click -> sessionized at the sink): p50 {r['latency_ms']['p50']} ms, "
                  f"p99 {r['latency_ms']['p99']} ms", "",
                  "| stage (trigger) | delivered | reply events out | retries | dead-lettered | peak instances |",
                  "|---|---|---|---|---|---|"]
        for t, s in r["stages"].items():
            fn = "sink" if t == "results" else t
            lines.append(f"| {t} | {s['delivered']} | {s['replies']} | {s['retries']} | {s['dead_lettered']} | "
                         f"{r['peak_instances'].get(fn, 0)} |")
        lines.append("")
        for stem, res in r["results"].items():
            lines.append(f"sink {stem}: {res['records']} records, {res['distinct']} distinct ids, "
                         f"{res['duplicates']} duplicates, {res['missing']} valid clicks missing")
        d = r["dead_letters"]
        lines += [f"dead letters: {d['total']} ({d['distinct']} distinct), by reason: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(d["by_reason"].items()))
                  + f"; {d['reason_matches_input']} carry the reason the generator built in",
                  f"heartbeats (PingSource) at the sink: {r['heartbeats']}", "",
                  "`weft events trace` of one click:", "```", r["trace"].strip(), "```", ""]
    if png:
        lines.append(f"plot: {png}")
    return "\n".join(lines)


def check(r):
    """The short mode's assertions: a list of failures (empty = pass)."""
    bad = []
    if not r["completed"]:
        bad.append("the sink did not get every result before the timeout")
    if r["accepted"] != r["sent"]:
        bad.append(f"the ingress accepted {r['accepted']} of {r['sent']}")
    for stem, res in r["results"].items():
        if res["missing"] or res["unexpected"]:
            bad.append(f"{stem}: {res['missing']} valid clicks missing, {res['unexpected']} unexpected")
    d = r["dead_letters"]
    if d["distinct"] != r["malformed"] or d["reason_matches_input"] != d["total"]:
        bad.append(f"dead letters: {d['distinct']} distinct of {r['malformed']} malformed, "
                   f"{d['reason_matches_input']} of {d['total']} with the right reason")
    if r["stages"]["count"]["retries"] == 0:
        bad.append("the flaky count stage was never retried")
    if r["stages"]["validate"]["dead_lettered"] != r["malformed"]:
        bad.append("validate's dead-letter metric disagrees with the sink")
    return [f"[{r['backend']}] {b}" for b in bad]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["embedded", "kafka"], default="embedded",
                   help="kafka: run on the embedded log, then on a real Kafka-protocol broker, and report both")
    p.add_argument("--events", type=int, default=3000, help="clicks to send")
    p.add_argument("--malformed", type=float, default=0.1, help="share of malformed clicks")
    p.add_argument("--fail-percent", type=int, default=20, help="share of deliveries the count stage fails")
    p.add_argument("--concurrency", type=int, default=16, help="generator connections")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the sink")
    p.add_argument("--settle", type=float, default=2, help="seconds to wait for late duplicates")
    weftdemo.add_run_args(p, "CI mode: 300 clicks, then --check")
    args = p.parse_args()
    if args.short:
        args.events, args.check, args.timeout = 300, True, 120
    root = weftdemo.run_folder(args.out, HERE)
    backends = ["embedded", "kafka"] if args.backend == "kafka" else ["embedded"]
    reports = [run_backend(args, b, root) for b in backends]
    png = plot(reports, os.path.join(root, "pipeline.png"))
    failures = [b for r in reports for b in check(r)] if args.check else []
    weftdemo.finish(root, text_report(reports, png), reports, failures, args.check)

if __name__ == "__main__":
    main()
