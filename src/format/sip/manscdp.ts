// MANSCDP (GB/T 28181 annex A): the XML bodies of MESSAGE requests (Keepalive, Catalog, DeviceInfo,
// RecordInfo, DeviceControl...). A small bounded XML reader (elements, text, entities, CDATA; no DTDs,
// no namespaces beyond keeping the prefix), text decoding by the declared encoding (GB2312/GBK/GB18030
// through TextDecoder('gbk'/'gb18030'), which Node, Bun and Deno all carry), and a writer.

import { FormatError } from '../bytes.ts';

export const XML_MAX_BYTES = 256 * 1024;
export const XML_MAX_ELEMENTS = 20000;
export const XML_MAX_DEPTH = 32;

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENT: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  if (s.indexOf('&') < 0) return s;
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#\d{1,7}|[a-z]{2,4});/g, (all, e: string) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : all;
    }
    return ENT[e] ?? all;
  });
}

/** Decode XML bytes by the encoding its declaration names (UTF-8 when none; GB2312 → GBK superset). */
export function decodeXmlBytes(b: Uint8Array): string {
  if (b.length > XML_MAX_BYTES) throw new FormatError(`XML of ${b.length} bytes exceeds ${XML_MAX_BYTES}`);
  let head = '';
  for (let i = 0; i < Math.min(b.length, 200); i++) head += String.fromCharCode(b[i]!);
  const m = /^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_-]{1,20})["']/.exec(head);
  let enc = (m?.[1] ?? 'utf-8').toLowerCase();
  if (enc === 'gb2312' || enc === 'gbk' || enc === 'cp936' || enc === 'x-gbk') enc = 'gbk';
  let dec: TextDecoder;
  try {
    dec = new TextDecoder(enc);
  } catch {
    throw new FormatError(`XML encoding ${JSON.stringify(enc)} is not supported here`);
  }
  return dec.decode(b);
}

/** Parse an XML document (bytes in the declared encoding, or a string) into its root element. */
export function parseXml(input: Uint8Array | string): XmlElement {
  const s = typeof input === 'string' ? input : decodeXmlBytes(input);
  if (s.length > XML_MAX_BYTES) throw new FormatError(`XML of ${s.length} characters exceeds ${XML_MAX_BYTES}`);
  const n = s.length;
  let i = 0;
  let count = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  while (i < n) {
    const lt = s.indexOf('<', i);
    if (lt < 0) {
      if (stack.length) stack[stack.length - 1]!.text += decodeEntities(s.slice(i));
      else if (s.slice(i).trim()) throw new FormatError('text outside the XML root element');
      break;
    }
    if (lt > i && stack.length) stack[stack.length - 1]!.text += decodeEntities(s.slice(i, lt));
    else if (lt > i && s.slice(i, lt).trim() && !root) throw new FormatError('text before the XML root element');
    if (s.startsWith('<?', lt)) {
      const e = s.indexOf('?>', lt + 2);
      if (e < 0) throw new FormatError('unterminated XML declaration');
      i = e + 2;
      continue;
    }
    if (s.startsWith('<!--', lt)) {
      const e = s.indexOf('-->', lt + 4);
      if (e < 0) throw new FormatError('unterminated XML comment');
      i = e + 3;
      continue;
    }
    if (s.startsWith('<![CDATA[', lt)) {
      const e = s.indexOf(']]>', lt + 9);
      if (e < 0) throw new FormatError('unterminated CDATA');
      if (!stack.length) throw new FormatError('CDATA outside the root element');
      stack[stack.length - 1]!.text += s.slice(lt + 9, e);
      i = e + 3;
      continue;
    }
    if (s.startsWith('<!', lt)) throw new FormatError('DTDs are not accepted in MANSCDP XML');
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) throw new FormatError('unterminated XML tag');
    const tag = s.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const top = stack.pop();
      if (!top || top.name !== name) throw new FormatError(`XML end tag </${name.slice(0, 40)}> does not match`);
      top.text = top.text.trim();
      continue;
    }
    const selfClose = tag.endsWith('/');
    const body = selfClose ? tag.slice(0, -1) : tag;
    const m = /^\s*([A-Za-z_][\w.:-]{0,63})/.exec(body);
    if (!m) throw new FormatError(`bad XML tag <${body.slice(0, 40)}>`);
    const el: XmlElement = { name: m[1]!, attrs: {}, children: [], text: '' };
    const rest = body.slice(m[0].length);
    const re = /\s*([A-Za-z_][\w.:-]{0,63})\s*=\s*("([^"]*)"|'([^']*)')/gy;
    let am: RegExpExecArray | null;
    let pos = 0;
    while ((am = re.exec(rest))) { el.attrs[am[1]!] = decodeEntities(am[3] ?? am[4] ?? ''); pos = re.lastIndex; }
    if (rest.slice(pos).trim()) throw new FormatError(`bad XML attributes in <${el.name}>`);
    if (++count > XML_MAX_ELEMENTS) throw new FormatError(`more than ${XML_MAX_ELEMENTS} XML elements`);
    if (stack.length) stack[stack.length - 1]!.children.push(el);
    else if (root) throw new FormatError('XML with two root elements');
    else root = el;
    if (!selfClose) {
      if (stack.length >= XML_MAX_DEPTH) throw new FormatError(`XML nested deeper than ${XML_MAX_DEPTH}`);
      stack.push(el);
    }
  }
  if (stack.length) throw new FormatError(`XML element <${stack[stack.length - 1]!.name}> not closed`);
  if (!root) throw new FormatError('XML without a root element');
  return root;
}

