/**
 * The generic PlanResourceChange algorithm, as a pure function so it can be tested in tables:
 * - create: computed attributes the config leaves unset become their default or unknown;
 * - update: computed values stay known (Terraform already copied them into the proposal);
 *   optional+computed attributes with a default fall back to it when removed from config;
 * - force-new attributes that differ (or are unknown) replace the object, as do the paths the resource names
 *   in `replaceFor`, and then computed values that would be recomputed turn unknown;
 * - destroy: planned = null.
 */

import { unknown, type Value, valuesEqual } from '../cty/values.js';
import type { Block } from '../schema/schema.js';
import type { AttributePath } from './diagnostics.js';

type Obj = Record<string, Value>;

export interface PlanInput {
  readonly prior: Value;
  readonly proposed: Value;
  readonly config: Value;
  /**
   * Paths the resource requires a replacement for beyond its forceNew attributes (a provider setting or the
   * remote object's condition changed). Ignored on create and destroy.
   */
  readonly replaceFor?: readonly AttributePath[];
}

export interface PlanResult {
  readonly planned: Value;
  readonly requiresReplace: AttributePath[];
  /** 'create' | 'update' | 'replace' | 'delete' | 'none' */
  readonly action: 'create' | 'update' | 'replace' | 'delete' | 'none';
}

export function planChange(block: Block, input: PlanInput): PlanResult {
  if (input.proposed === null) return { planned: null, requiresReplace: [], action: 'delete' };
  const proposed = input.proposed as Obj;
  const config = (input.config ?? {}) as Obj;
  const prior = input.prior as Obj | null;
  const planned: Obj = Object.assign(Object.create(null), proposed);

  for (const [name, a] of Object.entries(block.attributes)) {
    if (!a.computed) continue;
    const configured = config[name] !== null && config[name] !== undefined;
    if (configured) continue;
    if (a.default !== undefined) planned[name] = a.default as Value;
    else if (prior === null) planned[name] = unknown;
  }

  if (prior === null) return { planned, requiresReplace: [], action: 'create' };

  const requiresReplace: AttributePath[] = [...(input.replaceFor ?? [])];
  for (const [name, a] of Object.entries(block.attributes)) {
    const named = requiresReplace.some((path) => path.length === 1 && path[0] === name);
    if (a.forceNew && !named && !valuesEqual(prior[name] ?? null, planned[name] ?? null, a.type))
      requiresReplace.push([name]);
  }
  if (requiresReplace.length > 0) {
    for (const [name, a] of Object.entries(block.attributes)) {
      const configured = config[name] !== null && config[name] !== undefined;
      if (a.computed && !configured && a.default === undefined) planned[name] = unknown;
    }
    return { planned, requiresReplace, action: 'replace' };
  }
  const changed = Object.keys(block.attributes).some(
    (name) => !valuesEqual(prior[name] ?? null, planned[name] ?? null, block.attributes[name].type),
  );
  return { planned, requiresReplace, action: changed ? 'update' : 'none' };
}
