/**
 * The hand-written layer over the generated client: `Sandbox` (create, exec, files, snapshot,
 * restore, pause, resume, destroy), `Snapshot` (fork, restore, diff, delete) and `Files`. The
 * twin of the Python SDK's `AsyncSandbox`, method for method where TypeScript allows.
 */
import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { defaultClient } from "./cairn.js";
import { unwrap } from "./connection.js";
import { CairnError, STATUS, errorFrom } from "./errors.js";
import { backgroundPid, collect, execBody, ndjsonEvents, } from "./exec.js";
function envList(env) {
    if (env === undefined || Array.isArray(env))
        return env;
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
function withoutUndefined(o) {
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
function snapshotRef(snapshot) {
    return typeof snapshot === "string" ? snapshot : snapshot.id;
}
/**
 * A sandbox: `await Sandbox.create({ image })`. `await using sbx = …` (TypeScript ≥ 5.2) or
 * `withSandbox(…)` destroys it at the end.
 */
export class Sandbox {
    /** The connection it was made through. */
    client;
    /** What cairnd said of it last (`refresh()`). */
    info;
    /** Its files. */
    files;
    /** Wraps an answer of cairnd (use `Sandbox.create` or `cairn.sandbox(id)`). */
    constructor(client, info) {
        this.client = client;
        this.info = info;
        this.files = new Files(this);
    }
    /** `sbx-` and 8 hex digits. */
    get id() {
        return this.info.id;
    }
    /** Its name, if it has one. */
    get name() {
        return this.info.name || undefined;
    }
    /** `running`, `paused`, `stopped`… as of the last answer (`refresh()`). */
    get state() {
        return this.info.state;
    }
    /** Creates and starts a sandbox (`image` defaults to cairnd's default image). */
    static async create(options = {}) {
        const { client, env, ...fields } = options;
        const c = defaultClient(client);
        const body = withoutUndefined({ ...fields, env: envList(env) });
        const info = await unwrap(c.api.POST("/v1/sandboxes", { body }));
        return new Sandbox(c, info);
    }
    /** A new sandbox forked from `snapshot` (`fresh`: boot fresh on its files, without its memory). */
    static async fromSnapshot(snapshot, options = {}) {
        const client = options.client ?? (typeof snapshot === "string" ? undefined : snapshot.client);
        const { fresh, ...rest } = options;
        return Sandbox.create({ ...rest, client, from_snapshot: snapshotRef(snapshot), fresh: fresh || undefined });
    }
    /** Reads its state again. */
    async refresh() {
        this.info = await unwrap(this.client.api.GET("/v1/sandboxes/{id}", { params: { path: { id: this.id } } }));
        return this;
    }
    /** Runs `cmd` and yields its events as they come: output, then one `exit`. */
    async *execStream(cmd, options = {}) {
        const r = await this.client.api.POST("/v1/sandboxes/{id}/exec", {
            params: { path: { id: this.id } },
            body: execBody(cmd, options),
            parseAs: "stream",
        });
        if (!r.response.ok)
            throw errorFrom(r.response.status, r.error);
        if (!r.data)
            throw new CairnError("the exec answer had no body", { code: "unexpected_answer" });
        yield* ndjsonEvents(r.data);
    }
    /**
     * Runs `cmd` to its end (a string runs under `/bin/sh -c`), streaming its output to
     * `onStdout`/`onStderr` as it comes; returns its exit code and output. A non-zero exit is
     * not an exception.
     */
    exec(cmd, options = {}) {
        return collect(this.execStream(cmd, options), options);
    }
    /**
     * Starts `cmd` in the background (a server, a long job: a child of the sandbox's init, so
     * stateful snapshots carry it; output on /dev/null unless it redirects it); returns its pid.
     */
    async execBackground(cmd, options = {}) {
        const r = await this.client.api.POST("/v1/sandboxes/{id}/exec", {
            params: { path: { id: this.id } },
            body: { ...execBody(cmd, options), detach: true },
            parseAs: "text",
        });
        if (!r.response.ok)
            throw errorFrom(r.response.status, r.error);
        return backgroundPid(r.data ?? "");
    }
    /** Its processes. */
    processes() {
        return unwrap(this.client.api.GET("/v1/sandboxes/{id}/processes", { params: { path: { id: this.id } } }));
    }
    /** Sends `signal` (`TERM`, `KILL`, …) to one of its processes. */
    async signal(pid, signal = "TERM") {
        await unwrap(this.client.api.POST("/v1/sandboxes/{id}/processes/{pid}/signal", {
            params: { path: { id: this.id, pid } },
            body: { signal },
        }));
    }
    /** Snapshots it: its files, and with `stateful` its processes' memory too. */
    async snapshot(options = {}) {
        const info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/snapshots", {
            params: { path: { id: this.id } },
            body: withoutUndefined({ name: options.name, stateful: options.stateful }),
        }));
        return new Snapshot(this.client, info);
    }
    /** Its snapshots, oldest first (`all`: automatic, failed and deleted too). */
    async snapshots(options = {}) {
        const query = options.all ? { all: true } : {};
        const infos = await unwrap(this.client.api.GET("/v1/sandboxes/{id}/snapshots", { params: { path: { id: this.id }, query } }));
        return infos.map((i) => new Snapshot(this.client, i));
    }
    /** Puts `snapshot`'s state back into this sandbox, in place: everything since is discarded. */
    async restore(snapshot, options = {}) {
        this.info = await unwrap(this.client.api.POST("/v1/snapshots/{id}/restore", {
            params: { path: { id: snapshotRef(snapshot) } },
            body: withoutUndefined({ to: this.id, fresh: options.fresh || undefined }),
        }));
        return this;
    }
    /** Freezes it (with an automatic snapshot); `releaseMemory` writes its memory out and frees it. */
    async pause(options = {}) {
        const query = options.releaseMemory ? { release_memory: true } : {};
        this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/pause", { params: { path: { id: this.id }, query } }));
        return this;
    }
    /** Continues a paused sandbox. */
    async resume() {
        this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/resume", { params: { path: { id: this.id } } }));
        return this;
    }
    /** Stops its processes; its files stay. */
    async stop() {
        this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/stop", { params: { path: { id: this.id } } }));
        return this;
    }
    /** Starts a stopped sandbox. */
    async start() {
        this.info = await unwrap(this.client.api.POST("/v1/sandboxes/{id}/start", { params: { path: { id: this.id } } }));
        return this;
    }
    /** Destroys it; its snapshots stay unless `withSnapshots`. */
    async destroy(options = {}) {
        const query = { force: true, ...(options.withSnapshots ? { with_snapshots: true } : {}) };
        await unwrap(this.client.api.DELETE("/v1/sandboxes/{id}", { params: { path: { id: this.id }, query } }));
    }
    /** `destroy()`, unless it is gone already: for `await using sbx = await Sandbox.create(…)`. */
    async [Symbol.asyncDispose]() {
        try {
            await this.destroy();
        }
        catch (e) {
            if (!(e instanceof CairnError && e.code === "not_found"))
                throw e;
        }
    }
}
/**
 * Runs `body` with a new sandbox and destroys it afterwards, however `body` ends (for code
 * that cannot use `await using`).
 */
