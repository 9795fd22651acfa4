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

  it('names a part of a part in `submodule`, so no key appears twice', async () => {
    const { lines, logger } = capture();
    moduleLogger(moduleLogger(logger, 'webhook'), 'webhook-ca-bundle').info({ event: 'x' }, 'x');
    await new Promise((resolve) => setImmediate(resolve));
    for (const key of ['component', 'module', 'submodule'])
      expect(lines[0].match(new RegExp(`"${key}"`, 'g'))).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      component: 'broker',
      module: 'webhook',
      submodule: 'webhook-ca-bundle',
    });
  });

  it('refuses a CLOUDTASER_LOG_LEVEL outside the levels pino knows, naming the variable', () => {
    const saved = process.env.CLOUDTASER_LOG_LEVEL;
    process.env.CLOUDTASER_LOG_LEVEL = 'verbose';
    try {
      expect(() => createLogger('broker')).toThrow(
        'CLOUDTASER_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, not "verbose"',
      );
    } finally {
      if (saved === undefined) delete process.env.CLOUDTASER_LOG_LEVEL;
      else process.env.CLOUDTASER_LOG_LEVEL = saved;
    }
  });

  it('stays silent without a logger', () => {
    expect(moduleLogger(undefined, 'tunnel').isLevelEnabled('error')).toBe(false);
  });
});
