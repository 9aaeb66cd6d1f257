/**
 * A stream player: picks the best path the browser supports (select.ts), falls back to the next
 * one when a path fails, lets the user switch paths (remembered per stream), and shows the
 * measured latency with what it measures.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { formatLatency } from "../format";
import { detectCapabilities } from "./capabilities";
import { HlsJsEngine } from "./engines/hlsjs";
import { NativeHlsEngine } from "./engines/native";
import { RelayEngine } from "./engines/relay";
import { PlaybackError, type Engine, type EngineCallbacks, type LatencySample } from "./engines/types";
import { WhepEngine } from "./engines/whep";
import { choosePath, isPlaybackPath, nextPath, PATH_LABELS, planPaths, type PlaybackPath } from "./select";

const START_TIMEOUT_MS = 15_000;
const STALL_MS = 6_000;

type PlayState = "starting" | "playing" | "stalled" | "failed" | "none";

function prefKey(stream: string): string {
  return `camhub.path.${stream}`;
}

function storedPath(stream: string): PlaybackPath | null {
  try {
    const v = localStorage.getItem(prefKey(stream));
    return isPlaybackPath(v) ? v : null;
  } catch {
    return null;
  }
}

function makeEngine(
  path: PlaybackPath,
  stream: string,
  video: HTMLVideoElement,
  canvas: HTMLCanvasElement,
  cb: EngineCallbacks,
): Engine {
  switch (path) {
    case "whep":
      return new WhepEngine(stream, video, cb);
    case "ll-hls":
      return new HlsJsEngine(stream, video, true, cb);
    case "hls":
      return new HlsJsEngine(stream, video, false, cb);
    case "native-hls":
      return new NativeHlsEngine(stream, video, cb);
    case "webcodecs":
      return new RelayEngine(stream, canvas, cb);
  }
}

export interface PlayerProps {
  stream: string;
  codec: string | undefined;
  /** Accessible name of the video, e.g. the stream id. */
  label?: string;
}

