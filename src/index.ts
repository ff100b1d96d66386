// memseal: sealed shared memory for Node.js on Linux. Re-exports only.
export { constants, Seal, sealNames } from './constants';
export type { ConstantName, SealName } from './constants';
export { features } from './features';
export type { Features } from './features';
export { hugePageSettings } from './hugepages';
export type { HugePageSettings, HugetlbPool, ShmemThpPolicy } from './hugepages';
export { MemsealError } from './errors';
export type { MemsealErrorCode, SystemError } from './errors';
export { memfdCreate, memfdSecret, addSeals, getSeals, MEMFD_NAME_MAX } from './memfd';
export { mmap, mseal, Mapping } from './mapping';
export { SealedBuffer, verifySeals, DEFAULT_REQUIRED_SEALS, DEFAULT_SEALS } from './sealed';
export type { SealedBufferOptions, SealedBufferView, VerifyOptions, VerifyResult } from './sealed';
export { Channel, ChannelServer, Message, socketPair, listen, connect, spawnWithChannel, MAX_PAYLOAD, MAX_FDS, CHANNEL_FD_ENV } from './channel';
export type { ChannelOptions, ListenOptions, SpawnWithChannelOptions, PeerCredentials } from './channel';
export { inspect, type InspectProcess, type InspectMemfd, type InspectMapping, type InspectRegion, type InspectError, type MemfdKind } from './inspect';
export { WriteOnceArena, type WriteOnceArenaOptions, type ArenaSealOptions, type ArenaSealMethod, type TypedArrayConstructorLike } from './arena';
export { SecretBuffer, type SecretBufferOptions, type SecretKind } from './secret';
