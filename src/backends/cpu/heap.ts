/**
 * {@linkcode WasmHeap}: the allocator of the CPU backend's WebAssembly memory. Every tensor,
 * command list and thread stack lives in that one memory, so the kernels reach them by address
 * and the worker threads share them. Blocks are 64-byte aligned (a cache line), taken best-fit
 * from a free list that coalesces neighbours, or from the top, growing the memory as needed.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { CpuError } from "../../errors.ts";

const PAGE = 65536;
const ALIGN = 64;
/** wasm32 addresses memory up to 4 GiB. */
const MAX_PAGES = 65536;

/** A free range of the heap. */
interface Block {
  addr: number;
  size: number;
}

/** Allocation bookkeeping over a WebAssembly memory, above the module's static data. */
export class WasmHeap {
  /** The memory every allocation lives in. */
  readonly memory: WebAssembly.Memory;
  #top: number;
  #free: Block[] = [];
  #sizes = new Map<number, number>();
  #bytes: Uint8Array;
  #used = 0;

  /**
   * Creates a heap over `memory` that hands out addresses from `base` on.
   *
   * @param memory The module's memory.
   * @param base The first free address (the module's `__heap_base`).
   */
  constructor(memory: WebAssembly.Memory, base: number) {
    this.memory = memory;
    this.#top = Math.ceil(base / ALIGN) * ALIGN;
    this.#bytes = new Uint8Array(memory.buffer);
  }

  /** Bytes allocated now. */
  get used(): number {
    return this.#used;
  }

  /** The whole memory as bytes (valid until the next allocation grows it). */
  get bytes(): Uint8Array {
    if (this.#bytes.byteLength !== this.memory.buffer.byteLength) {
      this.#bytes = new Uint8Array(this.memory.buffer);
    }
    return this.#bytes;
  }

  /**
   * Allocates `bytes` bytes (at least 1), 64-byte aligned, uninitialised.
   *
   * @throws {CpuError} When the memory cannot grow to hold it.
   */
  alloc(bytes: number, label: string): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const block = this.#free[i];
      if (block.size >= size && (best < 0 || block.size < this.#free[best].size)) best = i;
    }
    let addr: number;
    if (best >= 0) {
      const block = this.#free[best];
      addr = block.addr;
      if (block.size === size) this.#free.splice(best, 1);
      else {
        block.addr += size;
        block.size -= size;
      }
    } else {
      addr = this.#top;
      this.#reserve(addr + size, label);
      this.#top = addr + size;
    }
    this.#sizes.set(addr, size);
    this.#used += size;
    return addr;
  }

  /** Returns a block from {@linkcode WasmHeap.alloc}. */
  free(addr: number): void {
    const size = this.#sizes.get(addr);
    if (size === undefined) throw new CpuError(`Cannot free address ${addr}: not allocated`);
    this.#sizes.delete(addr);
    this.#used -= size;
    // Insert in address order, merging with the neighbours; a block ending at the top lowers it.
    let i = 0;
    while (i < this.#free.length && this.#free[i].addr < addr) i++;
    const block = { addr, size };
    this.#free.splice(i, 0, block);
    const next = this.#free[i + 1];
    if (next && block.addr + block.size === next.addr) {
      block.size += next.size;
      this.#free.splice(i + 1, 1);
    }
    const prev = this.#free[i - 1];
    if (prev && prev.addr + prev.size === block.addr) {
      prev.size += block.size;
      this.#free.splice(i, 1);
    }
    const last = this.#free[this.#free.length - 1];
    if (last && last.addr + last.size === this.#top) {
      this.#top = last.addr;
      this.#free.pop();
    }
  }

  #reserve(end: number, label: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    if (have / PAGE + pages > MAX_PAGES) {
      throw new CpuError(
        `Cannot allocate "${label}": the CPU backend's memory would need ${mib(end)}, ` +
          `WebAssembly memory holds at most 4096 MiB (${mib(this.#used)} in use)`,
      );
    }
    try {
      this.memory.grow(pages);
    } catch (cause) {
      throw new CpuError(
        `Cannot allocate "${label}": growing WebAssembly memory to ${mib(end)} failed ` +
          `(${mib(this.#used)} in use)`,
        { cause },
      );
    }
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
