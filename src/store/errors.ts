/**
 * Errors a caller of the store can act on. Each names the offending field so that the HTTP API
 * can answer 400 with it, and none carries database text.
 */
export class InvalidInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InvalidInputError';
  }
}

export class EntryNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`no audit log entry with id ${id}`);
    this.name = 'EntryNotFoundError';
  }
}
