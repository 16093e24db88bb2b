// Transport framing for bytes that are built once and written to many connections as they are.
//
// A shared packaging (Stream.sharedRange) is one buffer per range of frames. When the transport adds
// framing of its own around every write (HTTP/1.1 chunked encoding, a WebSocket message header), the
// framing is identical for every viewer too, so it is baked into the shared buffer: each viewer then
// costs exactly one write of the same bytes. A ByteSink says which framing its writeFramed() expects.
//
//   ''        raw bytes (a TCP connection, a Web Streams response body, a WebSocket that frames itself)
//   'chunked' one HTTP/1.1 chunk: "<size hex>\r\n" payload "\r\n"
//   'ws'      one unmasked binary WebSocket message (FIN + opcode 2, RFC 6455 §5.2), server to client

export type Framing = '' | 'chunked' | 'ws';

const CRLF = new Uint8Array([13, 10]);

/** The bytes that go before a payload of `size` bytes (empty for ''). */
export function framingHead(framing: Framing, size: number): Uint8Array {
  if (framing === 'chunked') {
    const hex = size.toString(16);
    const h = new Uint8Array(hex.length + 2);
    for (let i = 0; i < hex.length; i++) h[i] = hex.charCodeAt(i);
    h[hex.length] = 13;
    h[hex.length + 1] = 10;
    return h;
  }
  if (framing === 'ws') {
    if (size < 126) return new Uint8Array([0x82, size]);
    if (size < 0x10000) return new Uint8Array([0x82, 126, size >>> 8, size & 0xff]);
    const h = new Uint8Array(10);
    h[0] = 0x82;
    h[1] = 127;
    // Payloads here are far below 2^32 bytes: the high four bytes stay 0.
    h[6] = size >>> 24; h[7] = size >>> 16; h[8] = size >>> 8; h[9] = size;
    return h;
  }
  return new Uint8Array(0);
}

/** The bytes that go after a payload (CRLF for a chunk, nothing otherwise). */
export function framingTail(framing: Framing): Uint8Array | null {
  return framing === 'chunked' ? CRLF : null;
}

/** `parts` (their total length is `size`) copied into one buffer, framed. */
export function framedConcat(framing: Framing, parts: readonly Uint8Array[], size: number): Uint8Array {
  const head = framing ? framingHead(framing, size) : null;
  const tail = framingTail(framing);
  const out = new Uint8Array((head?.length ?? 0) + size + (tail?.length ?? 0));
  let off = 0;
  if (head) { out.set(head, 0); off = head.length; }
  for (const p of parts) { out.set(p, off); off += p.length; }
  if (tail) out.set(tail, off);
  return out;
}