/** The first child element named `name` (case-insensitive: devices vary), or undefined. */
export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  if (!el) return undefined;
  const n = name.toLowerCase();
  return el.children.find((c) => c.name.toLowerCase() === n);
}

/** Text of the first child named `name` ('' when absent). */
export function childText(el: XmlElement | undefined, name: string): string {
  return child(el, name)?.text ?? '';
}

const esc = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

/** Write a MANSCDP document: `<?xml version="1.0" encoding="GB2312"?>` + `<Root>` with flat or nested fields. */
export function buildManscdp(root: 'Query' | 'Control' | 'Response' | 'Notify', fields: Record<string, string | number | Record<string, string | number>>, encoding = 'GB2312'): string {
  const body = (f: Record<string, unknown>, indent: string): string => {
    let s = '';
    for (const [k, v] of Object.entries(f)) {
      if (v !== null && typeof v === 'object') s += `${indent}<${k}>\r\n${body(v as Record<string, unknown>, indent + '  ')}${indent}</${k}>\r\n`;
      else s += `${indent}<${k}>${esc(String(v))}</${k}>\r\n`;
    }
    return s;
  };
  return `<?xml version="1.0" encoding="${encoding}"?>\r\n<${root}>\r\n${body(fields, '')}</${root}>\r\n`;
}

// ---------------------------------------------------------------------------------------------------
// The messages the server reads

export interface ManscdpMessage {
  /** Query / Control / Response / Notify */
  root: string;
  cmdType: string;
  sn: number;
  deviceId: string;
  xml: XmlElement;
}

export function parseManscdp(body: Uint8Array | string): ManscdpMessage {
  const xml = parseXml(body);
  const cmdType = childText(xml, 'CmdType');
  if (!cmdType) throw new FormatError(`MANSCDP <${xml.name}> without CmdType`);
  const sn = Number(childText(xml, 'SN') || '0');
  return { root: xml.name, cmdType, sn: Number.isFinite(sn) ? sn : 0, deviceId: childText(xml, 'DeviceID'), xml };
}

export interface CatalogItem {
  deviceId: string;
  name: string;
  manufacturer: string;
  model: string;
  status: string;
  parentId: string;
  address: string;
  ptzType: string;
  longitude: string;
  latitude: string;
}

/** The items of a Catalog response (one response may be one of several: SumNum says the total). */
export function catalogItems(m: ManscdpMessage): { sumNum: number; items: CatalogItem[] } {
  const list = child(m.xml, 'DeviceList');
  const items: CatalogItem[] = [];
  for (const it of list?.children ?? []) {
    if (it.name.toLowerCase() !== 'item') continue;
    const info = child(it, 'Info');
    items.push({
      deviceId: childText(it, 'DeviceID'), name: childText(it, 'Name'), manufacturer: childText(it, 'Manufacturer'),
      model: childText(it, 'Model'), status: childText(it, 'Status'), parentId: childText(it, 'ParentID'),
      address: childText(it, 'Address'), ptzType: childText(info, 'PTZType'), longitude: childText(it, 'Longitude'),
      latitude: childText(it, 'Latitude'),
    });
  }
  const sumNum = Number(childText(m.xml, 'SumNum') || items.length);
  return { sumNum: Number.isFinite(sumNum) ? sumNum : items.length, items };
}

