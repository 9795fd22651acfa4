import { CloudtaserError } from '../../runtime/core/errors.js';

/**
 * Provider-private data Terraform keeps beside a resource's state (base64 in the state file, never shown in
 * plans). Stored as a JSON object; never put secrets here either: the state file is not a vault.
 */
export class PrivateState {
  private readonly data: Record<string, unknown>;

  constructor(bytes?: Uint8Array) {
    this.data = Object.create(null);
    if (bytes && bytes.length > 0) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        throw new CloudtaserError(
          'CT_PROVIDER_PROTOCOL',
          'the private state Terraform sent is not JSON; was it edited by hand?',
        );
      }
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(this.data, parsed);
    }
  }

  get<T = unknown>(key: string): T | undefined {
    return this.data[key] as T | undefined;
  }

  set(key: string, value: unknown): void {
    if (value === undefined) delete this.data[key];
    else this.data[key] = value;
  }

  toBytes(): Uint8Array | undefined {
    if (Object.keys(this.data).length === 0) return undefined;
    return new TextEncoder().encode(JSON.stringify(this.data));
  }
}
