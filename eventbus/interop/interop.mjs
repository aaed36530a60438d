// CloudEvents interop peer for weft's tests, using the official JavaScript SDK.
//   node interop.mjs receive          -> prints "listening <port>", then one JSON
//                                       line per event weft delivers, as the SDK
//                                       parsed it (or the SDK's error)
//   node interop.mjs send <url> <id>  -> sends <id>-binary and <id>-structured
//                                       with the SDK's HTTP binding; exits 1
//                                       unless weft answered 202 to both
import http from "node:http";
import { CloudEvent, HTTP } from "cloudevents";

const [mode, url, id] = process.argv.slice(2);

if (mode === "receive") {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        const event = HTTP.toEvent({ headers: req.headers, body: Buffer.concat(chunks).toString() });
        event.validate();
        console.log(JSON.stringify({ ok: true, event: event.toJSON() }));
        res.writeHead(200).end();
      } catch (e) {
        console.log(JSON.stringify({ ok: false, error: String(e) }));
        res.writeHead(400).end();
      }
    });
  });
  server.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
} else if (mode === "send") {
  let failed = false;
  for (const [suffix, encode] of [["binary", HTTP.binary], ["structured", HTTP.structured]]) {
    const event = new CloudEvent({
      id: `${id}-${suffix}`,
      type: "com.example.interop",
      source: "/node-sdk",
      subject: suffix,
      partitionkey: "k1",
      datacontenttype: "application/json",
      data: { via: suffix, n: 42 },
    });
    const message = encode(event);
    const resp = await fetch(url, { method: "POST", headers: message.headers, body: message.body });
    console.log(`${suffix}: ${resp.status} ${await resp.text()}`);
    if (resp.status !== 202) failed = true;
  }
  process.exit(failed ? 1 : 0);
} else {
  console.error("usage: node interop.mjs receive | send <url> <id>");
  process.exit(2);
}
