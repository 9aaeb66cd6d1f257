/**
 * Printer cards: live status over SSE (`/api/printers/{id}/status/stream`), the temperature
 * history chart, HMS errors, the camera, and the job commands (docs/http.md "Printers").
 */
import { useCallback, useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import { subscribeSse, type SseState } from "../api/sse";
import type { AmsUnit, HistoryPoint, Printer, PrinterCommand, PrinterStatus, StreamSummary } from "../api/types";
import { Badge } from "../components/Badge";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { TempChart } from "../components/TempChart";
import { useToast } from "../components/Toasts";
import {
  clampPercent,
  formatEta,
  formatLayers,
  formatRemaining,
  formatSince,
  formatTemp,
  formatWifi,
  hmsTone,
  jobBadge,
  jobControls,
  printerBadge,
  SPEED_LEVELS,
  speedLabel,
  trayColor,
} from "../format";
import { chartWindowMs, mergePoints } from "../lib/chart";
import { useNow, usePoll } from "../lib/hooks";
import { Player } from "../player/Player";

const HISTORY_MINUTES = 60;
const WINDOW_MS = HISTORY_MINUTES * 60_000;

function toPoint(s: PrinterStatus, now: number): HistoryPoint {
  const ts = s.lastUpdate ? Date.parse(s.lastUpdate) : NaN;
  return {
    ts: Number.isFinite(ts) ? ts : now,
    nozzleC: s.nozzleC ?? null,
    nozzleTargetC: s.nozzleTargetC ?? null,
    bedC: s.bedC ?? null,
    bedTargetC: s.bedTargetC ?? null,
    chamberC: s.chamberC ?? null,
  };
}

function normalizeHistory(raw: HistoryPoint[] | { points?: HistoryPoint[] } | undefined): HistoryPoint[] {
  const arr = Array.isArray(raw) ? raw : (raw?.points ?? []);
  return arr
    .map((p) => {
      const ts = typeof p.ts === "number" ? p.ts : Date.parse(String(p.ts));
      return { ...p, ts: ts < 1e11 ? ts * 1000 : ts };
    })
    .filter((p) => Number.isFinite(p.ts))
    .sort((a, b) => a.ts - b.ts);
}

/** Status of one printer: the SSE stream, with the REST status as the first value. */
function usePrinterStatus(id: string): { status: PrinterStatus | null; conn: SseState; connError: string | undefined } {
  const [status, setStatus] = useState<PrinterStatus | null>(null);
  const [conn, setConn] = useState<SseState>("connecting");
  const [connError, setConnError] = useState<string | undefined>();
  useEffect(() => {
    const abort = new AbortController();
    api
      .printerStatus(id, abort.signal)
      .then((s) => setStatus((cur) => cur ?? s))
      .catch(() => undefined);
    const close = subscribeSse<PrinterStatus>(`/api/printers/${encodeURIComponent(id)}/status/stream`, {
      event: "status",
      onMessage: (s) => setStatus(s),
      onState: (st, err) => {
        setConn(st);
        setConnError(err);
      },
    });
    return () => {
      abort.abort();
      close();
    };
  }, [id]);
  return { status, conn, connError };
}

function useHistory(id: string, status: PrinterStatus | null): HistoryPoint[] {
  const [points, setPoints] = useState<HistoryPoint[]>([]);
  useEffect(() => {
    const abort = new AbortController();
    api
      .printerHistory(id, HISTORY_MINUTES, abort.signal)
      .then((raw) => setPoints((live) => {
        let merged = normalizeHistory(raw);
        for (const p of live) merged = mergePoints(merged, p, Date.now(), WINDOW_MS);
        return merged;
      }))
      .catch(() => undefined);
    return () => abort.abort();
  }, [id]);
  useEffect(() => {
    if (!status) return;
    const now = Date.now();
    setPoints((cur) => mergePoints(cur, toPoint(status, now), now, WINDOW_MS));
  }, [status]);
  return points;
}

type Pending = PrinterCommand["type"] | null;

function commandDone(cmd: PrinterCommand): string {
  switch (cmd.type) {
    case "pause":
      return "Pause sent";
    case "resume":
      return "Resume sent";
    case "stop":
      return "Stop sent";
    case "light":
      return `Light ${cmd.on ? "on" : "off"}`;
    case "speed":
      return `Speed: ${speedLabel(cmd.level)}`;
    case "gcode":
      return "G-code sent";
  }
}

function Ams({ units }: { units: AmsUnit[] }) {
  return (
    <div className="ams" aria-label="AMS filament">
      {units.map((u) => (
        <div key={u.id} className="ams-unit">
          <span className="ams-name">AMS {u.id + 1}</span>
          <ul>
            {(u.trays ?? []).map((t) => {
              const color = trayColor(t.color);
              const remain = typeof t.remainPercent === "number" && t.remainPercent >= 0 ? `${Math.round(t.remainPercent)}%` : "";
              return (
                <li key={t.id} className={t.active ? "active" : ""} title={`${t.name ?? t.type ?? "empty"}${remain ? `, ${remain} left` : ""}${t.active ? " (printing)" : ""}`}>
                  <i style={color ? { background: color } : undefined} className={color ? "" : "empty"} aria-hidden="true" />
                  <span>{t.type || "—"}</span>
                  {remain && <span className="muted">{remain}</span>}
                </li>
              );
            })}
          </ul>
        </div>
      ))}
    </div>
  );
}

export function PrinterCard({ printer, streams }: { printer: Printer; streams: StreamSummary[] }) {
  const { status, conn, connError } = usePrinterStatus(printer.id);
  const points = useHistory(printer.id, status);
  const now = useNow(1000);
  const toast = useToast();
  const [pending, setPending] = useState<Pending>(null);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [confirmStop, setConfirmStop] = useState(false);

  const send = useCallback(
    async (cmd: PrinterCommand) => {
      setPending(cmd.type);
      setResult(null);
      try {
        const reply = await api.printerCommand(printer.id, cmd);
        if (reply && reply.ok === false) throw new ApiError(200, reply.error ?? "the printer refused");
        setResult({ ok: true, text: commandDone(cmd) });
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        setResult({ ok: false, text: `${cmd.type} failed: ${msg}` });
        toast("bad", `${printer.name || printer.id}: ${cmd.type} failed: ${msg}`);
      } finally {
        setPending(null);
      }
    },
    [printer.id, printer.name, toast],
  );

  const badge = printerBadge(status);
  const job = jobBadge(status?.jobState);
  const controls = jobControls(status);
  const ready = status?.state === "online";
  const percent = clampPercent(status?.percent);
  const lightOn = status?.light === "on";
  const cam = status?.camera;
  const camStream = cam?.stream ?? printer.id;
  const camSummary = streams.find((s) => s.id === camStream);
  const showCamera = !!cam && cam.source !== "none" && !cam.disabled && !!camSummary && camSummary.state !== "down";
  const honest = status && status.state !== "online" ? badge : null;
  const hms = status?.hms ?? [];
  const title = printer.name || printer.id;
  // a printer never seen online has no job or temperatures to show, only its honest state
  const hasData = typeof status?.nozzleC === "number" || typeof status?.percent === "number";

  return (
    <article className="card printer" data-printer={printer.id} data-job-state={status?.jobState ?? ""} data-state={status?.state ?? ""} aria-labelledby={`printer-${printer.id}`}>
      <header className="card-head">
        <div>
          <h2 id={`printer-${printer.id}`} className="card-title">
            {title}
          </h2>
          <p className="card-sub">
            {printer.id}
            {printer.model ? ` · ${printer.model}` : ""}
            {printer.host ? ` · ${printer.host}` : ""}
          </p>
        </div>
        <Badge badge={badge} testId="printer-state" />
      </header>

      {honest && (
        <div className={`banner tone-${honest.tone}`} role="alert" data-testid="printer-banner">
          <strong>{honest.label}.</strong> {honest.detail}
        </div>
      )}

      {ready && cam && (cam.disabled || cam.source === "none") && cam.reason && <p className="note">Camera: {cam.reason}</p>}
      {showCamera && <Player stream={camStream} codec={camSummary.codec} label={`${title} camera`} />}

      {hasData && (
        <section className={`job${ready ? "" : " stale"}`} aria-label="Print job">
          <div className="job-line">
            <span className="job-name" data-testid="job-name" title={status?.jobName ?? ""}>
              {status?.jobName || (status?.jobState === "IDLE" ? "No job" : "—")}
            </span>
            <span className={`pill tone-${job.tone}`} data-testid="job-state" data-job-state={status?.jobState ?? ""}>
              {job.label}
            </span>
          </div>
          <div
            className="progress"
            role="progressbar"
            aria-label="Print progress"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={percent ?? undefined}
            data-testid="progress"
          >
            <div className={`progress-fill tone-${job.tone}`} style={{ width: `${percent ?? 0}%` }} />
          </div>
          <div className="job-meta">
            <span data-testid="percent">{percent === null ? "—" : `${percent}%`}</span>
            <span data-testid="remaining">
              {formatRemaining(status?.remainingMinutes)} left
              {status?.remainingMinutes ? ` · ${formatEta(status.remainingMinutes, now)}` : ""}
            </span>
            {formatLayers(status?.layer, status?.totalLayers) && <span>{formatLayers(status?.layer, status?.totalLayers)}</span>}
            {status?.stage && <span className="muted">{status.stage}</span>}
          </div>
        </section>
      )}

      {hasData && (
        <dl className={`temps${ready ? "" : " stale"}`}>
          <div>
            <dt>Nozzle</dt>
            <dd data-testid="temp-nozzle">{formatTemp(status?.nozzleC, status?.nozzleTargetC)}</dd>
          </div>
          <div>
            <dt>Bed</dt>
            <dd data-testid="temp-bed">{formatTemp(status?.bedC, status?.bedTargetC)}</dd>
          </div>
          <div>
            <dt>Chamber</dt>
            <dd data-testid="temp-chamber">{formatTemp(status?.chamberC)}</dd>
          </div>
        </dl>
      )}

      {(hasData || points.length > 1) && <TempChart points={points} now={now} windowMs={chartWindowMs(points, now)} />}

      {(status?.ams ?? []).length > 0 && <Ams units={status?.ams ?? []} />}

      {hms.length > 0 && (
        <ul className="hms" aria-label="HMS errors" data-testid="hms">
          {hms.map((e) => (
            <li key={e.code} className={`tone-${hmsTone(e)}`}>
              <code>{e.code}</code> {e.message || e.severity || ""}
            </li>
          ))}
        </ul>
      )}

      <div className="controls" role="group" aria-label="Printer controls">
        <button type="button" className="btn" disabled={!controls.canPause || pending !== null} onClick={() => void send({ type: "pause" })}>
          {pending === "pause" ? "Pausing…" : "Pause"}
        </button>
        <button type="button" className="btn" disabled={!controls.canResume || pending !== null} onClick={() => void send({ type: "resume" })}>
          {pending === "resume" ? "Resuming…" : "Resume"}
        </button>
        <button type="button" className="btn danger" disabled={!controls.canStop || pending !== null} onClick={() => setConfirmStop(true)}>
          {pending === "stop" ? "Stopping…" : "Stop"}
        </button>
        <button
          type="button"
          className={`btn${lightOn ? " on" : ""}`}
          aria-pressed={lightOn}
          disabled={!ready || pending !== null}
          onClick={() => void send({ type: "light", on: !lightOn })}
          data-testid="light"
        >
          Light: {status?.light === "unknown" || !status?.light ? "?" : lightOn ? "on" : "off"}
        </button>
        <label className="speed">
          <span>Speed</span>
          <select
            value={status?.speedLevel ?? ""}
            disabled={!ready || pending !== null}
            onChange={(e) => void send({ type: "speed", level: Number(e.target.value) as 1 | 2 | 3 | 4 })}
          >
            {!status?.speedLevel && <option value="">—</option>}
            {([1, 2, 3, 4] as const).map((l) => (
              <option key={l} value={l}>
                {SPEED_LEVELS[l]}
              </option>
            ))}
          </select>
        </label>
      </div>
      {result && (
        <p className={`result tone-${result.ok ? "ok" : "bad"}`} role={result.ok ? "status" : "alert"} data-testid="command-result">
          {result.text}
        </p>
      )}

      <footer className="card-foot muted">
        <span>{status?.lastUpdate ? `Updated ${formatSince(status.lastUpdate, now)}` : "No report yet"}</span>
        {formatWifi(status?.wifiSignal) && <span>Wi-Fi {formatWifi(status?.wifiSignal)}</span>}
        <span className={`live-dot ${conn}`} title={connError ? `status stream: ${connError}` : "status stream (SSE)"}>
          {conn === "open" ? "live updates" : conn === "retrying" ? "reconnecting…" : conn === "connecting" ? "connecting…" : "closed"}
        </span>
      </footer>

      <ConfirmDialog
        open={confirmStop}
        title={`Stop the print on ${title}?`}
        message="The job is cancelled and cannot be resumed."
        confirmLabel="Stop print"
        danger
        onCancel={() => setConfirmStop(false)}
        onConfirm={() => {
          setConfirmStop(false);
          void send({ type: "stop" });
        }}
      />
    </article>
  );
}

export function PrintersPage() {
  const printers = usePoll((signal) => api.printers(signal), 10_000);
  const streams = usePoll((signal) => api.streams(signal), 5000);
  const list = printers.data ?? [];
  return (
    <section aria-labelledby="printers-title">
      <div className="page-head">
        <h1 id="printers-title">Printers</h1>
        <p className="muted">
          {printers.data ? `${list.length} printer${list.length === 1 ? "" : "s"}` : "loading…"}
          {printers.error ? ` · ${printers.error.message}` : ""}
        </p>
      </div>
      {printers.data && list.length === 0 && (
        <div className="empty">
          <p>No printers yet.</p>
          <p className="muted">
            Add one under <a href="#/manage">Manage</a>: its IP address, serial number and LAN access code.
          </p>
        </div>
      )}
      <div className="grid printers">
        {list.map((p) => (
          <PrinterCard key={p.id} printer={p} streams={streams.data ?? []} />
        ))}
      </div>
    </section>
  );
}
