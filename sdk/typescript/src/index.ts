/**
 * Cairn's TypeScript SDK: sandboxes, exec, files, snapshots, restore and fork.
 *
 * ```ts
 * import { Cairn, Sandbox } from "cairn-sdk";
 *
 * const cairn = new Cairn({ host: "http://127.0.0.1:7421", token: "ck_…" }); // or new Cairn(): $CAIRN_HOST, $CAIRN_TOKEN
 * await using sbx = await Sandbox.create({ image: "base", client: cairn }); // destroyed at the block's end
 * await sbx.files.write("/work/plan.txt", "step 1\n");
 * const snap = await sbx.snapshot({ name: "before-risk" });
 * const r = await sbx.exec("rm -rf /work; exit 3"); // r.exitCode === 3
 * await sbx.restore(snap); // /work is back
 * const forks = await Promise.all([...Array(5)].map(() => Sandbox.fromSnapshot(snap)));
 * ```
 *
 * The layer here is hand-written; `schema.ts` under it is generated from docs/openapi.json by
 * openapi-typescript, and every call goes through openapi-fetch (`cairn.api`). See docs/sdk.md.
 */

export { Cairn, type ImageInfo } from "./cairn.js";
export { type Api, type CairnOptions, DEFAULT_SOCKET } from "./connection.js";
export {
  Busy,
  CairnError,
  CheckpointFailed,
  Conflict,
  ConnectionFailed,
  ERRORS,
  Forbidden,
  Internal,
  InvalidArgument,
  LimitExceeded,
  MethodNotAllowed,
  NotFound,
  PoolFull,
  RequestTimeout,
  RuntimeIdentityMismatch,
  STATUS,
  TooLarge,
  TooManyConnections,
  Unauthenticated,
  Unavailable,
  UnsupportedMediaType,
  errorFrom,
} from "./errors.js";
export {
  type Command,
  type ExecCallbacks,
  type ExecEvent,
  type ExecOptions,
  ExecResult,
} from "./exec.js";
export {
  type CreateOptions,
  type DiffEntry,
  type FileEntry,
  Files,
  type ForkError,
  type ForkOptions,
  type ProcessInfo,
  Sandbox,
  type SandboxInfo,
  Snapshot,
  type SnapshotInfo,
  type SnapshotRef,
  withSandbox,
} from "./sandbox.js";
export type { components, operations, paths } from "./schema.js";
