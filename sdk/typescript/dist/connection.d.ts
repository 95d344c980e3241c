/**
 * Where cairnd is and how to reach it: the address (a TCP URL with a token, or the operator's
 * unix socket), the generated openapi-fetch client on it, and the unwrapping of its answers
 * into data or a typed error. Nothing here knows sandboxes.
 */
import createClient from "openapi-fetch";
import { Agent } from "undici";
import type { paths } from "./schema.js";
/** The operator's socket of a default install. */
export declare const DEFAULT_SOCKET = "/var/lib/cairn/cairnd.sock";
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
export declare function endpoint(options?: CairnOptions): Endpoint;
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
export declare function connect(ep: Endpoint): Connection;
/** What every generated call answers. */
interface Answer<T> {
    data?: T;
    error?: unknown;
    response: Response;
}
/** The data of a generated call's answer, or its typed error. */
export declare function unwrap<T>(call: Promise<Answer<T>>): Promise<T>;
export {};
