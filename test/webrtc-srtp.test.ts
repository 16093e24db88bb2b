// The WHEP fast send path's SRTP protect (plugins/webrtc/srtp.ts) against an independent implementation:
// werift's own SrtpSession, keyed with the same master keys, decrypts and authenticates what we
// protect, for both profiles werift negotiates, across a sequence-number wrap (ROC, RFC 3711 §3.3.1)
// and with a NACK resend from before the wrap. Byte-for-byte equality with werift's encrypt of the same
// packet checks the IV, the AAD and the tag layout too; a flipped bit must fail authentication.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from 'werift';
import { RolloverCounter, rtpHeaderLength, SrtpSendStream, SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80 } from '../plugins/webrtc/srtp.ts';
import { ntpFromUnixMs } from '../plugins/webrtc/peer.ts';

const rand = (n: number): Buffer => { const b = Buffer.alloc(n); crypto.getRandomValues(b); return b; };

/** A serialized RTP packet as the shared packetizer makes it (SSRC/PT of the stream, not the viewer's). */
function rtp(seq: number, ts: number, payload: Uint8Array, opts: { marker?: boolean; csrcs?: number[]; ext?: Uint8Array } = {}): Uint8Array {
  const cc = opts.csrcs?.length ?? 0;
  const extLen = opts.ext ? 4 + opts.ext.length : 0;
  const b = Buffer.alloc(12 + cc * 4 + extLen + payload.length);
  b[0] = 0x80 | (opts.ext ? 0x10 : 0) | cc;
  b[1] = (opts.marker ? 0x80 : 0) | 96;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ts, 4);
  b.writeUInt32BE(0x11111111, 8);
  let o = 12;
  for (const c of opts.csrcs ?? []) { b.writeUInt32BE(c, o); o += 4; }
  if (opts.ext) { b.writeUInt16BE(0xbede, o); b.writeUInt16BE(opts.ext.length / 4, o + 2); b.set(opts.ext, o + 4); o += 4 + opts.ext.length; }
  b.set(payload, o);
  return b;
}

