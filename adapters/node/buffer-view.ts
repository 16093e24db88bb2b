// A Buffer view of a Uint8Array for socket.write(). Node's Writable makes one (a new object) for every
// write of a plain Uint8Array; the fan-out writes the same shared buffer to every viewer in a row, so the
// view of the last one is kept and reused. No copy either way.

let lastIn: Uint8Array | null = null;
let lastOut: Buffer | null = null;

export function bufferView(u: Uint8Array): Buffer {
  if (u === lastIn) return lastOut!;
  if (u instanceof Buffer) return u;
  lastIn = u;
  lastOut = Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  return lastOut;
}