export function Player({ stream, codec, label }: PlayerProps) {
  const caps = useMemo(() => detectCapabilities(), []);
  const options = useMemo(() => planPaths(caps, codec), [caps, codec]);
  const [path, setPath] = useState<PlaybackPath | null>(() => choosePath(caps, codec, storedPath(stream)));
  const [attempt, setAttempt] = useState(0);
  const [state, setState] = useState<PlayState>(path ? "starting" : "none");
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [latency, setLatency] = useState<LatencySample | null>(null);
  const tried = useRef(new Set<PlaybackPath>());
  const videoRef = useRef<HTMLVideoElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);

  // a codec change (the stream restarted with another) re-plans from the best path
  useEffect(() => {
    tried.current.clear();
    const p = choosePath(caps, codec, storedPath(stream));
    setPath(p);
    setState(p ? "starting" : "none");
  }, [caps, codec, stream]);

  const fail = useCallback(
    (failed: PlaybackPath, err: PlaybackError) => {
      tried.current.add(failed);
      const next = nextPath(caps, codec, failed, tried.current);
      if (next) {
        setNote(`${PATH_LABELS[failed]}: ${err.message}. Trying ${PATH_LABELS[next]}.`);
        setPath(next);
        setState("starting");
      } else {
        setError(err.message);
        setState("failed");
      }
    },
    [caps, codec],
  );

  useEffect(() => {
    const video = videoRef.current;
    const canvas = canvasRef.current;
    if (!path || !video || !canvas) return;
    let done = false;
    let playing = false;
    setLatency(null);
    setError(null);
    setState("starting");
    const onFatal = (err: PlaybackError) => {
      if (done) return;
      done = true;
      engine.stop();
      fail(path, err);
    };
    const engine = makeEngine(path, stream, video, canvas, {
      onPlaying: () => {
        if (done) return;
        playing = true;
        setState("playing");
      },
      onFatal,
      onNote: (n) => setNote(n),
    });
    engine.start().catch((err: unknown) => {
      onFatal(err instanceof PlaybackError ? err : new PlaybackError(err instanceof Error ? err.message : String(err)));
    });
    const startTimer = setTimeout(() => {
      if (!playing) onFatal(new PlaybackError(`no video within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);

    // latency once a second; a video whose time stops advancing shows as stalled
    let lastTime = -1;
    let lastAdvance = performance.now();
    const tick = setInterval(() => {
      if (done) return;
      engine
        .latency()
        .then((l) => {
          if (!done) setLatency(l);
        })
        .catch(() => undefined);
      if (!playing || path === "webcodecs") return;
      const t = video.currentTime;
      if (t !== lastTime) {
        lastTime = t;
        lastAdvance = performance.now();
        setState((s) => (s === "stalled" ? "playing" : s));
      } else if (performance.now() - lastAdvance > STALL_MS) {
        setState((s) => (s === "playing" ? "stalled" : s));
      }
    }, 1000);
    return () => {
      done = true;
      clearTimeout(startTimer);
      clearInterval(tick);
      engine.stop();
    };
  }, [path, stream, attempt, fail]);

  const choose = (p: PlaybackPath) => {
    tried.current.clear();
    setNote(null);
    try {
      localStorage.setItem(prefKey(stream), p);
    } catch {
      /* storage disabled */
    }
    if (p === path) setAttempt((a) => a + 1);
    else setPath(p);
  };

  const retry = () => {
    tried.current.clear();
    setNote(null);
    const p = choosePath(caps, codec, storedPath(stream));
    if (p === path) setAttempt((a) => a + 1);
    else setPath(p);
  };

  const onCanvas = path === "webcodecs";
  return (
    <div className="player" data-path={path ?? ""} data-state={state}>
      <div className="player-media">
        <video
          ref={videoRef}
          className={onCanvas ? "hidden" : ""}
          muted
          autoPlay
          playsInline
          aria-label={label ? `${label} video` : "video"}
          data-testid="player-video"
        />
        <canvas
          ref={canvasRef}
          className={onCanvas ? "" : "hidden"}
          aria-label={label ? `${label} video (WebCodecs)` : "video (WebCodecs)"}
          data-testid="player-canvas"
        />
        {state !== "playing" && (
          <div className={`player-overlay ${state}`} role="status">
            {state === "starting" && <span className="spinner" aria-hidden="true" />}
            <span>
              {state === "starting" && `Connecting over ${path ? PATH_LABELS[path] : "…"}`}
              {state === "stalled" && "Stalled: no new frames"}
              {state === "failed" && `Cannot play: ${error ?? "every path failed"}`}
              {state === "none" && `No playback path for ${codec || "this codec"} in this browser`}
            </span>
            {state === "failed" && (
              <button type="button" className="btn small" onClick={retry}>
                Retry
              </button>
            )}
          </div>
        )}
      </div>
      <div className="player-bar">
        <div className="seg" role="group" aria-label="Playback path">
          {options.map((o) => (
            <button
              key={o.path}
              type="button"
              className={`seg-btn${o.path === path ? " active" : ""}`}
              aria-pressed={o.path === path}
              disabled={!o.available}
              title={o.available ? `Play over ${PATH_LABELS[o.path]}` : o.reason}
              onClick={() => choose(o.path)}
              data-path={o.path}
            >
              {PATH_LABELS[o.path]}
            </button>
          ))}
        </div>
        <div className="latency" data-testid="latency" title={latency ? `measured as ${latency.method}` : "latency not measured yet"}>
          <span className="k">Latency</span> <span className="v">{latency ? formatLatency(latency.ms) : "—"}</span>
          {latency && <span className="m">{latency.method}</span>}
        </div>
      </div>
      {note && (
        <p className="player-note" role="note">
          {note}
        </p>
      )}
    </div>
  );
}
