import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/**
 * Checks a Grafana dashboard (the classic JSON model) against Grafana's published TypeScript
 * types (@grafana/schema, which ships no JSON schema): the dashboard, and each panel with the
 * options and field config of its panel type, are written out as object literals typed with
 * those types and compiled. Object literals get TypeScript's excess-property check, so a
 * misspelt or unknown field fails as surely as a wrong type. Returns the compiler's messages.
 */

/** @grafana/schema's types for each panel type the dashboard may use. */
const PANEL_TYPES: Record<string, { module: string; fieldConfig: boolean }> = {
  timeseries: { module: 'timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen', fieldConfig: true },
  stat: { module: 'stat/panelcfg/x/StatPanelCfg_types.gen', fieldConfig: false },
};

// The schema's enums are TypeScript enums, to which JSON's plain strings do not assign: compare
// with each enum's values instead (`${E}` is the union of a string enum's values).
const JSONISH = `type Jsonish<T> = T extends string
  ? string extends T ? string : \`\${T}\`
  : T extends number ? number
  : T extends boolean ? boolean
  : T extends readonly (infer U)[] ? Jsonish<U>[]
  : T extends object ? { [K in keyof T]: Jsonish<T[K]> }
  : T;`;

type Panel = { type: string; panels?: Panel[] };

export function grafanaTypeErrors(dashboard: { panels?: Panel[] }, dir: string): string[] {
  const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
  const unknown = panels.filter((p) => p.type !== 'row' && !PANEL_TYPES[p.type]);
  if (unknown.length) return unknown.map((p) => `no types known for panel type ${p.type}`);
  const used = Object.entries(PANEL_TYPES).filter(([type]) => panels.some((p) => p.type === type));
  const lines = [
    "import type { Dashboard, FieldConfigSource, Panel, RowPanel } from '@grafana/schema';",
    ...used.map(
      ([type, t]) =>
        `import type * as ${type} from '@grafana/schema/dist/esm/raw/composable/${t.module}';`,
    ),
    JSONISH,
    `export const dashboard: Jsonish<Dashboard> = ${JSON.stringify(dashboard, null, 2)};`,
    ...panels.map((p, i) => {
      if (p.type === 'row') return `export const panel${i}: Jsonish<RowPanel> = ${json(p)};`;
      const t = PANEL_TYPES[p.type] as { fieldConfig: boolean };
      const custom = t.fieldConfig ? `${p.type}.FieldConfig` : 'Record<string, never>';
      return `export const panel${i}: Jsonish<Omit<Panel, 'options' | 'fieldConfig'> & { options: ${p.type}.Options; fieldConfig: FieldConfigSource<${custom}> }> = ${json(p)};`;
    }),
  ];
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'dashboard-types-check.ts');
  writeFileSync(file, `${lines.join('\n')}\n`);
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

const json = (value: unknown) => JSON.stringify(value, null, 2);
