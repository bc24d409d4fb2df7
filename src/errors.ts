/** An error's message, or the thrown value as text: the one way errors become text here. */
export const errorMessage = (err: unknown): string =>
  err instanceof Error ? err.message : String(err);
