/** The id rule shared with the gateway (services/common/ids.py): `^[a-z0-9][a-z0-9_-]{0,62}$`. */
export const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** An error sentence for an invalid id, or null when `value` is valid. */
export function idError(value: string): string | null {
  if (value === "") return "required";
  if (value.length > 63) return "at most 63 characters";
  if (!/^[a-z0-9]/.test(value)) return "must start with a lower-case letter or digit";
  if (!ID_PATTERN.test(value)) return "use only a-z, 0-9, '_' and '-'";
  return null;
}

/** A suggested id from a display name ("Studio X1" -> "studio-x1"). */
export function suggestId(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^[-_]+|[-]+$/g, "")
    .slice(0, 63);
}
