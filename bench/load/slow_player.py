#!/usr/bin/env python3
"""The fan-out bench's slow player: one viewer that reads a live stream at a fraction of its bit rate.

  python3 bench/load/slow_player.py --proto rtmp|flv|ws --url URL [--kbps 220] [--edge-ms 100]
                                    [--join-timeout 20]

Standard library only. bench/run.mjs starts it (pinned to the load core, like the other load
processes) next to bench/load/players.mjs and drives its measurement window over stdin:

  stdin   "start"  the window begins (run.mjs forwards players.mjs's window-start)
          "end"    the window ends: print the result line
          EOF      exit (the runner is gone, or done)
  stdout  {"event":"joined","ok":true,"localPort":P,...}   connected, response head / Play.Start seen
          {"event":"joined","ok":false,"error":"..."}      could not join (then it exits 1)
          {"event":"result","slow":{...}}                  after "end" (fields: see result())

It keeps reading (at its rate) until stdin closes or SIGTERM, so the server still sees it when the
runner takes its last look at the subscriber list.

Why Python: a real slow viewer sits behind a WAN path with a small MSS (~1400 bytes) and a receive
window of tens of KB, so the server's kernel send buffer stays small (Linux sizes it from the
congestion window, which cannot grow past what the peer's window lets through) and the server itself
sees backpressure within a second or so. On loopback (MSS ~64 KiB, receive buffer autotuned to MBs)
the kernel buffers instead swallow minutes of a 10 % reader's stream, and the server never sees a
slow client at all. Node cannot set TCP_MAXSEG or SO_RCVBUF on a socket; Python can.

Both options are set before connect(): TCP_MAXSEG is the MSS advertised in the SYN (the server's
segments are then at most that size), and SO_RCVBUF fixes the receive buffer (turning off receive
autotuning) before the SYN, where the window scale factor is chosen from the buffer size. Set after
the handshake, neither would change what the server sees.

Reads follow a token bucket: every 100 ms the budget is refilled to one tick's worth (--kbps / 10);
the socket is only read while budget is left and never for more than is left, and the budget does not
accumulate while idle. So over any second it reads at most --kbps; what it does not read stays in
its kernel receive buffer (64 KiB), then the server's send buffer, then the server's own queues.

Per video frame (FLV tag / RTMP message type 9): frames and keyframes (see is_keyframe) received in the window,
latency = now - the SEI wall clock the publisher stamped into the frame (bench/load/media.mjs:
microseconds since the epoch; time.time_ns() // 1000 here is the same clock), first-frame time and time
to live edge (connect start -> first frame with latency < --edge-ms).
"""

import argparse
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time
import urllib.parse

TICK = 0.1  # token bucket period, s
WAN_MSS = 1400  # a typical WAN MSS (1500 MTU - headers); the kernel subtracts TCP options from it
WAN_RCVBUF = 64 * 1024  # the kernel doubles it for bookkeeping; the advertised window is ~64 KiB

SEI_UUID = b"m7s-bench-clock!"
SEI_PAYLOAD_SIZE = 16 + 8


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wall_micros():
    return time.time_ns() // 1000


def mono_ms():
    return time.monotonic() * 1000.0


# ---------------------------------------------------------------------------- media


def is_keyframe(body):
    """Video keyframe, not a sequence header (same rule as the bench's JS players).

    Frame type 1 = keyframe: the high nibble of byte 0, or bits 4-6 with the E-RTMP ex-header bit
    (bit 7) set; either way (b0 & 0x70) == 0x10. Sequence headers (AVCPacketType 0, or ex-header
    PacketType 0 = SequenceStart) carry the keyframe flag too and are not counted.
    """
    if not body:
        return False
    b0 = body[0]
    if b0 & 0x70 != 0x10:
        return False
    seq_header = (b0 & 0x0F) == 0 if b0 & 0x80 else (len(body) > 1 and body[1] == 0)
    return not seq_header


def find_sei_micros(body):
    """The publisher's SEI clock in an AVC video body (see bench/load/media.mjs findSeiMicros), or -1."""
    n = len(body)
    if n < 5 or (body[0] & 0x0F) != 7 or body[1] != 1:
        return -1
    p = 5
    while p + 4 <= n:
        size = struct.unpack_from(">I", body, p)[0]
        p += 4
        if size <= 0 or p >= n:
            return -1
        if (body[p] & 0x1F) == 6 and p + 27 <= n and body[p + 1] == 5 and body[p + 2] == SEI_PAYLOAD_SIZE \
                and body[p + 3:p + 19] == SEI_UUID:
            v = 0
            for i in range(8):
                v = v * 128 + (body[p + 19 + i] & 0x7F)
            return v
        p += size
    return -1


