// Just enough AMF0 for RTMP commands: numbers, booleans, strings, objects, null/undefined,
// ECMA and strict arrays. Used on the control path only (a few messages per connection).

export function encodeAmf0(...values) {
  const parts = [];
  const str = (s) => { const b = Buffer.from(s, 'utf8'); const h = Buffer.alloc(2); h.writeUInt16BE(b.length); parts.push(h, b); };
  const val = (v) => {
    if (v === null) parts.push(Buffer.from([5]));
    else if (v === undefined) parts.push(Buffer.from([6]));
    else if (typeof v === 'number') { const b = Buffer.alloc(9); b[0] = 0; b.writeDoubleBE(v, 1); parts.push(b); }
    else if (typeof v === 'boolean') parts.push(Buffer.from([1, v ? 1 : 0]));
    else if (typeof v === 'string') { parts.push(Buffer.from([2])); str(v); }
    else if (typeof v === 'object') {
      parts.push(Buffer.from([3]));
      for (const [k, x] of Object.entries(v)) { str(k); val(x); }
      parts.push(Buffer.from([0, 0, 9]));
    } else throw new Error(`amf0: cannot encode ${typeof v}`);
  };
  for (const v of values) val(v);
  return Buffer.concat(parts);
}

/** Decodes every value in `buf`; stops quietly at an unknown marker (the rest is not needed here). */
export function decodeAmf0(buf) {
  let p = 0;
  const str = () => { const n = buf.readUInt16BE(p); p += 2; const s = buf.toString('utf8', p, p + n); p += n; return s; };
  const props = () => {
    const o = {};
    for (let guard = 0; guard < 10000 && p + 3 <= buf.length; guard++) {
      if (buf[p] === 0 && buf[p + 1] === 0 && buf[p + 2] === 9) { p += 3; break; }
      const k = str(); o[k] = val();
    }
    return o;
  };
  const val = () => {
    const m = buf[p++];
    switch (m) {
      case 0: { const v = buf.readDoubleBE(p); p += 8; return v; }
      case 1: return buf[p++] !== 0;
      case 2: return str();
      case 3: return props();
      case 5: case 6: return null;
      case 8: p += 4; return props();
      case 10: { const n = buf.readUInt32BE(p); p += 4; const a = []; for (let i = 0; i < n; i++) a.push(val()); return a; }
      case 12: { const n = buf.readUInt32BE(p); p += 4; const s = buf.toString('utf8', p, p + n); p += n; return s; }
      default: throw new Error(`amf0: marker ${m}`);
    }
  };
  const out = [];
  try { while (p < buf.length) out.push(val()); } catch { /* partial decode is fine for our needs */ }
  return out;
}
