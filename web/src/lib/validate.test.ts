import { describe, expect, it } from "vitest";
import { idError, suggestId } from "./ids";
import { validateCamera, validatePrinter } from "./validate";

describe("id rule", () => {
  it("accepts ids of the shared rule and explains rejections", () => {
    expect(idError("printer-1")).toBeNull();
    expect(idError("a")).toBeNull();
    expect(idError("x".repeat(63))).toBeNull();
    expect(idError("")).toBe("required");
    expect(idError("x".repeat(64))).toBe("at most 63 characters");
    expect(idError("-lead")).toMatch(/start/);
    expect(idError("Caps")).toMatch(/start/);
    expect(idError("a.b")).toMatch(/only/);
    expect(idError("a*")).toMatch(/only/);
    expect(idError("a>b")).toMatch(/only/);
    expect(idError("a b")).toMatch(/only/);
  });

  it("suggests an id from a name", () => {
    expect(suggestId("Studio X1")).toBe("studio-x1");
    expect(suggestId("  --Garage cam #2 ")).toBe("garage-cam-2");
  });
});

describe("printer form", () => {
  const good = { id: "studio-x1", name: "Studio X1", host: "192.168.1.10", serial: "00M1234ABC", accessCode: "12345678" };

  it("passes a complete printer", () => {
    expect(validatePrinter(good, true)).toEqual({});
    expect(validatePrinter({ ...good, host: "printer.lan", rtspUrl: "rtsps://192.168.1.10:322/streaming/live/1" }, true)).toEqual({});
  });

  it("flags each bad field", () => {
    const e = validatePrinter({ id: "Bad.Id", name: " ", host: "http://x", serial: "12 34", accessCode: "", rtspUrl: "http://cam", mqttPort: 70000 }, true);
    expect(Object.keys(e).sort()).toEqual(["accessCode", "host", "id", "mqttPort", "name", "rtspUrl", "serial"]);
  });

  it("checks a TLS CA is PEM", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    expect(validatePrinter({ ...good, tlsCa: pem }, true)).toEqual({});
    expect(validatePrinter({ ...good, tlsCa: "not a cert" }, true).tlsCa).toMatch(/PEM/);
  });

  it("keeps the access code optional when editing (empty keeps the stored one)", () => {
    expect(validatePrinter({ ...good, id: undefined, accessCode: "" }, false)).toEqual({});
    expect(validatePrinter({ ...good, accessCode: "has space" }, false).accessCode).toBeDefined();
  });
});

describe("camera form", () => {
  it("requires an rtsp URL for rtsp cameras only", () => {
    expect(validateCamera({ id: "garage", name: "Garage", kind: "rtsp", rtspUrl: "rtsp://10.0.0.5/stream1" }, true)).toEqual({});
    expect(validateCamera({ id: "garage", name: "Garage", kind: "rtsp", rtspUrl: "" }, true).rtspUrl).toBe("required");
    expect(validateCamera({ id: "door", name: "Door", kind: "webrtc" }, true)).toEqual({});
    expect(validateCamera({ id: "", name: "", kind: "push" }, true).id).toBe("required");
  });
});