export async function withSandbox(options, body) {
    const sandbox = await Sandbox.create(options);
    try {
        return await body(sandbox);
    }
    finally {
        await sandbox[Symbol.asyncDispose]();
    }
}
/** A snapshot: fork it, restore it, diff it, delete it. */
export class Snapshot {
    /** The connection it was read through. */
    client;
    /** What cairnd said of it. */
    info;
    /** Wraps an answer of cairnd (use `sandbox.snapshot()` or `cairn.snapshot(ref)`). */
    constructor(client, info) {
        this.client = client;
        this.info = info;
    }
    /** `snap-` and 8 hex digits. */
    get id() {
        return this.info.id;
    }
    /** Its name, if it has one. */
    get name() {
        return this.info.name || undefined;
    }
    /** Whether it holds process memory. */
    get stateful() {
        return Boolean(this.info.stateful);
    }
    /**
     * `count` new sandboxes from it, made concurrently by cairnd (`name: "x"` names them
     * `x-1`…). When some are made but not all, throws the first failure's error with the
     * forks made in `error.made`.
     */
    async fork(count = 1, options = {}) {
        const { env, ...fields } = options;
        const body = withoutUndefined({ ...fields, env: envList(env), count });
        const batch = await unwrap(this.client.api.POST("/v1/snapshots/{id}/fork", { params: { path: { id: this.id } }, body }));
        const made = batch.sandboxes.map((i) => new Sandbox(this.client, i));
        const failed = batch.failed ?? [];
        if (failed.length > 0) {
            const first = failed[0];
            const err = errorFrom(STATUS[first.code] ?? 409, { error: first });
            err.made = made;
            throw err;
        }
        return made;
    }
    /** Restores it in place into its own sandbox (or into `to`). */
    async restore(options = {}) {
        const to = options.to === undefined ? undefined : typeof options.to === "string" ? options.to : options.to.id;
        const info = await unwrap(this.client.api.POST("/v1/snapshots/{id}/restore", {
            params: { path: { id: this.id } },
            body: withoutUndefined({ to, fresh: options.fresh || undefined }),
        }));
        return new Sandbox(this.client, info);
    }
    /** Paths changed since it (in its sandbox now, or in the snapshot `against`). */
    diff(options = {}) {
        const query = options.against === undefined ? {} : { against: snapshotRef(options.against) };
        return unwrap(this.client.api.GET("/v1/snapshots/{id}/diff", { params: { path: { id: this.id }, query } }));
    }
    /**
     * Downloads it as one archive (`tar.zst` or `tar.gz`) to the file `path`, streamed; resolves
     * to its size. Any Cairn host imports it (`cairn.importSnapshot(path)`) as the same snapshot.
     */
    async export(path, options = {}) {
        const format = options.format ?? "tar.zst";
        if (format !== "tar.zst" && format !== "tar.gz") {
            throw new TypeError(`unknown archive format ${JSON.stringify(format)}: use tar.zst or tar.gz`);
        }
        const r = await this.client.api.GET("/v1/snapshots/{id}/archive", {
            params: { path: { id: this.id }, query: { format } },
            parseAs: "stream",
        });
        if (!r.response.ok)
            throw errorFrom(r.response.status, r.error);
        if (!r.data)
            throw new CairnError("the archive answer had no body", { code: "unexpected_answer" });
        let size = 0;
        const body = Readable.fromWeb(r.data);
        body.on("data", (chunk) => {
            size += chunk.length;
        });
        await pipeline(body, createWriteStream(path));
        return size;
    }
    /** Deletes it; sandboxes made from it keep working. */
    async delete() {
        await unwrap(this.client.api.DELETE("/v1/snapshots/{id}", { params: { path: { id: this.id } } }));
    }
}
/** A sandbox's files (`sandbox.files`). */
export class Files {
    #sandbox;
    /** The files of `sandbox`. */
    constructor(sandbox) {
        this.#sandbox = sandbox;
    }
    get #api() {
        return this.#sandbox.client.api;
    }
    get #id() {
        return this.#sandbox.id;
    }
    /** A file's bytes. */
    async read(path) {
        const r = await this.#api.GET("/v1/sandboxes/{id}/files", {
            params: { path: { id: this.#id }, query: { path } },
            parseAs: "arrayBuffer",
        });
        if (!r.response.ok)
            throw errorFrom(r.response.status, r.error);
        return new Uint8Array(r.data ?? new ArrayBuffer(0));
    }
    /** A file's text (UTF-8). */
    async readText(path) {
        return new TextDecoder().decode(await this.read(path));
    }
    /** Writes a file whole (`mode`: its permission bits, e.g. `0o755`); returns its entry. */
    async write(path, data, options = {}) {
        const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
        const query = options.mode === undefined ? { path } : { path, mode: options.mode.toString(8) };
        return unwrap(this.#api.PUT("/v1/sandboxes/{id}/files", {
            params: { path: { id: this.#id }, query },
            body: bytes,
            bodySerializer: (b) => b,
            headers: { "content-type": "application/octet-stream" },
        }));
    }
    /** A directory's entries (`depth` levels down). */
    list(path = "/", options = {}) {
        const query = { path, depth: options.depth ?? 1 };
        return unwrap(this.#api.GET("/v1/sandboxes/{id}/files/list", { params: { path: { id: this.#id }, query } }));
    }
    /** What `path` is. */
    stat(path) {
        return unwrap(this.#api.GET("/v1/sandboxes/{id}/files/stat", { params: { path: { id: this.#id }, query: { path } } }));
    }
    /** Whether `path` exists. */
    async exists(path) {
        try {
            await this.stat(path);
            return true;
        }
        catch (e) {
            if (e instanceof CairnError && e.code === "not_found")
                return false;
            throw e;
        }
    }
    /** Makes a directory (`parents`: and those above it). */
    mkdir(path, options = {}) {
        return unwrap(this.#api.POST("/v1/sandboxes/{id}/files/mkdir", {
            params: { path: { id: this.#id } },
            body: { path, parents: options.parents ?? false },
        }));
    }
    /** Removes a file (with `recursive`, a directory and what is below). */
    async remove(path, options = {}) {
        const query = options.recursive ? { path, recursive: true } : { path };
        await unwrap(this.#api.DELETE("/v1/sandboxes/{id}/files", { params: { path: { id: this.#id }, query } }));
    }
}
