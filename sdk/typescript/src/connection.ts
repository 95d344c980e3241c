/**
 * Where cairnd is and how to reach it: the address (a TCP URL with a token, or the operator's
 * unix socket), the generated openapi-fetch client on it, and the unwrapping of its answers
 * into data or a typed error. Nothing here knows sandboxes.
 */

import createClient from "openapi-fetch";
import { Agent } from "undici";

import { ConnectionFailed, errorFrom } from "./errors.js";
import type { paths } from "./schema.js";

// Node 20 before 20.4 has no Symbol.asyncDispose: the one TypeScript's `await using` looks up.
(Symbol as { asyncDispose?: symbol }).asyncDispose ??= Symbol.for("Symbol.asyncDispose");

/** The operator's socket of a default install. */
export const DEFAULT_SOCKET = "/var/lib/cairn/cairnd.sock";

/** The generated client: `api.GET("/v1/sandboxes")`, typed from docs/openapi.json. */
export type Api = ReturnType<typeof createClient<paths>>;

/** Where a `Cairn` connects. */
export interface CairnOptions {
  /**
   * The TCP listener's URL (`http://10.0.0.5:7421`: a token is needed), or the unix socket
   * (`unix:///var/lib/cairn/cairnd.sock` or a path: the operator's, no token). Default:
   * `$CAIRN_HOST`, else `$CAIRN_HOME/cairnd.sock` (`CAIRN_HOME=/var/lib/cairn`).
   */
  host?: string;
  /** A token from `cairnd token create` (`ck_…`). Default: `$CAIRN_TOKEN`. */
  token?: string;
}

/** Where to connect: the base URL, the unix socket if any, and the token if any. */
export interface Endpoint {
  /** The URL requests go to (`http://cairnd` over a unix socket). */
  baseUrl: string;
  /** The unix socket's path, when it is one. */
  socket: string | undefined;
  /** The bearer token, if any. */
  token: string | undefined;
  /** The address as error messages name it. */
  where: string;
}

/** The endpoint for `options`, as the CLI reads them. */
export function endpoint(options: CairnOptions = {}): Endpoint {
  const token = options.token ?? (process.env.CAIRN_TOKEN || undefined);
  let host = options.host ?? (process.env.CAIRN_HOST || undefined);
  if (!host) {
    const home = process.env.CAIRN_HOME;
    host = home ? `${home.replace(/\/+$/, "")}/cairnd.sock` : DEFAULT_SOCKET;
  }
  if (host.startsWith("unix://")) host = host.slice("unix://".length);
  if (host.startsWith("/") || host.startsWith(".")) {
    return { baseUrl: "http://cairnd", socket: host, token, where: `unix://${host}` };
  }
  if (!host.includes("://")) host = `http://${host}`;
  const baseUrl = host.replace(/\/+$/, "");
  return { baseUrl, socket: undefined, token, where: baseUrl };
}

/** The errors of a connection that never was (not of one that broke later). */
const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "ENOENT",
  "EACCES",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function unreachable(where: string, e: unknown): ConnectionFailed {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.message ?? String(e);
  return new ConnectionFailed(
    `cannot reach cairnd at ${where} (${why}): is it running? Start it with 'cairnd' (as root), ` +
      "or point new Cairn({ host }) or $CAIRN_HOST at it",
    { cause: e },
  );
}

/** A connection: the generated client and the undici agent under it (`close()` ends it). */
export interface Connection {
  /** The generated client. */
  api: Api;
  /** The connection pool (TCP, or the unix socket). */
  agent: Agent;
  /** The address as error messages name it. */
  where: string;
}

/**
 * The generated client on `ep`: connects within 10 s, then waits as long as an answer takes
 * (a snapshot of large memory, a command that runs for an hour); a failure to connect throws
 * `ConnectionFailed`.
 */
export function connect(ep: Endpoint): Connection {
  const agent = new Agent({
    connect: { timeout: 10_000, ...(ep.socket ? { socketPath: ep.socket } : {}) },
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const fetchVia = async (req: Request, init?: RequestInit): Promise<Response> => {
    try {
      return await fetch(req, { ...init, dispatcher: agent } as RequestInit);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string; syscall?: string } }).cause;
      // Only connecting counts (not, say, a request body's file that cannot be read); fetch
      // also refuses some ports outright ("bad port": 1, 9, 25…) before connecting.
      const connecting = cause?.syscall === undefined || cause.syscall === "connect" || cause.syscall === "getaddrinfo";
      if ((cause?.code && CONNECT_ERRORS.has(cause.code) && connecting) || cause?.message === "bad port") {
        throw unreachable(ep.where, e);
      }
      throw e;
    }
  };
  const headers: Record<string, string> = {};
  if (ep.token) headers.authorization = `Bearer ${ep.token}`;
  const api = createClient<paths>({ baseUrl: ep.baseUrl, fetch: fetchVia, headers });
  return { api, agent, where: ep.where };
}

/** What every generated call answers. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a generated call's answer, or its typed error. */
export async function unwrap<T>(call: Promise<Answer<T>>): Promise<T> {
  const r = await call;
  if (!r.response.ok) throw errorFrom(r.response.status, r.error);
  return r.data as T;
}
