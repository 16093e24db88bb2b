// The config file as text for an editor (the console's config page): secret values shown as `***`, and
// on the way back `***` replaced by the value the current file has at the same place, so a person can
// edit the file without ever seeing (or having to retype) a password.
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { isSecretKey, REDACTED } from '../redact.ts';
import type { ConfigIssue } from './schema.ts';

type Visit = (keyPath: (string | number)[], node: any, parent: any, key: any) => void;

function walk(node: any, path: (string | number)[], fn: Visit): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      fn([...path, k], pair.value, node, pair);
      walk(pair.value, [...path, k], fn);
    }
  } else if (isSeq(node)) {
    node.items.forEach((it: any, i: number) => walk(it, [...path, i], fn));
  }
}

function parse(text: string): Document.Parsed {
  return parseDocument(text, { uniqueKeys: true, keepSourceTokens: false });
}

/** The file text with every non-empty scalar under a secret key replaced by `***` (comments kept). */
export function redactConfigText(text: string): string {
  const doc = parse(text);
  if (doc.errors.length) return text.split('\n').map((l) => /(pass|secret|key|token)\w*\s*:/i.test(l) ? l.replace(/:.*/, ': ' + REDACTED) : l).join('\n');
  let changed = false;
  walk(doc.contents, [], (p, value) => {
    const k = p[p.length - 1];
    if (typeof k === 'string' && isSecretKey(k) && isScalar(value) && value.value !== '' && value.value !== null && value.value !== undefined) {
      value.value = REDACTED; changed = true;
    }
  });
  return changed ? doc.toString({ lineWidth: 0 }) : text;
}

/** Replace `***` under secret keys in `edited` by the value at the same key path in `current`. */
export function restoreSecrets(edited: string, current: string | undefined): string {
  const doc = parse(edited);
  if (doc.errors.length) return edited;
  const old = current ? parse(current) : undefined;
  let changed = false;
  walk(doc.contents, [], (p, value) => {
    const k = p[p.length - 1];
    if (typeof k === 'string' && isSecretKey(k) && isScalar(value) && value.value === REDACTED) {
      const was = old && !old.errors.length ? old.getIn(p, true) : undefined;
      value.value = isScalar(was) ? was.value : '';
      changed = true;
    }
  });
  return changed ? doc.toString({ lineWidth: 0 }) : edited;
}

/** YAML syntax errors of a text as issues with 1-based line and column. */
export function syntaxIssues(text: string): ConfigIssue[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter: lines });
  return doc.errors.map((e) => {
    const { line, col } = lines.linePos(e.pos[0]);
    return { path: '', line, message: `line ${line}:${col}: YAML syntax error: ${e.message.split('\n')[0]}` };
  });
}

/** 1-based line of a dotted setting path (`rtmp.chunksize`, `global.http.cors`) in a text; nearest ancestor. */
export function lineOfPath(text: string, path: string): number | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const parts = path.replace(/\[(\d+)\]/g, '.$1').replace(/\["([^"]*)"\]/g, '.$1').split('.').filter(Boolean);
  let node: any = doc.contents;
  let line: number | undefined;
  for (const seg of parts) {
    if (isMap(node)) {
      const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
      const pair = node.items.find((it: any) => norm(String(isScalar(it.key) ? it.key.value : it.key)) === norm(seg));
      if (!pair) break;
      const r = (pair.key as any)?.range;
      if (r) line = lines.linePos(r[0]).line;
      node = pair.value;
    } else if (isSeq(node) && /^\d+$/.test(seg) && +seg < node.items.length) {
      node = node.items[+seg];
      const r = node?.range;
      if (r) line = lines.linePos(r[0]).line;
    } else break;
  }
  return line;
}
