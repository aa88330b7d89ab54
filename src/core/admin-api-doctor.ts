/** The admin contract of `truss doctor`: its --json reply and the path walk's request and reply (admin-api.ts publishes them). */
import { z } from 'zod';
import type { Built, View } from './admin-api.ts';

// ---------- truss doctor --json (no daemon, same contract) ----------

export const doctorBody = z.object({
  ok: z.boolean().describe('every must-have is present (exit status 0)'),
  checks: z.array(
    z.object({
      id: z.string(),
      title: z.string(),
      need: z.enum(['required', 'optional']),
      status: z.enum(['ok', 'missing', 'warn', 'info']),
      detail: z.string(),
      affects: z.string(),
      fix: z.string().optional(),
      features: z.array(z.enum(['port-policy', 'encrypted-cluster', 'ipv6'])).optional(),
      piece: z.object({ what: z.string(), state: z.string(), restart: z.boolean() }).optional(),
    }),
  ),
});
export type DoctorBody = Built<typeof doctorBody>;

// ---------- POST /v1/doctor/path (truss doctor SRC DST [PORT/PROTO]) ----------

const pathAddress = z.object({
  ip: z.string(),
  networkId: z.string().optional().describe("Docker's network id, when the CLI resolved a container"),
  endpointId: z.string().optional(),
  network: z.string().optional().describe("Docker's network name"),
});
const pathEnd = z.object({
  ref: z.string().describe('as the operator gave it: a container name or id, or an IP'),
  container: z.string().optional().describe("Docker's container name"),
  addresses: z.array(pathAddress),
});
export const pathRequest = z.object({
  from: pathEnd,
  to: pathEnd,
  proto: z.enum(['tcp', 'udp', 'icmp']).describe('icmp: no PORT/PROTO given, reachability as ping'),
  port: z.number().int().min(1).max(65535).optional(),
});
export type PathRequest = View<typeof pathRequest>;
const pathEndView = z.object({
  ref: z.string(),
  ip: z.string().optional().describe('the address the walk used'),
  where: z.enum(['this-host', 'cluster-peer', 'outside']),
  node: z.string().optional().describe('the cluster host it is on (where = cluster-peer)'),
  networkId: z.string().optional(),
  network: z.string().optional(),
  endpointId: z.string().optional(),
});
export const pathBody = z.object({
  verdict: z.enum(['allowed', 'blocked', 'unknown']).describe('exit status 0 for allowed, 1 otherwise'),
  summary: z.string().describe('the one thing that blocks (or leaves it unknown), or why it is allowed'),
  flow: z.string().describe('tcp/80, udp/53 or icmp'),
  from: pathEndView,
  to: pathEndView,
  steps: z.array(
    z.object({
      id: z.enum(['endpoints', 'network', 'joined', 'tunnel', 'policy', 'anti-spoofing', 'published', 'kernel']),
      status: z.enum(['ok', 'blocked', 'unknown', 'info']),
      detail: z.string(),
    }),
  ),
});
export type PathBody = View<typeof pathBody>;
