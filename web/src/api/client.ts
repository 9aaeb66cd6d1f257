/**
 * The gateway client: JSON over fetch with the optional bearer token (docs/http.md "Auth").
 *
 * The token the user types is kept in localStorage under `camhub.token` and sent as
 * `Authorization: Bearer <token>`. A 401 answer raises `ApiError` (status 401) and tells the app
 * (via `onAuthRequired`) to show the token prompt.
 */

import { normalizeHealth, normalizeStreams } from "./normalize";
import type {
  Camera,
  CameraConfig,
  CameraInput,
  CameraStatus,
  CommandReply,
  Health,
  HistoryPoint,
  Printer,
  PrinterCommand,
  PrinterInput,
  PrinterStatus,
  StreamSummary,
} from "./types";

const TOKEN_KEY = "camhub.token";

/** An HTTP error answer; `message` is the server's `error` sentence when it sent one. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export function getToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setToken(token: string): void {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives only as long as the request */
  }
}

/** Headers with `Authorization` when a token is stored. */
export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

type AuthListener = () => void;
const authListeners = new Set<AuthListener>();

/** Calls `fn` whenever the gateway answers 401; returns the unsubscribe function. */
export function onAuthRequired(fn: AuthListener): () => void {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}

export function notifyAuthRequired(): void {
  for (const fn of authListeners) fn();
}

/** The server's error sentence from a JSON error body, else a generic one. */
export function errorMessage(status: number, body: unknown): string {
  if (body && typeof body === "object") {
    const b = body as { error?: unknown; detail?: unknown; message?: unknown };
    for (const v of [b.error, b.detail, b.message]) {
      if (typeof v === "string" && v) return v;
    }
  }
  if (status === 401) return "a valid API token is required";
  if (status === 404) return "not found";
  if (status === 0) return "the gateway cannot be reached";
  return `the gateway answered ${status}`;
}

/**
 * Sends one request and returns the decoded JSON body (undefined for 204).
 *
 * @throws ApiError for any non-2xx answer (and status 0 when the network fails).
 */
export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers = authHeaders(body === undefined ? { Accept: "application/json" } : { "Content-Type": "application/json", Accept: "application/json" });
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, errorMessage(0, null));
  }
  const text = await resp.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!resp.ok) {
    if (resp.status === 401) notifyAuthRequired();
    throw new ApiError(resp.status, errorMessage(resp.status, data), data);
  }
  return data as T;
}

const enc = encodeURIComponent;

export const api = {
  health: async (signal?: AbortSignal): Promise<Health> => normalizeHealth(await request<unknown>("GET", "/health", undefined, signal)),
  streams: async (signal?: AbortSignal): Promise<StreamSummary[]> =>
    normalizeStreams(await request<unknown>("GET", "/api/streams", undefined, signal)),

  printers: (signal?: AbortSignal) => request<Printer[]>("GET", "/api/printers", undefined, signal),
  printer: (id: string) => request<Printer>("GET", `/api/printers/${enc(id)}`),
  createPrinter: (p: PrinterInput) => request<Printer>("POST", "/api/printers", p),
  updatePrinter: (id: string, p: PrinterInput) => request<Printer>("PUT", `/api/printers/${enc(id)}`, p),
  deletePrinter: (id: string) => request<void>("DELETE", `/api/printers/${enc(id)}`),
  printerStatus: (id: string, signal?: AbortSignal) =>
    request<PrinterStatus>("GET", `/api/printers/${enc(id)}/status`, undefined, signal),
  printerHistory: (id: string, minutes: number, signal?: AbortSignal) =>
    request<HistoryPoint[] | { points?: HistoryPoint[] }>(
      "GET",
      `/api/printers/${enc(id)}/status/history?minutes=${minutes}&points=360`,
      undefined,
      signal,
    ),
  printerCommand: (id: string, cmd: PrinterCommand) => request<CommandReply>("POST", `/api/printers/${enc(id)}/command`, cmd),

  cameras: (signal?: AbortSignal) => request<Camera[]>("GET", "/api/cameras", undefined, signal),
  createCamera: (c: CameraInput) => request<Camera>("POST", "/api/cameras", c),
  updateCamera: (id: string, c: CameraInput) => request<Camera>("PUT", `/api/cameras/${enc(id)}`, c),
  deleteCamera: (id: string) => request<void>("DELETE", `/api/cameras/${enc(id)}`),
  cameraStatus: (id: string, signal?: AbortSignal) =>
    request<CameraStatus>("GET", `/api/cameras/${enc(id)}/status`, undefined, signal),
  cameraStart: (id: string) => request<CommandReply>("POST", `/api/cameras/${enc(id)}/start`, {}),
  cameraStop: (id: string) => request<CommandReply>("POST", `/api/cameras/${enc(id)}/stop`, {}),
  cameraConfig: (id: string, cfg: CameraConfig) => request<CommandReply>("POST", `/api/cameras/${enc(id)}/config`, cfg),
};

/** Appends `token=<token>` for transports that cannot send headers (WebSocket, native HLS). */
export function withTokenQuery(url: string): string {
  const token = getToken();
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${enc(token)}`;
}
