// The only place that loads the native addon. Everything the C++ side exports
// is typed here; native functions return the result or a negative errno and
// throw only TypeError for arguments the TypeScript layer already validated.
import bindings from 'bindings';

/** An opaque, type-tagged handle to one native mapping. */
export type RegionHandle = { readonly __region: unique symbol };

export interface NativeConstants {
  readonly [name: string]: number;
}

export interface NativeBinding {
  readonly constants: NativeConstants;
  // memfd.cc
  memfdCreate(name: string, flags: number): number;
  memfdSecret(flags: number): number;
  addSeals(fd: number, seals: number): number;
  getSeals(fd: number): number;
  /** [size, mode] or -errno */
  fstat(fd: number): [number, number] | number;
  ftruncate(fd: number, length: number): number;
  close(fd: number): number;
  errorName(negErrno: number): string;
  errorMessage(negErrno: number): string;
  // mapping.cc
  /** [handle, address] or -errno */
  mmap(length: number, prot: number, flags: number, fd: number, offset: number): [RegionHandle, bigint] | number;
  munmap(handle: RegionHandle): number;
  mprotect(handle: RegionHandle, prot: number): number;
  madvise(handle: RegionHandle, advice: number, offset: number, length: number): number;
  msync(handle: RegionHandle, flags: number): number;
  mlock(handle: RegionHandle): number;
  munlock(handle: RegionHandle): number;
  mseal(handle: RegionHandle): number;
  msealProbe(): number;
  /** An external ArrayBuffer over [offset, offset + length) of the region, or -errno */
  view(handle: RegionHandle, offset: number, length: number): ArrayBuffer | number;
  pageSize(): number;
}

export const native: NativeBinding = bindings('memseal');
