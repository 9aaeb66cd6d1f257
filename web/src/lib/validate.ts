/**
 * Client-side checks of the Manage forms, before the gateway's own (which stay authoritative:
 * its `{"ok": false, "error"}` answers are shown next to the form). Each function returns a map
 * of field -> error sentence; an empty map means the form may be sent.
 */
import type { CameraInput, PrinterInput } from "../api/types";
import { idError } from "./ids";

export type FieldErrors = Partial<Record<string, string>>;

/** Host names, IPv4 and (bracketed) IPv6 addresses: the gateway's `Host` pattern, 253 characters at most. */
const HOST_RE = /^[A-Za-z0-9._:%[\]-]{1,253}$/;

export function hostError(host: string): string | null {
  const h = host.trim();
  if (!h) return "required";
  if (h.includes("://") || h.includes("/")) return "only the host name or IP address, without scheme or path";
  if (!HOST_RE.test(h)) return "a host name or IP address (letters, digits, '.', '-', ':')";
  return null;
}

export function rtspUrlError(url: string, required: boolean): string | null {
  if (!url.trim()) return required ? "required" : null;
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    return "not a URL";
  }
  if (u.protocol !== "rtsp:" && u.protocol !== "rtsps:") return "must start with rtsp:// or rtsps://";
  if (!u.hostname) return "the URL has no host";
  return null;
}

/** Checks a printer form; `creating` requires the id and the access code. */
export function validatePrinter(p: PrinterInput, creating: boolean): FieldErrors {
  const e: FieldErrors = {};
  if (creating) {
    const id = idError(p.id ?? "");
    if (id) e.id = id;
  }
  if (!p.name.trim()) e.name = "required";
  const host = hostError(p.host);
  if (host) e.host = host;
  if (!p.serial.trim()) e.serial = "required";
  else if (!/^[A-Za-z0-9_-]{1,64}$/.test(p.serial.trim())) e.serial = "letters and digits only (the printer's serial number)";
  if (creating && !p.accessCode) e.accessCode = "required (the LAN access code shown on the printer)";
  if (p.accessCode !== undefined && p.accessCode !== "" && !/^[\x21-\x7e\u0080-\uffff]{1,128}$/.test(p.accessCode)) {
    e.accessCode = "1-128 characters, no spaces";
  }
  if ((p.model ?? "").length > 32) e.model = "at most 32 characters";
  if (p.tlsCa !== undefined && p.tlsCa !== "" && !/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(p.tlsCa)) {
    e.tlsCa = "a PEM certificate (-----BEGIN CERTIFICATE----- ...)";
  }
  if (p.name.length > 100) e.name = "at most 100 characters";
  const rtsp = rtspUrlError(p.rtspUrl ?? "", false);
  if (rtsp) e.rtspUrl = rtsp;
  if (p.mqttPort !== undefined && p.mqttPort !== null && (!Number.isInteger(p.mqttPort) || p.mqttPort < 1 || p.mqttPort > 65535)) {
    e.mqttPort = "a port number 1-65535";
  }
  return e;
}

/** Checks a camera form; RTSP cameras need a URL. */
export function validateCamera(c: CameraInput, creating: boolean): FieldErrors {
  const e: FieldErrors = {};
  if (creating) {
    const id = idError(c.id ?? "");
    if (id) e.id = id;
  }
  if (!["rtsp", "webrtc", "push"].includes(c.kind)) e.kind = "choose rtsp, webrtc or push";
  if (c.kind === "rtsp") {
    const rtsp = rtspUrlError(c.rtspUrl ?? "", true);
    if (rtsp) e.rtspUrl = rtsp;
  }
  return e;
}
