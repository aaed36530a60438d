"""Memory of the sidecar under a long stream of malformed RPC input.

Sends ROUNDS rounds of CONNS connections to a gateway. Each connection sends
one bad Dubbo or Bolt frame, built from the captured real frames in
sidecar/src/proto/testdata: truncated then closed, wrong magic, an absurd
length, a bad Hessian string, a bad Bolt v2 CRC, or a valid request cut off
in its body. Between rounds it sends good requests, so the pool and the
caches are in use too. It reads the gateway's RSS (from /proc) after the first
round, when the allocator is warm, and after the last one. It prints both and
their ratio: a leak per bad connection would grow it with the rounds.
It also checks that each bad connection was closed by the gateway, and reads
weft_rpc_frame_errors_total from /metrics.

Usage: python3 bench/malformed.py HOST:PORT PID [ROUNDS] [CONNS]
"""

import pathlib
import socket
import struct
import sys
import time
import urllib.request

TESTDATA = pathlib.Path(__file__).resolve().parent.parent / "sidecar/src/proto/testdata"


def first_request(name, version=None):
    """The first client frame of a capture (of Bolt `version`, if given)."""
    for line in (TESTDATA / name).read_text().splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == "C->S":
            frame = bytes.fromhex(parts[3])
            if version is None or frame[0] == version:
                return frame
    raise SystemExit(f"no such request in {name}")


DUBBO = first_request("dubbo2-dubbo2js.hex")
BOLT = first_request("bolt-v1-hessian2-sofa-rpc-node.hex")
BOLT_V2 = first_request("bolt-v1-v2crc-lowlevel.hex", version=2)


def bad_frames():
    """(name, bytes, whether the gateway must close the connection)."""
    absurd = bytearray(DUBBO)
    absurd[12:16] = struct.pack(">I", 0x7FFFFFFF)
    bad_hessian = bytearray(DUBBO)
    bad_hessian[16] = 0xFF  # not a string code where the Dubbo version starts
    magic = bytearray(DUBBO)
    magic[0] = 0xDA
    magic[1] = 0xBC
    crc = bytearray(BOLT_V2)
    crc[-1] ^= 0xFF
    return [
        ("dubbo-absurd-length", bytes(absurd), True),
        ("dubbo-bad-hessian", bytes(bad_hessian), True),
        ("dubbo-bad-magic", bytes(magic), True),
        ("bolt-v2-bad-crc", bytes(crc), True),
        ("dubbo-cut-in-body", DUBBO[: len(DUBBO) // 2], False),
        ("bolt-cut-in-body", BOLT[: len(BOLT) // 2], False),
    ]


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit("no VmRSS")


def send_bad(addr, frame, must_close):
    """Sends `frame`; for a frame the gateway must refuse, waits for the close."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(frame)
        if not must_close:
            return True  # the client gives up mid-frame: the gateway sees EOF
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass  # an error reply may come first
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return True


def answer_len(buf):
    """Length of the Dubbo or Bolt v1 response at the start of `buf`, if whole."""
    if buf[:2] == b"\xda\xbb" and len(buf) >= 16:
        return 16 + struct.unpack(">I", buf[12:16])[0]
    if buf[:1] == b"\x01" and len(buf) >= 20:
        class_len, header_len, content_len = struct.unpack(">HHI", buf[12:20])
        return 20 + class_len + header_len + content_len
    return None


def send_good(addr, frame, n):
    """Sends `n` good requests at once and reads their `n` answers."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(frame * n)
        buf, got = b"", 0
        while got < n:
            size = answer_len(buf)
            if size is not None and len(buf) >= size:
                buf, got = buf[size:], got + 1
                continue
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit(f"the gateway closed a good connection after {got} of {n} answers")
            buf += chunk


def frame_errors(addr):
    url = f"http://{addr[0]}:{addr[1]}/metrics"
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return "unavailable"
    return ", ".join(
        line.removeprefix("weft_rpc_frame_errors_total")
        for line in text.splitlines()
        if line.startswith("weft_rpc_frame_errors_total{")
    )


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    addr = (host, int(port))
    pid = int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 600
    frames = bad_frames()
    not_closed = 0
    warm = None
    start = time.monotonic()
    for r in range(rounds):
        for i in range(conns):
            name, frame, must_close = frames[i % len(frames)]
            if not send_bad(addr, frame, must_close):
                not_closed += 1
                print(f"not closed: {name}", file=sys.stderr)
        send_good(addr, DUBBO, 32)
        send_good(addr, BOLT, 32)
        time.sleep(0.2)  # let the gateway finish closing
        rss = rss_kib(pid)
        if warm is None:
            warm = rss
        print(f"round {r + 1}: {conns} bad connections, RSS {rss / 1024:.1f} MiB")
    took = time.monotonic() - start
    print(f"bad connections: {rounds * conns} in {took:.0f} s, not closed by the gateway: {not_closed}")
    print(f"weft_rpc_frame_errors_total: {frame_errors(addr)}")
    print(f"RSS after round 1: {warm / 1024:.1f} MiB, after round {rounds}: {rss / 1024:.1f} MiB, "
          f"ratio {rss / warm:.2f} (a leak grows it with the rounds)")
    sys.exit(1 if not_closed else 0)


if __name__ == "__main__":
    main()
