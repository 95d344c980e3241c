/**
 * The hand-written layer over the generated client: `Sandbox` (create, exec, files, snapshot,
 * restore, pause, resume, destroy), `Snapshot` (fork, restore, diff, delete) and `Files`. The
 * twin of the Python SDK's `AsyncSandbox`, method for method where TypeScript allows.
 */
import { type Cairn } from "./cairn.js";
import { CairnError } from "./errors.js";
import { type Command, type ExecCallbacks, type ExecEvent, type ExecOptions, type ExecResult } from "./exec.js";
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
/**
 * A sandbox: `await Sandbox.create({ image })`. `await using sbx = …` (TypeScript ≥ 5.2) or
 * `withSandbox(…)` destroys it at the end.
 */
export declare class Sandbox {
    /** The connection it was made through. */
    readonly client: Cairn;
    /** What cairnd said of it last (`refresh()`). */
    info: SandboxInfo;
    /** Its files. */
    readonly files: Files;
    /** Wraps an answer of cairnd (use `Sandbox.create` or `cairn.sandbox(id)`). */
    constructor(client: Cairn, info: SandboxInfo);
    /** `sbx-` and 8 hex digits. */
    get id(): string;
    /** Its name, if it has one. */
    get name(): string | undefined;
    /** `running`, `paused`, `stopped`… as of the last answer (`refresh()`). */
    get state(): string;
    /** Creates and starts a sandbox (`image` defaults to cairnd's default image). */
    static create(options?: CreateOptions): Promise<Sandbox>;
    /** A new sandbox forked from `snapshot` (`fresh`: boot fresh on its files, without its memory). */
    static fromSnapshot(snapshot: SnapshotRef, options?: ForkOptions & {
        fresh?: boolean;
        client?: Cairn;
    }): Promise<Sandbox>;
    /** Reads its state again. */
    refresh(): Promise<this>;
    /** Runs `cmd` and yields its events as they come: output, then one `exit`. */
    execStream(cmd: Command, options?: ExecOptions): AsyncGenerator<ExecEvent>;
    /**
     * Runs `cmd` to its end (a string runs under `/bin/sh -c`), streaming its output to
     * `onStdout`/`onStderr` as it comes; returns its exit code and output. A non-zero exit is
     * not an exception.
     */
    exec(cmd: Command, options?: ExecOptions & ExecCallbacks): Promise<ExecResult>;
    /**
     * Starts `cmd` in the background (a server, a long job: a child of the sandbox's init, so
     * stateful snapshots carry it; output on /dev/null unless it redirects it); returns its pid.
     */
    execBackground(cmd: Command, options?: Omit<ExecOptions, "timeout">): Promise<number>;
    /** Its processes. */
    processes(): Promise<ProcessInfo[]>;
    /** Sends `signal` (`TERM`, `KILL`, …) to one of its processes. */
    signal(pid: number, signal?: string): Promise<void>;
    /** Snapshots it: its files, and with `stateful` its processes' memory too. */
    snapshot(options?: {
        name?: string;
        stateful?: boolean;
    }): Promise<Snapshot>;
    /** Its snapshots, oldest first (`all`: automatic, failed and deleted too). */
    snapshots(options?: {
        all?: boolean;
    }): Promise<Snapshot[]>;
    /** Puts `snapshot`'s state back into this sandbox, in place: everything since is discarded. */
    restore(snapshot: SnapshotRef, options?: {
        fresh?: boolean;
    }): Promise<this>;
    /** Freezes it (with an automatic snapshot); `releaseMemory` writes its memory out and frees it. */
    pause(options?: {
        releaseMemory?: boolean;
    }): Promise<this>;
    /** Continues a paused sandbox. */
    resume(): Promise<this>;
    /** Stops its processes; its files stay. */
    stop(): Promise<this>;
    /** Starts a stopped sandbox. */
    start(): Promise<this>;
    /** Destroys it; its snapshots stay unless `withSnapshots`. */
    destroy(options?: {
        withSnapshots?: boolean;
    }): Promise<void>;
    /** `destroy()`, unless it is gone already: for `await using sbx = await Sandbox.create(…)`. */
    [Symbol.asyncDispose](): Promise<void>;
}
/**
 * Runs `body` with a new sandbox and destroys it afterwards, however `body` ends (for code
 * that cannot use `await using`).
 */
export declare function withSandbox<T>(options: CreateOptions, body: (sandbox: Sandbox) => Promise<T>): Promise<T>;
/** A fork batch that made some forks but not all: the first failure, with the forks made. */
export type ForkError = CairnError & {
    made: Sandbox[];
};
/** A snapshot: fork it, restore it, diff it, delete it. */
export declare class Snapshot {
    /** The connection it was read through. */
    readonly client: Cairn;
    /** What cairnd said of it. */
    info: SnapshotInfo;
    /** Wraps an answer of cairnd (use `sandbox.snapshot()` or `cairn.snapshot(ref)`). */
    constructor(client: Cairn, info: SnapshotInfo);
    /** `snap-` and 8 hex digits. */
    get id(): string;
    /** Its name, if it has one. */
    get name(): string | undefined;
    /** Whether it holds process memory. */
    get stateful(): boolean;
    /**
     * `count` new sandboxes from it, made concurrently by cairnd (`name: "x"` names them
     * `x-1`…). When some are made but not all, throws the first failure's error with the
     * forks made in `error.made`.
     */
    fork(count?: number, options?: ForkOptions): Promise<Sandbox[]>;
    /** Restores it in place into its own sandbox (or into `to`). */
    restore(options?: {
        to?: Sandbox | string;
        fresh?: boolean;
    }): Promise<Sandbox>;
    /** Paths changed since it (in its sandbox now, or in the snapshot `against`). */
    diff(options?: {
        against?: SnapshotRef;
    }): Promise<DiffEntry[]>;
    /**
     * Downloads it as one archive (`tar.zst` or `tar.gz`) to the file `path`, streamed; resolves
     * to its size. Any Cairn host imports it (`cairn.importSnapshot(path)`) as the same snapshot.
     */
    export(path: string, options?: {
        format?: "tar.zst" | "tar.gz";
    }): Promise<number>;
    /** Deletes it; sandboxes made from it keep working. */
    delete(): Promise<void>;
}
/** A sandbox's files (`sandbox.files`). */
export declare class Files {
    #private;
    /** The files of `sandbox`. */
    constructor(sandbox: Sandbox);
    /** A file's bytes. */
    read(path: string): Promise<Uint8Array>;
    /** A file's text (UTF-8). */
    readText(path: string): Promise<string>;
    /** Writes a file whole (`mode`: its permission bits, e.g. `0o755`); returns its entry. */
    write(path: string, data: Uint8Array | string, options?: {
        mode?: number;
    }): Promise<FileEntry>;
    /** A directory's entries (`depth` levels down). */
    list(path?: string, options?: {
        depth?: number;
    }): Promise<FileEntry[]>;
    /** What `path` is. */
    stat(path: string): Promise<FileEntry>;
    /** Whether `path` exists. */
    exists(path: string): Promise<boolean>;
    /** Makes a directory (`parents`: and those above it). */
    mkdir(path: string, options?: {
        parents?: boolean;
    }): Promise<FileEntry>;
    /** Removes a file (with `recursive`, a directory and what is below). */
    remove(path: string, options?: {
        recursive?: boolean;
    }): Promise<void>;
}
export {};
