/**
 * Where cairnd is and how to reach it: the address (a TCP URL with a token, or the operator's
 * unix socket), the generated openapi-fetch client on it, and the unwrapping of its answers
 * into data or a typed error. Nothing here knows sandboxes.
 */
import createClient from "openapi-fetch";
import { Agent } from "undici";
import { ConnectionFailed, errorFrom } from "./errors.js";
// Node 20 before 20.4 has no Symbol.asyncDispose: the one TypeScript's `await using` looks up.
Symbol.asyncDispose ??= Symbol.for("Symbol.asyncDispose");
/** The operator's socket of a default install. */
export const DEFAULT_SOCKET = "/var/lib/cairn/cairnd.sock";
/** The endpoint for `options`, as the CLI reads them. */
export function endpoint(options = {}) {
    const token = options.token ?? (process.env.CAIRN_TOKEN || undefined);
    let host = options.host ?? (process.env.CAIRN_HOST || undefined);
    if (!host) {
        const home = process.env.CAIRN_HOME;
        host = home ? `${home.replace(/\/+$/, "")}/cairnd.sock` : DEFAULT_SOCKET;
    }
    if (host.startsWith("unix://"))
        host = host.slice("unix://".length);
    if (host.startsWith("/") || host.startsWith(".")) {
        return { baseUrl: "http://cairnd", socket: host, token, where: `unix://${host}` };
    }
    if (!host.includes("://"))
        host = `http://${host}`;
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
function unreachable(where, e) {
    const cause = e.cause;
    const why = cause?.message ?? String(e);
    return new ConnectionFailed(`cannot reach cairnd at ${where} (${why}): is it running? Start it with 'cairnd' (as root), ` +
        "or point new Cairn({ host }) or $CAIRN_HOST at it", { cause: e });
}
/**
 * The generated client on `ep`: connects within 10 s, then waits as long as an answer takes
 * (a snapshot of large memory, a command that runs for an hour); a failure to connect throws
 * `ConnectionFailed`.
 */
export function connect(ep) {
    const agent = new Agent({
        connect: { timeout: 10_000, ...(ep.socket ? { socketPath: ep.socket } : {}) },
        headersTimeout: 0,
        bodyTimeout: 0,
    });
    const fetchVia = async (req, init) => {
        try {
            return await fetch(req, { ...init, dispatcher: agent });
        }
        catch (e) {
            const cause = e.cause;
            // Only connecting counts (not, say, a request body's file that cannot be read); fetch
            // also refuses some ports outright ("bad port": 1, 9, 25…) before connecting.
            const connecting = cause?.syscall === undefined || cause.syscall === "connect" || cause.syscall === "getaddrinfo";
            if ((cause?.code && CONNECT_ERRORS.has(cause.code) && connecting) || cause?.message === "bad port") {
                throw unreachable(ep.where, e);
            }
            throw e;
        }
    };
    const headers = {};
    if (ep.token)
        headers.authorization = `Bearer ${ep.token}`;
    const api = createClient({ baseUrl: ep.baseUrl, fetch: fetchVia, headers });
    return { api, agent, where: ep.where };
}
/** The data of a generated call's answer, or its typed error. */
export async function unwrap(call) {
    const r = await call;
    if (!r.response.ok)
        throw errorFrom(r.response.status, r.error);
    return r.data;
}
