// Config loading: YAML text → sections (with line lookup), the layered build of the whole config
// (defaults < inherited global < file < env < API modifications), env and URL-query overrides,
// diffs for hot reload, and YAML output/editing that keeps the user's comments.
//
// Runtime-agnostic: the caller reads files and the environment and passes strings and objects in.

import { Document, LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit, YAMLMap } from 'yaml';
import type { Node as YamlNode, Pair } from 'yaml';
import {
  cloneData, compile, ConfigError, defaultOf, describe, fieldOf, formatDuration, formatPath, normalizeKey,
  resolveValue, SCHEMA, t, withFields,
} from './schema.ts';
import type { ConfigIssue, PathPart, ResolveContext, Schema, SchemaLike, SectionSchema } from './schema.ts';

// ---------------------------------------------------------------------------------------------------
// Parsing

export interface ParsedConfig {
  /** Top-level sections, keyed by normalised section name; values as the YAML parser produced them. */
  data: Record<string, unknown>;
  /** 1-based line of a path (section first, keys as in `data` or normalised); nearest existing ancestor. */
  lineOf: (path: PathPart[]) => number | undefined;
  /** Non-fatal problems found while splitting the file into sections (e.g. a section given twice). */
  errors: ConfigIssue[];
}

const PARSE_OPTIONS = { prettyErrors: false, uniqueKeys: true, merge: true } as const;

/** Parses YAML text into a Document, throwing a ConfigError that names file, line and column on syntax errors. */
function parseYamlDoc(text: string, filename: string): { doc: Document.Parsed; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...PARSE_OPTIONS, lineCounter: lines });
  if (doc.errors.length) {
    const issues = doc.errors.map((e): ConfigIssue => {
      let at = e.pos[0];
      let msg = e.message.split('\n')[0];
      // An unclosed quote is only detected at the end of the text; point at where the string opens.
      if (e.code === 'MISSING_CHAR' && /quote/.test(msg)) {
        const open = unclosedQuoteStart(doc, e.pos[0]);
        if (open !== undefined) {
          at = open;
          msg += ' (this string runs on to the end of the file)';
        }
      }
      const { line, col } = lines.linePos(at);
      return { path: '', line, source: filename, message: `${filename}:${line}:${col}: YAML syntax error: ${msg}` };
    });
    throw new ConfigError(issues);
  }
  return { doc, lines };
}

/** Start offset of the quoted scalar that ends at `end` (where an unclosed quote was detected). */
function unclosedQuoteStart(doc: Document.Parsed, end: number): number | undefined {
  let start: number | undefined;
  visit(doc, {
    Scalar(_key, node) {
      const r = node.range;
      if (r && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && r[1] >= end - 1 && r[0] < end) start = r[0];
    },
  });
  return start;
}

/** Finds the pair of a YAML mapping for a path segment: exact key first, then by normalised key. */
function findPair(map: YAMLMap, seg: PathPart): Pair | undefined {
  const keyOf = (p: Pair) => (isScalar(p.key) ? String(p.key.value) : String(p.key));
  const items = map.items as Pair[];
  const exact = items.find((p) => keyOf(p) === String(seg));
  if (exact || typeof seg === 'number') return exact;
  const n = normalizeKey(seg);
  return items.find((p) => normalizeKey(keyOf(p)) === n);
}

function makeLineOf(doc: Document.Parsed, lines: LineCounter) {
  const lineAt = (n: unknown): number | undefined => {
    const r = (n as YamlNode | null)?.range;
    return r ? lines.linePos(r[0]).line : undefined;
  };
  return (path: PathPart[]): number | undefined => {
    let node: unknown = doc.contents;
    let line: number | undefined;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = findPair(node, seg);
        if (!pair) break;
        line = lineAt(pair.key) ?? lineAt(pair.value) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
        node = node.items[seg];
        line = lineAt(node) ?? line;
      } else break;
    }
    return line;
  };
}

/**
 * Parses config.yaml text. Throws a ConfigError for YAML syntax errors (naming file, line and column)
 * or when the top level is not a mapping. An empty (or comment-only) file gives `{}`.
 */