for (const [name, profile, ours, saltLen] of [
  ['AES_CM_128_HMAC_SHA1_80', ProtectionProfileAes128CmHmacSha1_80, SRTP_AES128_CM_HMAC_SHA1_80, 14],
  ['AEAD_AES_128_GCM', ProtectionProfileAeadAes128Gcm, SRTP_AEAD_AES_128_GCM, 12],
] as const) {
  describe(`webrtc SRTP protect: ${name}`, () => {
    const key = rand(16), salt = rand(saltLen);
    // The sending side as werift derives it for a DTLS transport (session keys read by peer.ts the same
    // way), and an independent receiving werift session with the same master keys.
    const mk = () => new SrtpSession({ keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt }, profile });
    const ctxOf = (s: SrtpSession) => (s as any).localContext;
    const streamFor = (ssrc: number) => {
      const lc = ctxOf(mk());
      return new SrtpSendStream({ profile: ours, key: lc.srtpSessionKey, salt: lc.srtpSessionSalt, authKey: lc.srtpSessionAuthTag }, ssrc);
    };
    const SSRC = 0xcafe0001, PT = 102;

    it('werift decrypts every packet across a sequence wrap, with a NACK resend from before the wrap', () => {
      const st = streamFor(SSRC);
      const rx = mk();
      const sent = new Map<number, { pkt: Uint8Array; payload: Uint8Array }>();
      const seqs = [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3];
      let ts = 90000;
      for (const seq of seqs) {
        const payload = rand(100 + (seq % 7) * 150);
        const pkt = rtp(seq, ts, payload, { marker: seq === 1 });
        sent.set(seq, { pkt, payload });
        const out = st.protect(pkt, PT)!;
        assert.equal(out.length, pkt.length + st.tagLength);
        assert.notDeepEqual(out.subarray(12, pkt.length), Buffer.from(payload), 'payload is encrypted');
        const dec = rx.decrypt(out);
        const h = RtpHeader.deSerialize(dec);
        assert.equal(h.ssrc, SSRC);
        assert.equal(h.payloadType, PT);
        assert.equal(h.sequenceNumber, seq);
        assert.equal(h.timestamp, ts);
        assert.equal(h.marker, seq === 1);
        assert.deepEqual(dec.subarray(12), Buffer.from(payload));
        ts += 3000;
      }
      assert.equal(st.rollover.roc, 1, 'ROC counted the wrap');
      // A NACK asks for 65534 again (sent with ROC 0) after 0..3 went out with ROC 1.
      const again = rx.decrypt(st.protect(sent.get(65534)!.pkt, PT)!);
      assert.deepEqual(again.subarray(12), Buffer.from(sent.get(65534)!.payload));
      assert.equal(st.rollover.roc, 1, 'a resend does not move the ROC back');
      const next = rand(300);
      const dec = rx.decrypt(st.protect(rtp(4, ts, next), PT)!);
      assert.deepEqual(dec.subarray(12), Buffer.from(next));
    });

    it('byte-for-byte what werift itself sends (CSRCs and a header extension kept), and a flipped bit fails authentication', () => {
      const st = streamFor(SSRC);
      const tx = mk();
      const rx = mk();
      for (let i = 0; i < 20; i++) {
        const seq = (65525 + i) & 0xffff;
        const payload = rand(1 + i * 60);
        const pkt = rtp(seq, 1000 + i * 3000, payload, { csrcs: i % 3 === 0 ? [1, 2] : [], ext: i % 2 ? Buffer.from([0x10, 0xaa, 0, 0]) : undefined });
        const ours = st.protect(pkt, PT)!;
        // werift's own path: the packet with the viewer's SSRC and payload type, through its context.
        const h = RtpHeader.deSerialize(Buffer.from(pkt));
        h.ssrc = SSRC;
        h.payloadType = PT;
        const theirs = tx.encrypt(Buffer.from(pkt.subarray(rtpHeaderLength(pkt))), h);
        assert.deepEqual(ours, theirs, `packet ${seq}`);
        assert.deepEqual(rx.decrypt(ours).subarray(rtpHeaderLength(pkt)), Buffer.from(payload));
      }
      // A flipped bit fails authentication (the same packet unflipped opens: the check is not vacuous).
      const good = streamFor(SSRC).protect(rtp(10, 0, rand(200)), PT)!;
      const bad = Buffer.from(good);
      bad[40]! ^= 1;
      assert.throws(() => mk().decrypt(bad));
      assert.equal(mk().decrypt(good).length, 212);
      // Another viewer's keys do not open it either.
      const other = streamFor(SSRC).protect(rtp(11, 0, rand(200)), PT)!;
      const foreign = new SrtpSession({ keys: { localMasterKey: rand(16), localMasterSalt: rand(saltLen), remoteMasterKey: rand(16), remoteMasterSalt: rand(saltLen) }, profile });
      assert.throws(() => foreign.decrypt(other));
    });

    it('sequence and timestamp offsets (werift replaceTrack) are applied before protecting', () => {
      const st = streamFor(SSRC);
      const rx = mk();
      const dec = rx.decrypt(st.protect(rtp(65535, 0xfffffff0, rand(50)), PT, 10, 0x20)!);
      const h = RtpHeader.deSerialize(dec);
      assert.equal(h.sequenceNumber, 9);
      assert.equal(h.timestamp, 0x10);
      assert.equal(st.lastSeq, 9);
      assert.equal(st.lastTimestamp, 0x10);
      assert.equal(st.lastPayloadBytes, 50);
    });
  });
}

describe('webrtc SRTP send: rollover counter and NTP time', () => {
  it('RFC 3711 §3.3.1 index estimate on the sending side: wraps, late resends, nothing before the start', () => {
    const r = new RolloverCounter();
    // 65000 starts (ROC 0); 0 after 65535 wraps (1); 65534 again is a resend from before the wrap (0,
    // the ROC stays 1); steps under 2^15 go on; 100 after 65535 wraps again (2).
    const got = [65000, 65535, 0, 65534, 1, 30000, 60000, 65535, 100, 30000].map((s) => r.next(s));
    assert.deepEqual(got, [0, 0, 1, 0, 1, 1, 1, 1, 2, 2]);
    assert.equal(r.roc, 2);
    const s = new RolloverCounter();
    assert.equal(s.next(5), 0);
    assert.equal(s.next(65530), -1, 'a packet from before the first one has no index');
    assert.equal(s.next(6), 0);
  });

  it('NTP timestamps carry a 32-bit binary fraction from the Unix epoch + 70 years', () => {
    assert.equal(ntpFromUnixMs(0), 2208988800n << 32n);
    assert.equal(ntpFromUnixMs(1500), ((2208988801n << 32n) | 0x80000000n));
    const t = Date.UTC(2026, 0, 1, 0, 0, 0, 250);
    assert.equal(ntpFromUnixMs(t) & 0xffffffffn, 0x40000000n);
    assert.equal(ntpFromUnixMs(t) >> 32n, BigInt(t / 1000 - 0.25 + 2208988800));
  });
});
