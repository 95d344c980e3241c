/**
 * The exec stream: its events (`ExecEvent`), the NDJSON reader that turns the answer's bytes
 * into them as they come, and what a finished command did (`ExecResult`). The generated types
 * leave this stream out (generators drop NDJSON), so it is read here by hand.
 */
import { CairnError } from "./errors.js";
/** One NDJSON line of the stream as an event. */
export function parseEvent(line) {
    const raw = JSON.parse(line);
    const ev = {
        type: typeof raw.type === "string" ? raw.type : "",
        data: typeof raw.data === "string" && raw.data ? new Uint8Array(Buffer.from(raw.data, "base64")) : new Uint8Array(),
    };
    if (typeof raw.code === "number" || typeof raw.code === "string")
        ev.code = raw.code;
    if (typeof raw.message === "string")
        ev.message = raw.message;
    if (typeof raw.pid === "number")
        ev.pid = raw.pid;
    return ev;
}
function parseLine(line) {
    try {
        return parseEvent(line);
    }
    catch (e) {
        throw new CairnError(`cairnd sent an exec stream line that is not JSON: ${line.slice(0, 200)}`, {
            code: "unexpected_answer",
            cause: e,
        });
    }
}
/**
 * The events of an NDJSON byte stream, one per line, as they arrive. A stream that breaks,
 * or ends in the middle of a line, throws `CairnError` with code `connection_failed`.
 */
export async function* ndjsonEvents(body) {
    const decoder = new TextDecoder();
    let pending = "";
    const chunks = body[Symbol.asyncIterator]();
    try {
        for (;;) {
            let next;
            try {
                next = await chunks.next();
            }
            catch (e) {
                throw new CairnError(`the exec stream broke (${String(e)})`, { code: "connection_failed", cause: e });
            }
            if (next.done)
                break;
            pending += decoder.decode(next.value, { stream: true });
            let nl;
            while ((nl = pending.indexOf("\n")) >= 0) {
                const line = pending.slice(0, nl);
                pending = pending.slice(nl + 1);
                if (line.trim())
                    yield parseLine(line);
            }
        }
    }
    finally {
        // A caller that stops reading early (`break`) ends the answer too.
        await chunks.return?.();
    }
    pending += decoder.decode();
    if (!pending.trim())
        return;
    let last;
    try {
        last = parseEvent(pending);
    }
    catch (e) {
        throw new CairnError("the exec stream ended in the middle of an event (the connection broke)", {
            code: "connection_failed",
            cause: e,
        });
    }
    yield last;
}
/** What a command did: its exit code, its output, and cairn's word when it has one. */
export class ExecResult {
    /** Its exit code (-1 when killed without one). */
    exitCode = -1;
    /** Its stdout, whole. */
    stdout = new Uint8Array();
    /** Its stderr, whole. */
    stderr = new Uint8Array();
    /** Cairn's word on how it ended (a timeout, a signal…), if any. */
    message;
    /** Every event, in order. */
    events = [];
    /** stdout as text (UTF-8). */
    get text() {
        return new TextDecoder().decode(this.stdout);
    }
    /** stderr as text (UTF-8). */
    get errorText() {
        return new TextDecoder().decode(this.stderr);
    }
    /** Whether it exited with 0. */
    get ok() {
        return this.exitCode === 0;
    }
}
function concat(a, b) {
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
}
/** Gathers a stream's events into an `ExecResult`, calling the output callbacks. */
export async function collect(events, callbacks = {}) {
    const result = new ExecResult();
    let ended = false;
    for await (const ev of events) {
        result.events.push(ev);
        if (ev.type === "stdout") {
            result.stdout = concat(result.stdout, ev.data);
            await callbacks.onStdout?.(ev.data);
        }
        else if (ev.type === "stderr") {
            result.stderr = concat(result.stderr, ev.data);
            await callbacks.onStderr?.(ev.data);
        }
        else if (ev.type === "exit") {
            result.exitCode = typeof ev.code === "number" ? ev.code : -1;
            result.message = ev.message;
            ended = true;
        }
        else if (ev.type === "error") {
            throw new CairnError(ev.message ?? "the command failed", { code: String(ev.code ?? "failed") });
        }
    }
    if (!ended) {
        throw new CairnError("the exec stream ended without an exit event (the connection broke)", {
            code: "connection_failed",
        });
    }
    return result;
}
/** A command as the API's argument list. */
export function argv(cmd) {
    return typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd.map(String);
}
/** The JSON of an exec request. */
export function execBody(cmd, options = {}) {
    const body = { cmd: argv(cmd) };
    if (options.env)
        body.env = Object.entries(options.env).map(([k, v]) => `${k}=${v}`);
    if (options.workdir !== undefined)
        body.workdir = options.workdir;
    if (options.timeout !== undefined)
        body.timeout_secs = Math.trunc(options.timeout);
    return body;
}
/** The pid a detached exec's one-event stream names, or its error. */
export function backgroundPid(stream) {
    for (const line of stream.split("\n")) {
        if (!line.trim())
            continue;
        const ev = parseEvent(line);
        if (ev.type === "started" && ev.pid !== undefined)
            return ev.pid;
        if (ev.type === "exit") {
            throw new CairnError(ev.message ?? `the command ended at once with code ${String(ev.code)}`, {
                code: "cannot_start",
                details: { exit_code: ev.code },
            });
        }
        if (ev.type === "error") {
            throw new CairnError(ev.message ?? "the command could not start", { code: String(ev.code ?? "failed") });
        }
    }
    throw new CairnError("the background exec's answer named no process", { code: "unexpected_answer" });
}
