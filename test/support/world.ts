import { afterAll, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { createTestPrefix } from './redis.ts';

/**
 * One test file's world: a database and a Redis key prefix of its own, made before its first
 * test and removed after its last, so files run side by side without sharing state. Call it at
 * the top of a file: the file's own beforeAll hooks run after this one's (the database exists),
 * its afterAll hooks before this one's (vitest runs after-hooks as a stack).
 */
export type TestWorld = {
  /** The file's migrated database (available from the file's own beforeAll on). */
  readonly db: TestDatabase;
  /** The file's Redis key prefix, hash-tagged like production's. */
  readonly prefix: string;
};

export function useTestWorld(label: string): TestWorld {
  const prefix = createTestPrefix(label);
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(label);
  });
  afterAll(async () => {
    await db?.drop();
    await prefix.cleanup();
  });
  return {
    get db() {
      if (!db) throw new Error(`the test world "${label}" is used before its beforeAll ran`);
      return db;
    },
    prefix: prefix.prefix,
  };
}
