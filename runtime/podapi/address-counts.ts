/**
 * A count per pod address (connections, requests, body bytes) for the pod API's per-address bounds. An address
 * whose count drops to zero is forgotten, so the map holds only the addresses with something open now.
 */
export class AddressCounts {
  readonly #counts = new Map<string, number>();

  get(address: string): number {
    return this.#counts.get(address) ?? 0;
  }

  add(address: string, amount = 1): void {
    this.#counts.set(address, this.get(address) + amount);
  }

  remove(address: string, amount = 1): void {
    const left = this.get(address) - amount;
    if (left > 0) this.#counts.set(address, left);
    else this.#counts.delete(address);
  }

  /** The `n` addresses with the highest counts, highest first, with their counts. */
  top(n: number): Array<{ readonly address: string; readonly count: number }> {
    const top: Array<{ address: string; count: number }> = [];
    for (const [address, count] of this.#counts) {
      if (top.length === n && count <= top[n - 1].count) continue;
      top.push({ address, count });
      top.sort((a, b) => b.count - a.count);
      if (top.length > n) top.pop();
    }
    return top;
  }
}