export function parseConfigText(text: string, filename = 'config.yaml'): ParsedConfig {
  const { doc, lines } = parseYamlDoc(text, filename);
  const lineOf = makeLineOf(doc, lines);
  const errors: ConfigIssue[] = [];
  const js: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (js === null || js === undefined) return { data: {}, lineOf, errors };
  if (typeof js !== 'object' || Array.isArray(js)) {
    const line = doc.contents?.range ? lines.linePos(doc.contents.range[0]).line : 1;
    throw new ConfigError([{
      path: '', line, source: filename,
      message: `${filename}:${line}: the top level must be a mapping of sections (global:, rtmp:, ...), got ${describe(js)}`,
    }]);
  }
  const data: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const [k, v] of Object.entries(js as Record<string, unknown>)) {
    const n = normalizeKey(k);
    if (n in data) {
      const line = lineOf([k]);
      errors.push({
        path: n, source: filename, ...(line !== undefined ? { line } : {}),
        message: `${n} (${filename}${line !== undefined ? ':' + line : ''}): section given twice, as "${from[n]}" and "${k}"`,
      });
      continue;
    }
    data[n] = v;
    from[n] = k;
  }
  return { data, lineOf, errors };
}

// ---------------------------------------------------------------------------------------------------
// Env overrides

export interface EnvOverride {
  /** The variable name, e.g. `RTMP_TCP_LISTENADDR`. */
  name: string;
  value: string;
  /** Normalised section name. */
  section: string;
  /** Schema keys from the section down to the target setting. */
  path: string[];
}

/**
 * Walks `segs[i..]` down a schema, letting one key span several `_`-separated segments
 * (`LISTEN_ADDR` → `listenaddr`). Returns the schema keys, or undefined if no setting matches.
 */
function walkSegments(schema: Schema, segs: string[], i: number): string[] | undefined {
  if (i === segs.length) return [];
  if (schema[SCHEMA] !== 'section') return undefined;
  for (let j = i + 1; j <= segs.length; j++) {
    const key = fieldOf(schema, segs.slice(i, j).join(''));
    if (key === undefined) continue;
    const rest = walkSegments(schema.fields[key], segs, j);
    if (rest) return [key, ...rest];
  }
  return undefined;
}

/**
 * Matches environment variables to settings: `<SECTION>_<KEY>_<SUBKEY>=value` in upper case
 * (e.g. `RTMP_TCP_LISTENADDR`, `GLOBAL_HTTP_LISTENADDR`, `HLS_ENABLE`). Variables whose first part is
 * not a section are ignored; ones naming a section but no setting are returned as warnings.
 * Empty values are ignored (treated as unset).
 */
export function matchEnv(sections: Record<string, Schema>, env: Record<string, string | undefined>): { overrides: EnvOverride[]; warnings: ConfigIssue[] } {
  const overrides: EnvOverride[] = [];
  const warnings: ConfigIssue[] = [];
  const names = Object.keys(sections);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === '' || !/^[A-Z][A-Z0-9_]*_[A-Z0-9_]+$/.test(name)) continue;
    const segs = name.toLowerCase().split('_').filter((s) => s !== '');
    // The section name may itself span segments (a plugin called `my_plugin` → MY_PLUGIN_...).
    let known: string | undefined; // first section the name starts with
    let knownAt = 0;
    let hit: EnvOverride | undefined;
    for (let j = 1; j < segs.length && !hit; j++) {
      const section = segs.slice(0, j).join('');
      if (!names.includes(section)) continue;
      if (known === undefined) { known = section; knownAt = j; }
      const path = walkSegments(sections[section], segs, j);
      if (path) hit = { name, value, section, path };
    }
    if (hit) overrides.push(hit);
    else if (known !== undefined) {
      const p = formatPath([known, ...segs.slice(knownAt)]);
      warnings.push({ path: p, source: `env ${name}`, message: `env ${name}: no setting ${p} in section "${known}" (ignored)` });
    }
  }
  // Shorter paths first, so `RTMP_TCP_LISTENADDR` wins over a whole-section `RTMP_TCP={...}`.
  overrides.sort((a, b) => a.path.length - b.path.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { overrides, warnings };
}

/** Reads `obj[path]`, or undefined. */
function getAt(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}
/** Sets `obj[path]`, creating plain objects along the way. */
function setAt(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]] = value;
}
function schemaAt(schema: Schema, path: readonly string[]): Schema {
  let s = schema;
  for (const k of path) s = (s as SectionSchema<unknown>).fields[k];
  return s;
}

/** Applies matched env overrides for one section to its resolved value (in place). */
function applyEnv(schema: Schema, value: Record<string, unknown>, overrides: EnvOverride[], errors: ConfigIssue[], warnings: ConfigIssue[]): void {
  for (const o of overrides) {
    const ctx: ResolveContext = { mode: 'text', source: `env ${o.name}`, errors, warnings };
    const v = resolveValue(schemaAt(schema, o.path), o.value, getAt(value, o.path), [o.section, ...o.path], ctx);
    setAt(value, o.path, v);
  }
}

