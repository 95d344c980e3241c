/**
 * The hand-written layer over the generated client: `Sandbox` (create, exec, files, snapshot,
 * restore, pause, resume, destroy), `Snapshot` (fork, restore, diff, delete) and `Files`. The
 * twin of the Python SDK's `AsyncSandbox`, method for method where TypeScript allows.
 */

import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";

import { type Cairn, defaultClient } from "./cairn.js";
import { unwrap } from "./connection.js";
import { CairnError, STATUS, errorFrom } from "./errors.js";
import {
  type Command,
  type ExecCallbacks,
  type ExecEvent,
  type ExecOptions,
  type ExecResult,
  backgroundPid,
  collect,
  execBody,
  ndjsonEvents,
} from "./exec.js";
import type { components } from "./schema.js";

/** A sandbox as cairnd describes it. */
export type SandboxInfo = components["schemas"]["SandboxInfo"];
/** A snapshot as cairnd describes it. */
export type SnapshotInfo = components["schemas"]["SnapshotInfo"];
/** One file or directory entry. */
export type FileEntry = components["schemas"]["FileEntry"];
/** One path changed since a snapshot. */
export type DiffEntry = components["schemas"]["DiffEntry"];
/** One process of a sandbox. */
export type ProcessInfo = components["schemas"]["ProcessInfo"];
type CreateRequest = components["schemas"]["CreateSandboxRequest"];
type ForkRequest = components["schemas"]["ForkRequest"];

/**
 * The options of `Sandbox.create`: the API's create fields (`image`, `name`, `runtime`
 * (`gvisor`, `runc`), `cpus`, `memory` (`"512M"`), `workdir`, `network`, `idle_timeout`,
 * `disk`…), with `env` as an object, and the connection (`client`, else `new Cairn()`).
 */
export type CreateOptions = Omit<Partial<CreateRequest>, "env"> & {
  /** Environment variables of its processes. */
  env?: Record<string, string> | string[];
  /** The connection; default: one made from the environment. */
  client?: Cairn;
};

/** The options of `snapshot.fork` and `Sandbox.fromSnapshot` (a fork's own settings). */
export type ForkOptions = Omit<Partial<ForkRequest>, "env" | "count"> & {
  /** Environment variables of its processes. */
  env?: Record<string, string> | string[];
};

/** A snapshot argument: a `Snapshot`, its id, `NAME` or `SANDBOX:NAME`. */
export type SnapshotRef = Snapshot | string;

