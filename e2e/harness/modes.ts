/**
 * The network modes a mode-parameterised suite runs in (`for (const mode of MODES) describe(...)`):
 * TRUSS_E2E_MODES=bridge,routed (the default: both), or one of them. CI's e2e28 step runs bridge
 * only (scripts/test.sh); routed mode's smoke there is e2e/routed.e2e.ts.
 */
export type Mode = 'bridge' | 'routed';

export const MODES: readonly Mode[] = (process.env.TRUSS_E2E_MODES ?? 'bridge,routed')
  .split(',')
  .map((m) => m.trim())
  .filter((m): m is Mode => m === 'bridge' || m === 'routed');

/** The `docker network create` options of a mode: routed is just -o truss.mode=routed (pure defaults). */
export const modeOpts = (mode: Mode): string[] => (mode === 'routed' ? ['-o', 'truss.mode=routed'] : []);

/** A suite's title and host name with the mode in them (the bridge variant keeps its old title). */
export const modeTitle = (title: string, mode: Mode): string => (mode === 'bridge' ? title : `${title} (routed mode)`);