# ---------------------------------------------------------------------------- stream decoders
# Each takes bytes with push() and passes what it decodes on. The slow player gets ~30 KB/s, so
# they simply buffer until a unit is complete.


class FlvReader:
    """FLV byte stream -> on_tag(type, timestamp, body)."""

    def __init__(self, on_tag):
        self.on_tag = on_tag
        self.buf = bytearray()
        self.skip = 13  # file header (9) + PreviousTagSize0 (4)

    def push(self, data):
        self.buf += data
        b = self.buf
        p = 0
        while True:
            if self.skip:
                k = min(self.skip, len(b) - p)
                self.skip -= k
                p += k
                if self.skip:
                    break
            if len(b) - p < 11:
                break
            size = (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]
            if size > 64 * 1024 * 1024:
                raise ValueError(f"flv: tag of {size} bytes")
            if len(b) - p < 11 + size:
                break
            ts = ((b[p + 7] << 24) | (b[p + 4] << 16) | (b[p + 5] << 8) | b[p + 6]) & 0xFFFFFFFF
            self.on_tag(b[p] & 0x1F, ts, bytes(b[p + 11:p + 11 + size]))
            p += 11 + size
            self.skip = 4  # PreviousTagSize
        del b[:p]


class ChunkedBody:
    """HTTP chunked transfer coding -> sink(bytes). Chunk extensions and trailers are ignored."""

    def __init__(self, sink):
        self.sink = sink
        self.buf = bytearray()
        self.left = 0  # data bytes left in the current chunk
        self.crlf = False  # expecting the CRLF after a chunk's data
        self.ended = False

    def push(self, data):
        self.buf += data
        b = self.buf
        p = 0
        while not self.ended:
            if self.left:
                k = min(self.left, len(b) - p)
                if k == 0:
                    break
                self.sink(bytes(b[p:p + k]))
                p += k
                self.left -= k
                if not self.left:
                    self.crlf = True
            elif self.crlf:
                if len(b) - p < 2:
                    break
                p += 2
                self.crlf = False
            else:
                e = b.find(b"\r\n", p)
                if e < 0:
                    if len(b) - p > 1024:
                        raise ValueError("http: chunk size line too long")
                    break
                line = bytes(b[p:e]).split(b";", 1)[0].strip()
                p = e + 2
                size = int(line, 16)
                if size == 0:
                    self.ended = True
                self.left = size
        del b[:p]


class WsFrames:
    """WebSocket frames from a server (unmasked) -> sink(payload bytes); answers pings through reply()."""

    def __init__(self, sink, reply):
        self.sink = sink
        self.reply = reply
        self.buf = bytearray()
        self.left = 0  # payload bytes left in the current data frame
        self.closed = False

    def push(self, data):
        self.buf += data
        b = self.buf
        p = 0
        while True:
            if self.left:
                k = min(self.left, len(b) - p)
                if k == 0:
                    break
                self.sink(bytes(b[p:p + k]))
                p += k
                self.left -= k
                continue
            if len(b) - p < 2:
                break
            opcode, l7, masked = b[p] & 0x0F, b[p + 1] & 0x7F, b[p + 1] & 0x80
            hl = 2 + (2 if l7 == 126 else 8 if l7 == 127 else 0) + (4 if masked else 0)
            if len(b) - p < hl:
                break
            size = l7 if l7 < 126 else struct.unpack_from(">H" if l7 == 126 else ">Q", b, p + 2)[0]
            if masked:
                raise ValueError("ws: masked frame from the server")
            if opcode >= 8:  # control frame: whole, at most 125 bytes
                if len(b) - p < hl + size:
                    break
                payload = bytes(b[p + hl:p + hl + size])
                if opcode == 9:
                    self.reply(ws_frame(10, payload))
                elif opcode == 8 and not self.closed:
                    self.closed = True
                    self.reply(ws_frame(8, payload[:2]))
                p += hl + size
                continue
            p += hl
            self.left = size  # binary, text or continuation: the payload is the FLV byte stream
        del b[:p]


def ws_frame(opcode, payload):
    """A masked client frame (RFC 6455: clients must mask). Only used for control frames."""
    mask = b"\x12\x34\x56\x78"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i & 3] for i, c in enumerate(payload))


