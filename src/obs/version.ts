import { readFileSync } from 'node:fs';

/** Set by the plugin bundle (packaging/plugin/build.ts, esbuild `define`); undefined when run from source. */
declare const __TRUSS_VERSION__: string | undefined;

/** truss's version, from package.json (the one source of truth), or baked into the bundle at build time. */
export const VERSION: string =
  typeof __TRUSS_VERSION__ === 'string'
    ? __TRUSS_VERSION__
    : (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
