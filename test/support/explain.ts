import type { Queryable } from '../../src/sql/fragments.ts';

/**
 * The plan of the statement a typed SQL function runs, as `EXPLAIN (<options>, FORMAT JSON)`
 * gives it: the function runs against a stand-in that prefixes its text with EXPLAIN, so a test
 * reads the plan of exactly the product's statement. With ANALYZE the statement really runs:
 * wrap writes in a transaction that is rolled back. A message of several statements (settings
 * first, as a sweep chunk sends them) has all but its last run as they are and its last
 * explained: run it inside a transaction, so that settings local to it apply.
 */
export async function explain(
  db: Queryable,
  options: string,
  call: (db: Queryable) => Promise<unknown>,
): Promise<PlanNode> {
  let plan: PlanNode | undefined;
  const explaining = {
    query: async (query: string | { text: string; values?: unknown[] }, given?: unknown[]) => {
      const text = typeof query === 'string' ? query : query.text;
      const values = typeof query === 'string' ? given : (query.values ?? given);
      const last = text.lastIndexOf(';\n');
      if (last >= 0) await db.query(text.slice(0, last));
      const statement = text.slice(last + 1);
      const { rows } = await db.query(`EXPLAIN (${options}, FORMAT JSON) ${statement}`, values);
      plan = rows[0]['QUERY PLAN'][0].Plan;
      // What the function reads back from a plan is meaningless; give it nothing to read.
      return { rows: [], rowCount: 0 };
    },
  } as unknown as Queryable;
  // The function may fail reading an empty result; only the plan matters here.
  await call(explaining).catch(() => undefined);
  if (!plan) throw new Error('the function ran no statement');
  return plan;
}

export type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

/** A plan node and all its descendants. */
export const planNodes = (plan: PlanNode): PlanNode[] => [
  plan,
  ...(plan.Plans ?? []).flatMap(planNodes),
];
