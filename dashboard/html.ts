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

/** 850 ms, 12.3 s, 4 min 10 s, 3 h 20 min, 2 d 4 h; a zero second unit is left out (1 h). */
export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  const s = Math.round(ms / 1_000);
  const [major, minor] =
    s < 3_600
      ? [`${Math.floor(s / 60)} min`, `${s % 60} s`]
      : s < 86_400
        ? [`${Math.floor(s / 3_600)} h`, `${Math.floor((s % 3_600) / 60)} min`]
        : [`${Math.floor(s / 86_400)} d`, `${Math.floor((s % 86_400) / 3_600)} h`];
  return minor.startsWith('0 ') ? major : `${major} ${minor}`;
}

/** An instant as `2026-01-02 03:04:05 UTC`: one zone for every operator and every log. */
export function time(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
