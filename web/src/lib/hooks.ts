/** Small React hooks shared by the pages: polling, the hash route, a ticking clock, storage. */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../api/client";

export interface Polled<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  /** Fetch again now. */
  reload: () => void;
}

/** Calls `fetcher` now and every `intervalMs`; keeps the last good data while a call fails. */
export function usePoll<T>(fetcher: (signal: AbortSignal) => Promise<T>, intervalMs: number, deps: unknown[] = []): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [nonce, setNonce] = useState(0);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const value = await fetcherRef.current(abort.signal);
        if (abort.signal.aborted) return;
        setData(value);
        setError(null);
      } catch (err) {
        if (abort.signal.aborted) return;
        setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      } finally {
        if (!abort.signal.aborted) {
          setLoading(false);
          if (intervalMs > 0) timer = setTimeout(tick, intervalMs);
        }
      }
    };
    void tick();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [intervalMs, nonce, ...deps]);

  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { data, error, loading, reload };
}

export type Route = "live" | "printers" | "cameras" | "manage";
export const ROUTES: Route[] = ["live", "printers", "cameras", "manage"];

function parseHash(): Route {
  const h = window.location.hash.replace(/^#\/?/, "").split("/")[0] ?? "";
  return (ROUTES as string[]).includes(h) ? (h as Route) : "live";
}

/** The page named by `#/<route>` (default `live`). */
export function useHashRoute(): Route {
  const [route, setRoute] = useState<Route>(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** `Date.now()`, updated every `ms`. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** A string kept in localStorage under `key`. */
export function useStored(key: string, initial: string): [string, (v: string) => void] {
  const [value, setValue] = useState(() => {
    try {
      return localStorage.getItem(key) ?? initial;
    } catch {
      return initial;
    }
  });
  const set = useCallback(
    (v: string) => {
      setValue(v);
      try {
        localStorage.setItem(key, v);
      } catch {
        /* storage disabled */
      }
    },
    [key],
  );
  return [value, set];
}
