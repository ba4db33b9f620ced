// Hash-chain reversal for the vendor: releases v[n-1], v[n-2], ..., v[0] of a
// chain of n = 2^k values while storing k values and computing at most
// ceil(k/2) hashes per released token (optimal binary pebbling, Schoenmakers
// 2016, iterative form). Minting walks the chain once (n hashes, inherent: the
// anchor is v[n]) and drops the k initial pebbles on the way.
//
// Our step is salted with its index, so unlike the textbook algorithm every
// pebble carries its position; the schedule itself is index-free.
import { aint } from './_assert.js';
import { CHAIN_MAX_LOG2_LENGTH } from './chain.js';

/** Computes v[index] from v[index - 1]. */
export type StepFn = (index: number, prev: Uint8Array) => Uint8Array;
/** Computes v[from + steps] from v[from]; lets minting run in C. */
export type WalkFn = (from: number, steps: number, value: Uint8Array) => Uint8Array;

export interface Pebble {
  position: number;
  value: Uint8Array;
}

/** A pebble walking down towards slot 0, dropping a pebble every 2^slot steps. */
interface Task {
  slot: number;
  stepsToNextDrop: number;
}

export interface PebblerState {
  log2Length: number;
  /** Next round; counts down from n - 1 to 1; 0 when done. */
  round: number;
  /** v[n-1], released first, before the rounds start; null once released. */
  first: Pebble | null;
  pebbles: Pebble[];
  tasks: Task[];
}

export interface Released {
  index: number;
  value: Uint8Array;
}

export class Pebbler {
  /** Hashes computed by next() since construction (for benchmarks and tests). */
  hashes = 0;

  private constructor(
    private state: PebblerState,
    private readonly step: StepFn,
  ) {}

  /** Walk the chain from the seed; returns the pebbler and the anchor v[n]. */
  static mint(log2Length: number, seed: Uint8Array, walk: WalkFn, step: StepFn): { pebbler: Pebbler; anchor: Uint8Array } {
    const k = aint(log2Length, 1, CHAIN_MAX_LOG2_LENGTH, 'log2Length');
    const n = 2 ** k;
    // Pebble j sits at n - 2^(j+1): slot k-1 holds the seed, slot 0 holds v[n-2].
    const pebbles: Pebble[] = new Array(k);
    let position = 0;
    let value = seed;
    for (let j = k - 1; j >= 0; j--) {
      const target = n - 2 ** (j + 1);
      value = walk(position, target - position, value);
      position = target;
      pebbles[j] = { position, value };
    }
    const first = { position: n - 1, value: walk(position, n - 1 - position, value) };
    const anchor = walk(n - 1, 1, first.value);
    return { pebbler: new Pebbler({ log2Length: k, round: n - 1, first, pebbles, tasks: [] }, step), anchor };
  }

  static restore(state: PebblerState, step: StepFn): Pebbler {
    aint(state.log2Length, 1, CHAIN_MAX_LOG2_LENGTH, 'state.log2Length');
    if (state.pebbles.length !== state.log2Length) throw new RangeError('"state.pebbles" expected log2Length pebbles');
    return new Pebbler(structuredClone(state), step);
  }

  /** A deep copy, safe to persist. */
  snapshot(): PebblerState {
    return structuredClone(this.state);
  }

  /** Tokens still to release. */
  get remaining(): number {
    return this.state.round + (this.state.first ? 1 : 0);
  }

  /** Values held: pebbles plus the pending first value. */
  get storedValues(): number {
    return this.state.pebbles.length + (this.state.first ? 1 : 0);
  }

  next(): Released {
    const s = this.state;
    if (s.first) {
      const out = s.first;
      s.first = null;
      return { index: out.position, value: out.value };
    }
    const r = s.round;
    if (r === 0) throw new RangeError('chain exhausted: every token has been released');
    const out = s.pebbles[0];
    if (out.position !== r - 1) throw new Error(`pebbling invariant broken: slot 0 at ${out.position}, expected ${r - 1}`);

    // The trailing zero bits of r say how many pebbles shift down one slot.
    let c = r;
    let slot = 0;
    while ((c & 1) === 0) {
      s.pebbles[slot] = s.pebbles[slot + 1];
      slot++;
      c >>>= 1;
    }
    slot++;
    c >>>= 1;
    if (c & 1) s.tasks.push({ slot, stepsToNextDrop: 0 });
    // Each remaining run of bits in r gives one task its share of this round's hashes.
    let taskIndex = s.tasks.length;
    let budget = (r & 1) + slot + 1;
    while (c !== 0) {
      while ((c & 1) === 0) {
        budget++;
        c >>>= 1;
      }
      taskIndex--;
      const task = s.tasks[taskIndex];
      for (let h = 0; h < budget >> 1; h++) this.advance(task);
      if (task.slot === 0) s.tasks.splice(taskIndex, 1);
      budget &= 1;
      while (c & 1) {
        budget++;
        c >>>= 1;
      }
    }
    s.round = r - 1;
    return { index: out.position, value: out.value };
  }

  private advance(task: Task): void {
    const s = this.state;
    const from = s.pebbles[task.slot];
    if (task.stepsToNextDrop === 0) {
      task.slot--;
      task.stepsToNextDrop = 2 ** task.slot;
    }
    s.pebbles[task.slot] = { position: from.position + 1, value: this.step(from.position + 1, from.value) };
    task.stepsToNextDrop--;
    this.hashes++;
  }
}
