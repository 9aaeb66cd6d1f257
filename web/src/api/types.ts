/**
 * Shapes of the gateway's JSON API (docs/http.md; the device status follows docs/bus.md
 * "Device status"). Every field the gateway may omit is optional here, so the UI renders
 * "—" instead of crashing on a partial payload.
 */

export type Codec = "h264" | "h265" | "vp8" | "vp9" | "av1" | "jpeg" | "webp";

export type StreamState = "live" | "reconnecting" | "down";

/** One entry of `GET /api/streams`. Bitrate in bit/s, keyframe interval and ages in seconds. */
export interface StreamSummary {
  id: string;
  codec?: string;
  width?: number;
  height?: number;
  fps?: number;
  bitrate?: number;
  keyframeInterval?: number;
  viewers?: number;
  lastFrameAge?: number | null;
  state?: StreamState | string;
  source?: string;
}

/** A printer as `GET /api/printers` returns it (the access code itself is never returned). */
export interface Printer {
  id: string;
  name?: string;
  host?: string;
  serial?: string;
  accessCodeSet?: boolean;
  rtspUrl?: string | null;
  model?: string | null;
  mqttPort?: number | null;
  /** A CA certificate (PEM) is stored: control verifies the printer's TLS certificate. */
  tlsCaSet?: boolean;
}

/** The body of `POST /api/printers` and `PUT /api/printers/{id}` (`accessCode` optional on PUT). */
export interface PrinterInput {
  id?: string;
  name: string;
  host: string;
  serial: string;
  accessCode?: string;
  rtspUrl?: string | null;
  model?: string | null;
  mqttPort?: number | null;
  /** PEM CA certificate for the printer's MQTT TLS (absent keeps the stored one). */
  tlsCa?: string;
}

export type PrinterConnState = "connecting" | "online" | "offline" | "auth_failed" | "developer_mode_required";
export type JobState = "IDLE" | "PREPARE" | "RUNNING" | "PAUSE" | "FINISH" | "FAILED" | "UNKNOWN";

export interface HmsError {
  code: string;
  severity?: string;
  message?: string;
}

/** One AMS tray: filament `type`, colour as RRGGBBAA hex, remaining filament in percent. */
export interface AmsTray {
  id: number;
  type?: string | null;
  name?: string | null;
  color?: string | null;
  remainPercent?: number | null;
  active?: boolean;
}

/** One AMS unit: humidity level (Bambu's 1-5 scale) and temperature in °C. */
export interface AmsUnit {
  id: number;
  humidity?: number | null;
  tempC?: number | null;
  trays?: AmsTray[];
}

export interface PrinterCamera {
  source?: "rtsp" | "bambu-jpeg" | "none" | string;
  url?: string | null;
  disabled?: boolean;
  reason?: string | null;
  stream?: string | null;
}

/** Normalized printer status (temperatures in °C, `lastUpdate` ISO 8601 UTC). */
export interface PrinterStatus {
  id?: string;
  connected?: boolean;
  online?: boolean;
  state?: PrinterConnState | string;
  reason?: string | null;
  jobState?: JobState | string;
  percent?: number | null;
  remainingMinutes?: number | null;
  nozzleC?: number | null;
  nozzleTargetC?: number | null;
  bedC?: number | null;
  bedTargetC?: number | null;
  chamberC?: number | null;
  light?: "on" | "off" | "unknown" | string;
  lastUpdate?: string | null;
  lastSeen?: string | null;
  layer?: number | null;
  totalLayers?: number | null;
  jobName?: string | null;
  stage?: string | null;
  speedLevel?: number | null;
  hms?: HmsError[];
  ams?: AmsUnit[];
  wifiSignal?: number | string | null;
  camera?: PrinterCamera | null;
}

/** One point of `GET /api/printers/{id}/history`; `ts` in ms since the Unix epoch. */
export interface HistoryPoint {
  ts: number;
  nozzleC?: number | null;
  nozzleTargetC?: number | null;
  bedC?: number | null;
  bedTargetC?: number | null;
  chamberC?: number | null;
  percent?: number | null;
}

export type PrinterCommand =
  | { type: "pause" }
  | { type: "resume" }
  | { type: "stop" }
  | { type: "light"; on: boolean }
  | { type: "speed"; level: 1 | 2 | 3 | 4 }
  | { type: "gcode"; line: string };

export type CameraKind = "rtsp" | "webrtc" | "push";

/** A camera as `GET /api/cameras` returns it (password and publish token are write-only). */
export interface Camera {
  id: string;
  name?: string;
  kind?: CameraKind | string;
  rtspUrl?: string | null;
  username?: string | null;
  passwordSet?: boolean;
  publishTokenSet?: boolean;
  stream?: string | null;
}

export interface CameraInput {
  id?: string;
  name: string;
  kind: CameraKind;
  rtspUrl?: string | null;
  username?: string | null;
  password?: string;
  publishToken?: string;
}

/** `GET /api/cameras/{id}/status`: free-form beyond these fields. */
export interface CameraStatus {
  id?: string;
  connected?: boolean;
  state?: string;
  [key: string]: unknown;
}

/** Body of `POST /api/cameras/{id}/config`: bitrate in kbit/s, resolution in pixels. */
export interface CameraConfig {
  bitrate?: number;
  fps?: number;
  width?: number;
  height?: number;
}

/** Reply of the camera and printer command endpoints. */
export interface CommandReply {
  ok: boolean;
  ack?: unknown;
  error?: string;
}

export interface Health {
  status?: string;
  version?: string;
  activeStreams?: number;
  connections?: number;
  services?: Record<string, unknown> | unknown[];
}
