"""A `weft up` for a benchmark: release build, temporary state dir, free ports."""
import contextlib
import json
import os
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weft-target"))
WEFT = os.path.join(TARGET, "release", "weft")


def guest(name):
    return os.path.join(ROOT, f"functions/guests/build/{name}.wasm")


@contextlib.contextmanager
def platform(*flags):
    """Yields (state dir, gateway address); stops the platform on exit."""
    state = tempfile.mkdtemp(prefix="weft-bench-")
    up = subprocess.Popen(
        [WEFT, "up", "--state", state, "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0", *flags],
        stderr=open(os.path.join(state, "up.log"), "w"), env=dict(os.environ, WEFT_LOG="warn"))
    try:
        runtime = os.path.join(state, "runtime.json")
        for _ in range(200):
            if os.path.exists(runtime):
                break
            time.sleep(0.05)
        yield state, json.load(open(runtime))["gateway"]
    finally:
        up.terminate()
        up.wait(timeout=60)


def apply(state, name, yaml):
    """Writes a manifest into the state dir and applies it, waiting for ready."""
    path = os.path.join(state, name)
    with open(path, "w") as f:
        f.write(yaml)
    subprocess.run([WEFT, "--state", state, "apply", "-f", path], check=True, capture_output=True)
