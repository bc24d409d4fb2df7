/**
 * A reading taken at most once per `intervalMs` per process, however many chunks ask for it:
 * concurrent callers share the query under way, later ones get the last value until it is old.
 */
export function cachedReader<T>(intervalMs: number, read: () => Promise<T>): () => Promise<T> {
  let at = Number.NEGATIVE_INFINITY;
  let value: Promise<T> | undefined;
  return () => {
    const now = performance.now();
    if (!value || now - at >= intervalMs) {
      at = now;
      value = read();
    }
    return value;
  };
}
