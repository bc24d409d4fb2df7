/**
 * A whole number written in plain decimal digits, from `min` to `max`; undefined otherwise.
 * Number() alone would also read "0x10", "1e3", " 16 " or "".
 */
export function parseWholeNumber(text: string, min: number, max: number): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}
