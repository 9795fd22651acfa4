import { Duplex } from 'node:stream';

/** Two in-memory Duplex ends wired to each other (Node 20 has no stream.duplexPair). */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (index: number) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        const other = ends[1 - index];
        if (!other.destroyed) other.push(chunk);
        callback();
      },
      final(callback) {
        const other = ends[1 - index];
        if (!other.destroyed) other.push(null);
        callback();
      },
      destroy(err, callback) {
        const other = ends[1 - index];
        if (!other.destroyed) other.destroy();
        callback(err);
      },
    });
  ends.push(make(0), make(1));
  return [ends[0], ends[1]];
}
