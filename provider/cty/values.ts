/**
 * In-memory Terraform values. Known values are plain JS data (string, number, boolean, arrays for
 * list/set/tuple, null-prototype records for map/object); `null` is null; the rest are small classes.
 */
import type { CtyType } from './types.js';

/** What Terraform knows about a value it does not know yet (go-cty "refinements"). */
export interface Refinements {
  /** true = definitely not null. */
  readonly notNull?: boolean;
  readonly stringPrefix?: string;
  /**
   * Bounds as Terraform sent them: a BigNumber when a double cannot hold the bound exactly (a plan must give
   * Terraform back the refinements it planned, and a rounded bound would be a different one).
   */
  readonly numberLower?: { readonly value: number | BigNumber; readonly inclusive: boolean };
  readonly numberUpper?: { readonly value: number | BigNumber; readonly inclusive: boolean };
  readonly lengthMin?: number;
  readonly lengthMax?: number;
}

/** A value that will only be known after apply. */
export class Unknown {
  constructor(readonly refinements: Refinements = {}) {}
  get refined(): boolean {
    return Object.keys(this.refinements).length > 0;
  }
}

/** The plain unknown, shared because it carries no data. */
export const unknown = new Unknown();

/**
 * A number that a JS double cannot hold exactly (Terraform numbers are arbitrary precision). Kept as
 * the decimal text Terraform sent so it round-trips unchanged.
 */
export class BigNumber {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** A value of an attribute typed `dynamic`: its concrete type travels with it. */
export class Dynamic {
  constructor(
    readonly type: CtyType,
    readonly value: Value,
  ) {}
}

export type Value =
  | null
  | Unknown
  | string
  | number
  | BigNumber
  | boolean
  | Dynamic
  | readonly Value[]
  | { readonly [key: string]: Value };

export function isUnknown(value: unknown): value is Unknown {
  return value instanceof Unknown;
}

/** True when the value and everything inside it is known. */
export function isWhollyKnown(value: Value): boolean {
  if (value instanceof Unknown) return false;
  if (value === null || typeof value !== 'object') return true;
  if (value instanceof BigNumber) return true;
  if (value instanceof Dynamic) return isWhollyKnown(value.value);
  if (Array.isArray(value)) return value.every(isWhollyKnown);
  return Object.values(value).every(isWhollyKnown);
}

/** Structural equality; unknowns equal only unknowns (refinements ignored), sets compare as multisets. */
export function valuesEqual(a: Value, b: Value, type?: CtyType): boolean {
  if (a === b) return true;
  if (a instanceof Unknown || b instanceof Unknown) return a instanceof Unknown && b instanceof Unknown;
  if (a === null || b === null) return false;
  if (a instanceof BigNumber || b instanceof BigNumber) return String(a) === String(b);
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (a instanceof Dynamic || b instanceof Dynamic) {
    return (
      a instanceof Dynamic &&
      b instanceof Dynamic &&
      JSON.stringify(a.type) === JSON.stringify(b.type) &&
      valuesEqual(a.value, b.value, a.type)
    );
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    const element = Array.isArray(type) ? (type[1] as CtyType) : undefined;
    if (Array.isArray(type) && type[0] === 'set') {
      const used = new Set<number>();
      return a.every((x) => {
        const index = b.findIndex((y, i) => !used.has(i) && valuesEqual(x, y, element));
        if (index < 0) return false;
        used.add(index);
        return true;
      });
    }
    return a.every((x, i) =>
      valuesEqual(x, b[i], Array.isArray(type) && type[0] === 'tuple' ? (type[1] as CtyType[])[i] : element),
    );
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const objectTypes =
    Array.isArray(type) && type[0] === 'object' ? (type[1] as Record<string, CtyType>) : undefined;
  const mapElement = Array.isArray(type) && type[0] === 'map' ? (type[1] as CtyType) : undefined;
  return ka.every(
    (k) =>
      Object.hasOwn(b, k) &&
      valuesEqual(
        (a as Record<string, Value>)[k],
        (b as Record<string, Value>)[k],
        objectTypes ? objectTypes[k] : mapElement,
      ),
  );
}

/** A record with no prototype, so keys such as `__proto__` are ordinary keys. */
export function record<T = Value>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}
