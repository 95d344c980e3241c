/**
 * Typed errors: one class per error code of the API (docs/api.md#errors).
 *
 * Every error cairnd answers is `{"error": {"code", "message", "details"?}}`; the SDK throws
 * the class of its code (`NotFound`, `LimitExceeded`…), all subclasses of `CairnError`, with
 * `code`, `message`, `status` and `details`. A code this SDK does not know yet throws
 * `CairnError` itself. The twin of the Python SDK's `cairn.errors`.
 */
/** An error cairnd answered (or the SDK met talking to it). */
export declare class CairnError extends Error {
    /** The API's stable machine-readable code (`not_found`, `limit_exceeded`…). */
    readonly code: string;
    /** The HTTP status it came with, if it came from an answer. */
    readonly status: number | undefined;
    /** Structured facts for some codes (`runtime_identity_mismatch`: `snapshot`, `recorded`, `host`). */
    readonly details: unknown;
    constructor(message: string, options?: {
        code?: string;
        status?: number;
        details?: unknown;
        cause?: unknown;
    });
    toString(): string;
}
/** 400: the request is malformed (a bad name, size, path, value above a cap…). */
export declare class InvalidArgument extends CairnError {
    static readonly CODE: string;
}
/** 401: no, unknown, revoked or expired token. */
export declare class Unauthenticated extends CairnError {
    static readonly CODE: string;
}
/** 403: only the operator may do this. */
export declare class Forbidden extends CairnError {
    static readonly CODE: string;
}
/** 404: no such sandbox, snapshot, image or path for this account. */
export declare class NotFound extends CairnError {
    static readonly CODE: string;
}
/** 405: a known path with another method. */
export declare class MethodNotAllowed extends CairnError {
    static readonly CODE: string;
}
/** 408: the request body stopped arriving. */
export declare class RequestTimeout extends CairnError {
    static readonly CODE: string;
}
/** 409: a name is taken, or the object is in the wrong state. */
export declare class Conflict extends CairnError {
    static readonly CODE: string;
}
/** 409: a limit (snapshots per sandbox, storage, disk…) would be exceeded. */
export declare class LimitExceeded extends Conflict {
    static readonly CODE: string;
}
/** 409: a stateful snapshot's processes cannot resume on this host; `fresh: true` works. */
export declare class RuntimeIdentityMismatch extends Conflict {
    static readonly CODE: string;
}
/** 409: the sandbox cannot be checkpointed at this moment: retry. */
export declare class Busy extends Conflict {
    static readonly CODE: string;
}
/** 409: the processes hold something a checkpoint cannot save. */
export declare class CheckpointFailed extends Conflict {
    static readonly CODE: string;
}
/** 413: a body over a cap. */
export declare class TooLarge extends CairnError {
    static readonly CODE: string;
}
/** 415: a JSON endpoint got another Content-Type. */
export declare class UnsupportedMediaType extends CairnError {
    static readonly CODE: string;
}
/** 500: cairnd's own failure; the message has a reference into its log. */
export declare class Internal extends CairnError {
    static readonly CODE: string;
}
/** 503: a host prerequisite or service (a runtime, CRIU, the remote store) is missing. */
export declare class Unavailable extends CairnError {
    static readonly CODE: string;
}
/** 503: a connection over cairnd's caps. */
export declare class TooManyConnections extends Unavailable {
    static readonly CODE: string;
}
/** 507: the storage pool has no room. */
export declare class PoolFull extends CairnError {
    static readonly CODE: string;
}
/**
 * cairnd cannot be reached (not running, a wrong address, a socket without permission); the
 * SDK's own code, as the CLI's `connection_failed`.
 */
export declare class ConnectionFailed extends CairnError {
    static readonly CODE: string;
}
type ErrorClass = (new (message: string, options?: {
    code?: string;
    status?: number;
    details?: unknown;
    cause?: unknown;
}) => CairnError) & {
    CODE: string;
};
/** Every class, by the code cairnd sends. */
export declare const ERRORS: ReadonlyMap<string, ErrorClass>;
/** The HTTP status of every code. */
export declare const STATUS: Readonly<Record<string, number>>;
/** The typed error for an answer with `status` and `body` (text or parsed JSON). */
export declare function errorFrom(status: number, body: unknown): CairnError;
export {};
