// Tests that run on one runtime only, and why (the CI budget: the suite runs on Bun, Deno and Node in turn).
//
// The rule (project lead): run protocol-level interop once, on the Node pass, where the runtime does not
// matter. A test may use `nodeOnly` when its outcome depends only on runtime-free code (src/, plugins/)
// and an external tool (ffmpeg, ffprobe, GStreamer, Chromium) checking a protocol or format — e.g. "the
// B-frame order survives every output", "GStreamer decodes our RTSP", "the playlist keeps its
// discontinuity numbers". Every runtime must still run at least one real end-to-end per protocol
// (its adapter's socket, HTTP, WebSocket and UDP paths), and tests of adapters, sockets, HTTP serving,
// backpressure, disconnects, file IO and limits stay on all three runtimes: never use this for those.
//
// Usage (node:test options; Bun and Deno honour `skip` on describe and it):
//   describe('…', nodeOnly('ffprobe checks the order; RTMP/FLV/HLS run on every runtime in rtmp/flv/hls tests'), () => …)
//   it('…', nodeOnly('…'), async () => …)
// Put it on the describe when its before() is costly (a skipped test still runs its suite's hooks).
// Bun lists such a test as (skip) and Deno as ignored (neither prints the reason, so it is written here, at
// the test); Bun does not count a skipped describe in its skip total.

import { detectRuntime, type RuntimeName } from '../../adapters/current.ts';

/** The runtime this test file runs on (from the Bun/Deno globals, as the adapters pick theirs). */
export const testRuntime: RuntimeName = detectRuntime();

/** node:test options that skip on Bun and Deno with the reason, and run on Node. */
export function nodeOnly(reason: string): { skip: string | false } {
  return { skip: testRuntime === 'node' ? false : `runtime-independent interop, Node pass only: ${reason}` };
}
