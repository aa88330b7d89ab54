/**
 * Health (docs/metrics.md#health): live while the process answers (/healthz); ready (/readyz)
 * only while the daemon serves dockerd and the kernel matches the stored intent, by the same
 * check `truss status` runs (its kernel.inSync). Not ready during drift, until a pass repairs it.
 */

export interface ReadinessSources {
  /** the plugin socket is listening and the daemon is not stopping */
  serving(): boolean;
  /** the start-up full pass has finished */
  firstPassDone(): boolean;
  /** differences between the kernel and the intent, changing nothing ([] = in sync) */
  check(): Promise<readonly string[]>;
}

export interface Readiness {
  readonly ready: boolean;
  /** one line an operator can act on */
  readonly reason: string;
}

/** how long the kernel check may take before readiness says so (the engine waits up to 5 s for a pass) */
export const READY_CHECK_MS = 8_000;

export async function readiness(s: ReadinessSources, timeoutMs = READY_CHECK_MS): Promise<Readiness> {
  if (!s.serving()) return { ready: false, reason: 'not serving dockerd (starting or shutting down)' };
  if (!s.firstPassDone()) return { ready: false, reason: 'the start-up reconcile pass has not finished' };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => {
    timer = setTimeout(() => r('late'), timeoutMs);
  });
  try {
    const problems = await Promise.race([s.check(), late]);
    if (problems === 'late') return { ready: false, reason: `the kernel check did not finish within ${timeoutMs} ms` };
    if (problems.length === 0) return { ready: true, reason: 'serving; the kernel matches the intent' };
    const n = problems.length;
    return {
      ready: false,
      reason: `kernel drift: ${n} difference${n === 1 ? '' : 's'} (first: ${problems[0]}); see truss status, or truss reconcile`,
    };
  } catch (e) {
    return { ready: false, reason: `the kernel could not be checked: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    clearTimeout(timer);
  }
}
