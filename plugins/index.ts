// The plugins built into the m7s executable, in start order.
import type { PluginDef } from '../src/plugin.ts';
import rtmp from './rtmp/index.ts';
import flv from './flv/index.ts';
import hls from './hls/index.ts';
import llhls from './hls/llhls.ts';
import mp4 from './mp4/index.ts';
import record from './record/index.ts';
import logrotate from './logrotate/index.ts';
import rtsp from './rtsp/index.ts';
import webrtc from './webrtc/index.ts';
import cascade from './cascade/index.ts';
import snap from './snap/index.ts';
import transcode from './transcode/index.ts';
import gb28181 from './gb28181/index.ts';
import rtpPlugin from './rtp/index.ts';
import onvif from './onvif/index.ts';
import audiobridge from './audiobridge/index.ts';
import admin from './console/index.ts';
import preview from './preview/index.ts';

export const builtinPlugins: PluginDef<any>[] = [rtmp, flv, hls, llhls, mp4, rtsp, webrtc, audiobridge, gb28181, rtpPlugin, onvif, record, logrotate, cascade, snap, transcode, admin, preview];
