// The seeds' programmatic workflows: checkpoint before a risky step and restore, the iterative
// agent loop with save points, exec streaming, files, pause and resume, stateful forks, typed
// errors and disposal. Run by crates/cairn/tests/sdk_ts.rs against a real cairnd.

import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { after, test } from "node:test";

import {
  CairnError,
  Cairn,
  Conflict,
  ConnectionFailed,
  InvalidArgument,
  LimitExceeded,
  NotFound,
  Sandbox,
  Unauthenticated,
  withSandbox,
} from "../dist/index.js";
import { IMAGE, RUNTIME, client, newSandbox, rejection, waitFor } from "./helpers.mjs";

after(() => client.close());

const text = (bytes) => new TextDecoder().decode(bytes);

test("checkpoint before a risky step, then restore", async () => {
  await withSandbox({ image: IMAGE, runtime: RUNTIME, client }, async (sbx) => {
    await sbx.files.mkdir("/work");
    await sbx.files.write("/work/app.py", "print('v1')\n");
    await sbx.files.write("/work/data.txt", new Uint8Array([0, 112, 255]));
    const snap = await sbx.snapshot({ name: "before-risk" });
    assert.equal(snap.name, "before-risk");
    assert.match(snap.id, /^snap-/);
    const risky = await sbx.exec("rm -rf /work && echo broken > /etc/marker && exit 3");
    assert.equal(risky.exitCode, 3);
    assert.equal(await sbx.files.exists("/work/app.py"), false);
    await sbx.restore(snap);
    assert.equal(sbx.state, "running");
    assert.equal(await sbx.files.readText("/work/app.py"), "print('v1')\n");
    assert.deepEqual(await sbx.files.read("/work/data.txt"), new Uint8Array([0, 112, 255]));
    assert.notEqual((await sbx.exec(["cat", "/etc/marker"])).exitCode, 0);
    // By name too, as SANDBOX:NAME.
    await sbx.exec("rm /work/app.py");
    await sbx.restore(`${sbx.id}:before-risk`);
    assert.equal(await sbx.files.exists("/work/app.py"), true);
  });
});

test("the iterative agent loop with save points", async () => {
  const steps = [
    "echo 'add() { echo $(($1 + $2)); }' > /work/lib.sh",
    "echo 'broken code' > /work/lib.sh && exit 1", // the agent's mistake
    "echo 'tests: ok' > /work/tests.txt",
    "mkdir -p /work/out && echo built > /work/out/result",
  ];
  const sbx = await newSandbox({ name: "agent-loop" });
  try {
    await sbx.files.mkdir("/work");
    const savePoints = [await sbx.snapshot({ name: "step-0" })];
    let rolledBack = 0;
    for (const [i, step] of steps.entries()) {
      const result = await sbx.exec(step);
      if (!result.ok) {
        // Undo the failed step: back to the last save point, then go on.
        await sbx.restore(savePoints.at(-1));
        rolledBack += 1;
        continue;
      }
      savePoints.push(await sbx.snapshot({ name: `step-${i + 1}` }));
    }
    assert.equal(rolledBack, 1);
    assert.equal(await sbx.files.readText("/work/lib.sh"), "add() { echo $(($1 + $2)); }\n");
    assert.equal(await sbx.files.readText("/work/out/result"), "built\n");
    const names = (await sbx.snapshots()).map((s) => s.name);
    assert.deepEqual(names, ["step-0", "step-1", "step-3", "step-4"]);
    // Each save point holds what was true then.
    const changed = new Set((await savePoints[1].diff({ against: savePoints.at(-1) })).map((d) => d.path));
    assert.ok(changed.has("/work/tests.txt") && changed.has("/work/out/result"), [...changed].join(" "));
    // Go back two steps and branch from there without touching the loop's sandbox.
    const branch = await Sandbox.fromSnapshot(savePoints[1], { runtime: RUNTIME });
    try {
      assert.equal(await branch.files.exists("/work/tests.txt"), false);
      assert.equal((await branch.exec(". /work/lib.sh && add 2 3")).text, "5\n");
    } finally {
      await branch.destroy();
    }
    assert.equal(await sbx.files.exists("/work/tests.txt"), true);
  } finally {
    await sbx.destroy();
  }
});

