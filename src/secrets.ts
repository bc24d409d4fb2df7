/**
 * Keeping credentials out of logs and error output. Two nets: URL passwords
 * (`scheme://user:password@host`) are masked wherever they appear, and the secret values this
 * process was given (registerSecret) are replaced wherever they appear, quoted or not.
 */

const MASK = '***';
/** `scheme://[user]:password@`: the password runs to the authority's last "@". */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>\\]*):([^\s/?#"'<>\\]*)@/gi;

/**
 * Values shorter than this are masked only where they stand alone (not inside a longer word):
 * searched for everywhere they would mask ordinary words, yet a short password is still one.
 */
const MIN_SECRET_LENGTH = 6;
const secrets = new Set<string>();
const shortSecrets = new Map<string, RegExp>();

/** Masks `value` (a password, or a URL's password) in everything scrubSecrets sees from now on. */
export function registerSecret(value: string | undefined): void {
  if (!value) return;
  // As written, as it appears inside a JSON string (a log line) and percent-encoded (in a URL).
  for (const form of new Set([
    value,
    JSON.stringify(value).slice(1, -1),
    encodeURIComponent(value),
  ]))
    if (form.length >= MIN_SECRET_LENGTH) secrets.add(form);
    else if (!shortSecrets.has(form))
      shortSecrets.set(
        form,
        new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(form)}(?![\\p{L}\\p{N}])`, 'gu'),
      );
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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
  for (const [secret, standing] of shortSecrets)
    if (out.includes(secret)) out = out.replace(standing, MASK);
  return out;
}

/** A connection URL fit to print: its password masked. */
export const redactUrl = (url: string) => scrubSecrets(url);
