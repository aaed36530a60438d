"""The pipeline's sink: a plain HTTP process weft runs as a `process` Function.

Every CloudEvent it receives (binary mode) is appended as one JSON line to a
file in its working directory, the run's folder: `dead.jsonl` for dead letters
(they carry `ce-deadletterreason`), else `<type>.jsonl`. It records when it got
each event, so the report can measure end-to-end latency from the click's time.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
OUT = os.path.join(os.getcwd(), "sink")


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        ce = {k[3:].lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
        if "id" not in ce or "type" not in ce:
            return self.answer(400, b"not a binary-mode CloudEvent\n")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = body.decode("utf-8", "replace")
        record = {"received": time.time(), "attributes": ce, "data": data}
        name = "dead" if "deadletterreason" in ce else ce["type"]
        with LOCK, open(os.path.join(OUT, f"{name}.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.answer(202, b"")

    def do_GET(self):
        self.answer(200, b"sink\n")

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Sink).serve_forever()
