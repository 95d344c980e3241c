/**
 * `Cairn`: a connection to cairnd, and the caller's sandboxes, snapshots and images through it.
 * `new Cairn()` reads the CLI's variables (`CAIRN_HOST`, `CAIRN_TOKEN`, `CAIRN_HOME`).
 */
import { type Api, type CairnOptions } from "./connection.js";
import { type CreateOptions, Sandbox, Snapshot } from "./sandbox.js";
import type { components } from "./schema.js";
/** An image the caller can use. */
export type ImageInfo = components["schemas"]["ImageInfo"];
/**
 * A connection to cairnd: `new Cairn({ host: "http://127.0.0.1:7421", token: "ck_…" })`, the
 * operator's socket `new Cairn({ host: "/var/lib/cairn/cairnd.sock" })`, or `new Cairn()` from
 * the environment. `await cairn.close()` (or `await using`) ends its connections.
 */
export declare class Cairn {
    #private;
    /** The generated client (openapi-fetch, typed from docs/openapi.json), for what the layer does not wrap. */
    readonly api: Api;
    /** The address it connects to. */
    readonly where: string;
    constructor(options?: CairnOptions);
    /** Ends its connections. */
    close(): Promise<void>;
    /** `close()`, for `await using cairn = new Cairn(…)`. */
    [Symbol.asyncDispose](): Promise<void>;
    /** `Sandbox.create` on this connection. */
    createSandbox(options?: CreateOptions): Promise<Sandbox>;
    /** One of the caller's sandboxes, by id or name. */
    sandbox(idOrName: string): Promise<Sandbox>;
    /** The caller's sandboxes. */
    sandboxes(): Promise<Sandbox[]>;
    /** One snapshot: its id, `NAME` or `SANDBOX:NAME`. */
    snapshot(ref: string): Promise<Snapshot>;
    /** The caller's snapshots, oldest first (`all`: automatic, failed and deleted too). */
    snapshots(options?: {
        all?: boolean;
    }): Promise<Snapshot[]>;
    /**
     * Imports a snapshot archive (from `snapshot.export`, `cairn snapshot export`) from the file
     * `path`, streamed: a new snapshot of this account (named `name`, else as in the archive).
     */
    importSnapshot(path: string, options?: {
        name?: string;
    }): Promise<Snapshot>;
    /** The images the caller can use. */
    images(): Promise<ImageInfo[]>;
}
/** `client`, or the one connection made from the environment (`new Cairn()`) on first use. */
export declare function defaultClient(client?: Cairn): Cairn;
