// onpub.record and event recording. onpub.record (mode auto) records a stream from its first keyframe:
// all 150 frames of a 6 s publish at 4× real time. mode: event keeps beforeduration (3 s) in the ring
// and POST /record/api/event/start records from the keyframe before it to afterduration (2 s) after
// the event: 5 s (+ up to one 1 s GOP) in one file, listed in the index with the event's name.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import record from '../plugins/record/index.ts';
import { start, startServer, until } from './helpers/media.ts';
import { FFMPEG51, filesUnder, probe, sourceArgs } from './helpers/record.ts';

const get = async (url: string) => ((await (await fetch(url)).json()) as any).data;

describe('record: onpub.record and event recording', () => {
  it('onpub.record records the whole stream from its first keyframe', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-reconpub-'));
    const S = await startServer([rtmp, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 0s\n  subscribe:\n    waittimeout: 1s\n  indexfile: "${dir}/index.jsonl"\n` +
      `  onpub:\n    record:\n      "live/(auto)": "${dir}/$1/{unix}"\n`);
    try {
      const pub = start(FFMPEG51, [...sourceArgs(6, 4), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp')}/live/auto`]);
      await new Promise<void>((r) => pub.proc.once('close', () => r()));
      await until(async () => (await get(`${S.http}/record/api/list`)).recorders.length === 0 && filesUnder(join(dir, 'auto'), '.mp4').length === 1, 15_000, 'the recording to end');
      const files = filesUnder(join(dir, 'auto'), '.mp4');
      const p = await probe(files[0]!);
      assert.equal(p.errors, '');
      assert.equal(p.packets.filter((x) => x.codec_type === 'video').length, 150, 'every frame from the first keyframe');
    } finally {
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('mode: event records beforeduration before and afterduration after the event', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-recevent-'));
    const S = await startServer([rtmp, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  mode: event\n  beforeduration: 3s\n  afterduration: 2s\n` +
      `  indexfile: "${dir}/index.jsonl"\n  onpub:\n    record:\n      "live/ev": "${dir}/ev/{unix}"\n`);
    const pub = start(FFMPEG51, [...sourceArgs(20, 2), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp')}/live/ev`]);
    try {
      // Let 6 s of the stream pass (3 s at 2×), then the event.
      await until(() => { const v = S.server.engine.getStream('live/ev')?.tracks.find((t) => t.kind === 'video'); return v && v.lastDts / v.clockRate >= 6; }, 20_000, '6 s of stream');
      assert.equal(filesUnder(join(dir, 'ev'), '.mp4').length, 0, 'nothing is recorded before the event');
      const r = await (await fetch(`${S.http}/record/api/event/start/live/ev?eventname=doorbell`, { method: 'POST' })).json() as any;
      assert.equal(r.code, 0, JSON.stringify(r));
      await until(async () => (await get(`${S.http}/record/api/list`)).recorders.length === 0, 15_000, 'the event recording to end');
      const segs = await get(`${S.http}/record/api/list?streamPath=live/ev`);
      assert.equal(segs.length, 1);
      assert.equal(filesUnder(join(dir, 'ev'), '.mp4').length, 1);
      assert.equal(segs[0].event, 'doorbell');
      const p = await probe(segs[0].path);
      assert.equal(p.errors, '');
      const vp = p.packets.filter((x) => x.codec_type === 'video');
      assert.ok(vp[0].flags.startsWith('K'));
      const secs = vp.length / 25;
      assert.ok(secs >= 4.9 && secs <= 6.1, `${secs} s recorded (3 s before + 2 s after, + up to one GOP)`);
    } finally {
      await pub.kill();
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('append: a second recording continues the fmp4 and flv files of the first (6 s, rising timestamps)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-recappend-'));
    const S = await startServer([rtmp, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 0s\n  append: true\n  filepath: "${dir}/{unix}"\n  subscribe:\n    waittimeout: 1s\n  indexfile: "${dir}/index.jsonl"\n`);
    try {
      for (let round = 0; round < 2; round++) {
        const starts = ['fmp4', 'flv'].map((t) => fetch(`${S.http}/record/api/start/live/ap?type=${t}&filepath=${encodeURIComponent(`${dir}/${t}/{streamPath}`)}`, { method: 'POST' }).then((r) => r.json() as Promise<any>));
        const pub = start(FFMPEG51, [...sourceArgs(3, 4), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp')}/live/ap`]);
        for (const r of await Promise.all(starts)) assert.equal(r.code, 0, JSON.stringify(r));
        await new Promise<void>((r) => pub.proc.once('close', () => r()));
        await until(async () => (await get(`${S.http}/record/api/list`)).recorders.length === 0, 15_000, 'the recordings to end');
      }
      for (const [t, ext] of [['fmp4', '.mp4'], ['flv', '.flv']]) {
        const files = filesUnder(join(dir, t!), ext);
        assert.equal(files.length, 1, files.join(', '));
        const p = await probe(files[0]!);
        assert.equal(p.errors, '', `${t}: ${p.errors}`);
        const vp = p.packets.filter((x) => x.codec_type === 'video');
        assert.equal(vp.length, 150, `${t}: both recordings (2 × 75 frames)`);
        for (let i = 1; i < vp.length; i++) assert.ok(Number(vp[i].dts_time) > Number(vp[i - 1].dts_time), `${t}: dts rises at ${i}`);
        const d = Number(vp[149].dts_time) - Number(vp[0].dts_time);
        assert.ok(d >= 5.9 && d <= 6.2, `${t}: ${d} s`);
      }
      const segs = await get(`${S.http}/record/api/list?streamPath=live/ap`);
      assert.equal(segs.length, 2, 'one index entry per file');
      for (const e of segs) assert.ok(Math.abs(e.duration - 6000) <= 200, JSON.stringify(e));
    } finally {
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
