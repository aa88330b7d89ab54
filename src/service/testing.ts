/**
 * Test wiring (imported by tests only): the daemon's stack (src/daemon.ts) over an in-memory
 * store and the fake dataplane, with its reconciler started, as the service and reconciler
 * tests all need it. Call stopTestServices() after each test (afterEach): it stops every reconciler started here.
 */
import { loadConfig } from '../config.ts';
import { type EndpointId, endpointId, type NetworkId, networkId } from '../core/ids.ts';
import { plainParts, wireDaemon } from '../daemon.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { type Logger, silentLogger } from '../obs/logger.ts';
import { Reconciler } from '../reconcile/reconciler.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import type { IntentRepo } from './intent.ts';
import type { NetworkService } from './network-service.ts';
import type { PolicyService } from './policy-service.ts';

/** A 64-hex id from a repeated character, `n` in front to tell several apart: testId('a', 1) = 0001aaa… */
export const testId = (c: string, n = 0): string => (n.toString(16).padStart(4, '0') + c.repeat(64)).slice(0, 64);
/** testId as a network id (what the protocol's decoder hands a service). */
export const testNid = (c: string, n = 0): NetworkId => networkId(testId(c, n));
/** testId as an endpoint id. */
export const testEid = (c: string, n = 0): EndpointId => endpointId(testId(c, n));

export interface TestService {
  readonly store: Store;
  readonly dp: FakeDataplane;
  readonly repo: IntentRepo;
  readonly reconciler: Reconciler;
  readonly svc: NetworkService;
  readonly policy: PolicyService;
}

const started: Reconciler[] = [];
/** full passes only on demand */
const TEST_CONFIG = loadConfig(['--resync-seconds', '3600'], {});

/** A reconciler over `repo`'s intent and `dp` (full passes only on demand), not started. */
export function testReconciler(repo: IntentRepo, dp: FakeDataplane): Reconciler {
  const reconciler = new Reconciler({
    loadIntent: () => repo.snapshot(),
    dataplane: dp,
    log: silentLogger,
    resyncMs: 3_600_000,
  });
  started.push(reconciler);
  return reconciler;
}

export function testService(
  opts: { readonly store?: Store; readonly dp?: FakeDataplane; readonly log?: Logger } = {},
): TestService {
  const store = opts.store ?? new MemoryStore();
  const dp = opts.dp ?? new FakeDataplane();
  // the daemon's own wiring (src/daemon.ts), without a state id or a cluster
  const d = wireDaemon(TEST_CONFIG, plainParts(store, dp, opts.log ?? silentLogger), { programTimeoutMs: 2000 });
  started.push(d.reconciler);
  d.reconciler.start();
  return { store, dp, repo: d.repo, reconciler: d.reconciler, svc: d.network, policy: d.policy };
}

export async function stopTestServices(): Promise<void> {
  await Promise.all(started.splice(0).map((r) => r.stop()));
}
