// Capture what ffmpeg sends with `-f rtp`: one pair of UDP sockets (RTP, RTCP) per output on 127.0.0.1,
// ffmpeg run to completion, then the datagrams and the SDP it wrote. Works on Node, Bun and Deno.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { ffmpegPath, run } from './media.ts';
import { tempDir } from './frames.ts';

export interface RtpCapture { sdp: string; rtp: Uint8Array[][]; rtcp: Uint8Array[][] }

async function bind(): Promise<{ sock: dgram.Socket; port: number; got: Uint8Array[] }> {
  const sock = dgram.createSocket('udp4');
  const got: Uint8Array[] = [];
  sock.on('message', (m) => got.push(new Uint8Array(m)));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { sock, port: sock.address().port, got };
}

/**
 * Run ffmpeg with `inputArgs`, then for each entry of `outputs` (its own -map/-c args) an RTP output to
 * a socket pair of ours. Returns the datagrams per output and the SDP.
 */
export async function captureRtp(inputArgs: string[], outputs: string[][], extra: string[] = []): Promise<RtpCapture> {
  const dir = tempDir();
  const socks = await Promise.all(outputs.map(async () => ({ rtp: await bind(), rtcp: await bind() })));
  try {
    const args = ['-hide_banner', '-loglevel', 'error', '-y', ...inputArgs];
    outputs.forEach((o, i) => args.push(...o, ...extra, '-f', 'rtp', `rtp://127.0.0.1:${socks[i]!.rtp.port}?rtcpport=${socks[i]!.rtcp.port}&pkt_size=1200`));
    args.push('-sdp_file', dir.file('out.sdp'));
    const r = await run(ffmpegPath, args, 120_000);
    if (r.code !== 0) throw new Error(`ffmpeg failed (${r.code}): ${r.stderr.slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 200)); // let the last datagrams land
    const sdpText = readFileSync(dir.file('out.sdp'), 'utf8');
    // ffmpeg starts the file with an "SDP:" line before v=0.
    return { sdp: sdpText.slice(Math.max(0, sdpText.indexOf('v=0'))), rtp: socks.map((s) => s.rtp.got), rtcp: socks.map((s) => s.rtcp.got) };
  } finally {
    for (const s of socks) { s.rtp.sock.close(); s.rtcp.sock.close(); }
    dir.remove();
  }
}