# ---------------------------------------------------------------------------- RTMP


def amf0_encode(*values):
    out = bytearray()

    def s(x):
        b = x.encode()
        out.extend(struct.pack(">H", len(b)) + b)

    def val(v):
        if v is None:
            out.append(5)
        elif isinstance(v, bool):
            out.extend(bytes([1, 1 if v else 0]))
        elif isinstance(v, (int, float)):
            out.extend(b"\x00" + struct.pack(">d", float(v)))
        elif isinstance(v, str):
            out.append(2)
            s(v)
        elif isinstance(v, dict):
            out.append(3)
            for k, x in v.items():
                s(k)
                val(x)
            out.extend(b"\x00\x00\x09")
        else:
            raise TypeError(f"amf0: cannot encode {type(v)}")

    for v in values:
        val(v)
    return bytes(out)


def amf0_decode(buf):
    """Every value in buf; stops quietly at an unknown marker (the rest is not needed here)."""
    p = 0

    def s():
        nonlocal p
        n = struct.unpack_from(">H", buf, p)[0]
        p += 2
        r = bytes(buf[p:p + n]).decode("utf-8", "replace")
        p += n
        return r

    def props():
        nonlocal p
        o = {}
        while p + 3 <= len(buf):
            if buf[p:p + 3] == b"\x00\x00\x09":
                p += 3
                break
            k = s()
            o[k] = val()
        return o

    def val():
        nonlocal p
        m = buf[p]
        p += 1
        if m == 0:
            p += 8
            return struct.unpack_from(">d", buf, p - 8)[0]
        if m == 1:
            p += 1
            return buf[p - 1] != 0
        if m == 2:
            return s()
        if m == 3:
            return props()
        if m in (5, 6):
            return None
        if m == 8:
            p += 4
            return props()
        if m == 10:
            n = struct.unpack_from(">I", buf, p)[0]
            p += 4
            return [val() for _ in range(n)]
        if m == 12:
            n = struct.unpack_from(">I", buf, p)[0]
            p += 4
            r = bytes(buf[p:p + n]).decode("utf-8", "replace")
            p += n
            return r
        raise ValueError(f"amf0: marker {m}")

    out = []
    try:
        while p < len(buf):
            out.append(val())
    except (ValueError, IndexError, struct.error):
        pass
    return out


def rtmp_message(csid, mtype, stream_id, body, chunk_size):
    """One message as chunks: fmt 0 first (timestamp 0), fmt 3 continuations (csid < 64)."""
    out = bytearray([csid & 0x3F])
    out += struct.pack(">I", 0)[1:] + struct.pack(">I", len(body))[1:] + bytes([mtype]) + struct.pack("<I", stream_id)
    for off in range(0, max(1, len(body)), chunk_size):
        if off:
            out.append(0xC0 | csid)
        out += body[off:off + chunk_size]
    return bytes(out)


