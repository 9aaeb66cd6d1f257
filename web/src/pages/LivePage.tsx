/** The live grid: one tile per stream with its health and a player. */
import { api } from "../api/client";
import type { StreamSummary } from "../api/types";
import { Badge } from "../components/Badge";
import { formatAge, formatBitrate, formatFps, formatResolution, streamHealth } from "../format";
import { usePoll } from "../lib/hooks";
import { Player } from "../player/Player";

/** "149 kbit/s" -> 149 with a smaller unit; "—" as is. */
function Value({ text }: { text: string }) {
  const i = text.indexOf(" ");
  if (i < 0) return <>{text}</>;
  return (
    <>
      {text.slice(0, i)}
      <span className="unit">{text.slice(i)}</span>
    </>
  );
}

export function StreamStats({ s }: { s: StreamSummary }) {
  return (
    <dl className="stats">
      <div>
        <dt>fps</dt>
        <dd data-testid="stat-fps">
          <Value text={formatFps(s.fps)} />
        </dd>
      </div>
      <div>
        <dt>bitrate</dt>
        <dd data-testid="stat-bitrate">
          <Value text={formatBitrate(s.bitrate)} />
        </dd>
      </div>
      <div>
        <dt>viewers</dt>
        <dd data-testid="stat-viewers">{typeof s.viewers === "number" ? s.viewers : "—"}</dd>
      </div>
      <div>
        <dt>last frame</dt>
        <dd data-testid="stat-age">
          <Value text={formatAge(s.lastFrameAge)} />
        </dd>
      </div>
    </dl>
  );
}

function StreamTile({ s }: { s: StreamSummary }) {
  const health = streamHealth(s);
  return (
    <article className="card tile" data-stream={s.id} aria-labelledby={`stream-${s.id}`}>
      <header className="card-head">
        <div>
          <h2 id={`stream-${s.id}`} className="card-title">
            {s.id}
          </h2>
          <p className="card-sub">
            {(s.codec ?? "?").toUpperCase()} · {formatResolution(s.width, s.height)}
            {s.source ? ` · ${s.source}` : ""}
            {typeof s.keyframeInterval === "number" && s.keyframeInterval > 0 ? ` · GOP ${s.keyframeInterval.toFixed(1)} s` : ""}
          </p>
        </div>
        <Badge badge={health} testId="stream-health" />
      </header>
      {s.state === "down" ? (
        <div className="player-placeholder">The source is down. The tile resumes when it comes back.</div>
      ) : (
        <Player stream={s.id} codec={s.codec} label={s.id} />
      )}
      <StreamStats s={s} />
    </article>
  );
}

export function LivePage() {
  const streams = usePoll((signal) => api.streams(signal), 2000);
  const list = streams.data ?? [];
  return (
    <section aria-labelledby="live-title">
      <div className="page-head">
        <h1 id="live-title">Live</h1>
        <p className="muted">
          {streams.data ? `${list.length} stream${list.length === 1 ? "" : "s"}` : "loading…"}
          {streams.error ? ` · ${streams.error.message}` : ""}
        </p>
      </div>
      {streams.data && list.length === 0 && (
        <div className="empty">
          <p>No streams yet.</p>
          <p className="muted">
            Add an RTSP camera under <a href="#/manage">Manage</a>, publish with WHIP to <code>/whip/&lt;stream&gt;</code>, or
            start the demo with <code>camhub up --demo</code>.
          </p>
        </div>
      )}
      <div className="grid">
        {list.map((s) => (
          <StreamTile key={s.id} s={s} />
        ))}
      </div>
    </section>
  );
}
