/** Reads the Prometheus text exposition format the way a scraper does: TYPE lines and samples with labels. */
export interface Exposition {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: ReadonlyArray<{ name: string; labels: Record<string, string>; value: number }>;
  /** The value of one sample, or undefined when no sample has exactly these labels (as a subset). */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum of every sample of `name` whose labels include `labels`. */
  sum(name: string, labels?: Record<string, string>): number;
}

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const match of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[match[1]] = match[2];
    samples.push({ name: sample[1], labels, value: Number(sample[3]) });
  }
  const matching = (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    types,
    samples,
    value: (name, labels = {}) => matching(name, labels)[0]?.value,
    sum: (name, labels = {}) => matching(name, labels).reduce((total, s) => total + s.value, 0),
  };
}

export async function scrape(healthUrl: string | undefined): Promise<Exposition> {
  if (!healthUrl) throw new Error('the process serves no health port');
  const response = await fetch(`${healthUrl}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  if (!response.headers.get('content-type')?.startsWith('text/plain'))
    throw new Error(`/metrics content-type ${response.headers.get('content-type')}`);
  return parseExposition(await response.text());
}
