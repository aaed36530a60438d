"""The shop's records store: a small HTTP process weft runs as a `process`
Function. Functions write to it through the sidecar; the report reads it.

  POST /notifications       a JSON record           -> appended
  POST /points              {"user", "points", ...} -> added to the user's total
  POST /  (a CloudEvent)    a dead letter            -> kept with its reason
  GET  /<collection>        everything kept, as JSON

A record with an `eventId` already kept is not kept again: events arrive at
least once, so the consumer is idempotent. Records live in memory and in
`<cwd>/store/<collection>.jsonl`.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
DIR = os.path.join(os.getcwd(), "store")
DATA = {"notifications": [], "points": [], "dead-letters": []}


SEEN = {name: set() for name in DATA}


def keep(collection, record):
    """Appends `record`; False if its `eventId` was kept already (a redelivery)."""
    with LOCK:
        event_id = record.get("eventId")
        if event_id is not None and event_id in SEEN[collection]:
            return False
        SEEN[collection].add(event_id)
        DATA[collection].append(record)
        with open(os.path.join(DIR, f"{collection}.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")


class Store(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?")[0].strip("/")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return self.answer(400, {"error": "body is not JSON"})
        if path == "" and self.headers.get("ce-deadletterreason"):
            ce = {k[3:].lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
            keep("dead-letters", {"received": time.time(), "attributes": ce, "data": data})
            return self.answer(202, {"kept": "dead-letters"})
        if not isinstance(data, dict):
            return self.answer(400, {"error": "a record is a JSON object"})
        if path not in ("notifications", "points"):
            return self.answer(404, {"error": f"no collection {path!r}"})
        if keep(path, dict(data, received=time.time())):
            return self.answer(201, {"kept": path})
        self.answer(200, {"duplicate": data.get("eventId")})

    def do_GET(self):
        path = self.path.split("?")[0].strip("/")
        if path == "points/totals":
            totals = {}
            with LOCK:
                for r in DATA["points"]:
                    totals[r["user"]] = totals.get(r["user"], 0) + r["points"]
            return self.answer(200, totals)
        if path not in DATA:
            return self.answer(404, {"error": f"no collection {path!r}"})
        with LOCK:
            self.answer(200, DATA[path])

    def answer(self, code, value):
        body = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def load():
    """Reads back what an earlier instance kept: the store may scale to zero."""
    for name in DATA:
        path = os.path.join(DIR, f"{name}.jsonl")
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    record = json.loads(line)
                    DATA[name].append(record)
                    SEEN[name].add(record.get("eventId"))


if __name__ == "__main__":
    os.makedirs(DIR, exist_ok=True)
    load()
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Store).serve_forever()
