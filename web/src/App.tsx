/** The shell: header with navigation and gateway health, the page of the hash route, the token prompt. */
import { useEffect, useState } from "react";
import { api, getToken, onAuthRequired } from "./api/client";
import { healthOk } from "./api/normalize";
import { TokenPrompt } from "./components/TokenPrompt";
import { ToastProvider } from "./components/Toasts";
import { usePoll, useHashRoute, type Route } from "./lib/hooks";
import { CamerasPage } from "./pages/CamerasPage";
import { LivePage } from "./pages/LivePage";
import { ManagePage } from "./pages/ManagePage";
import { PrintersPage } from "./pages/PrintersPage";

const NAV: { route: Route; label: string }[] = [
  { route: "live", label: "Live" },
  { route: "printers", label: "Printers" },
  { route: "cameras", label: "Cameras" },
  { route: "manage", label: "Manage" },
];

function HealthPill() {
  const health = usePoll((signal) => api.health(signal), 10_000);
  const h = health.data;
  const status = health.error ? "unreachable" : (h?.status ?? "…");
  const tone = health.error ? "bad" : healthOk(status) ? "ok" : status === "…" ? "muted" : "warn";
  const title = h
    ? `camhub ${h.version ?? ""} · ${h.activeStreams ?? 0} active streams · ${h.connections ?? 0} connections`
    : (health.error?.message ?? "");
  return (
    <span className={`health tone-${tone}`} title={title} data-testid="health">
      <span className="dot" aria-hidden="true" />
      <span>{health.error ? "gateway unreachable" : `gateway ${status}`}</span>
      {h?.version && <span className="muted"> · v{h.version}</span>}
    </span>
  );
}

export function App() {
  const route = useHashRoute();
  const [askToken, setAskToken] = useState(false);
  const [epoch, setEpoch] = useState(0);
  useEffect(() => onAuthRequired(() => setAskToken(true)), []);
  useEffect(() => {
    document.title = `camhub · ${NAV.find((n) => n.route === route)?.label ?? ""}`;
  }, [route]);

  return (
    <ToastProvider>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <div className="brand">
          <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <rect x="2" y="6" width="14" height="12" rx="3" fill="currentColor" opacity="0.9" />
            <path d="M17 10l5-3v10l-5-3z" fill="currentColor" opacity="0.6" />
          </svg>
          <span>camhub</span>
        </div>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <a key={n.route} href={`#/${n.route}`} className={route === n.route ? "active" : ""} aria-current={route === n.route ? "page" : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <div className="top-right">
          <HealthPill />
          <button type="button" className="btn small ghost" onClick={() => setAskToken(true)} title="Set the API token">
            {getToken() ? "Token ✓" : "Token"}
          </button>
        </div>
      </header>
      <main id="main" key={epoch}>
        {route === "live" && <LivePage />}
        {route === "printers" && <PrintersPage />}
        {route === "cameras" && <CamerasPage />}
        {route === "manage" && <ManagePage />}
      </main>
      <TokenPrompt
        open={askToken}
        onClose={(saved) => {
          setAskToken(false);
          if (saved) setEpoch((e) => e + 1);
        }}
      />
    </ToastProvider>
  );
}
