// StreamPath: "app/name" (two or more segments), no leading slash; the query string carries
// per-request arguments. Paths come from the network, so they are checked strictly.

import { EngineError } from './errors.ts';

export interface ParsedPath {
  path: string;
  app: string;
  name: string;
  args: Record<string, string>;
}

const SEGMENT = /^[A-Za-z0-9._~@=+,:!$()*-]+$/;
export const MAX_PATH_LENGTH = 256;

/** Parse "live/cam1?secret=..&expire=.." (leading slashes and a trailing media extension are not removed here). */
export function parseStreamPath(input: string, extraArgs?: Record<string, string>): ParsedPath {
  let raw = input;
  let query = '';
  const q = raw.indexOf('?');
  if (q >= 0) { query = raw.slice(q + 1); raw = raw.slice(0, q); }
  raw = raw.replace(/^\/+/, '').replace(/\/+$/, '');
  let path: string;
  try { path = decodeURIComponent(raw); } catch { throw new EngineError('BadPath', `stream path is not valid URL encoding: ${JSON.stringify(input.slice(0, 80))}`); }
  if (path.length === 0 || path.length > MAX_PATH_LENGTH) throw new EngineError('BadPath', `stream path must be 1..${MAX_PATH_LENGTH} characters`);
  const segs = path.split('/');
  if (segs.length < 2) throw new EngineError('BadPath', `stream path "${path}" needs at least two segments (app/name)`);
  for (const s of segs) {
    if (!s || s === '.' || s === '..' || !SEGMENT.test(s)) {
      throw new EngineError('BadPath', `stream path "${path.slice(0, 80)}" has an invalid segment "${s.slice(0, 40)}"`);
    }
  }
  const args: Record<string, string> = Object.create(null);
  if (query) {
    for (const [k, v] of new URLSearchParams(query)) if (k.length <= 64) args[k] = v.slice(0, k === 'jwt' || k === 'pass' ? 8192 : 1024);
  }
  if (extraArgs) for (const k in extraArgs) args[k] = extraArgs[k];
  return { path, app: segs.slice(0, -1).join('/'), name: segs[segs.length - 1], args };
}