class ChunkReader:
    """RTMP chunk stream -> on_message(type, timestamp, stream_id, body).

    Basic headers of 1-3 bytes, message headers fmt 0-3 (fmt 3 starting a new message repeats the
    previous delta), extended timestamps (also on fmt 3 chunks of a stream whose last header had one),
    interleaved chunk streams, and Set Chunk Size (applied here, before the next chunk is read).
    """

    def __init__(self, on_message):
        self.on_message = on_message
        self.chunk_size = 128
        self.streams = {}
        self.buf = bytearray()

    def push(self, data):
        self.buf += data
        b = self.buf
        p = 0
        while True:
            n = len(b) - p
            if n < 1:
                break
            fmt, low = b[p] >> 6, b[p] & 0x3F
            basic = 2 if low == 0 else 3 if low == 1 else 1
            mh = (11, 7, 3, 0)[fmt]
            if n < basic + mh:
                break
            csid = 64 + b[p + 1] if low == 0 else 64 + b[p + 1] + b[p + 2] * 256 if low == 1 else low
            s = self.streams.get(csid)
            if s is None:
                s = self.streams[csid] = {"ts": 0, "delta": 0, "len": 0, "type": 0, "sid": 0, "ext": False, "msg": None}
            q = p + basic
            if fmt < 3:
                t = (b[q] << 16) | (b[q + 1] << 8) | b[q + 2]
                ext = t == 0xFFFFFF
            else:
                ext = s["ext"]
            hl = basic + mh + (4 if ext else 0)
            if n < hl:
                break
            length = ((b[q + 3] << 16) | (b[q + 4] << 8) | b[q + 5]) if fmt <= 1 else s["len"]
            starting = s["msg"] is None
            pos = 0 if starting else len(s["msg"])
            take = min(self.chunk_size, length - pos)
            if n < hl + take:
                break
            # the whole chunk is here: apply its header
            if fmt < 3:
                if ext:
                    t = struct.unpack_from(">I", b, p + basic + mh)[0]
                s["ext"] = ext
                if fmt <= 1:
                    s["len"], s["type"] = length, b[q + 6]
                if fmt == 0:
                    s["sid"] = struct.unpack_from("<I", b, q + 7)[0]
                    s["ts"], s["delta"] = t, 0
                else:
                    s["delta"] = t
                    if starting:
                        s["ts"] = (s["ts"] + t) & 0xFFFFFFFF
            elif starting:
                s["ts"] = (s["ts"] + s["delta"]) & 0xFFFFFFFF
            if starting:
                s["msg"] = bytearray()
            s["msg"] += b[p + hl:p + hl + take]
            p += hl + take
            if len(s["msg"]) >= s["len"]:
                body = bytes(s["msg"])
                s["msg"] = None
                if s["type"] == 1 and len(body) >= 4:
                    self.chunk_size = max(1, struct.unpack_from(">I", body)[0] & 0x7FFFFFFF)
                self.on_message(s["type"], s["ts"], s["sid"], body)
        del b[:p]


# ---------------------------------------------------------------------------- the player