test("exec streams output with its exit code", async () => {
  await withSandbox({ image: IMAGE, runtime: RUNTIME, client }, async (sbx) => {
    const seen = [];
    const result = await sbx.exec("echo one; sleep 0.2; echo two >&2; echo three; exit 7", {
      onStdout: (data) => seen.push(text(data)),
    });
    assert.equal(result.exitCode, 7);
    assert.equal(result.ok, false);
    assert.equal(result.text, "one\nthree\n");
    assert.equal(result.errorText, "two\n");
    // Output came as it was written: "one" before the pause, "three" after.
    assert.deepEqual(seen, ["one\n", "three\n"]);
    const events = [];
    for await (const ev of sbx.execStream(["sh", "-c", "echo $GREETING from $PWD"], {
      env: { GREETING: "hi" },
      workdir: "/tmp",
    })) {
      events.push(ev);
    }
    assert.equal(events.at(-1).type, "exit");
    assert.equal(events.at(-1).code, 0);
    assert.equal(events.filter((e) => e.type === "stdout").map((e) => text(e.data)).join(""), "hi from /tmp\n");
    const missing = await sbx.exec(["no-such-program"]);
    assert.equal(missing.exitCode, 127);
    assert.match(missing.message ?? "", /no such program/);
  });
});

test("files: read, write, list", async () => {
  await withSandbox({ image: IMAGE, runtime: RUNTIME, client }, async (sbx) => {
    await sbx.files.mkdir("/data/nested", { parents: true });
    await sbx.files.write("/data/a.txt", "alpha");
    await sbx.files.write("/data/run.sh", "#!/bin/sh\necho ran\n", { mode: 0o755 });
    const bytes = new Uint8Array(256).map((_, i) => i);
    await sbx.files.write("/data/nested/b.bin", bytes);
    const names = (await sbx.files.list("/data")).map((e) => e.path.split("/").at(-1)).sort();
    assert.deepEqual(names, ["a.txt", "nested", "run.sh"]);
    const deep = (await sbx.files.list("/data", { depth: 2 })).map((e) => e.path);
    assert.ok(deep.includes("/data/nested/b.bin"), deep.join(" "));
    assert.deepEqual(await sbx.files.read("/data/nested/b.bin"), bytes);
    assert.equal((await sbx.files.stat("/data/a.txt")).size, 5);
    assert.equal((await sbx.exec("/data/run.sh")).text, "ran\n");
    await sbx.files.remove("/data", { recursive: true });
    assert.equal(await sbx.files.exists("/data"), false);
  });
});

test("pause, resume, and a stateful fork whose background process runs on", async () => {
  await withSandbox({ image: IMAGE, runtime: RUNTIME, client }, async (sbx) => {
    await sbx.exec("echo kept > /root/f");
    await sbx.pause();
    assert.equal(sbx.state, "paused");
    await sbx.resume();
    assert.equal(sbx.state, "running");
    assert.equal(await sbx.files.readText("/root/f"), "kept\n");
    const pid = await sbx.execBackground("i=0; while true; do i=$((i+1)); echo $i > /root/c; sleep 0.1; done");
    assert.ok((await sbx.processes()).some((p) => p.pid === pid));
    const count = async (s) => Number((await s.exec("cat /root/c")).text || 0);
    await waitFor(async () => (await count(sbx)) > 2);
    const snap = await sbx.snapshot({ name: "counting", stateful: true });
    assert.equal(snap.stateful, true);
    await sbx.signal(pid, "KILL");
    await waitFor(async () => !(await sbx.processes()).some((p) => p.pid === pid));
    await withSandbox({ client, from_snapshot: snap.id, runtime: RUNTIME }, async (fork) => {
      assert.notEqual(fork.id, sbx.id);
      assert.equal(fork.state, "running");
      assert.equal(await fork.files.readText("/root/f"), "kept\n");
      const first = await count(fork);
      // The loop runs on in the fork, from where it was.
      await waitFor(async () => (await count(fork)) > first);
    });
    const e = await rejection(sbx.execBackground(["no-such-program"]));
    assert.ok(e instanceof CairnError, String(e));
    assert.deepEqual(e.details, { exit_code: 127 });
  });
});

