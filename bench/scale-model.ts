// What 100,000 and 1,000,000 nodes need, extrapolated from per-unit costs measured on this machine (docs/scale.md
// says where each figure comes from). A model, not a load test: every input is a measured figure or a stated
// assumption, and the output names the resource that binds first at each size.
//   npx tsx bench/scale-model.ts [nodes...]        # default 10000 100000 1000000
const KiB = 1024, GiB = 1024 ** 3;

/** Measured (docs/performance.md, docs/coord.md, docs/relay.md; 2-core machine, 2026-11-30). */
export const MEASURED = {
  coordBytesPerStream: 124 * KiB, // bench:coord, 10,000 connected idle nodes (a bare Node TLS socket: 69-97 KiB)
  coordCpuMsPerEnrollment: 6.4, // server CPU per enrollment, paired runs (coordperf)
  coordStreamsConnectPerSecond: 10_000 / 117, // bench:coord: 10,000 streams in 117 s, clients on the same 2 cores
  // bench:coord at 10,000 nodes: one endpoint change until its 50 watchers hold the delta, 40 ms with the clients
  // on the same two cores: an upper bound of the server's cost per watcher.
  endpointChangeMsPerWatcher: 40 / 50,
  policyChangeMapMsAt10k: 26, // map work of one policy change at 10,000 sessions (proportional to what changed)
  pgChangeToOtherReplicaMs: 4, // enrollment on replica A -> in B's stream, median 2.4-4 ms
  pgWriteMsUnderLock: 2, // one map-changing transaction holds the change-log lock about this long (1-2 ms)
  relayBytesPerConnection: 109 * KiB, // test/node/memory.test.ts: relay RSS per connected node
  nodeCoordPacketsPerMinuteAtRest: 2, // coordination stream keepalive: a frame each way a minute
};

/** Assumptions, stated: change them here. */
export const ASSUMED = {
  nodesPerTenant: 1_000,
  watchersPerNode: 50, // peers whose map shows a node (bench:coord's team size)
  replicaMemoryBudget: 12 * GiB, // per coordination replica, leaving room for the OS and PostgreSQL's client
  relayMemoryBudget: 6 * GiB,
  coresPerReplica: 4,
  endpointChangesPerNodePerHour: 2, // laptops and phones roam; servers almost never
  enrollmentsPerNodePerDay: 1 / 30, // re-enrollment after a wipe; renewals are separate (below)
  renewalsPerNodePerDay: 3, // 8-hour certificates renewed at 2/3 of their life
  connectStormMinutes: 5, // a replica restart: its nodes must all be back within this
};

export interface Plan {
  nodes: number;
  tenants: number;
  replicasByMemory: number;
  replicasByConnectStorm: number;
  replicas: number;
  writesPerSecond: number;
  changeLogLockShare: number;
  relaysByMemory: number;
  fanoutCpuShare: number;
  binds: string;
}

/** Pure: the resources N nodes need under MEASURED and ASSUMED. */
export function plan(nodes: number, m = MEASURED, a = ASSUMED): Plan {
  const tenants = Math.ceil(nodes / a.nodesPerTenant);
  const replicasByMemory = Math.ceil((nodes * m.coordBytesPerStream) / a.replicaMemoryBudget);
  // Streams a replica can take back within the storm window, scaled by its cores (TLS handshakes are per core).
  const perReplicaStorm = m.coordStreamsConnectPerSecond * (a.coresPerReplica / 2) * a.connectStormMinutes * 60;
  const replicasByConnectStorm = Math.ceil(nodes / perReplicaStorm);
  const replicas = Math.max(2, replicasByMemory, replicasByConnectStorm);
  // Map-changing writes, all serialised by the change log's lock (one PostgreSQL, docs/coord.md).
  const writesPerSecond = nodes * (a.endpointChangesPerNodePerHour / 3600 + (a.enrollmentsPerNodePerDay + a.renewalsPerNodePerDay) / 86_400);
  const changeLogLockShare = (writesPerSecond * m.pgWriteMsUnderLock) / 1000;
  const relaysByMemory = Math.max(2, Math.ceil((nodes * m.relayBytesPerConnection) / a.relayMemoryBudget));
  // Fan-out: each change reaches the node's watchers (its visibility class, computed per tenant); per core.
  const fanoutCpuShare = (writesPerSecond * a.watchersPerNode * m.endpointChangeMsPerWatcher) / 1000 / (replicas * a.coresPerReplica);
  const binds = changeLogLockShare > 0.5 ? "the single change-log lock: shard it per tenant group"
    : replicasByConnectStorm > replicasByMemory ? "reconnect storms (TLS handshakes per core)" : "memory per connected node (TLS state)";
  return { nodes, tenants, replicasByMemory, replicasByConnectStorm, replicas, writesPerSecond, changeLogLockShare, relaysByMemory, fanoutCpuShare, binds };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.slice(2).map(Number).filter((x) => x > 0);
  const rows = (sizes.length ? sizes : [10_000, 100_000, 1_000_000]).map((n) => plan(n));
  console.log("| nodes | tenants | replicas (memory / reconnect storm / chosen) | map writes/s | change-log lock busy | relays (memory) | fan-out CPU per core | binds first |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const p of rows) {
    console.log(`| ${p.nodes.toLocaleString("en")} | ${p.tenants} | ${p.replicasByMemory} / ${p.replicasByConnectStorm} / ${p.replicas} | ${p.writesPerSecond.toFixed(0)} | ` +
      `${(100 * p.changeLogLockShare).toFixed(0)}% | ${p.relaysByMemory} | ${(100 * p.fanoutCpuShare).toFixed(1)}% | ${p.binds} |`);
  }
}
