/**
 * The exec stream: its events (`ExecEvent`), the NDJSON reader that turns the answer's bytes
 * into them as they come, and what a finished command did (`ExecResult`). The generated types
 * leave this stream out (generators drop NDJSON), so it is read here by hand.
 */
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
export declare function parseEvent(line: string): ExecEvent;
/**
 * The events of an NDJSON byte stream, one per line, as they arrive. A stream that breaks,
 * or ends in the middle of a line, throws `CairnError` with code `connection_failed`.
 */
export declare function ndjsonEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ExecEvent>;
/** What a command did: its exit code, its output, and cairn's word when it has one. */
export declare class ExecResult {
    /** Its exit code (-1 when killed without one). */
    exitCode: number;
    /** Its stdout, whole. */
    stdout: Uint8Array;
    /** Its stderr, whole. */
    stderr: Uint8Array;
    /** Cairn's word on how it ended (a timeout, a signal…), if any. */
    message: string | undefined;
    /** Every event, in order. */
    events: ExecEvent[];
    /** stdout as text (UTF-8). */
    get text(): string;
    /** stderr as text (UTF-8). */
    get errorText(): string;
    /** Whether it exited with 0. */
    get ok(): boolean;
}
/** Gathers a stream's events into an `ExecResult`, calling the output callbacks. */
export declare function collect(events: AsyncIterable<ExecEvent>, callbacks?: ExecCallbacks): Promise<ExecResult>;
/** A command as the API's argument list. */
export declare function argv(cmd: Command): string[];
/** The JSON of an exec request. */
export declare function execBody(cmd: Command, options?: ExecOptions): Record<string, unknown>;
/** The pid a detached exec's one-event stream names, or its error. */
export declare function backgroundPid(stream: string): number;
