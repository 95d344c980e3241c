/**
 * Typed errors: one class per error code of the API (docs/api.md#errors).
 *
 * Every error cairnd answers is `{"error": {"code", "message", "details"?}}`; the SDK throws
 * the class of its code (`NotFound`, `LimitExceeded`…), all subclasses of `CairnError`, with
 * `code`, `message`, `status` and `details`. A code this SDK does not know yet throws
 * `CairnError` itself. The twin of the Python SDK's `cairn.errors`.
 */

/** An error cairnd answered (or the SDK met talking to it). */
export class CairnError extends Error {
  /** The API's stable machine-readable code (`not_found`, `limit_exceeded`…). */
  readonly code: string;
  /** The HTTP status it came with, if it came from an answer. */
  readonly status: number | undefined;
  /** Structured facts for some codes (`runtime_identity_mismatch`: `snapshot`, `recorded`, `host`). */
  readonly details: unknown;

  constructor(message: string, options: { code?: string; status?: number; details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? (new.target as unknown as { CODE?: string }).CODE ?? "failed";
    this.status = options.status;
    this.details = options.details;
  }

  override toString(): string {
    return `${this.name} (${this.code}): ${this.message}`;
  }
}

/** 400: the request is malformed (a bad name, size, path, value above a cap…). */
export class InvalidArgument extends CairnError {
  static readonly CODE: string = "invalid_argument";
}

/** 401: no, unknown, revoked or expired token. */
export class Unauthenticated extends CairnError {
  static readonly CODE: string = "unauthenticated";
}

/** 403: only the operator may do this. */
export class Forbidden extends CairnError {
  static readonly CODE: string = "forbidden";
}

/** 404: no such sandbox, snapshot, image or path for this account. */
export class NotFound extends CairnError {
  static readonly CODE: string = "not_found";
}

/** 405: a known path with another method. */
export class MethodNotAllowed extends CairnError {
  static readonly CODE: string = "method_not_allowed";
}

/** 408: the request body stopped arriving. */
export class RequestTimeout extends CairnError {
  static readonly CODE: string = "request_timeout";
}

/** 409: a name is taken, or the object is in the wrong state. */
export class Conflict extends CairnError {
  static readonly CODE: string = "conflict";
}

/** 409: a limit (snapshots per sandbox, storage, disk…) would be exceeded. */
export class LimitExceeded extends Conflict {
  static override readonly CODE: string = "limit_exceeded";
}

/** 409: a stateful snapshot's processes cannot resume on this host; `fresh: true` works. */
export class RuntimeIdentityMismatch extends Conflict {
  static override readonly CODE: string = "runtime_identity_mismatch";
}

/** 409: the sandbox cannot be checkpointed at this moment: retry. */
export class Busy extends Conflict {
  static override readonly CODE: string = "busy";
}

/** 409: the processes hold something a checkpoint cannot save. */
export class CheckpointFailed extends Conflict {
  static override readonly CODE: string = "checkpoint_failed";
}

/** 413: a body over a cap. */
export class TooLarge extends CairnError {
  static readonly CODE: string = "too_large";
}

/** 415: a JSON endpoint got another Content-Type. */
export class UnsupportedMediaType extends CairnError {
  static readonly CODE: string = "unsupported_media_type";
}

/** 500: cairnd's own failure; the message has a reference into its log. */
export class Internal extends CairnError {
  static readonly CODE: string = "internal";
}

/** 503: a host prerequisite or service (a runtime, CRIU, the remote store) is missing. */
export class Unavailable extends CairnError {
  static readonly CODE: string = "unavailable";
}

/** 503: a connection over cairnd's caps. */
export class TooManyConnections extends Unavailable {
  static override readonly CODE: string = "too_many_connections";
}

/** 507: the storage pool has no room. */
export class PoolFull extends CairnError {
  static readonly CODE: string = "pool_full";
}

/**
 * cairnd cannot be reached (not running, a wrong address, a socket without permission); the
 * SDK's own code, as the CLI's `connection_failed`.
 */
export class ConnectionFailed extends CairnError {
  static readonly CODE: string = "connection_failed";
}

type ErrorClass = (new (
  message: string,
  options?: { code?: string; status?: number; details?: unknown; cause?: unknown },
) => CairnError) & { CODE: string };

const CLASSES: ErrorClass[] = [
  InvalidArgument,
  Unauthenticated,
  Forbidden,
  NotFound,
  MethodNotAllowed,
  RequestTimeout,
  Conflict,
  LimitExceeded,
  RuntimeIdentityMismatch,
  Busy,
  CheckpointFailed,
  TooLarge,
  UnsupportedMediaType,
  Internal,
  Unavailable,
  TooManyConnections,
  PoolFull,
];

/** Every class, by the code cairnd sends. */
export const ERRORS: ReadonlyMap<string, ErrorClass> = new Map(CLASSES.map((c) => [c.CODE, c]));

/** The HTTP status of every code. */
export const STATUS: Readonly<Record<string, number>> = {
  invalid_argument: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  conflict: 409,
  limit_exceeded: 409,
  runtime_identity_mismatch: 409,
  busy: 409,
  checkpoint_failed: 409,
  too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  unavailable: 503,
  too_many_connections: 503,
  pool_full: 507,
};

/** The typed error for an answer with `status` and `body` (text or parsed JSON). */
export function errorFrom(status: number, body: unknown): CairnError {
  if (typeof body === "string") {
    try {
      body = JSON.parse(body || "{}");
    } catch {
      body = {};
    }
  }
  let detail: { code?: unknown; message?: unknown; details?: unknown } = {};
  if (body !== null && typeof body === "object") {
    const inner = (body as { error?: unknown }).error;
    if (inner !== null && typeof inner === "object") {
      detail = inner as typeof detail;
    }
  }
  const code = typeof detail.code === "string" && detail.code ? detail.code : "failed";
  const message =
    typeof detail.message === "string" && detail.message
      ? detail.message
      : `cairnd answered HTTP ${status} without an error body`;
  const cls = ERRORS.get(code) ?? CairnError;
  return new cls(message, { code, status, details: detail.details });
}