class SlowPlayer:
    def __init__(self, args):
        self.args = args
        self.url = urllib.parse.urlsplit(args.url)
        self.proto = args.proto
        self.tick_bytes = max(256, round(args.kbps * 1000 / 8 * TICK))
        self.edge_us = max(1.0, args.edge_ms) * 1000
        self.sock = None
        self.t0 = 0.0
        self.joined = False
        self.bytes = 0
        self.bytes_at_start = 0
        self.t_start = None
        self.measuring = False
        self.video_frames = 0  # all, since connect
        self.window_frames = 0
        self.keyframes = 0
        self.sei_frames = 0
        self.lat = []  # ms, samples in the window (30 a second at most)
        self.first_frame_ms = None
        self.live_edge_ms = None
        self.closed = False
        self.error = None
        self.decoder = None  # push(bytes) of the current protocol stage
        self.out = bytearray()  # bytes to send (commands, pongs, acks): tiny, sent as they fit

    # --- media
    def video(self, body):
        self.video_frames += 1
        now = mono_ms()
        if self.first_frame_ms is None:
            self.first_frame_ms = now - self.t0
        if self.measuring:
            self.window_frames += 1
            if is_keyframe(body):
                self.keyframes += 1
        sent = find_sei_micros(body)
        if sent < 0:
            return
        self.sei_frames += 1
        us = wall_micros() - sent
        if self.live_edge_ms is None and us < self.edge_us:
            self.live_edge_ms = now - self.t0
        if self.measuring:
            self.lat.append(us / 1000.0)

    def on_tag(self, tag_type, _ts, body):
        if tag_type == 9:
            self.video(body)

    # --- connection
    def connect(self):
        host = self.url.hostname or "127.0.0.1"
        default = {"rtmp": 1935, "flv": 80, "ws": 80}[self.proto]
        port = self.url.port or default
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        s = socket.socket(info[0], socket.SOCK_STREAM)
        # Before connect (see the module comment): the MSS goes into the SYN, and the window scale is
        # fixed from the receive buffer size at the handshake.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, WAN_MSS)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WAN_RCVBUF)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(self.args.join_timeout)
        s.connect(info[4])
        s.setblocking(False)
        self.sock = s
        if self.proto == "rtmp":
            self.start_rtmp()
        else:
            self.start_http(self.proto == "ws")

    def send(self, data):
        self.out += data
        self.flush()

    def flush(self):
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            del self.out[:n]

    def on_joined(self):
        self.joined = True

    def start_http(self, ws):
        path = (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")
        extra = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: bTdzLWJlbmNoLWtleS0xMg==\r\n") if ws else "Connection: keep-alive\r\n"
        self.send(f"GET {path} HTTP/1.1\r\nHost: {self.url.netloc}\r\nUser-Agent: m7s-bench-slow\r\n{extra}\r\n".encode())
        head = bytearray()
        flv = FlvReader(self.on_tag)

        def on_head(data):
            head.extend(data)
            k = head.find(b"\r\n\r\n")
            if k < 0:
                if len(head) > 16384:
                    raise ValueError("response head too large")
                return
            text = head[:k].decode("latin-1")
            status = int(text.split(" ", 2)[1])
            if status != (101 if ws else 200):
                raise ValueError(f"HTTP {status}: {text.splitlines()[0]}")
            if ws:
                body = WsFrames(flv.push, self.send)
            elif "transfer-encoding: chunked" in text.lower().replace("\t", " "):
                body = ChunkedBody(flv.push)
            else:
                body = flv
            self.decoder = body.push
            self.on_joined()
            rest = bytes(head[k + 4:])
            if rest:
                body.push(rest)

        self.decoder = on_head

    def start_rtmp(self):
        parts = self.url.path.lstrip("/").split("/")
        app, name = parts[0], "/".join(parts[1:])
        if self.url.query:
            name += "?" + self.url.query
        tc_url = f"rtmp://{self.url.netloc}/{app}"
        state = {"cs": 128, "stream": 0, "received": 0, "acked": 0, "window": 0}

        def cmd(csid, sid, *values):
            self.send(rtmp_message(csid, 20, sid, amf0_encode(*values), state["cs"]))

        def on_message(mtype, _ts, _sid, body):
            if mtype == 9:
                self.video(body)
            elif mtype == 5 and len(body) >= 4:
                state["window"] = struct.unpack_from(">I", body)[0]
            elif mtype == 4 and len(body) >= 6 and struct.unpack_from(">H", body)[0] == 6:  # ping -> pong
                self.send(rtmp_message(2, 4, 0, struct.pack(">H", 7) + body[2:6], state["cs"]))
            elif mtype in (20, 17):  # AMF0 command (17: AMF3 command, a format byte then AMF0)
                v = amf0_decode(body[1:] if mtype == 17 else body) + [None] * 4
                name_, tid, info = v[0], v[1], v[3]
                if name_ == "_result" and tid == 1:
                    cmd(3, 0, "createStream", 2, None)
                elif name_ == "_result" and tid == 2:
                    state["stream"] = sid = int(info or 0)
                    cmd(4, sid, "play", 3, None, name, -2000)
                    # user control: set buffer length 1000 ms
                    self.send(rtmp_message(2, 4, 0, struct.pack(">HII", 3, sid, 1000), state["cs"]))
                elif name_ == "onStatus":
                    code = (info or {}).get("code", "") if isinstance(info, dict) else ""
                    if "Play.Start" in code:
                        if not self.joined:
                            self.on_joined()
                    elif any(x in code for x in ("Failed", "BadName", "StreamNotFound", "Rejected")):
                        raise ValueError(f"rtmp play: {code}")
                elif name_ == "_error":
                    raise ValueError(f"rtmp play: _error {json.dumps(info, default=str)}")

        reader = ChunkReader(on_message)

        def feed(data):
            state["received"] += len(data)
            w = state["window"]
            if w and state["received"] - state["acked"] >= w // 2:  # acknowledgement, as servers expect
                state["acked"] = state["received"]
                self.send(rtmp_message(2, 3, 0, struct.pack(">I", state["received"] & 0xFFFFFFFF), state["cs"]))
            reader.push(data)

        hs = bytearray()

        def on_handshake(data):
            hs.extend(data)
            if len(hs) < 1 + 1536 * 2:
                return
            self.send(bytes(hs[1:1537]))  # C2 = echo of S1
            self.send(rtmp_message(2, 1, 0, struct.pack(">I", 4096), state["cs"]))  # set chunk size
            state["cs"] = 4096
            cmd(3, 0, "connect", 1, {
                "app": app, "flashVer": "FMLE/3.0 (compatible; m7s-bench)", "tcUrl": tc_url, "type": "nonprivate",
                "fpad": False, "capabilities": 15, "audioCodecs": 0x0FFF, "videoCodecs": 0xFF, "videoFunction": 1,
            })
            self.decoder = feed
            rest = bytes(hs[1 + 1536 * 2:])
            if rest:
                feed(rest)

        # Plain handshake: C0 (version 3) + C1 (time 0, zero, 1528 zero bytes), accepted by the servers
        # the bench drives (no digest).
        self.send(b"\x03" + bytes(1536))
        self.decoder = on_handshake

    # --- result
    def result(self):
        secs = (self.t_end - self.t_start) if self.t_start is not None else 0.0
        lat = sorted(self.lat)

        def q(x):  # nearest rank
            return lat[max(0, math.ceil(x * len(lat)) - 1)] if lat else None

        return {
            "targetKbps": self.args.kbps,
            "kbps": ((self.bytes_at_end - self.bytes_at_start) * 8 / 1000 / secs) if secs > 0 else None,
            "keyframes": self.keyframes, "videoFrames": self.window_frames, "videoFramesTotal": self.video_frames,
            "firstFrameMs": self.first_frame_ms, "liveEdgeMs": self.live_edge_ms,
            "latencyMs": {"samples": len(lat), "p50": lat[(len(lat) - 1) // 2] if lat else None,
                          "p99": q(0.99), "max": lat[-1] if lat else None},
            "windowSeconds": secs, "closed": self.closed, "error": self.error,
        }

    # --- the loop
    def run(self):
        self.t0 = mono_ms()
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        cmdbuf = bytearray()
        try:
            self.connect()
        except Exception as e:  # noqa: BLE001 - reported, then exit
            emit({"event": "joined", "ok": False, "error": f"connect: {e}"})
            return 1
        join_deadline = time.monotonic() + self.args.join_timeout
        tokens = self.tick_bytes
        next_tick = time.monotonic() + TICK
        while True:
            now = time.monotonic()
            if now >= next_tick:
                tokens = min(self.tick_bytes, tokens + self.tick_bytes)  # no accumulation while idle
                next_tick += TICK
                if next_tick < now:
                    next_tick = now + TICK
            if not self.joined and now > join_deadline:
                emit({"event": "joined", "ok": False, "error": "join timeout"})
                return 1
            rd = [stdin]
            sock_ok = self.sock is not None and not self.closed
            if sock_ok and tokens > 0:
                rd.append(self.sock)
            wr = [self.sock] if sock_ok and self.out else []
            try:
                r, w, _ = select.select(rd, wr, [], max(0.0, next_tick - time.monotonic()))
            except InterruptedError:
                continue
            if w:
                try:
                    self.flush()
                except OSError as e:
                    self.fail(e)
            if self.sock in r and not self.closed:
                try:
                    data = self.sock.recv(min(tokens, 1 << 16))
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError as e:
                    self.fail(e)
                    data = None
                if data == b"":
                    self.fail(ConnectionError("closed by the server"))
                elif data:
                    tokens -= len(data)
                    self.bytes += len(data)
                    try:
                        self.decoder(data)
                    except Exception as e:  # noqa: BLE001 - a protocol error ends the connection
                        self.fail(e)
                if not self.joined and self.closed:
                    emit({"event": "joined", "ok": False, "error": self.error})
                    return 1
                if self.joined and not self.announced:
                    self.announced = True
                    emit({"event": "joined", "ok": True, "localPort": self.sock.getsockname()[1],
                          "proto": self.proto, "kbps": self.args.kbps, "mss": WAN_MSS, "rcvbuf": WAN_RCVBUF,
                          "joinMs": mono_ms() - self.t0})
            if stdin in r:
                try:
                    chunk = os.read(stdin, 4096)
                except (BlockingIOError, InterruptedError):
                    chunk = None
                if chunk == b"":
                    return 0  # the runner closed our stdin: done
                if chunk:
                    cmdbuf += chunk
                    while b"\n" in cmdbuf:
                        line, _, rest = bytes(cmdbuf).partition(b"\n")
                        cmdbuf = bytearray(rest)
                        self.command(line.decode().strip())

    announced = False
    t_end = None
    bytes_at_end = 0

    def command(self, c):
        if c == "start" and not self.measuring:
            self.bytes_at_start = self.bytes
            self.t_start = time.monotonic()
            self.keyframes = self.window_frames = 0
            self.lat = []
            self.measuring = True
        elif c == "end":
            self.measuring = False
            self.t_end = time.monotonic()
            self.bytes_at_end = self.bytes
            emit({"event": "result", "slow": self.result()})

    def fail(self, e):
        if self.error is None:
            self.error = str(e) or type(e).__name__
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proto", choices=["rtmp", "flv", "ws"], required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--kbps", type=float, default=220.0)
    ap.add_argument("--edge-ms", type=float, default=100.0)
    ap.add_argument("--join-timeout", type=float, default=20.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return SlowPlayer(args).run()


if __name__ == "__main__":
    sys.exit(main())
