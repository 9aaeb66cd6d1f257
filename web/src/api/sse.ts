/**
 * Server-sent events over fetch (so the bearer token can be sent, which `EventSource` cannot),
 * parsed by `eventsource-parser`, with reconnects (1 s doubling to 15 s, or the server's
 * `retry:`). Used for `GET /api/printers/{id}/status/stream` (`event: status`, data = status JSON).
 */

import { createParser } from "eventsource-parser";
import { authHeaders, errorMessage, notifyAuthRequired } from "./client";

export type SseState = "connecting" | "open" | "retrying" | "closed";

export interface SseOptions<T> {
  /** Only events of this type are delivered (default: all). */
  event?: string;
  onMessage: (data: T) => void;
  onState?: (state: SseState, error?: string) => void;
}

/** Opens the stream and keeps it open until the returned function is called. */
export function subscribeSse<T>(url: string, opts: SseOptions<T>): () => void {
  const abort = new AbortController();
  let retryMs = 1000;
  let closed = false;

  const run = async (): Promise<void> => {
    while (!closed) {
      opts.onState?.("connecting");
      let error: string | undefined;
      try {
        const resp = await fetch(url, {
          headers: authHeaders({ Accept: "text/event-stream" }),
          signal: abort.signal,
          cache: "no-store",
        });
        if (!resp.ok || !resp.body) {
          let body: unknown = null;
          try {
            body = await resp.json();
          } catch {
            /* not JSON */
          }
          if (resp.status === 401) notifyAuthRequired();
          throw new Error(errorMessage(resp.status, body));
        }
        opts.onState?.("open");
        retryMs = 1000;
        const parser = createParser({
          onEvent: (ev) => {
            if (opts.event && (ev.event ?? "message") !== opts.event) return;
            try {
              opts.onMessage(JSON.parse(ev.data) as T);
            } catch {
              /* a malformed event is skipped; the next one replaces it */
            }
          },
          onRetry: (ms) => {
            retryMs = ms;
          },
        });
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
        error = "the stream ended";
      } catch (err) {
        if (closed) break;
        error = err instanceof Error ? err.message : String(err);
      }
      if (closed) break;
      opts.onState?.("retrying", error);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, retryMs);
        abort.signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        });
      });
      retryMs = Math.min(retryMs * 2, 15_000);
    }
    opts.onState?.("closed");
  };
  void run();
  return () => {
    closed = true;
    abort.abort();
  };
}
