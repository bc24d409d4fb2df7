/**
 * Keeping credentials out of logs and error output. Two nets: URL passwords
 * (`scheme://user:password@host`) are masked wherever they appear, and the secret values this
 * process was given (registerSecret) are replaced wherever they appear, quoted or not.
 */

const MASK = '***';
/** `scheme://[user]:password@`: the password runs to the authority's last "@". */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>\\]*):([^\s/?#"'<>\\]*)@/gi;

/** Values shorter than this are not searched for: they would mask ordinary words. */
const MIN_SECRET_LENGTH = 6;
const secrets = new Set<string>();

/** Masks `value` (a password, or a URL's password) in everything scrubSecrets sees from now on. */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  secrets.add(value);
  // As it appears inside a JSON string (a log line) and percent-encoded (inside a URL).
  secrets.add(JSON.stringify(value).slice(1, -1));
  secrets.add(encodeURIComponent(value));
}

/** Registers the password of a connection URL (as written and decoded). */
export function registerUrlSecret(url: string): void {
  try {
    const parsed = new URL(url);
    // The URL's own password, and any in its query (redis+sentinel://...?sentinelPassword=).
    const passwords = [
      parsed.password,
      ...[...parsed.searchParams].filter(([k]) => /password/i.test(k)).map(([, v]) => v),
    ];
    for (const password of passwords) {
      registerSecret(password);
      registerSecret(decodeURIComponent(password));
    }
  } catch {
    // Not a URL: nothing to register.
  }
}

/** `text` with every URL password and registered secret masked. */
export function scrubSecrets(text: string): string {
  let out = text.replace(URL_PASSWORD, `$1:${MASK}@`);
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(MASK);
  return out;
}

/** A connection URL fit to print: its password masked. */
export const redactUrl = (url: string) => scrubSecrets(url);
