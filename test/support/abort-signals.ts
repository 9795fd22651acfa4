/**
 * What long-running code leaves on long-lived AbortSignals (a process's or a cluster's stop signal). On Node 20,
 * the version the images ship, every AbortSignal.any call adds an entry to the internal dependant set of each plain
 * source signal, and nothing removes it until that source aborts (nodejs/node#55351; Node 22 prunes them); abort
 * listeners that are never removed pile up the same way. Both trackers wrap the global API while a test runs and
 * read Node's internal `kDependantSignals` set (0 where it has none, e.g. on Node 22).
 */
function symbolNamed(target: object, name: string): symbol | undefined {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === name);
}

/** Entries in a signal's internal dependant set (0 when it has none). */
export function dependantsOf(signal: AbortSignal): number {
  const key = symbolNamed(signal, 'kDependantSignals');
  const set = key ? (signal as unknown as Record<symbol, Set<unknown>>)[key] : undefined;
  return set?.size ?? 0;
}

function isComposite(signal: AbortSignal): boolean {
  const key = symbolNamed(signal, 'kComposite');
  return key ? (signal as unknown as Record<symbol, boolean>)[key] === true : false;
}

export interface AnyTracker {
  /** The plain sources still alive and not aborted, with the call site that first passed each (or a composite of it). */
  live(): { signal: AbortSignal; site: string; dependants: number }[];
  /** Drops the dead WeakRefs from every tracked source (what Node 22's cleanup registry does); returns how many. */
  prune(): number;
  /** AbortSignal.any calls so far. */
  readonly calls: number;
  restore(): void;
}

/** Wraps AbortSignal.any to remember every plain source signal (weakly) and where it was first combined. */
export function trackAbortSignalAny(): AnyTracker {
  const original = AbortSignal.any.bind(AbortSignal);
  const seen: { ref: WeakRef<AbortSignal>; site: string }[] = [];
  /** How often each plain source was combined; only those combined three times or more are long-lived enough to track (a per-call timeout is combined twice when a composite of it is combined again). */
  const uses = new WeakMap<AbortSignal, number>();
  const compositeSources = new WeakMap<AbortSignal, AbortSignal[]>();
  let calls = 0;
  (AbortSignal as unknown as { any: typeof AbortSignal.any }).any = (signals: AbortSignal[]) => {
    calls++;
    const result = original(signals);
    const plain: AbortSignal[] = [];
    for (const signal of signals) {
      if (isComposite(signal)) plain.push(...(compositeSources.get(signal) ?? []));
      else plain.push(signal);
    }
    compositeSources.set(result, plain);
    for (const signal of plain) {
      const used = (uses.get(signal) ?? 0) + 1;
      uses.set(signal, used);
      if (used !== 3) continue;
      const stack = (new Error().stack ?? '').split('\n').slice(2);
      const site = stack.find((line) => line.includes('/runtime/')) ?? stack[0] ?? '?';
      seen.push({ ref: new WeakRef(signal), site: site.trim() });
    }
    return result;
  };
  return {
    live() {
      const out: { signal: AbortSignal; site: string; dependants: number }[] = [];
      for (const { ref, site } of seen) {
        const signal = ref.deref();
        if (signal && !signal.aborted) out.push({ signal, site, dependants: dependantsOf(signal) });
      }
      return out.sort((a, b) => b.dependants - a.dependants);
    },
    prune() {
      let dropped = 0;
      for (const { ref } of seen) {
        const signal = ref.deref();
        if (!signal) continue;
        const key = symbolNamed(signal, 'kDependantSignals');
        const set = key ? (signal as unknown as Record<symbol, Set<WeakRef<object>>>)[key] : undefined;
        for (const entry of set ?? []) {
          if (entry.deref() === undefined) {
            set!.delete(entry);
            dropped++;
          }
        }
      }
      return dropped;
    },
    get calls() {
      return calls;
    },
    restore() {
      (AbortSignal as unknown as { any: typeof AbortSignal.any }).any = original;
    },
  };
}

export interface ListenerTracker {
  /** Live, not aborted signals with at least `min` abort listeners, most first, with the site of their first listener. */
  crowded(min: number): { listeners: number; site: string }[];
  /** Abort listeners added to any signal since tracking began: how much happened. */
  readonly added: number;
  restore(): void;
}

/** Remembers (weakly) every AbortSignal that is given an 'abort' listener, and where that first happened. */
export function trackAbortListeners(
  getEventListeners: (t: EventTarget, type: string) => unknown[],
): ListenerTracker {
  const proto = EventTarget.prototype;
  const original = proto.addEventListener;
  const seen: { ref: WeakRef<AbortSignal>; site: string }[] = [];
  const known = new WeakSet<AbortSignal>();
  let added = 0;
  proto.addEventListener = function (this: EventTarget, type: string, ...rest: unknown[]) {
    if (type === 'abort' && this instanceof AbortSignal) added++;
    if (type === 'abort' && this instanceof AbortSignal && !known.has(this)) {
      const count = getEventListeners(this, 'abort').length;
      // Only signals that already hold a listener: a long-lived one shows up on its second listener.
      if (count >= 1) {
        known.add(this);
        const stack = (new Error().stack ?? '').split('\n').slice(2);
        seen.push({
          ref: new WeakRef(this),
          site: (stack.find((l) => l.includes('/runtime/')) ?? stack[0] ?? '?').trim(),
        });
      }
    }
    return (original as (...args: unknown[]) => void).call(this, type, ...rest);
  } as typeof proto.addEventListener;
  return {
    crowded(min) {
      const out: { listeners: number; site: string }[] = [];
      for (const { ref, site } of seen) {
        const signal = ref.deref();
        if (!signal || signal.aborted) continue;
        const listeners = getEventListeners(signal, 'abort').length;
        if (listeners >= min) out.push({ listeners, site });
      }
      return out.sort((a, b) => b.listeners - a.listeners);
    },
    get added() {
      return added;
    },
    restore() {
      proto.addEventListener = original;
    },
  };
}
