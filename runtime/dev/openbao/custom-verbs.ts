/**
 * DEV-ONLY test infrastructure. Node's HTTP parser refuses OpenBao's custom `LIST` and `SCAN` verbs, which some
 * clients (node-vault, `curl -X LIST`) send. This rewrites such a request line to the equivalent
 * `GET <path>?list=true` (or `scan=true`) before the parser sees it.
 */

import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

// A request line starts a chunk, follows the blank line of a bodiless request, or follows the end of a JSON
// body. It ends in CRLF, which never occurs raw inside JSON, so this cannot match inside a JSON body.
// Known gap: a request line split across two TCP reads is not rewritten (the parser then answers 400).
const CUSTOM_VERB = /(^|\r\n\r\n|[}\]])(LIST|SCAN) (\S+) (HTTP\/1\.[01]\r\n)/g;

export function rewriteCustomVerbs(chunk: Buffer): Buffer {
  const text = chunk.toString('latin1');
  if (!text.includes('LIST ') && !text.includes('SCAN ')) return chunk;
  const rewritten = text.replace(
    CUSTOM_VERB,
    (_all, lead: string, verb: string, target: string, version: string) => {
      const flag = verb === 'LIST' ? 'list=true' : 'scan=true';
      return `${lead}GET ${target}${target.includes('?') ? '&' : '?'}${flag} ${version}`;
    },
  );
  return Buffer.from(rewritten, 'latin1');
}

/** Wraps a socket so reads pass through `rewriteCustomVerbs`; writes and lifecycle go straight through. */
export function withCustomVerbs(socket: Socket): Duplex {
  const wrapper = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    if (!wrapper.push(rewriteCustomVerbs(chunk))) socket.pause();
  });
  socket.on('end', () => wrapper.push(null));
  socket.on('error', (err) => wrapper.destroy(err));
  socket.on('close', () => wrapper.destroy());
  // http.Server reads these from the connection object.
  Object.assign(wrapper, {
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    encrypted: (socket as Socket & { encrypted?: boolean }).encrypted,
    setTimeout: (ms: number, cb?: () => void) => socket.setTimeout(ms, cb),
    setNoDelay: (noDelay?: boolean) => socket.setNoDelay(noDelay),
    setKeepAlive: (enable?: boolean, delay?: number) => socket.setKeepAlive(enable, delay),
  });
  return wrapper;
}
