/** Small helpers for the server-rendered pages: escaping and the units operators read. */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text or attribute value, escaped: everything from Redis or the database goes through this. */
export const esc = (value: unknown): string =>
  String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

export const count = (n: number): string => n.toLocaleString('en-US');

/** An instant as `2026-01-02 03:04:05 UTC`: one zone for every operator and every log. */
export function time(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
