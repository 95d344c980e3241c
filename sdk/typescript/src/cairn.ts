/**
 * `Cairn`: a connection to cairnd, and the caller's sandboxes, snapshots and images through it.
 * `new Cairn()` reads the CLI's variables (`CAIRN_HOST`, `CAIRN_TOKEN`, `CAIRN_HOME`).
 */

import { open } from "node:fs/promises";
import { Readable } from "node:stream";

import { type Api, type CairnOptions, type Connection, connect, endpoint, unwrap } from "./connection.js";
import { errorFrom } from "./errors.js";
import { type CreateOptions, Sandbox, Snapshot, type SnapshotInfo } from "./sandbox.js";
import type { components } from "./schema.js";

/** An image the caller can use. */
export type ImageInfo = components["schemas"]["ImageInfo"];

/**
 * A connection to cairnd: `new Cairn({ host: "http://127.0.0.1:7421", token: "ck_…" })`, the
 * operator's socket `new Cairn({ host: "/var/lib/cairn/cairnd.sock" })`, or `new Cairn()` from
 * the environment. `await cairn.close()` (or `await using`) ends its connections.
 */
export class Cairn {
  /** The generated client (openapi-fetch, typed from docs/openapi.json), for what the layer does not wrap. */
  readonly api: Api;
  /** The address it connects to. */
  readonly where: string;
  readonly #conn: Connection;

  constructor(options: CairnOptions = {}) {
    this.#conn = connect(endpoint(options));
    this.api = this.#conn.api;
    this.where = this.#conn.where;
  }

  /** Ends its connections. */
  async close(): Promise<void> {
    await this.#conn.agent.close();
  }

  /** `close()`, for `await using cairn = new Cairn(…)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** `Sandbox.create` on this connection. */
  createSandbox(options: CreateOptions = {}): Promise<Sandbox> {
    return Sandbox.create({ ...options, client: this });
  }

  /** One of the caller's sandboxes, by id or name. */
  async sandbox(idOrName: string): Promise<Sandbox> {
    const info = await unwrap(this.api.GET("/v1/sandboxes/{id}", { params: { path: { id: idOrName } } }));
    return new Sandbox(this, info);
  }

  /** The caller's sandboxes. */
  async sandboxes(): Promise<Sandbox[]> {
    const infos = await unwrap(this.api.GET("/v1/sandboxes"));
    return infos.map((i) => new Sandbox(this, i));
  }

  /** One snapshot: its id, `NAME` or `SANDBOX:NAME`. */
  async snapshot(ref: string): Promise<Snapshot> {
    const info = await unwrap(this.api.GET("/v1/snapshots/{id}", { params: { path: { id: ref } } }));
    return new Snapshot(this, info);
  }

  /** The caller's snapshots, oldest first (`all`: automatic, failed and deleted too). */
  async snapshots(options: { all?: boolean } = {}): Promise<Snapshot[]> {
    const query = options.all ? { all: true } : {};
    const infos: SnapshotInfo[] = await unwrap(this.api.GET("/v1/snapshots", { params: { query } }));
    return infos.map((i) => new Snapshot(this, i));
  }

  /**
   * Imports a snapshot archive (from `snapshot.export`, `cairn snapshot export`) from the file
   * `path`, streamed: a new snapshot of this account (named `name`, else as in the archive).
   */
  async importSnapshot(path: string, options: { name?: string } = {}): Promise<Snapshot> {
    const query = options.name ? { name: options.name } : {};
    // Opened first, so that a file that cannot be read fails as itself (ENOENT…).
    const file = await open(path);
    const body = Readable.toWeb(file.createReadStream());
    const r = await this.api.POST("/v1/snapshots", {
      params: { query },
      body: body as unknown as string,
      bodySerializer: (b: unknown) => b as string,
      headers: { "content-type": "application/octet-stream" },
      duplex: "half",
    } as Parameters<Api["POST"]>[1]);
    if (!r.response.ok) throw errorFrom(r.response.status, r.error);
    return new Snapshot(this, r.data as unknown as SnapshotInfo);
  }

  /** The images the caller can use. */
  images(): Promise<ImageInfo[]> {
    return unwrap(this.api.GET("/v1/images"));
  }
}

let fromEnvironment: Cairn | undefined;

/** `client`, or the one connection made from the environment (`new Cairn()`) on first use. */
export function defaultClient(client?: Cairn): Cairn {
  if (client) return client;
  fromEnvironment ??= new Cairn();
  return fromEnvironment;
}