// ---------------------------------------------------------------------------------------------------
// Building the whole config

export interface BuildConfigInput {
  /** Section schemas: `global` plus one per plugin (names are normalised). */
  sections: Record<string, SchemaLike>;
  /** Keys of `global` every plugin section inherits (e.g. `['publish', 'subscribe']`). */
  inherit?: readonly string[];
  /** Contents of config.yaml (absent or empty: defaults only). */
  fileText?: string;
  /** Name used in messages (default `config.yaml`). */
  filename?: string;
  /** Environment variables (the caller passes the runtime's environment). */
  env?: Record<string, string | undefined>;
  /** API modifications, `{ section: { key: value } }`; the highest priority. */
  modified?: Record<string, unknown>;
}

export interface BuiltConfig {
  /** Resolved config: `global` and one entry per plugin section, keyed by normalised name. */
  config: Record<string, any>;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
  /** The file's top-level sections as parsed (normalised names), including unknown ones. */
  raw: Record<string, unknown>;
  /** The effective section schemas (with implicit `enable`, `disableall` and inherited keys). */
  schemas: Record<string, SectionSchema<unknown>>;
}

const GLOBAL = 'global';

function asSection(like: SchemaLike, name: string): SectionSchema<unknown> {
  const s = compile(like);
  if (s[SCHEMA] !== 'section') throw new TypeError(`config: schema of section "${name}" must be a section (an object of settings)`);
  return s;
}

/**
 * Builds the whole config. Priority, low → high: schema defaults < global's value for inherited keys
 * < config file < env vars < `modified`. Never throws for bad config content: YAML syntax errors and
 * invalid values are returned in `errors` (the caller decides whether to refuse to start), unknown
 * keys, sections and env vars in `warnings`.
 */
export function buildConfig(input: BuildConfigInput): BuiltConfig {
  const filename = input.filename ?? 'config.yaml';
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];

  // Effective schemas. global gets `disableall`; every plugin gets `enable` and the inherited keys.
  const declared: Record<string, SchemaLike> = {};
  for (const [k, v] of Object.entries(input.sections)) declared[normalizeKey(k)] = v;
  const globalSchema = withFields(asSection(declared[GLOBAL] ?? {}, GLOBAL), { disableall: t.bool(false) });
  const inherit = (input.inherit ?? []).map((k) => fieldOf(globalSchema, k)).filter((k): k is string => k !== undefined);
  const schemas: Record<string, SectionSchema<unknown>> = { [GLOBAL]: globalSchema };
  for (const [name, like] of Object.entries(declared)) {
    if (name === GLOBAL) continue;
    const extra: Record<string, Schema> = { enable: t.bool(true) };
    for (const k of inherit) extra[k] = globalSchema.fields[k];
    schemas[name] = withFields(asSection(like, name), extra);
  }

  // The file.
  let raw: Record<string, unknown> = {};
  let lineOf: ParsedConfig['lineOf'] | undefined;
  if (input.fileText !== undefined && input.fileText.trim() !== '') {
    try {
      const parsed = parseConfigText(input.fileText, filename);
      raw = parsed.data;
      lineOf = parsed.lineOf;
      errors.push(...parsed.errors);
    } catch (e) {
      if (e instanceof ConfigError) errors.push(...e.issues);
      else throw e;
    }
  }
  for (const name of Object.keys(raw)) {
    if (!(name in schemas)) {
      const line = lineOf?.([name]);
      warnings.push({
        path: name, source: filename, ...(line !== undefined ? { line } : {}),
        message: `${name} (${filename}${line !== undefined ? ':' + line : ''}): unknown plugin section "${name}" (ignored)`,
      });
    }
  }

  const env = matchEnv(schemas, input.env ?? {});
  warnings.push(...env.warnings);

  const modified: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input.modified ?? {})) {
    const n = normalizeKey(k);
    if (n in schemas) modified[n] = v;
    else warnings.push({ path: n, source: 'API modification', message: `${n} (API modification): unknown section "${k}" (ignored)` });
  }

  // One section through all layers, starting from `base`.
  const layer = (name: string, base: Record<string, unknown>): Record<string, unknown> => {
    const schema = schemas[name];
    const fileCtx: ResolveContext = { mode: 'yaml', source: filename, lineOf, errors, warnings };
    let value = resolveValue(schema, raw[name], base, [name], fileCtx) as Record<string, unknown>;
    applyEnv(schema, value, env.overrides.filter((o) => o.section === name), errors, warnings);
    if (modified[name] !== undefined) {
      const modCtx: ResolveContext = { mode: 'yaml', source: 'API modification', errors, warnings };
      value = resolveValue(schema, modified[name], value, [name], modCtx) as Record<string, unknown>;
    }
    return value;
  };

  const config: Record<string, any> = {};
  const globalValue = layer(GLOBAL, defaultOf(globalSchema) as Record<string, unknown>);
  config[GLOBAL] = globalValue;
  const disableAll = globalValue.disableall === true;

  for (const name of Object.keys(schemas)) {
    if (name === GLOBAL) continue;
    const schema = schemas[name];
    const base = defaultOf(schema) as Record<string, unknown>;
    // Inherited keys start from global's resolved value, re-read through the plugin's own schema
    // for that key (a plugin may declare a narrower or wider `publish`); issues here are not the user's.
    for (const k of inherit) {
      const own = fieldOf(schema, k)!;
      const quiet: ResolveContext = { mode: 'yaml', source: 'global', errors: [], warnings: [] };
      base[own] = resolveValue(schema.fields[own], globalValue[k], base[own], [name, own], quiet);
    }
    if (disableAll) base[fieldOf(schema, 'enable')!] = false;
    config[name] = layer(name, base);
  }

  return { config, errors, warnings, raw, schemas };
}

