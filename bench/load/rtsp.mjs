// A small RTSP player for the bench: DESCRIBE, SETUP of every track over TCP interleaved, PLAY, then an
// incremental reader of `$` frames. Independent of m7s code, so any RTSP server can be driven by it.
//
// The reader walks each socket buffer once and copies only what it needs: the RTSP answers (small) and,
// for video RTP packets, the SEI NAL unit our publisher stamps into every frame (found in single-NAL or
// STAP-A packets). One onVideo call per video frame (per RTP timestamp), at its marker packet, with an
// FLV-like prefix (5-byte tag header + a length-prefixed SEI NAL) so the players' SEI parser reads it.

import net from 'node:net';

/** Reads rtsp://host[:port]/path. */
function parseUrl(url) {
  const u = new URL(url.replace(/^rtsp:/, 'http:'));
  return { host: u.hostname, port: Number(u.port || 554) };
}

/**
 * Play `url`. Resolves with { socket } once PLAY is answered. onVideo(prefix, len, tsMs) per video
 * frame; onError(e) when the session fails later.
 */
export function rtspPlay(url, { onVideo = () => {}, onError = () => {}, timeoutMs = 10000 } = {}) {
  const { host, port } = parseUrl(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('join timeout')); }, timeoutMs);
    let cseq = 0;
    let pending = null; // resolve of the request in flight
    let text = '';      // RTSP answer being read
    let session = '';
    let playing = false;
    // `$` frame reader state
    let need = 0, hdr = 0, ch = 0, len = 0, left = 0;
    const hbuf = Buffer.alloc(4);
    let pkt = null, pktLen = 0;  // copy of the first bytes of a video packet
    const HEAD = 600;
    const videoCh = new Set();
    let frameTs = -1, firstTs = -1, sei = null;

    const request = (method, uri, headers = {}) => new Promise((res) => {
      pending = res;
      let s = `${method} ${uri} RTSP/1.0\r\nCSeq: ${++cseq}\r\nUser-Agent: m7s-bench\r\n`;
      if (session) s += `Session: ${session}\r\n`;
      for (const [k, v] of Object.entries(headers)) s += `${k}: ${v}\r\n`;
      socket.write(s + '\r\n');
    });

    const onPacket = (b, n) => {
      // b: the first min(n, HEAD) bytes of an RTP packet on a video channel
      if (n < 13) return;
      const cc = b[0] & 0x0f, x = b[0] & 0x10;
      let p = 12 + cc * 4;
      if (x) { if (p + 4 > b.length) return; p += 4 + ((b[p + 2] << 8) | b[p + 3]) * 4; }
      const ts = b.readUInt32BE(4);
      const marker = (b[1] & 0x80) !== 0;
      if (ts !== frameTs) { frameTs = ts; sei = null; }
      if (p < b.length) {
        const type = b[p] & 0x1f;
        if (type === 6) sei = b.subarray(p, Math.min(b.length, n));
        else if (type === 24) {
          let q = p + 1;
          while (q + 2 <= b.length) {
            const l = (b[q] << 8) | b[q + 1];
            q += 2;
            if ((b[q] & 0x1f) === 6) { sei = b.subarray(q, Math.min(b.length, q + l)); break; }
            q += l;
          }
        }
      }
      if (!marker) return;
      if (firstTs < 0) firstTs = ts;
      const tsMs = ((ts - firstTs) >>> 0) / 90;
      if (sei) {
        const out = Buffer.alloc(9 + sei.length);
        out[0] = 0x17; out[1] = 1; out.writeUInt32BE(sei.length, 5); sei.copy ? sei.copy(out, 9) : out.set(sei, 9);
        onVideo(out, out.length, tsMs);
      } else {
        onVideo(Buffer.from([0x27, 1, 0, 0, 0]), 5, tsMs);
      }
      sei = null;
    };

    const readFrames = (d, i) => {
      while (i < d.length) {
        if (left > 0) {
          const take = Math.min(left, d.length - i);
          if (pkt && pktLen < pkt.length) {
            const c = Math.min(take, pkt.length - pktLen);
            d.copy(pkt, pktLen, i, i + c);
            pktLen += c;
          }
          i += take;
          left -= take;
          if (left === 0 && pkt) { onPacket(pkt.subarray(0, pktLen), len); pkt = null; }
          continue;
        }
        if (need === 0) {
          if (d[i] !== 0x24) { // an RTSP message between frames (keep-alive answer): skip to its end
            const end = d.indexOf('\r\n\r\n', i);
            if (end < 0) return; // rare; ignore the rest of this buffer
            i = end + 4;
            continue;
          }
          need = 4; hdr = 0;
        }
        hbuf[hdr++] = d[i++];
        if (hdr === 4) {
          need = 0;
          ch = hbuf[1]; len = hbuf.readUInt16BE(2); left = len;
          pkt = videoCh.has(ch) ? Buffer.allocUnsafe(Math.min(len, HEAD)) : null;
          pktLen = 0;
          if (left === 0) pkt = null;
        }
      }
    };

    socket.on('data', (d) => {
      if (playing) { readFrames(d, 0); return; }
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end);
      const m = /content-length:\s*(\d+)/i.exec(head);
      const bodyLen = m ? Number(m[1]) : 0;
      if (text.length < end + 4 + bodyLen) return;
      const body = text.slice(end + 4, end + 4 + bodyLen);
      const rest = Buffer.from(text.slice(end + 4 + bodyLen), 'latin1');
      text = '';
      const r = pending; pending = null;
      r?.({ head, body, rest });
    });
    socket.on('error', (e) => { clearTimeout(timer); onError(e); reject(e); });
    socket.on('close', () => { clearTimeout(timer); onError(new Error('closed')); reject(new Error('closed')); });

    socket.on('connect', async () => {
      try {
        const d = await request('DESCRIBE', url, { Accept: 'application/sdp' });
        if (!/^RTSP\/1\.0 200/.test(d.head)) throw new Error(d.head.split('\r\n')[0]);
        const base = (/content-base:\s*(\S+)/i.exec(d.head)?.[1] ?? url + '/').replace(/\/?$/, '/');
        const media = d.body.split(/\r?\nm=/).slice(1);
        for (let i = 0; i < media.length; i++) {
          const control = /a=control:(\S+)/.exec(media[i])?.[1] ?? `trackID=${i}`;
          const turl = /^rtsp:/.test(control) ? control : base + control;
          const r = await request('SETUP', turl, { Transport: `RTP/AVP/TCP;unicast;interleaved=${2 * i}-${2 * i + 1}` });
          if (!/^RTSP\/1\.0 200/.test(r.head)) throw new Error(r.head.split('\r\n')[0]);
          session = (/session:\s*([^;\r\n]+)/i.exec(r.head)?.[1] ?? '').trim();
          if (media[i].startsWith('video')) videoCh.add(2 * i);
        }
        const p = await request('PLAY', url, { Range: 'npt=0.000-' });
        if (!/^RTSP\/1\.0 200/.test(p.head)) throw new Error(p.head.split('\r\n')[0]);
        playing = true;
        clearTimeout(timer);
        resolve({ socket });
        if (p.rest.length) readFrames(p.rest, 0);
      } catch (e) {
        clearTimeout(timer);
        socket.destroy();
        reject(e);
      }
    });
  });
}
