/**
 * Writes docs/json/NAME.schema.json from the admin contract (src/core/admin-api.ts): the JSON
 * Schema of every admin reply and request body and of every `truss ... --json` output.
 * Run after changing the contract: `npm run --silent json-schema`; src/admin/contract.test.ts
 * fails while the published files differ from what this writes.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { contractJsonSchemas } from '../src/core/admin-api.ts';

export const JSON_SCHEMA_DIR = fileURLToPath(new URL('../docs/json/', import.meta.url));

/** The file text of each published schema, by file name. */
export function schemaFiles(): Map<string, string> {
  return new Map(
    Object.entries(contractJsonSchemas()).map(([name, schema]) => [
      `${name}.schema.json`,
      `${JSON.stringify(schema, null, 2)}\n`,
    ]),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(JSON_SCHEMA_DIR, { recursive: true });
  const files = schemaFiles();
  for (const f of readdirSync(JSON_SCHEMA_DIR)) if (!files.has(f)) rmSync(join(JSON_SCHEMA_DIR, f));
  for (const [f, text] of files) writeFileSync(join(JSON_SCHEMA_DIR, f), text);
  process.stdout.write(`wrote ${files.size} schemas to ${JSON_SCHEMA_DIR}\n`);
}