export interface RecordItem { deviceId: string; name: string; startTime: string; endTime: string; type: string; fileSize?: number }

export function recordItems(m: ManscdpMessage): { sumNum: number; items: RecordItem[] } {
  const list = child(m.xml, 'RecordList');
  const items: RecordItem[] = [];
  for (const it of list?.children ?? []) {
    if (it.name.toLowerCase() !== 'item') continue;
    const size = Number(childText(it, 'FileSize'));
    items.push({
      deviceId: childText(it, 'DeviceID'), name: childText(it, 'Name'), startTime: childText(it, 'StartTime'),
      endTime: childText(it, 'EndTime'), type: childText(it, 'Type'), fileSize: Number.isFinite(size) && childText(it, 'FileSize') ? size : undefined,
    });
  }
  const sumNum = Number(childText(m.xml, 'SumNum') || items.length);
  return { sumNum: Number.isFinite(sumNum) ? sumNum : items.length, items };
}

// ---------------------------------------------------------------------------------------------------
// PTZCmd (GB/T 28181-2016 annex A.3): 8 bytes as 16 hex digits.
//   byte1 A5, byte2 high nibble 0 (version) low nibble = (A5 high + A5 low + version high) % 16 → 0x0F,
//   byte3 address low byte, byte4 instruction, byte5 data1 (pan speed), byte6 data2 (tilt speed),
//   byte7 high nibble data3 (zoom speed) | low nibble address high, byte8 checksum = sum(bytes1..7) % 256.

export type PtzDirection = 'stop' | 'left' | 'right' | 'up' | 'down' | 'upleft' | 'upright' | 'downleft' | 'downright' | 'zoomin' | 'zoomout';

export function ptzCmd(instruction: number, d1 = 0, d2 = 0, d3 = 0, address = 0): string {
  const b = [0xa5, 0x0f, address & 0xff, instruction & 0xff, d1 & 0xff, d2 & 0xff, ((d3 & 0x0f) << 4) | ((address >> 8) & 0x0f)];
  b.push(b.reduce((a, x) => a + x, 0) % 256);
  return b.map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
}

/** A PTZ move: pan/tilt speed 0-255, zoom speed 0-15. */
export function ptzMove(dir: PtzDirection, speed = 0x80, zoomSpeed = 0x8): string {
  const bits: Record<PtzDirection, number> = {
    stop: 0, right: 0x01, left: 0x02, down: 0x04, up: 0x08, downright: 0x05, downleft: 0x06, upright: 0x09, upleft: 0x0a,
    zoomin: 0x10, zoomout: 0x20,
  };
  const i = bits[dir];
  if (i === undefined) throw new FormatError(`unknown PTZ direction ${JSON.stringify(dir)}`);
  const pan = i & 0x03 ? speed : 0, tilt = i & 0x0c ? speed : 0, zoom = i & 0x30 ? zoomSpeed : 0;
  return ptzCmd(i, pan, tilt, zoom);
}

/** Preset commands: set 0x81, call 0x82, delete 0x83; preset number 1-255 in data2. */
export function ptzPreset(op: 'set' | 'call' | 'delete', preset: number): string {
  if (!Number.isInteger(preset) || preset < 1 || preset > 255) throw new FormatError('preset must be 1..255');
  return ptzCmd({ set: 0x81, call: 0x82, delete: 0x83 }[op], 0, preset);
}

/** Decode a PTZCmd hex string (throws FormatError on a bad length or checksum). */
export function parsePtzCmd(hex: string): { instruction: number; data1: number; data2: number; data3: number; address: number } {
  if (!/^[0-9A-Fa-f]{16}$/.test(hex)) throw new FormatError('PTZCmd must be 16 hex digits');
  const b: number[] = [];
  for (let i = 0; i < 16; i += 2) b.push(parseInt(hex.slice(i, i + 2), 16));
  if (b[0] !== 0xa5) throw new FormatError('PTZCmd does not start with A5');
  if (b.slice(0, 7).reduce((a, x) => a + x, 0) % 256 !== b[7]) throw new FormatError('PTZCmd checksum mismatch');
  return { instruction: b[3]!, data1: b[4]!, data2: b[5]!, data3: b[6]! >> 4, address: b[2]! | ((b[6]! & 0x0f) << 8) };
}
