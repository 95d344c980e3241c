// What the SDK's tests share: the cairnd they drive (from the environment that
// crates/cairn/tests/sdk_ts.rs sets: CAIRN_HOST and CAIRN_TOKEN), the runtime (CAIRN_RUNTIME)
// and the image (CAIRN_IMAGE).

import { Cairn, Sandbox } from "../dist/index.js";

export const RUNTIME = process.env.CAIRN_RUNTIME ?? "gvisor";
export const IMAGE = process.env.CAIRN_IMAGE ?? "base";

/** The connection of CAIRN_HOST and CAIRN_TOKEN. */
export const client = new Cairn();

/** A new sandbox of the test's image and runtime. */
export function newSandbox(options = {}) {
  return Sandbox.create({ image: IMAGE, runtime: RUNTIME, client, ...options });
}

/** Waits until `condition()` resolves to true. */
export async function waitFor(condition, seconds = 10) {
  const end = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `promise`'s rejection, failing when it resolves. */
export async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("it did not fail");
}