// ---------------------------------------------------------------------------------------------------
// URL query overrides

export interface ApplyArgsOptions {
  /** Section name used in issue paths (e.g. `subscribe`). */
  section?: string;
  /** Keys (normalised or dotted paths) that query args may not override, e.g. `['key']` for secrets. */
  deny?: readonly string[];
  /** When set, only these keys (normalised or dotted paths) may be overridden; `deny` still applies. */
  allow?: readonly string[];
}

/**
 * Returns a copy of a resolved section with settings overridden by URL query args
 * (`?waittimeout=5s&subaudio=false`). Arg names are normalised; `a.b=1` reaches nested keys; args
 * that match no setting are ignored; a bare flag (`?iframeonly`) means true for a boolean.
 * Bad values are returned as errors and leave the setting unchanged. Without args it returns the
 * section itself, not a copy: callers must not modify the value.
 */
export function applyArgs<T>(schema: SchemaLike, resolvedValue: T, args: URLSearchParams | Record<string, string>, opts: ApplyArgsOptions = {}): { value: T; errors: ConfigIssue[] } {
  const errors: ConfigIssue[] = [];
  const entries: [string, string][] = args instanceof URLSearchParams ? [...args.entries()] : Object.entries(args);
  // Most plays and publishes carry no query args: the resolved value as it is (no clone, no schema walk),
  // which every join of a player used to pay for.
  if (entries.length === 0) return { value: resolvedValue, errors };
  const s = compile(schema);
  const value = cloneData(resolvedValue);
  const deny = new Set((opts.deny ?? []).map((d) => d.split('.').map(normalizeKey).join('.')));
  const allow = opts.allow ? new Set(opts.allow.map((d) => d.split('.').map(normalizeKey).join('.'))) : undefined;
  const prefix = opts.section ? [opts.section] : [];
  for (const [name, text] of entries) {
    const keys: string[] = [];
    let cur: Schema = s;
    for (const seg of name.split('.')) {
      const k = cur[SCHEMA] === 'section' ? fieldOf(cur, seg) : undefined;
      if (k === undefined) { keys.length = 0; break; }
      keys.push(k);
      cur = (cur as SectionSchema<unknown>).fields[k];
    }
    const dotted = keys.map(normalizeKey).join('.');
    if (keys.length === 0 || deny.has(dotted) || (allow && !allow.has(dotted))) continue;
    const ctx: ResolveContext = { mode: 'text', source: `query arg "${name}"`, emptyIsTrue: true, errors, warnings: [] };
    const v = resolveValue(cur, text, getAt(value, keys), [...prefix, ...keys], ctx);
    setAt(value as Record<string, unknown>, keys, v);
  }
  return { value, errors };
}

// ---------------------------------------------------------------------------------------------------
// Diffs

export interface ConfigDiff {
  /** Formatted path, section first: `rtmp.chunksize`. */
  path: string;
  /** The same path as keys. */
  parts: string[];
  old: unknown;
  new: unknown;
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function sameData(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameData(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameData(a[k], b[k]));
  }
  return false;
}

/**
 * Deep difference of two configs: one entry per changed leaf (lists compare as whole values; a key
 * present on one side only is one entry with `undefined` on the other). Order: the old config's key
 * order, then keys only in the new one.
 */
