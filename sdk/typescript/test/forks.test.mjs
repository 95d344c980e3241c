// Fork five and compare them with Promise.all, and the batch fork. Run by
// crates/cairn/tests/sdk_ts.rs against a real cairnd.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { Sandbox } from "../dist/index.js";
import { RUNTIME, client, newSandbox } from "./helpers.mjs";

after(() => client.close());

test("fork five with Promise.all and compare", async () => {
  const src = await newSandbox();
  try {
    await src.files.write("/seed.txt", "shared start\n");
    const snap = await src.snapshot({ name: "seed" });
    // Five forks at once, each trying its own approach: the seeds' words.
    const forks = await Promise.all([...Array(5)].map(() => Sandbox.fromSnapshot(snap.id, { client, runtime: RUNTIME })));
    try {
      assert.equal(new Set(forks.map((f) => f.id)).size, 5);
      const results = await Promise.all(
        forks.map((f, i) => f.exec(`echo approach-${i} > /answer.txt && cat /seed.txt /answer.txt`)),
      );
      results.forEach((r, i) => {
        assert.equal(r.exitCode, 0, r.errorText);
        assert.equal(r.text, `shared start\napproach-${i}\n`);
      });
      // Each fork is private: none sees another's answer, the source sees none.
      const answers = await Promise.all(forks.map((f) => f.files.readText("/answer.txt")));
      assert.deepEqual(answers, [0, 1, 2, 3, 4].map((i) => `approach-${i}\n`));
      assert.equal(await src.files.exists("/answer.txt"), false);
      // Keep the best one as a snapshot of its own.
      const best = await forks[3].snapshot({ name: "best" });
      assert.notEqual(best.id, snap.id);
    } finally {
      await Promise.all(forks.map((f) => f.destroy()));
    }
    // The batch form: cairnd makes the five concurrently.
    const batch = await snap.fork(5, { name: "batch", runtime: RUNTIME });
    try {
      assert.deepEqual(
        batch.map((b) => b.name),
        [1, 2, 3, 4, 5].map((i) => `batch-${i}`),
      );
      const texts = await Promise.all(batch.map((b) => b.files.readText("/seed.txt")));
      assert.deepEqual(texts, Array(5).fill("shared start\n"));
    } finally {
      await Promise.all(batch.map((b) => b.destroy()));
    }
  } finally {
    await src.destroy();
  }
});

test("the default connection comes from the environment", async () => {
  // No client: new Cairn() from CAIRN_HOST and CAIRN_TOKEN.
  const sbx = await Sandbox.create({ image: process.env.CAIRN_IMAGE ?? "base", runtime: RUNTIME });
  try {
    assert.equal((await sbx.exec("echo $((6 * 7))")).text, "42\n");
    const snap = await sbx.snapshot();
    const [fork] = await snap.fork();
    assert.equal((await fork.exec("echo forked")).text, "forked\n");
    await fork.destroy();
  } finally {
    await sbx.destroy();
  }
});
