// What needs no cairnd: every error code of the API document has its class and status, and
// the exec stream's reader gives the same events however the bytes are cut into chunks.
// Run by crates/cairn/tests/sdk_ts.rs (CAIRN_OPENAPI names the document).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import { CairnError, Conflict, ERRORS, LimitExceeded, STATUS, errorFrom } from "../dist/index.js";
import { collect, ndjsonEvents } from "../dist/exec.js";

test("every API error code has its class and status", async () => {
  const path = process.env.CAIRN_OPENAPI ?? new URL("../../../docs/openapi.json", import.meta.url);
  const doc = JSON.parse(await readFile(path, "utf8"));
  const described = doc.components.schemas.ErrorDetail.properties.code.description;
  const codes = new Map([...described.matchAll(/([a-z_]+) \((\d{3})\)/g)].map((m) => [m[1], Number(m[2])]));
  assert.ok(codes.size >= 17, described);
  for (const [code, status] of codes) {
    assert.equal(ERRORS.get(code)?.CODE, code, `no class for ${code}`);
    assert.equal(STATUS[code], status, code);
    const e = errorFrom(status, { error: { code, message: "m" } });
    assert.ok(e instanceof ERRORS.get(code) && e.code === code && e.status === status, String(e));
  }
  assert.deepEqual([...ERRORS.keys()].sort(), [...codes.keys()].sort());
  assert.deepEqual(Object.keys(STATUS).sort(), [...codes.keys()].sort());
  // A code this SDK does not know yet, and an answer without an error body.
  const unknown = errorFrom(418, '{"error": {"code": "teapot", "message": "short and stout"}}');
  assert.ok(unknown.constructor === CairnError && unknown.code === "teapot", String(unknown));
  assert.match(errorFrom(502, "<html>").message, /HTTP 502 without an error body/);
  assert.ok(new LimitExceeded("x") instanceof Conflict);
});

function streamOf(chunks) {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

test("the exec stream reader does not care where chunks are cut", async () => {
  const lines = [
    { type: "started", pid: 7 },
    { type: "stdout", data: Buffer.from("héllo ✓\n").toString("base64") },
    { type: "stderr", data: Buffer.from("oops").toString("base64") },
    { type: "exit", code: 3, message: null },
  ];
  const bytes = new TextEncoder().encode(lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  for (const size of [1, 2, 3, 7, 64, bytes.length]) {
    const chunks = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
    const seen = [];
    const result = await collect(ndjsonEvents(streamOf(chunks)), { onStdout: (d) => seen.push(d) });
    assert.equal(result.exitCode, 3, `chunks of ${size}`);
    assert.equal(result.text, "héllo ✓\n");
    assert.equal(result.errorText, "oops");
    assert.deepEqual(result.events.map((e) => e.type), ["started", "stdout", "stderr", "exit"]);
    assert.equal(result.events[0].pid, 7);
    assert.equal(seen.length, 1);
  }
  // No newline at the end: the last line still counts.
  const last = await collect(ndjsonEvents(streamOf([new TextEncoder().encode('{"type":"exit","code":0}')])));
  assert.equal(last.exitCode, 0);
  // A stream cut before its exit event is an error, not a success.
  const cut = await collect(ndjsonEvents(streamOf([bytes.slice(0, 30)]))).catch((e) => e);
  assert.ok(cut instanceof CairnError && cut.code === "connection_failed", String(cut));
  // A reader that stops early cancels the stream.
  let cancelled = false;
  const endless = new ReadableStream({
    pull(controller) {
      controller.enqueue(new TextEncoder().encode('{"type":"stdout","data":"eA=="}\n'));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const ev of ndjsonEvents(endless)) {
    assert.equal(ev.type, "stdout");
    break;
  }
  assert.ok(cancelled);
});