test("export, then import, gives back the same snapshot", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-sdk-ts-"));
  try {
    const sbx = await newSandbox();
    await sbx.files.write("/root/shared.txt", "for a teammate");
    const snap = await sbx.snapshot({ name: "to-share" });
    await sbx.destroy();
    const path = join(dir, "snap.tar.zst");
    const size = await snap.export(path);
    assert.ok(size > 0 && size === (await stat(path)).size, String(size));
    await snap.delete();
    const back = await client.importSnapshot(path);
    // A new snapshot of the importing account, with the archive's name and files.
    assert.notEqual(back.id, snap.id);
    assert.equal(back.name, "to-share");
    await withSandbox({ client, from_snapshot: back.id, runtime: RUNTIME }, async (fork) => {
      assert.equal(await fork.files.readText("/root/shared.txt"), "for a teammate");
    });
    await back.delete();
    const e = await rejection(client.importSnapshot(join(dir, "missing.tar.zst")));
    assert.equal(e.code, "ENOENT", String(e));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the unix socket needs no token", async () => {
  const operator = new Cairn({ host: process.env.CAIRN_SOCKET_PATH });
  try {
    await withSandbox({ image: IMAGE, runtime: RUNTIME, client: operator }, async (sbx) => {
      assert.equal((await sbx.exec("echo local")).text, "local\n");
      assert.ok((await operator.sandboxes()).some((s) => s.id === sbx.id));
    });
  } finally {
    await operator.close();
  }
});

test("typed errors", async () => {
  let e = await rejection(client.sandbox("sbx-00000000"));
  assert.ok(e instanceof NotFound, String(e));
  assert.equal(e.status, 404);
  assert.equal(e.code, "not_found");
  e = await rejection(newSandbox({ name: "bad name!" }));
  assert.ok(e instanceof InvalidArgument, String(e));
  assert.match(e.message, /name/);
  e = await rejection(Sandbox.create({ image: "no-such-image", client }));
  assert.ok(e instanceof NotFound, String(e));
  const limit = Number(process.env.CAIRN_SNAPSHOT_LIMIT ?? "8");
  await withSandbox({ image: IMAGE, runtime: RUNTIME, client }, async (sbx) => {
    for (let i = 0; i < limit; i++) await sbx.snapshot({ name: `s${i}` });
    e = await rejection(sbx.snapshot({ name: "one-too-many" }));
    assert.ok(e instanceof LimitExceeded && e instanceof Conflict, String(e));
    assert.equal(e.status, 409);
    assert.ok(e.message.includes(String(limit)), e.message);
  });
  // A port nobody listens on: one just freed.
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = server.address().port;
  server.close();
  for (const host of [`http://127.0.0.1:${port}`, "http://127.0.0.1:9"]) {
    const nowhere = new Cairn({ host, token: "ck_x" });
    e = await rejection(nowhere.sandboxes());
    assert.ok(e instanceof ConnectionFailed, String(e));
    assert.ok(e.message.includes(host) && e.message.includes("CAIRN_HOST"), e.message);
    await nowhere.close();
  }
  const noSocket = new Cairn({ host: "/nonexistent/cairnd.sock" });
  e = await rejection(Sandbox.create({ image: IMAGE, client: noSocket }));
  assert.ok(e instanceof ConnectionFailed, String(e));
  assert.match(e.message, /unix:\/\/\/nonexistent\/cairnd\.sock/);
  await noSocket.close();
  const stranger = new Cairn({ host: process.env.CAIRN_HOST, token: "ck_not-a-token" });
  e = await rejection(stranger.sandboxes());
  assert.ok(e instanceof Unauthenticated, String(e));
  await stranger.close();
});

test("Symbol.asyncDispose destroys the sandbox and keeps its snapshots", async () => {
  const sbx = await newSandbox();
  await sbx.files.write("/root/x", "x");
  const snap = await sbx.snapshot({ name: "kept" });
  // What `await using sbx = …` calls at the end of its block.
  await sbx[Symbol.asyncDispose]();
  await sbx[Symbol.asyncDispose](); // twice is harmless
  assert.ok((await rejection(client.sandbox(sbx.id))) instanceof NotFound);
  assert.equal((await client.snapshot(snap.id)).name, "kept");
  const again = await Sandbox.fromSnapshot(snap.id, { client, runtime: RUNTIME });
  assert.equal(await again.files.readText("/root/x"), "x");
  await again.destroy();
  await snap.delete();
  assert.ok((await rejection(client.snapshot(snap.id))) instanceof NotFound);
});
