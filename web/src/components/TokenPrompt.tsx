/** Asks for the gateway's API token after a 401; stores it in localStorage (api/client.ts). */
import { useEffect, useRef, useState } from "react";
import { getToken, setToken } from "../api/client";

export function TokenPrompt({ open, onClose }: { open: boolean; onClose: (saved: boolean) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [value, setValue] = useState("");
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      setValue("");
      d.showModal();
    }
    if (!open && d.open) d.close();
  }, [open]);
  const had = getToken() !== "";
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="token-title" onCancel={(e) => { e.preventDefault(); onClose(false); }}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value.trim());
          setValue(""); // the secret does not stay in the DOM of the closed dialog
          onClose(true);
        }}
      >
        <h2 id="token-title">API token required</h2>
        <p>
          {had ? "The stored token was rejected. " : ""}This gateway requires a bearer token. Paste the token that
          <code> camhub up</code> printed (or <code>CAMHUB_API_TOKEN</code>). It is kept in this browser only.
        </p>
        <label className="field">
          <span>Token</span>
          <input type="password" autoComplete="off" value={value} onChange={(e) => setValue(e.target.value)} autoFocus required />
        </label>
        <div className="dialog-actions">
          {had && (
            <button type="button" className="btn" onClick={() => { setToken(""); onClose(true); }}>
              Forget token
            </button>
          )}
          <button
            type="button"
            className="btn"
            onClick={() => {
              setValue("");
              onClose(false);
            }}
          >
            Cancel
          </button>
          <button type="submit" className="btn primary">
            Save
          </button>
        </div>
      </form>
    </dialog>
  );
}
