// memseal: sealed shared memory for Node.js on Linux. Re-exports only.
export { constants, Seal, sealNames } from './constants';
export type { ConstantName, SealName } from './constants';
export { features } from './features';
export type { Features } from './features';
export { MemsealError } from './errors';
export type { MemsealErrorCode, SystemError } from './errors';
export { memfdCreate, memfdSecret, addSeals, getSeals, MEMFD_NAME_MAX } from './memfd';
export { mmap, mseal, Mapping } from './mapping';
export { inspect, type InspectProcess, type InspectMemfd, type InspectMapping, type InspectRegion, type InspectError, type MemfdKind } from './inspect';
