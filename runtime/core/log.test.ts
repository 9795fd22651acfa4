import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, moduleLogger } from './log.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  return { lines, logger: createLogger('broker', { level: 'info', destination }) };
}

describe('moduleLogger', () => {
  it('names the part in `module` and never writes a second `component` key', async () => {
    const { lines, logger } = capture();
    moduleLogger(logger, 'tunnel').info({ event: 'tunnel.open' }, 'open');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    expect(lines[0].match(/"component"/g)).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      component: 'broker',
      module: 'tunnel',
      event: 'tunnel.open',
    });
  });

  it('adds nothing when the process already has that name, or the part is already named', () => {
    const { logger } = capture();
    expect(moduleLogger(logger, 'broker')).toBe(logger);
    const tunnel = moduleLogger(logger, 'tunnel');
    expect(moduleLogger(tunnel, 'tunnel')).toBe(tunnel);
  });

  it('stays silent without a logger', () => {
    expect(moduleLogger(undefined, 'tunnel').isLevelEnabled('error')).toBe(false);
  });
});
