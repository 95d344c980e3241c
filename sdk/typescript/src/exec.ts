/**
 * The exec stream: its events (`ExecEvent`), the NDJSON reader that turns the answer's bytes
 * into them as they come, and what a finished command did (`ExecResult`). The generated types
 * leave this stream out (generators drop NDJSON), so it is read here by hand.
 */

import { CairnError } from "./errors.js";

/** A command: a list of arguments, or one string run by `/bin/sh -c`. */
export type Command = string | readonly string[];

/** What a command gets besides its arguments. */
export interface ExecOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The directory it runs in (else the sandbox's). */
  workdir?: string;
  /** Seconds before cairnd kills it. */
  timeout?: number;
}

/** The callbacks `exec` calls with output as it comes. */
export interface ExecCallbacks {
  /** Each chunk of stdout, as it arrives. */
  onStdout?: (data: Uint8Array) => unknown;
  /** Each chunk of stderr, as it arrives. */
  onStderr?: (data: Uint8Array) => unknown;
}

/**
 * One event of an exec stream: `stdout`/`stderr` with `data`, `started` with `pid`, and last
 * `exit` with `code` (and `message` when cairn knows more) or `error`.
 */
export interface ExecEvent {
  /** `started`, `stdout`, `stderr`, `exit` or `error`. */
  type: string;
  /** The output's bytes (`stdout`, `stderr`); empty otherwise. */
  data: Uint8Array;
  /** The exit code (`exit`), or the error's code (`error`). */
  code?: number | string;
  /** Cairn's word on how it ended (`exit`, `error`). */
  message?: string;
  /** The process's id (`started`). */
  pid?: number;
}

/** One NDJSON line of the stream as an event. */
export function parseEvent(line: string): ExecEvent {
  const raw = JSON.parse(line) as Record<string, unknown>;
  const ev: ExecEvent = {
    type: typeof raw.type === "string" ? raw.type : "",
    data: typeof raw.data === "string" && raw.data ? new Uint8Array(Buffer.from(raw.data, "base64")) : new Uint8Array(),
  };
  if (typeof raw.code === "number" || typeof raw.code === "string") ev.code = raw.code;
  if (typeof raw.message === "string") ev.message = raw.message;
  if (typeof raw.pid === "number") ev.pid = raw.pid;
  return ev;
}

function parseLine(line: string): ExecEvent {
  try {
    return parseEvent(line);
  } catch (e) {
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
export async function* ndjsonEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ExecEvent> {
  const decoder = new TextDecoder();
  let pending = "";
  const chunks = (body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await chunks.next();
      } catch (e) {
        throw new CairnError(`the exec stream broke (${String(e)})`, { code: "connection_failed", cause: e });
      }
      if (next.done) break;
      pending += decoder.decode(next.value, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim()) yield parseLine(line);
      }
    }
  } finally {
    // A caller that stops reading early (`break`) ends the answer too.
    await chunks.return?.();
  }
  pending += decoder.decode();
  if (!pending.trim()) return;
  let last: ExecEvent;
  try {
    last = parseEvent(pending);
  } catch (e) {
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
  stdout: Uint8Array = new Uint8Array();
  /** Its stderr, whole. */
  stderr: Uint8Array = new Uint8Array();
  /** Cairn's word on how it ended (a timeout, a signal…), if any. */
  message: string | undefined;
  /** Every event, in order. */
  events: ExecEvent[] = [];

  /** stdout as text (UTF-8). */
  get text(): string {
    return new TextDecoder().decode(this.stdout);
  }

  /** stderr as text (UTF-8). */
  get errorText(): string {
    return new TextDecoder().decode(this.stderr);
  }

  /** Whether it exited with 0. */
  get ok(): boolean {
    return this.exitCode === 0;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Gathers a stream's events into an `ExecResult`, calling the output callbacks. */
export async function collect(events: AsyncIterable<ExecEvent>, callbacks: ExecCallbacks = {}): Promise<ExecResult> {
  const result = new ExecResult();
  let ended = false;
  for await (const ev of events) {
    result.events.push(ev);
    if (ev.type === "stdout") {
      result.stdout = concat(result.stdout, ev.data);
      await callbacks.onStdout?.(ev.data);
    } else if (ev.type === "stderr") {
      result.stderr = concat(result.stderr, ev.data);
      await callbacks.onStderr?.(ev.data);
    } else if (ev.type === "exit") {
      result.exitCode = typeof ev.code === "number" ? ev.code : -1;
      result.message = ev.message;
      ended = true;
    } else if (ev.type === "error") {
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
export function argv(cmd: Command): string[] {
  return typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd.map(String);
}

/** The JSON of an exec request. */
export function execBody(cmd: Command, options: ExecOptions = {}): Record<string, unknown> {
  const body: Record<string, unknown> = { cmd: argv(cmd) };
  if (options.env) body.env = Object.entries(options.env).map(([k, v]) => `${k}=${v}`);
  if (options.workdir !== undefined) body.workdir = options.workdir;
  if (options.timeout !== undefined) body.timeout_secs = Math.trunc(options.timeout);
  return body;
}

/** The pid a detached exec's one-event stream names, or its error. */
export function backgroundPid(stream: string): number {
  for (const line of stream.split("\n")) {
    if (!line.trim()) continue;
    const ev = parseEvent(line);
    if (ev.type === "started" && ev.pid !== undefined) return ev.pid;
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
