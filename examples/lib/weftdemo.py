"""What both demos share: a `weft up` of their own (fresh state, free ports),
`weft apply`, the control API, the gateway's Prometheus metrics, a sampler of
instances over time, and percentiles. Standard library only."""
import json
import os
import re
import subprocess
import threading
import time
import urllib.request

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weft-target"))


def weft_binary():
    """`$WEFT_BIN`, else the release build (the demos' `run` builds it)."""
    path = os.environ.get("WEFT_BIN") or os.path.join(TARGET, "release", "weft")
    if not os.path.exists(path):
        raise SystemExit(f"no weft binary at {path}: use the demo's ./run (it builds one), or set WEFT_BIN")
    return path


class Platform:
    """One `weft up` in `state`, on free loopback ports, stopped by `stop()`."""

    def __init__(self, state, *flags):
        self.weft = weft_binary()
        self.state = state
        os.makedirs(state, exist_ok=True)
        self.log = open(os.path.join(state, "up.log"), "w")
        self.proc = subprocess.Popen(
            [self.weft, "up", "--state", state, "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0",
             "--events", "127.0.0.1:0", "--dns", "127.0.0.1:0", *flags],
            stdout=self.log, stderr=self.log, env=dict(os.environ, WEFT_LOG=os.environ.get("WEFT_LOG", "info")))
        runtime = os.path.join(state, "runtime.json")
        deadline = time.time() + 60
        while not os.path.exists(runtime):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"weft up did not start; see {self.log.name}")
            time.sleep(0.05)
        time.sleep(0.1)  # the file is written whole, but give the writer a moment
        self.runtime = json.load(open(runtime))
        self.token = open(os.path.join(state, "token")).read().strip()

    def addr(self, name):
        return self.runtime[name]

    def cli(self, *args, check=True):
        """Runs `weft --state STATE ARGS`; returns its stdout."""
        out = subprocess.run([self.weft, "--state", self.state, *args], capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"weft {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout

    def apply(self, path):
        """`weft apply -f` waits until everything it applied is ready."""
        return self.cli("apply", "-f", path)

    def api(self, path):
        req = urllib.request.Request(f"http://{self.addr('api')}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def metrics(self):
        """The gateway's /metrics as {(name, frozenset(labels)): value}."""
        with urllib.request.urlopen(f"http://{self.addr('gateway')}/metrics", timeout=10) as r:
            return parse_metrics(r.read().decode())

    def ready_instances(self, namespace="default"):
        """{revision: ready instances} from the control API."""
        revs = self.api(f"/v1/revisions?namespace={namespace}")
        return {r["metadata"]["name"]: int(r.get("status", {}).get("readyReplicas") or 0) for r in revs}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+0-9.eEinfNa]+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples, name, **labels):
    """Sum of `name` over the series whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


class Sampler(threading.Thread):
    """Every `every` seconds, calls `probe()` and keeps (seconds since start, result)."""

    def __init__(self, probe, every=0.5):
        super().__init__(daemon=True)
        self.probe, self.every = probe, every
        self.samples, self.start_time = [], time.time()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.samples.append((time.time() - self.start_time, self.probe()))
            except Exception as e:  # a missed sample is a gap in the plot, not a failed run
                self.samples.append((time.time() - self.start_time, {"error": str(e)}))
            self.halt.wait(self.every)

    def stop(self):
        self.halt.set()
        self.join()
        return self.samples


def add_run_args(parser, short_help):
    """The arguments every demo driver takes: --short (CI mode), --check and --out."""
    parser.add_argument("--short", action="store_true", help=short_help)
    parser.add_argument("--check", action="store_true", help="exit 1 unless the report passes its assertions")
    parser.add_argument("--out", help="run folder (default: runs/<time>)")


def run_folder(out, demo_dir):
    """The run's folder: `out`, else `runs/<time>` in the demo; it must be
    empty, or records of an earlier run would mix with this one's."""
    run = out or os.path.join(demo_dir, "runs", time.strftime("%Y%m%d-%H%M%S"))
    if os.path.isdir(run) and os.listdir(run):
        raise SystemExit(f"{run} is not empty: records of an earlier run would mix with this one's; pick another --out")
    os.makedirs(run, exist_ok=True)
    return run


def finish(run, text, data, failures, checked):
    """Writes report.md and report.json, prints the report and the checks,
    and exits 1 if a check failed."""
    with open(os.path.join(run, "report.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(run, "report.json"), "w") as f:
        json.dump(data, f, indent=1)
    print("\n" + text + f"\nreport: {run}/report.md")
    for f in failures:
        print("CHECK FAILED:", f)
    if checked and not failures:
        print("checks passed")
    raise SystemExit(1 if failures else 0)
