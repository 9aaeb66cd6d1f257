/**
 * Manage: add, edit and delete printers and cameras. Forms check the id rule and fields first
 * (lib/validate.ts) and show the gateway's error when it refuses. Secrets (access code, RTSP
 * password, publish token) are write-only: never prefilled, left empty to keep the stored one.
 */
import { useState } from "react";
import { api, ApiError } from "../api/client";
import type { Camera, CameraInput, CameraKind, Printer, PrinterInput } from "../api/types";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { useToast } from "../components/Toasts";
import { suggestId } from "../lib/ids";
import { usePoll } from "../lib/hooks";
import { validateCamera, validatePrinter, type FieldErrors } from "../lib/validate";

const MODELS = ["X1 Carbon", "X1E", "P1S", "P1P", "A1", "A1 mini", "H2D"];

interface FieldProps {
  name: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  error?: string | undefined;
  hint?: string;
  type?: string;
  placeholder?: string;
  required?: boolean;
  autoComplete?: string;
  list?: string;
  formId: string;
}

function Field({ name, label, value, onChange, error, hint, type = "text", placeholder, required, autoComplete, list, formId }: FieldProps) {
  const id = `${formId}-${name}`;
  const describedBy = [error ? `${id}-err` : "", hint ? `${id}-hint` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className={`field${error ? " invalid" : ""}`}>
      <span className="label-row">
        <label htmlFor={id}>{label}</label>
        {required ? <b aria-hidden="true">*</b> : null}
      </span>
      <input
        id={id}
        name={name}
        type={type}
        value={value}
        placeholder={placeholder}
        autoComplete={autoComplete ?? "off"}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
        aria-required={required}
        list={list}
        onChange={(e) => onChange(e.target.value)}
      />
      {hint && !error && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-err`} className="err">
          {error}
        </small>
      )}
    </div>
  );
}

function serverMessage(err: unknown): string {
  if (err instanceof ApiError) return err.status ? `${err.message} (HTTP ${err.status})` : err.message;
  return err instanceof Error ? err.message : String(err);
}

function PrinterForm({ editing, onDone }: { editing: Printer | null; onDone: (saved: Printer | null) => void }) {
  const creating = editing === null;
  const formId = creating ? "printer-new" : `printer-${editing.id}`;
  const [id, setId] = useState(editing?.id ?? "");
  const [idTouched, setIdTouched] = useState(!creating);
  const [name, setName] = useState(editing?.name ?? "");
  const [host, setHost] = useState(editing?.host ?? "");
  const [serial, setSerial] = useState(editing?.serial ?? "");
  const [accessCode, setAccessCode] = useState("");
  const [model, setModel] = useState(editing?.model ?? "");
  const [mqttPort, setMqttPort] = useState(editing?.mqttPort ? String(editing.mqttPort) : "");
  const [rtspUrl, setRtspUrl] = useState(editing?.rtspUrl ?? "");
  const [tlsCa, setTlsCa] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [serverError, setServerError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const input: PrinterInput = { name: name.trim(), host: host.trim(), serial: serial.trim() };
    if (creating) input.id = id.trim();
    if (accessCode) input.accessCode = accessCode;
    if (model.trim()) input.model = model.trim();
    if (mqttPort.trim()) input.mqttPort = Number(mqttPort);
    input.rtspUrl = rtspUrl.trim() || null;
    if (tlsCa.trim()) input.tlsCa = tlsCa.trim();
    const errs = validatePrinter(input, creating);
    setErrors(errs);
    setServerError(null);
    if (Object.keys(errs).length > 0) return;
    setSaving(true);
    try {
      const saved = creating ? await api.createPrinter(input) : await api.updatePrinter(editing.id, input);
      onDone(saved ?? null);
    } catch (err) {
      setServerError(serverMessage(err));
    } finally {
      setSaving(false);
    }
  };

  return (
    <form className="card form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby={`${formId}-title`} data-testid="printer-form">
      <h3 id={`${formId}-title`}>{creating ? "Add printer" : `Edit ${editing.name || editing.id}`}</h3>
      {serverError && (
        <div className="banner tone-bad" role="alert" data-testid="form-error">
          {serverError}
        </div>
      )}
      <div className="form-grid">
        <Field
          formId={formId}
          name="name"
          label="Name"
          required
          value={name}
          error={errors.name}
          onChange={(v) => {
            setName(v);
            if (!idTouched) setId(suggestId(v));
          }}
        />
        {creating && (
          <Field
            formId={formId}
            name="id"
            label="Id"
            required
            value={id}
            error={errors.id}
            hint="a-z, 0-9, '_' and '-'; used in URLs"
            onChange={(v) => {
              setIdTouched(true);
              setId(v);
            }}
          />
        )}
        <Field formId={formId} name="host" label="Host / IP" required value={host} error={errors.host} placeholder="192.168.1.10" onChange={setHost} />
        <Field formId={formId} name="serial" label="Serial number" required value={serial} error={errors.serial} onChange={setSerial} />
        <Field
          formId={formId}
          name="accessCode"
          label="LAN access code"
          type="password"
          autoComplete="new-password"
          required={creating}
          value={accessCode}
          error={errors.accessCode}
          placeholder={!creating && editing.accessCodeSet ? "•••••••• (stored; leave empty to keep)" : ""}
          hint="write-only: never shown again"
          onChange={setAccessCode}
        />
        <Field formId={formId} name="model" label="Model" value={model} error={errors.model} list="printer-models" onChange={setModel} />
        <Field formId={formId} name="mqttPort" label="MQTT port" type="number" value={mqttPort} error={errors.mqttPort} placeholder="8883" onChange={setMqttPort} />
        <Field
          formId={formId}
          name="rtspUrl"
          label="Camera RTSP URL"
          value={rtspUrl}
          error={errors.rtspUrl}
          hint="optional; default: the URL the printer reports"
          placeholder="rtsps://192.168.1.10:322/streaming/live/1"
          onChange={setRtspUrl}
        />
      </div>
      <div className={`field${errors.tlsCa ? " invalid" : ""}`}>
        <label htmlFor={`${formId}-tlsCa`}>Printer CA certificate (PEM)</label>
        <textarea
          id={`${formId}-tlsCa`}
          rows={3}
          value={tlsCa}
          spellCheck={false}
          placeholder={!creating && editing.tlsCaSet ? "(stored; leave empty to keep)" : "optional: -----BEGIN CERTIFICATE----- …"}
          aria-invalid={errors.tlsCa ? true : undefined}
          aria-describedby={`${formId}-tlsCa-note`}
          onChange={(e) => setTlsCa(e.target.value)}
        />
        <small id={`${formId}-tlsCa-note`} className={errors.tlsCa ? "err" : "hint"}>
          {errors.tlsCa ?? "with it camhub verifies the printer's TLS certificate; without it the MQTT TLS is unverified"}
        </small>
      </div>
      <datalist id="printer-models">
        {MODELS.map((m) => (
          <option key={m} value={m} />
        ))}
      </datalist>
      <div className="form-actions">
        <button type="button" className="btn" onClick={() => onDone(null)}>
          Cancel
        </button>
        <button type="submit" className="btn primary" disabled={saving}>
          {saving ? "Saving…" : creating ? "Add printer" : "Save"}
        </button>
      </div>
    </form>
  );
}

function CameraForm({ editing, onDone }: { editing: Camera | null; onDone: (saved: Camera | null) => void }) {
  const creating = editing === null;
  const formId = creating ? "camera-new" : `camera-${editing.id}`;
  const [id, setId] = useState(editing?.id ?? "");
  const [idTouched, setIdTouched] = useState(!creating);
  const [name, setName] = useState(editing?.name ?? "");
  const [kind, setKind] = useState<CameraKind>((editing?.kind as CameraKind) ?? "rtsp");
  const [rtspUrl, setRtspUrl] = useState(editing?.rtspUrl ?? "");
  const [username, setUsername] = useState(editing?.username ?? "");
  const [password, setPassword] = useState("");
  const [publishToken, setPublishToken] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [serverError, setServerError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const input: CameraInput = { name: name.trim() || id.trim(), kind };
    if (creating) input.id = id.trim();
    if (kind === "rtsp") {
      input.rtspUrl = rtspUrl.trim();
      input.username = username.trim() || null;
      if (password) input.password = password;
    } else if (publishToken) {
      input.publishToken = publishToken;
    }
    const errs = validateCamera(input, creating);
    setErrors(errs);
    setServerError(null);
    if (Object.keys(errs).length > 0) return;
    setSaving(true);
    try {
      const saved = creating ? await api.createCamera(input) : await api.updateCamera(editing.id, input);
      onDone(saved ?? null);
    } catch (err) {
      setServerError(serverMessage(err));
    } finally {
      setSaving(false);
    }
  };

  return (
    <form className="card form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby={`${formId}-title`} data-testid="camera-form">
      <h3 id={`${formId}-title`}>{creating ? "Add camera" : `Edit ${editing.name || editing.id}`}</h3>
      {serverError && (
        <div className="banner tone-bad" role="alert" data-testid="form-error">
          {serverError}
        </div>
      )}
      <div className="form-grid">
        <Field
          formId={formId}
          name="name"
          label="Name"
          value={name}
          onChange={(v) => {
            setName(v);
            if (!idTouched) setId(suggestId(v));
          }}
        />
        {creating && (
          <Field
            formId={formId}
            name="id"
            label="Id (stream)"
            required
            value={id}
            error={errors.id}
            hint="a-z, 0-9, '_' and '-'; the stream id"
            onChange={(v) => {
              setIdTouched(true);
              setId(v);
            }}
          />
        )}
        <div className="field">
          <label htmlFor={`${formId}-kind`}>Kind</label>
          <select id={`${formId}-kind`} value={kind} onChange={(e) => setKind(e.target.value as CameraKind)}>
            <option value="rtsp">RTSP / RTSPS (pulled)</option>
            <option value="webrtc">WebRTC (WHIP publish)</option>
            <option value="push">HTTP push</option>
          </select>
        </div>
        {kind === "rtsp" ? (
          <>
            <Field
              formId={formId}
              name="rtspUrl"
              label="RTSP URL"
              required
              value={rtspUrl}
              error={errors.rtspUrl}
              placeholder="rtsp://192.168.1.20:554/stream1"
              hint="without credentials; put them below"
              onChange={setRtspUrl}
            />
            <Field formId={formId} name="username" label="Username" value={username} onChange={setUsername} />
            <Field
              formId={formId}
              name="password"
              label="Password"
              type="password"
              autoComplete="new-password"
              value={password}
              placeholder={!creating && editing.passwordSet ? "•••••••• (stored; leave empty to keep)" : ""}
              hint="write-only"
              onChange={setPassword}
            />
          </>
        ) : (
          <Field
            formId={formId}
            name="publishToken"
            label="Publish token"
            type="password"
            autoComplete="new-password"
            value={publishToken}
            placeholder={!creating && editing.publishTokenSet ? "•••••••• (stored; leave empty to keep)" : "optional"}
            hint={kind === "webrtc" ? "the bearer token the camera sends to /whip" : "the bearer token producers send to /ingest"}
            onChange={setPublishToken}
          />
        )}
      </div>
      <div className="form-actions">
        <button type="button" className="btn" onClick={() => onDone(null)}>
          Cancel
        </button>
        <button type="submit" className="btn primary" disabled={saving}>
          {saving ? "Saving…" : creating ? "Add camera" : "Save"}
        </button>
      </div>
    </form>
  );
}

type Editing<T> = { mode: "closed" } | { mode: "new" } | { mode: "edit"; item: T };
type Deleting = { kind: "printer" | "camera"; id: string; name: string } | null;

export function ManagePage() {
  const printers = usePoll((signal) => api.printers(signal), 0);
  const cameras = usePoll((signal) => api.cameras(signal), 0);
  const [pEdit, setPEdit] = useState<Editing<Printer>>({ mode: "closed" });
  const [cEdit, setCEdit] = useState<Editing<Camera>>({ mode: "closed" });
  const [deleting, setDeleting] = useState<Deleting>(null);
  const toast = useToast();

  const doDelete = async () => {
    const d = deleting;
    setDeleting(null);
    if (!d) return;
    try {
      if (d.kind === "printer") await api.deletePrinter(d.id);
      else await api.deleteCamera(d.id);
      toast("ok", `Deleted ${d.name}`);
    } catch (err) {
      toast("bad", `Cannot delete ${d.name}: ${serverMessage(err)}`);
    }
    printers.reload();
    cameras.reload();
  };

  return (
    <section aria-labelledby="manage-title">
      <div className="page-head">
        <h1 id="manage-title">Manage</h1>
      </div>

      <section className="manage-section" aria-labelledby="manage-printers">
        <div className="section-head">
          <h2 id="manage-printers">Printers</h2>
          <button type="button" className="btn primary" onClick={() => setPEdit({ mode: "new" })} disabled={pEdit.mode === "new"}>
            Add printer
          </button>
        </div>
        {printers.error && <div className="banner tone-bad">{printers.error.message}</div>}
        {pEdit.mode !== "closed" && (
          <PrinterForm
            key={pEdit.mode === "edit" ? pEdit.item.id : "new"}
            editing={pEdit.mode === "edit" ? pEdit.item : null}
            onDone={(saved) => {
              if (saved !== null || pEdit.mode === "new") printers.reload();
              if (saved) toast("ok", `${pEdit.mode === "new" ? "Added" : "Saved"} printer ${saved.name || saved.id}`);
              setPEdit({ mode: "closed" });
            }}
          />
        )}
        <div className="table-wrap">
          <table className="table" data-testid="printers-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Id</th>
                <th scope="col" className="hide-sm">Host</th>
                <th scope="col" className="hide-sm">Serial</th>
                <th scope="col">Access code</th>
                <th scope="col" className="hide-sm">Model</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(printers.data ?? []).map((p) => (
                <tr key={p.id} data-printer-row={p.id}>
                  <td>{p.name || "—"}</td>
                  <td>
                    <code>{p.id}</code>
                  </td>
                  <td className="hide-sm">{p.host || "—"}</td>
                  <td className="hide-sm">{p.serial || "—"}</td>
                  <td>{p.accessCodeSet ? <span className="pill tone-ok">set</span> : <span className="pill tone-warn">not set</span>}</td>
                  <td className="hide-sm">{p.model || "—"}</td>
                  <td className="row-actions">
                    <div>
                      <button type="button" className="btn small" onClick={() => setPEdit({ mode: "edit", item: p })} aria-label={`Edit ${p.name || p.id}`}>
                        Edit
                      </button>
                      <button
                        type="button"
                        className="btn small danger"
                        onClick={() => setDeleting({ kind: "printer", id: p.id, name: p.name || p.id })}
                        aria-label={`Delete ${p.name || p.id}`}
                      >
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
              {printers.data && printers.data.length === 0 && (
                <tr>
                  <td colSpan={7} className="muted">
                    No printers.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>

      <section className="manage-section" aria-labelledby="manage-cameras">
        <div className="section-head">
          <h2 id="manage-cameras">Cameras</h2>
          <button type="button" className="btn primary" onClick={() => setCEdit({ mode: "new" })} disabled={cEdit.mode === "new"}>
            Add camera
          </button>
        </div>
        {cameras.error && <div className="banner tone-bad">{cameras.error.message}</div>}
        {cEdit.mode !== "closed" && (
          <CameraForm
            key={cEdit.mode === "edit" ? cEdit.item.id : "new"}
            editing={cEdit.mode === "edit" ? cEdit.item : null}
            onDone={(saved) => {
              if (saved !== null || cEdit.mode === "new") cameras.reload();
              if (saved) toast("ok", `${cEdit.mode === "new" ? "Added" : "Saved"} camera ${saved.name || saved.id}`);
              setCEdit({ mode: "closed" });
            }}
          />
        )}
        <div className="table-wrap">
          <table className="table" data-testid="cameras-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Id</th>
                <th scope="col">Kind</th>
                <th scope="col" className="hide-sm">Source</th>
                <th scope="col" className="hide-sm">Secret</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(cameras.data ?? []).map((c) => (
                <tr key={c.id} data-camera-row={c.id}>
                  <td>{c.name || "—"}</td>
                  <td>
                    <code>{c.id}</code>
                  </td>
                  <td>{c.kind ?? "—"}</td>
                  <td className="truncate hide-sm" title={c.rtspUrl ?? ""}>
                    {c.rtspUrl || "—"}
                  </td>
                  <td className="hide-sm">{c.passwordSet || c.publishTokenSet ? <span className="pill tone-ok">set</span> : <span className="muted">none</span>}</td>
                  <td className="row-actions">
                    <div>
                      <button type="button" className="btn small" onClick={() => setCEdit({ mode: "edit", item: c })} aria-label={`Edit ${c.name || c.id}`}>
                        Edit
                      </button>
                      <button
                        type="button"
                        className="btn small danger"
                        onClick={() => setDeleting({ kind: "camera", id: c.id, name: c.name || c.id })}
                        aria-label={`Delete ${c.name || c.id}`}
                      >
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
              {cameras.data && cameras.data.length === 0 && (
                <tr>
                  <td colSpan={6} className="muted">
                    No cameras.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>

      <ConfirmDialog
        open={deleting !== null}
        title={`Delete ${deleting?.name ?? ""}?`}
        message={deleting?.kind === "printer" ? "camhub disconnects from the printer and forgets its settings." : "camhub stops the camera's stream and forgets its settings."}
        confirmLabel="Delete"
        danger
        onCancel={() => setDeleting(null)}
        onConfirm={() => void doDelete()}
      />
    </section>
  );
}
