// 'memseal/inspect': what processes hold — memfds, seals, mappings and their memory, mseal'd regions, and
// Publisher/Subscriber pools — read from /proc. The `memseal` command (./cli.ts) prints the same.
export { inspect, type InspectProcess, type InspectMemfd, type InspectMapping, type InspectRegion, type InspectError, type MemfdKind } from './inspect';
export { inspectPools, type InspectPool } from './inspect-pools';
