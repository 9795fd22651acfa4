/**
 * Which broker holds a cluster's tunnel: the broker key hash the bridge sees at the other end of each tunnel
 * (/status `tunnelBrokers`), matched against the `brokerKeySha256` each broker's own /status shows. Both answers
 * come from probe ports and are read as untrusted input: a hash that is not 64 hex characters is unknown.
 */

/** A broker's /status as read for the match, or why it could not be read. */
export interface BrokerKeyView {
  readonly url: string;
  /** The pod the broker says it runs in, when that looks like a pod name. */
  readonly pod?: string;
  /** Its certificate's key hash, when its /status gives one as 64 hex characters. */
  readonly keySha256?: string;
  /** Why there is no usable hash: the /status did not answer, gave none, or gave one that is not a hash. */
  readonly problem?: string;
  /** What the broker says of itself: `phase`, `lastErrorCode` and `reason`, checked and cut short (untrusted). */
  readonly says?: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A Kubernetes object name (DNS subdomain): anything else (newlines, escapes) is not printed. */
const POD_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The hash as 64 lowercase hex characters, or undefined when `value` is anything else. */
export function sha256HexOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const hex = value.toLowerCase();
  return SHA256_HEX.test(hex) ? hex : undefined;
}

/** What a broker's /status answer says about its key and pod. */
export function brokerKeyView(url: string, status: unknown): BrokerKeyView {
  const fields = (typeof status === 'object' && status !== null ? status : {}) as Record<string, unknown>;
  const pod = typeof fields.pod === 'string' && POD_NAME.test(fields.pod) ? fields.pod : undefined;
  const keySha256 = sha256HexOf(fields.brokerKeySha256);
  const phase = typeof fields.phase === 'string' && /^[a-z]{1,20}$/.test(fields.phase) ? fields.phase : '?';
  const problem = keySha256
    ? undefined
    : fields.brokerKeySha256 === undefined
      ? `its /status shows no brokerKeySha256 (phase ${phase}: no certificate yet, or an older broker)`
      : 'its /status shows a brokerKeySha256 that is not 64 hex characters: unknown, not trusted';
  const code =
    typeof fields.lastErrorCode === 'string' && /^CT_[A-Z0-9_]{1,60}$/.test(fields.lastErrorCode)
      ? fields.lastErrorCode
      : undefined;
  // Printed to a person: control characters and escapes out, and at most 300 characters.
  const reason =
    typeof fields.reason === 'string' ? fields.reason.replace(/[^\x20-\x7e]/g, ' ').slice(0, 300) : undefined;
  const says = `phase ${phase}${code ? `, ${code}` : ''}${reason ? `: ${reason}` : ''}`;
  return { url, ...(pod ? { pod } : {}), ...(keySha256 ? { keySha256 } : { problem }), says };
}

/**
 * The broker key hash at the other end of each open tunnel a bridge's cluster entry lists: undefined for an entry
 * whose hash is not 64 hex characters (unknown), and undefined for the whole list when the bridge gives none.
 */
export function tunnelKeysOf(
  entry: { readonly tunnelBrokers?: unknown } | undefined,
): Array<string | undefined> | undefined {
  const list = entry?.tunnelBrokers;
  if (!Array.isArray(list)) return undefined;
  return list.map((tunnel) =>
    sha256HexOf(
      typeof tunnel === 'object' && tunnel !== null
        ? (tunnel as Record<string, unknown>).brokerKeySha256
        : undefined,
    ),
  );
}

/** A broker as a person knows it: by its pod, else by where it was asked. */
export function brokerName(broker: BrokerKeyView): string {
  return broker.pod ? `pod ${broker.pod} (${broker.url})` : `the broker at ${broker.url}`;
}

/**
 * One sentence naming which broker holds the tunnel and which is the other, from the keys the bridges show
 * (`undefined` in the list: a tunnel whose key is unknown; the list undefined: no bridge said) and the brokers
 * asked (none: the hash alone, for a person to compare).
 */
export function tunnelHolderText(
  tunnelKeys: ReadonlyArray<string | undefined> | undefined,
  brokers: readonly BrokerKeyView[],
): string {
  if (tunnelKeys === undefined)
    return "the bridge's /status does not say which broker key holds the tunnel (an older bridge): which broker holds it is unknown";
  if (tunnelKeys.length === 0)
    return "the bridge's /status lists no open tunnel's broker key (the tunnel closed meanwhile?): run doctor again";
  const keys = [...new Set(tunnelKeys)];
  const parts = keys.map((key) => {
    if (key === undefined)
      return "a tunnel whose broker key the bridge's /status does not give as 64 hex characters: its holder is unknown, not trusted";
    if (brokers.length === 0)
      return `the tunnel is held by broker key sha256 ${key} (no broker's /status was given to match it with)`;
    const holders = brokers.filter((broker) => broker.keySha256 === key);
    if (holders.length === 0)
      return `the tunnel is held by broker key sha256 ${key}, which none of the ${brokers.length} broker(s) asked presents: a broker not asked, or not the operator's`;
    return `the tunnel is held by ${holders.map(brokerName).join(' and ')}, broker key sha256 ${key}`;
  });
  const holderKeys = new Set(keys);
  const others = brokers
    .filter((broker) => broker.keySha256 === undefined || !holderKeys.has(broker.keySha256))
    .map(
      (broker) =>
        `${brokerName(broker)}, ${broker.keySha256 ? `broker key sha256 ${broker.keySha256}, holds no tunnel here` : `broker key unknown: ${broker.problem}`}`,
    );
  return [...parts, ...(others.length > 0 ? [`the other: ${others.join('; ')}`] : [])].join('; ');
}
