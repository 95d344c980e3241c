// The README's example, whole: checkpoint before a risky step, restore, and five forks with
// Promise.all. Reads CAIRN_HOST and CAIRN_TOKEN (or the local socket), like the CLI.
//
//   npx tsc -p examples && node examples/out/quickstart.js
// (crates/cairn/tests/sdk_ts.rs builds and runs it against a real cairnd.)

import { Cairn, Sandbox } from "cairn-sdk";

await using cairn = new Cairn(); // or new Cairn({ host: "http://127.0.0.1:7421", token: "ck_…" })
await using sbx = await Sandbox.create({ image: process.env.CAIRN_IMAGE ?? "base", client: cairn });
await sbx.files.write("/root/plan.txt", "step 1\n");
const snap = await sbx.snapshot({ name: "before-risk" }); // stateful: true: memory too
const risky = await sbx.exec("rm -rf /root; exit 3", { onStdout: (b) => process.stdout.write(b) });
console.log("risky step exited with", risky.exitCode); // 3
await sbx.restore(snap); // /root/plan.txt is back
console.log("after restore:", await sbx.files.readText("/root/plan.txt"));
const forks = await Promise.all([...Array(5)].map(() => Sandbox.fromSnapshot(snap)));
for (const f of forks) {
  await using fork = f; // each destroyed at the end of its turn
  console.log(fork.id, (await fork.exec("cat /root/plan.txt")).text.trim());
}