function envList(env: Record<string, string> | string[] | undefined): string[] | undefined {
  if (env === undefined || Array.isArray(env)) return env;
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function snapshotRef(snapshot: SnapshotRef): string {
  return typeof snapshot === "string" ? snapshot : snapshot.id;
}

/**
 * A sandbox: `await Sandbox.create({ image })`. `await using sbx = …` (TypeScript ≥ 5.2) or
 * `withSandbox(…)` destroys it at the end.
 */
export class Sandbox {
  /** The connection it was made through. */
  readonly client: Cairn;
  /** What cairnd said of it last (`refresh()`). */
  info: SandboxInfo;
  /** Its files. */
  readonly files: Files;

  /** Wraps an answer of cairnd (use `Sandbox.create` or `cairn.sandbox(id)`). */
  constructor(client: Cairn, info: SandboxInfo) {
    this.client = client;
    this.info = info;
    this.files = new Files(this);
  }

  /** `sbx-` and 8 hex digits. */
  get id(): string {
    return this.info.id;
  }

  /** Its name, if it has one. */
  get name(): string | undefined {
    return this.info.name || undefined;
  }

  /** `running`, `paused`, `stopped`… as of the last answer (`refresh()`). */
  get state(): string {
    return this.info.state;
  }

  /** Creates and starts a sandbox (`image` defaults to cairnd's default image). */
  static async create(options: CreateOptions = {}): Promise<Sandbox> {
    const { client, env, ...fields } = options;
    const c = defaultClient(client);
    const body = withoutUndefined({ ...fields, env: envList(env) }) as CreateRequest;
    const info = await unwrap(c.api.POST("/v1/sandboxes", { body }));
    return new Sandbox(c, info);
  }

  /** A new sandbox forked from `snapshot` (`fresh`: boot fresh on its files, without its memory). */
  static async fromSnapshot(
    snapshot: SnapshotRef,
    options: ForkOptions & { fresh?: boolean; client?: Cairn } = {},
  ): Promise<Sandbox> {
    const client = options.client ?? (typeof snapshot === "string" ? undefined : snapshot.client);
    const { fresh, ...rest } = options;
    return Sandbox.create({ ...rest, client, from_snapshot: snapshotRef(snapshot), fresh: fresh || undefined });
  }

  /** Reads its state again. */
  async refresh(): Promise<this> {
    this.info = await unwrap(this.client.api.GET("/v1/sandboxes/{id}", { params: { path: { id: this.id } } }));
    return this;
  }

  /** Runs `cmd` and yields its events as they come: output, then one `exit`. */
  async *execStream(cmd: Command, options: ExecOptions = {}): AsyncGenerator<ExecEvent> {
    const r = await this.client.api.POST("/v1/sandboxes/{id}/exec", {
      params: { path: { id: this.id } },
      body: execBody(cmd, options) as components["schemas"]["ExecRequest"],
      parseAs: "stream",
    });
    if (!r.response.ok) throw errorFrom(r.response.status, r.error);
    if (!r.data) throw new CairnError("the exec answer had no body", { code: "unexpected_answer" });
    yield* ndjsonEvents(r.data);
  }

  /**
   * Runs `cmd` to its end (a string runs under `/bin/sh -c`), streaming its output to
   * `onStdout`/`onStderr` as it comes; returns its exit code and output. A non-zero exit is
   * not an exception.
   */
  exec(cmd: Command, options: ExecOptions & ExecCallbacks = {}): Promise<ExecResult> {
    return collect(this.execStream(cmd, options), options);
  }

  /**
   * Starts `cmd` in the background (a server, a long job: a child of the sandbox's init, so
   * stateful snapshots carry it; output on /dev/null unless it redirects it); returns its pid.
   */
  async execBackground(cmd: Command, options: Omit<ExecOptions, "timeout"> = {}): Promise<number> {
    const r = await this.client.api.POST("/v1/sandboxes/{id}/exec", {
      params: { path: { id: this.id } },
      body: { ...execBody(cmd, options), detach: true } as components["schemas"]["ExecRequest"],
      parseAs: "text",
    });
    if (!r.response.ok) throw errorFrom(r.response.status, r.error);
    return backgroundPid(r.data ?? "");
  }

  /** Its processes. */
  processes(): Promise<ProcessInfo[]> {
    return unwrap(this.client.api.GET("/v1/sandboxes/{id}/processes", { params: { path: { id: this.id } } }));
  }

  /** Sends `signal` (`TERM`, `KILL`, …) to one of its processes. */
  async signal(pid: number, signal = "TERM"): Promise<void> {
    await unwrap(
      this.client.api.POST("/v1/sandboxes/{id}/processes/{pid}/signal", {
        params: { path: { id: this.id, pid } },
        body: { signal },
      }),
    );
  }

  /** Snapshots it: its files, and with `stateful` its processes' memory too. */
  async snapshot(options: { name?: string; stateful?: boolean } = {}): Promise<Snapshot> {
    const info = await unwrap(
      this.client.api.POST("/v1/sandboxes/{id}/snapshots", {
        params: { path: { id: this.id } },
        body: withoutUndefined({ name: options.name, stateful: options.stateful }),
      }),
    );
    return new Snapshot(this.client, info);
  }

  /** Its snapshots, oldest first (`all`: automatic, failed and deleted too). */
  async snapshots(options: { all?: boolean } = {}): Promise<Snapshot[]> {
    const query = options.all ? { all: true } : {};
    const infos: SnapshotInfo[] = await unwrap(
      this.client.api.GET("/v1/sandboxes/{id}/snapshots", { params: { path: { id: this.id }, query } }),
    );
    return infos.map((i) => new Snapshot(this.client, i));
  }

  /** Puts `snapshot`'s state back into this sandbox, in place: everything since is discarded. */
  async restore(snapshot: SnapshotRef, options: { fresh?: boolean } = {}): Promise<this> {
    this.info = await unwrap(
      this.client.api.POST("/v1/snapshots/{id}/restore", {
        params: { path: { id: snapshotRef(snapshot) } },
        body: withoutUndefined({ to: this.id, fresh: options.fresh || undefined }),
      }),
    );
    return this;
  }

  /** Freezes it (with an automatic snapshot); `releaseMemory` writes its memory out and frees it. */
  async pause(options: { releaseMemory?: boolean } = {}): Promise<this> {
    const query = options.releaseMemory ? { release_memory: true } : {};
    this.info = await unwrap(
      this.client.api.POST("/v1/sandboxes/{id}/pause", { params: { path: { id: this.id }, query } }),
    );
    return this;
  }

  /** Continues a paused sandbox. */
  async resume(): Promise<this> {
    this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/resume", { params: { path: { id: this.id } } }));
    return this;
  }

  /** Stops its processes; its files stay. */
  async stop(): Promise<this> {
    this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/stop", { params: { path: { id: this.id } } }));
    return this;
  }

  /** Starts a stopped sandbox. */
  async start(): Promise<this> {
    this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/start", { params: { path: { id: this.id } } }));
    return this;
  }

  /** Destroys it; its snapshots stay unless `withSnapshots`. */
  async destroy(options: { withSnapshots?: boolean } = {}): Promise<void> {
    const query = { force: true, ...(options.withSnapshots ? { with_snapshots: true } : {}) };
    await unwrap(this.client.api.DELETE("/v1/sandboxes/{id}", { params: { path: { id: this.id }, query } }));
  }

  /** `destroy()`, unless it is gone already: for `await using sbx = await Sandbox.create(…)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.destroy();
    } catch (e) {
      if (!(e instanceof CairnError && e.code === "not_found")) throw e;
    }
  }
}

/**
 * Runs `body` with a new sandbox and destroys it afterwards, however `body` ends (for code
 * that cannot use `await using`).
 */
export async function withSandbox<T>(options: CreateOptions, body: (sandbox: Sandbox) => Promise<T>): Promise<T> {
  const sandbox = await Sandbox.create(options);
  try {
    return await body(sandbox);
  } finally {
    await sandbox[Symbol.asyncDispose]();
  }
}

/** A fork batch that made some forks but not all: the first failure, with the forks made. */
export type ForkError = CairnError & { made: Sandbox[] };

/** A snapshot: fork it, restore it, diff it, delete it. */
export class Snapshot {
  /** The connection it was read through. */
  readonly client: Cairn;
  /** What cairnd said of it. */
  info: SnapshotInfo;

  /** Wraps an answer of cairnd (use `sandbox.snapshot()` or `cairn.snapshot(ref)`). */
  constructor(client: Cairn, info: SnapshotInfo) {
    this.client = client;
    this.info = info;
  }

  /** `snap-` and 8 hex digits. */
  get id(): string {
    return this.info.id;
  }

  /** Its name, if it has one. */
  get name(): string | undefined {
    return this.info.name || undefined;
  }

  /** Whether it holds process memory. */
  get stateful(): boolean {
    return Boolean(this.info.stateful);
  }

  /**
   * `count` new sandboxes from it, made concurrently by cairnd (`name: "x"` names them
   * `x-1`…). When some are made but not all, throws the first failure's error with the
   * forks made in `error.made`.
   */
  async fork(count = 1, options: ForkOptions = {}): Promise<Sandbox[]> {
    const { env, ...fields } = options;
    const body = withoutUndefined({ ...fields, env: envList(env), count }) as ForkRequest;
    const batch = await unwrap(
      this.client.api.POST("/v1/snapshots/{id}/fork", { params: { path: { id: this.id } }, body }),
    );
    const made = batch.sandboxes.map((i) => new Sandbox(this.client, i));
    const failed = batch.failed ?? [];
    if (failed.length > 0) {
      const first = failed[0] as { code: string };
      const err = errorFrom(STATUS[first.code] ?? 409, { error: first }) as ForkError;
      err.made = made;
      throw err;
    }
    return made;
  }

  /** Restores it in place into its own sandbox (or into `to`). */
  async restore(options: { to?: Sandbox | string; fresh?: boolean } = {}): Promise<Sandbox> {
    const to = options.to === undefined ? undefined : typeof options.to === "string" ? options.to : options.to.id;
    const info = await unwrap(
      this.client.api.POST("/v1/snapshots/{id}/restore", {
        params: { path: { id: this.id } },
        body: withoutUndefined({ to, fresh: options.fresh || undefined }),
      }),
    );
    return new Sandbox(this.client, info);
  }

  /** Paths changed since it (in its sandbox now, or in the snapshot `against`). */
  diff(options: { against?: SnapshotRef } = {}): Promise<DiffEntry[]> {
    const query = options.against === undefined ? {} : { against: snapshotRef(options.against) };
    return unwrap(this.client.api.GET("/v1/snapshots/{id}/diff", { params: { path: { id: this.id }, query } }));
  }

  /**
   * Downloads it as one archive (`tar.zst` or `tar.gz`) to the file `path`, streamed; resolves
   * to its size. Any Cairn host imports it (`cairn.importSnapshot(path)`) as the same snapshot.
   */
  async export(path: string, options: { format?: "tar.zst" | "tar.gz" } = {}): Promise<number> {
    const format = options.format ?? "tar.zst";
    if (format !== "tar.zst" && format !== "tar.gz") {
      throw new TypeError(`unknown archive format ${JSON.stringify(format)}: use tar.zst or tar.gz`);
    }
    const r = await this.client.api.GET("/v1/snapshots/{id}/archive", {
      params: { path: { id: this.id }, query: { format } },
      parseAs: "stream",
    });
    if (!r.response.ok) throw errorFrom(r.response.status, r.error);
    if (!r.data) throw new CairnError("the archive answer had no body", { code: "unexpected_answer" });
    let size = 0;
    const body = Readable.fromWeb(r.data as NodeReadableStream<Uint8Array>);
    body.on("data", (chunk: Uint8Array) => {
      size += chunk.length;
    });
    await pipeline(body, createWriteStream(path));
    return size;
  }

  /** Deletes it; sandboxes made from it keep working. */
  async delete(): Promise<void> {
    await unwrap(this.client.api.DELETE("/v1/snapshots/{id}", { params: { path: { id: this.id } } }));
  }
}

/** A sandbox's files (`sandbox.files`). */
export class Files {
  readonly #sandbox: Sandbox;

  /** The files of `sandbox`. */
  constructor(sandbox: Sandbox) {
    this.#sandbox = sandbox;
  }

  get #api() {
    return this.#sandbox.client.api;
  }

  get #id(): string {
    return this.#sandbox.id;
  }

  /** A file's bytes. */
  async read(path: string): Promise<Uint8Array> {
    const r = await this.#api.GET("/v1/sandboxes/{id}/files", {
      params: { path: { id: this.#id }, query: { path } },
      parseAs: "arrayBuffer",
    });
    if (!r.response.ok) throw errorFrom(r.response.status, r.error);
    return new Uint8Array(r.data ?? new ArrayBuffer(0));
  }

  /** A file's text (UTF-8). */
  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.read(path));
  }

  /** Writes a file whole (`mode`: its permission bits, e.g. `0o755`); returns its entry. */
  async write(path: string, data: Uint8Array | string, options: { mode?: number } = {}): Promise<FileEntry> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const query = options.mode === undefined ? { path } : { path, mode: options.mode.toString(8) };
    return unwrap(
      this.#api.PUT("/v1/sandboxes/{id}/files", {
        params: { path: { id: this.#id }, query },
        body: bytes as unknown as string,
        bodySerializer: (b: unknown) => b as string,
        headers: { "content-type": "application/octet-stream" },
      }),
    ) as Promise<FileEntry>;
  }

  /** A directory's entries (`depth` levels down). */
  list(path = "/", options: { depth?: number } = {}): Promise<FileEntry[]> {
    const query = { path, depth: options.depth ?? 1 };
    return unwrap(this.#api.GET("/v1/sandboxes/{id}/files/list", { params: { path: { id: this.#id }, query } }));
  }

  /** What `path` is. */
  stat(path: string): Promise<FileEntry> {
    return unwrap(this.#api.GET("/v1/sandboxes/{id}/files/stat", { params: { path: { id: this.#id }, query: { path } } }));
  }

  /** Whether `path` exists. */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      if (e instanceof CairnError && e.code === "not_found") return false;
      throw e;
    }
  }

  /** Makes a directory (`parents`: and those above it). */
  mkdir(path: string, options: { parents?: boolean } = {}): Promise<FileEntry> {
    return unwrap(
      this.#api.POST("/v1/sandboxes/{id}/files/mkdir", {
        params: { path: { id: this.#id } },
        body: { path, parents: options.parents ?? false },
      }),
    );
  }

  /** Removes a file (with `recursive`, a directory and what is below). */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    const query = options.recursive ? { path, recursive: true } : { path };
    await unwrap(this.#api.DELETE("/v1/sandboxes/{id}/files", { params: { path: { id: this.#id }, query } }));
  }
}