export function diffConfig(oldCfg: unknown, newCfg: unknown): ConfigDiff[] {
  const out: ConfigDiff[] = [];
  const walk = (a: unknown, b: unknown, parts: string[]) => {
    if (isObj(a) && isObj(b)) {
      const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !Object.prototype.hasOwnProperty.call(a, k))];
      for (const k of keys) walk(a[k], b[k], [...parts, k]);
    } else if (!sameData(a, b)) {
      out.push({ path: formatPath(parts), parts, old: a, new: b });
    }
  };
  walk(oldCfg, newCfg, []);
  return out;
}

/** Groups diff entries by section (the first path key), keeping order. */
export function sectionDiffs(diff: readonly ConfigDiff[]): Map<string, ConfigDiff[]> {
  const out = new Map<string, ConfigDiff[]>();
  for (const d of diff) {
    const s = d.parts[0] ?? '';
    const list = out.get(s);
    if (list) list.push(d);
    else out.set(s, [d]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// YAML output and editing

/** Replaces duration values (milliseconds) by Go-style strings, following the schemas. */
function humanise(schema: Schema | undefined, v: unknown): unknown {
  if (!schema) return v;
  switch (schema[SCHEMA]) {
    case 'dur': return typeof v === 'number' ? formatDuration(v) : v;
    case 'section': {
      if (!isObj(v)) return v;
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = humanise(schema.fields[k], x);
      return out;
    }
    case 'map': {
      if (!isObj(v)) return v;
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = humanise(schema.value, x);
      return out;
    }
    case 'list': return Array.isArray(v) ? v.map((x) => humanise(schema.item, x)) : v;
    default: return v;
  }
}

/**
 * Renders a config as YAML (for the API's "show config"). With `schemas` (e.g. `BuiltConfig.schemas`),
 * durations are written as `"10s"` rather than milliseconds.
 */
export function toYaml(config: Record<string, unknown>, schemas?: Record<string, SchemaLike>): string {
  let data: Record<string, unknown> = config;
  if (schemas) {
    data = {};
    for (const [k, v] of Object.entries(config)) {
      const like = schemas[k];
      data[k] = humanise(like === undefined ? undefined : compile(like), v);
    }
  }
  const doc = new Document(data);
  return doc.toString({ indent: 2, lineWidth: 0 });
}

/**
 * Sets `path` to `value` in YAML text, keeping comments and layout elsewhere (for saving API
 * modifications to config.yaml). Existing keys are found by normalised name (`listenAddr` matches
 * `listenaddr`); missing ones are created with the names given. `value` undefined deletes the key.
 * Throws a ConfigError if the text is not valid YAML or the path runs through a list.
 */
export function setInYamlText(text: string, path: string[], value: unknown, filename = 'config.yaml'): string {
  if (path.length === 0) throw new TypeError('setInYamlText: empty path');
  const { doc } = parseYamlDoc(text, filename);
  if (!isMap(doc.contents)) {
    if (doc.contents !== null && !(isScalar(doc.contents) && doc.contents.value === null)) {
      throw new ConfigError([{ path: '', source: filename, message: `${filename}: the top level must be a mapping` }]);
    }
    doc.contents = new YAMLMap() as never;
  }
  let map = doc.contents as unknown as YAMLMap;
  for (let i = 0; i < path.length - 1; i++) {
    const pair = findPair(map, path[i]);
    let next: unknown = pair?.value;
    if (isAlias(next)) next = next.resolve(doc);
    if (!isMap(next)) {
      if (isSeq(next)) {
        throw new ConfigError([{ path: formatPath(path.slice(0, i + 1)), source: filename, message: `${formatPath(path.slice(0, i + 1))}: is a list; cannot set a key inside it` }]);
      }
      if (value === undefined) return doc.toString(); // deleting something that is not there
      // Missing, empty (`rtmp:`) or scalar: replace by a mapping.
      const created = new YAMLMap();
      if (pair) pair.value = created;
      else map.add(doc.createPair(path[i], created));
      next = created;
    }
    map = next as YAMLMap;
  }
  const last = path[path.length - 1];
  const pair = findPair(map, last);
  if (value === undefined) {
    if (pair) map.items.splice(map.items.indexOf(pair), 1);
  } else if (pair && isScalar(pair.value) && (value === null || typeof value !== 'object')) {
    // Keep the scalar node (and its trailing comment); only its value changes.
    pair.value.value = value;
    if (typeof value !== 'string') pair.value.type = undefined;
  } else if (pair) {
    pair.value = doc.createNode(value);
  } else {
    map.add(doc.createPair(last, value));
  }
  return doc.toString();
}
