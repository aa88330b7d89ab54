/**
 * The topology routes, beside the observability ones (obs/health-http.ts: on --metrics-address
 * and the admin socket): GET /topology, a page that reloads itself, and GET /topology.svg, the
 * picture alone. Both are drawn from the daemon's status by core/topology, the renderer of
 * `truss topology`; with ids only, as the daemon never asks Docker for names.
 */
import type { StatusBody } from '../core/admin-api.ts';
import { computeTopology } from '../core/topology/model.ts';
import { renderTopologyPage } from '../core/topology/page.ts';
import { renderTopologySvg } from '../core/topology/svg.ts';

export const TOPOLOGY_PATHS = ['/topology', '/topology.svg'] as const;

/** [status, content type, body, headers] */
export type Answer = [number, string, string, Record<string, string>?];

/**
 * Names in the picture are the users': besides escaping every text, the page may load and run
 * nothing (its style sheet is inline), and is never cached (it is the state now).
 */
const HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export async function answerTopology(
  path: string,
  status: () => Promise<StatusBody>,
  now = Date.now(),
): Promise<Answer> {
  const topology = computeTopology(await status(), { now });
  const svg = renderTopologySvg(topology);
  if (path === '/topology.svg') return [200, 'image/svg+xml; charset=utf-8', svg, HEADERS];
  return [200, 'text/html; charset=utf-8', renderTopologyPage(svg), HEADERS];
}
