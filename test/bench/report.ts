import { goalMet, type Metric } from './harness.js';

export function renderMarkdown(metrics: Metric[]): string {
  const rows = metrics.map((m) => {
    const met = goalMet(m);
    const goal = m.goal ? `${m.goal.on === 'ratio' ? 'ratio ' : ''}${m.goal.op} ${m.goal.limit}` : '';
    return `| ${m.name} | ${fmt(m.value)} ${m.unit} | ${m.baseline === undefined ? '' : `${fmt(m.baseline)} ${m.baselineUnit ?? m.unit} (${m.baselineLabel ?? 'baseline'})`} | ${m.ratio === undefined ? '' : fmt(m.ratio)} | ${goal} | ${met === undefined ? '' : met ? 'met' : '**not met**'} |`;
  });
  return [
    '| metric | value | baseline (same run) | ratio | goal | status |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** A dependency-free horizontal bar chart of pairing latency and relay throughput by door. */
export function renderSvg(metrics: Metric[]): string {
  const pick = (prefix: string) => metrics.filter((m) => m.name.startsWith(prefix));
  const groups: Array<{ title: string; bars: Array<{ label: string; value: number; unit: string }> }> = [
    {
      title: 'Pairing latency (ms, lower is better)',
      bars: pick('beacon.pairing').map((m) => ({
        label: m.name.replace('beacon.', ''),
        value: m.value,
        unit: 'ms',
      })),
    },
    {
      title: 'Relay throughput by door (MB/s, higher is better)',
      bars: metrics.flatMap((m) => {
        if (!m.name.startsWith('beacon.relay_throughput')) return [];
        const mbps = m.extra?.mbps;
        if (m.unit === 'MB/s')
          return [
            { label: m.name.replace('beacon.relay_throughput', 'relay'), value: m.value, unit: 'MB/s' },
          ];
        return typeof mbps === 'number' ? [{ label: 'relay_tls_raw', value: mbps, unit: 'MB/s' }] : [];
      }),
    },
  ];
  const width = 720;
  let y = 30;
  const parts: string[] = [];
  for (const group of groups) {
    parts.push(`<text x="10" y="${y}" font-size="15" font-weight="bold">${escapeXml(group.title)}</text>`);
    y += 10;
    const max = Math.max(1, ...group.bars.map((b) => b.value));
    for (const bar of group.bars) {
      const w = Math.max(1, (bar.value / max) * 420);
      parts.push(`<text x="10" y="${y + 16}" font-size="12">${escapeXml(bar.label)}</text>`);
      parts.push(`<rect x="200" y="${y + 4}" width="${w.toFixed(1)}" height="16" fill="#3b6ea8"/>`);
      parts.push(
        `<text x="${(205 + w).toFixed(1)}" y="${y + 16}" font-size="12">${fmt(bar.value)} ${bar.unit}</text>`,
      );
      y += 24;
    }
    if (group.bars.length === 0) {
      parts.push(`<text x="10" y="${y + 16}" font-size="12">(not measured in this run)</text>`);
      y += 24;
    }
    y += 24;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" role="img"><title>cloudtaser benchmark figures beside their same-run baselines</title><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

function fmt(n: number): string {
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function escapeXml(s: string): string {
  return s.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!);
}
