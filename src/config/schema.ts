// Config schema: typed builders for plugin defaults (`t.num`, `t.dur`, `t.map`, ...), the type that a
// schema resolves to (`Resolved<S>`), key normalisation, duration parsing, and the resolver that fills
// defaults, coerces and validates one section of input against a schema.
//
// Runtime-agnostic: no imports beyond the `yaml` package (used to parse text-form values of compound
// settings given through env vars or URL query args).

import { parse as parseYaml } from 'yaml';

// ---------------------------------------------------------------------------------------------------
// Schema nodes

/** Brand carried by every schema node, so a node can never be mistaken for a nested defaults object. */
export const SCHEMA: unique symbol = Symbol.for('m7s.config.schema') as never;

interface Node<K extends string> {
  readonly [SCHEMA]: K;
}
export interface NumSchema extends Node<'num'> {
  readonly default: number;
  readonly min?: number;
  readonly max?: number;
  readonly int?: boolean;
}
export interface StrSchema<E extends string = string> extends Node<'str'> {
  readonly default: E;
  readonly enum?: readonly E[];
}
export interface BoolSchema extends Node<'bool'> {
  readonly default: boolean;
}
/** A duration; resolved values and `default` are milliseconds. */
export interface DurSchema extends Node<'dur'> {
  readonly default: number;
}
/** A string-keyed record whose keys are user data (kept verbatim, never normalised). */
export interface MapSchema<V = unknown> extends Node<'map'> {
  readonly value: Schema;
  readonly default: Readonly<Record<string, unknown>>;
  /** Phantom: the value schema as written, for type inference only. */
  readonly __value?: V;
}
export interface ListSchema<I = unknown> extends Node<'list'> {
  readonly item: Schema;
  readonly default: readonly unknown[];
  readonly __item?: I;
}
export interface AnySchema<T = unknown> extends Node<'any'> {
  readonly default: T;
}
/** A nested section: a fixed set of (normalised) keys, each with its own schema. */
export interface SectionSchema<F = Defaults> extends Node<'section'> {
  readonly fields: Readonly<Record<string, Schema>>;
  readonly __fields?: F;
}

export type Schema =
  | NumSchema
  | StrSchema<string>
  | BoolSchema
  | DurSchema
  | MapSchema<unknown>
  | ListSchema<unknown>
  | AnySchema<unknown>
  | SectionSchema<unknown>;

/**
 * What a plugin may write as a setting: a schema node, or a shorthand literal — number → `t.num`,
 * string → `t.str`, boolean → `t.bool`, array → `t.list(t.any())`, plain object → nested section.
 */
export type SchemaLike = Schema | number | string | boolean | readonly unknown[] | Defaults;
/** A plugin's defaults object: keys (normalised: lower-case, no `-`/`_`) → settings. */
export interface Defaults {
  readonly [key: string]: SchemaLike;
}

// ---------------------------------------------------------------------------------------------------
// Type inference

type Widen<U> = U extends string ? string : U extends number ? number : U extends boolean ? boolean : unknown;

/** The TypeScript type a schema (or shorthand defaults object) resolves to. Durations are milliseconds. */
export type Resolved<S> =
  S extends { readonly [SCHEMA]: 'num' | 'dur' } ? number
  : S extends StrSchema<infer E> ? E
  : S extends BoolSchema ? boolean
  : S extends MapSchema<infer V> ? Record<string, Resolved<V>>
  : S extends ListSchema<infer I> ? Resolved<I>[]
  : S extends AnySchema<infer T> ? T
  : S extends SectionSchema<infer F> ? Resolved<F>
  : S extends number ? number
  : S extends string ? string
  : S extends boolean ? boolean
  : S extends readonly (infer U)[] ? ([U] extends [never] ? unknown[] : Widen<U>[])
  : S extends object ? { -readonly [K in keyof S]: Resolved<S[K]> }
  : unknown;

// ---------------------------------------------------------------------------------------------------
// Key normalisation

/** Config keys compare lower-cased with `-` and `_` removed: `listenAddr` = `listen_addr` = `LISTENADDR`. */
export function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

// ---------------------------------------------------------------------------------------------------
// Durations

// Unit → milliseconds. Go's time.ParseDuration units (ns, us/µs, ms, s, m, h).
const UNIT_MS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a duration into milliseconds: Go syntax (`"10s"`, `"500ms"`, `"1h30m"`, `"1.5s"`, `"-2s"`),
 * a bare number string (`"0"`, `"250"` = milliseconds) or a number (milliseconds).
 * Returns undefined when the input is not a duration.
 */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) ? input : undefined;
  let s = input.trim();
  if (s === '') return undefined;
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(s)) return Number(s);
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < s.length) {
    const m = DURATION_PART.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]];
  }
  return sign * total;
}

/** Formats milliseconds as a Go-style duration: 5400000 → "1h30m", 1500 → "1.5s", 250 → "250ms". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${round(rest)}ms`;
  let out = '';
  const h = Math.floor(rest / 3_600_000);
  if (h) out += `${h}h`;
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  if (m) out += `${m}m`;
  rest -= m * 60_000;
  if (rest) out += `${round(rest / 1000)}s`;
  return sign + out;
}
const round = (x: number) => Math.round(x * 1e6) / 1e6;

// ---------------------------------------------------------------------------------------------------
// Builders

function node<K extends string, T extends object>(kind: K, props: T): Node<K> & T {
  return { [SCHEMA]: kind, ...props } as Node<K> & T;
}

function num(def: number, opts: { min?: number; max?: number; int?: boolean } = {}): NumSchema {
  const s = node('num', { default: def, ...opts });
  const bad = checkNum(s, def);
  if (bad) throw new TypeError(`t.num: default ${def} is invalid: ${bad}`);
  return s;
}

function str<const E extends string>(def: E, opts: { enum: readonly E[] }): StrSchema<E>;
function str(def: string, opts?: { enum?: readonly string[] }): StrSchema<string>;
function str(def: string, opts: { enum?: readonly string[] } = {}): StrSchema<string> {
  if (opts.enum && !opts.enum.includes(def)) {
    throw new TypeError(`t.str: default "${def}" is not one of ${opts.enum.join(', ')}`);
  }
  return node('str', { default: def, ...(opts.enum ? { enum: opts.enum } : {}) });
}

function bool(def: boolean): BoolSchema {
  return node('bool', { default: def });
}

function dur(def: string | number): DurSchema {
  const ms = parseDuration(def);
  if (ms === undefined) throw new TypeError(`t.dur: default ${JSON.stringify(def)} is not a duration`);
  return node('dur', { default: ms });
}

function map<V extends SchemaLike>(value: V, def: Record<string, unknown> = {}): MapSchema<V> {
  const valueSchema = compile(value);
  const s = node('map', { value: valueSchema, default: {} as Record<string, unknown> });
  // Complete and check the default entries now, so a bad default fails where it is declared.
  return { ...s, default: resolveDefault(s, def, 't.map') as Record<string, unknown> } as MapSchema<V>;
}

function list<I extends SchemaLike>(item: I, def: readonly unknown[] = []): ListSchema<I> {
  const s = node('list', { item: compile(item), default: [] as unknown[] });
  return { ...s, default: resolveDefault(s, def, 't.list') as unknown[] } as ListSchema<I>;
}

function any<T = unknown>(def?: T): AnySchema<T> {
  return node('any', { default: def as T });
}

function section<const F extends Defaults>(fields: F): SectionSchema<F> {
  return compileSection(fields) as SectionSchema<F>;
}

/** Schema builders for plugin defaults. */
export const t = { num, str, bool, dur, map, list, any, section };

export function isSchema(x: unknown): x is Schema {
  return typeof x === 'object' && x !== null && SCHEMA in x;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

const compiled = new WeakMap<object, Schema>();

/** Turns a schema or shorthand (literal, defaults object) into a schema node. Cached per object. */
export function compile(like: SchemaLike): Schema {
  if (isSchema(like)) return like;
  switch (typeof like) {
    case 'number': return num(like);
    case 'string': return str(like);
    case 'boolean': return bool(like);
  }
  if (Array.isArray(like)) return list(any(), like);
  if (isPlainObject(like)) {
    const hit = compiled.get(like);
    if (hit) return hit;
    const s = compileSection(like as Defaults);
    compiled.set(like, s);
    return s;
  }
  throw new TypeError(`config schema: unsupported default ${describe(like)}`);
}

function compileSection(fields: Defaults): SectionSchema<unknown> {
  const out: Record<string, Schema> = {};
  const seen = new Map<string, string>();
  for (const [key, like] of Object.entries(fields)) {
    const n = normalizeKey(key);
    const prev = seen.get(n);
    if (prev !== undefined) throw new TypeError(`config schema: keys "${prev}" and "${key}" normalise to the same "${n}"`);
    seen.set(n, key);
    out[key] = compile(like);
  }
  return node('section', { fields: out });
}

/** Returns a schema section with extra fields added where the section does not declare them. */
export function withFields(schema: SectionSchema<unknown>, extra: Record<string, Schema>): SectionSchema<unknown> {
  const have = new Set(Object.keys(schema.fields).map(normalizeKey));
  const fields: Record<string, Schema> = { ...schema.fields };
  for (const [k, s] of Object.entries(extra)) if (!have.has(normalizeKey(k))) fields[k] = s;
  return node('section', { fields });
}

/** Finds a section's field by a (not necessarily normalised) key; returns the schema key as declared. */
export function fieldOf(schema: SectionSchema<unknown>, key: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(schema.fields, key)) return key;
  const n = normalizeKey(key);
  for (const k of Object.keys(schema.fields)) if (normalizeKey(k) === n) return k;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Issues

export interface ConfigIssue {
  /** Dotted path of the setting, e.g. `rtmp.chunksize`, `global.pull["live/test"]`, `global.pullproxy[0].url`. */
  path: string;
  /** 1-based line in the config file, when the setting came from the file. */
  line?: number;
  /** Full human-readable message: `rtmp.chunksize (config.yaml:12): expected a number, got "abc"`. */
  message: string;
  /** Where the value came from: a file name, `env RTMP_CHUNKSIZE`, `query arg "x"`, `API modification`. */
  source?: string;
}

/** An Error carrying the config issues that caused it (YAML syntax errors, or errors a caller escalates). */
export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[], message?: string) {
    super(message ?? issues.map((i) => i.message).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export type PathPart = string | number;

/** Formats a path: `rtmp.tcp.listenaddr`, `global.pull["live/test"]`, `global.pullproxy[0].url`. */
export function formatPath(parts: readonly PathPart[]): string {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

/** Short description of a value for messages: `"abc"`, `12`, `true`, `a list`, `a mapping`. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') {
    const s = v.length > 60 ? v.slice(0, 57) + '...' : v;
    return JSON.stringify(s);
  }
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

// ---------------------------------------------------------------------------------------------------
// Resolution

/**
 * How input values are read. `yaml`: values typed by the YAML parser (a quoted "1935" is not a number).
 * `text`: values are strings from env vars or URL query args, parsed per the schema type.
 */
export type InputMode = 'yaml' | 'text';

/** Context for one resolution pass; collects issues. */
export interface ResolveContext {
  mode: InputMode;
  /** Shown in messages: the file name, `env RTMP_X`, `API modification`, ... */
  source: string;
  /** Line of a path (absolute: section name first) in the source file, if known. */
  lineOf?: (path: PathPart[]) => number | undefined;
  /** In text mode, whether an empty string means `true` for a boolean (URL flags like `?iframeonly`). */
  emptyIsTrue?: boolean;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

function issue(ctx: ResolveContext, path: PathPart[], text: string): ConfigIssue {
  const line = ctx.lineOf?.(path);
  const where = line !== undefined ? `${ctx.source}:${line}` : ctx.source;
  const p = formatPath(path);
  const out: ConfigIssue = { path: p, message: `${p || '(top level)'} (${where}): ${text}`, source: ctx.source };
  if (line !== undefined) out.line = line;
  return out;
}
function error(ctx: ResolveContext, path: PathPart[], text: string): void {
  ctx.errors.push(issue(ctx, path, text));
}
function warn(ctx: ResolveContext, path: PathPart[], text: string): void {
  ctx.warnings.push(issue(ctx, path, text));
}

/** Deep copy of plain data (objects, arrays); other values are shared. */
export function cloneData<T>(v: T): T {
  if (Array.isArray(v)) return v.map(cloneData) as T;
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = cloneData(x);
    return out as T;
  }
  return v;
}

/** A fresh copy of a schema's default value (sections are built from their fields' defaults). */
export function defaultOf(schema: Schema): unknown {
  if (schema[SCHEMA] === 'section') {
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(schema.fields)) out[k] = defaultOf(s);
    return out;
  }
  return cloneData(schema.default);
}

function resolveDefault(schema: Schema, value: unknown, who: string): unknown {
  const ctx: ResolveContext = { mode: 'yaml', source: 'default', errors: [], warnings: [] };
  const out = resolveValue(schema, value, undefined, [], ctx);
  const bad = [...ctx.errors, ...ctx.warnings];
  if (bad.length) throw new TypeError(`${who}: invalid default: ${bad.map((i) => i.message).join('; ')}`);
  return out;
}

function checkNum(s: NumSchema, n: number): string | undefined {
  if (s.int && !Number.isInteger(n)) return `expected a whole number, got ${n}`;
  if (s.min !== undefined && n < s.min) return `must be at least ${s.min}, got ${n}`;
  if (s.max !== undefined && n > s.max) return `must be at most ${s.max}, got ${n}`;
  return undefined;
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1', 'y']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0', 'n']);
const DURATION_HINT = 'expected a duration like "10s", "500ms", "1m30s" or a number of milliseconds';

/**
 * Resolves one value against a schema.
 * - `input` undefined or null: the value of `base` (a previously resolved value) or the default.
 * - sections merge key by key over `base`; maps, lists and `any` values replace `base` wholesale.
 * - an invalid input is reported and the base/default value kept.
 * Returned compound values are always fresh copies.
 */
export function resolveValue(schema: Schema, input: unknown, base: unknown, path: PathPart[], ctx: ResolveContext): unknown {
  const fallback = () => (base !== undefined ? cloneData(base) : defaultOf(schema));
  if (input === undefined || input === null) {
    if (schema[SCHEMA] === 'section') return resolveSectionValue(schema, {}, base, path, ctx);
    return fallback();
  }
  const kind = schema[SCHEMA];

  // Text-mode compound values (env var / query arg holding a whole section, map or list) are YAML or JSON text.
  if (ctx.mode === 'text' && typeof input === 'string' && (kind === 'section' || kind === 'map' || kind === 'list' || kind === 'any')) {
    let parsed: unknown;
    try {
      parsed = parseYaml(input);
    } catch (e) {
      error(ctx, path, `expected JSON or YAML text, got ${describe(input)} (${firstLine(e)})`);
      return fallback();
    }
    return resolveValue(schema, parsed, base, path, { ...ctx, mode: 'yaml', errors: ctx.errors, warnings: ctx.warnings });
  }

  switch (kind) {
    case 'num': {
      let n: number | undefined;
      if (typeof input === 'number') n = input;
      else if (ctx.mode === 'text' && typeof input === 'string' && input.trim() !== '') n = Number(input.trim());
      if (n === undefined || !Number.isFinite(n)) {
        const hint = ctx.mode === 'yaml' && typeof input === 'string' && input.trim() !== '' && Number.isFinite(Number(input))
          ? ' (a quoted string; remove the quotes)' : '';
        error(ctx, path, `expected a number, got ${describe(input)}${hint}`);
        return fallback();
      }
      const bad = checkNum(schema, n);
      if (bad) {
        error(ctx, path, bad);
        return fallback();
      }
      return n;
    }
    case 'str': {
      let s: string | undefined;
      if (typeof input === 'string') s = input;
      else if (typeof input === 'number' || typeof input === 'boolean') s = String(input);
      if (s === undefined) {
        error(ctx, path, `expected a string, got ${describe(input)}`);
        return fallback();
      }
      if (schema.enum) {
        const hit = schema.enum.find((e) => e === s) ?? schema.enum.find((e) => e.toLowerCase() === s!.toLowerCase());
        if (hit === undefined) {
          error(ctx, path, `expected one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}, got ${describe(s)}`);
          return fallback();
        }
        s = hit;
      }
      return s;
    }
    case 'bool': {
      if (typeof input === 'boolean') return input;
      // Strings: env/query text, or YAML 1.1 words (yes/no/on/off) that Go's yaml decoder also accepts.
      if (typeof input === 'string') {
        const w = input.trim().toLowerCase();
        if (w === '' && ctx.mode === 'text' && ctx.emptyIsTrue) return true;
        if (TRUE_WORDS.has(w) && (ctx.mode === 'text' || !/^[01yn]$/.test(w))) return true;
        if (FALSE_WORDS.has(w) && (ctx.mode === 'text' || !/^[01yn]$/.test(w))) return false;
      }
      error(ctx, path, `expected true or false, got ${describe(input)}`);
      return fallback();
    }
    case 'dur': {
      const ms = typeof input === 'number' || typeof input === 'string' ? parseDuration(input) : undefined;
      if (ms === undefined) {
        error(ctx, path, `${DURATION_HINT}, got ${describe(input)}`);
        return fallback();
      }
      return ms;
    }
    case 'any':
      return cloneData(input);
    case 'list': {
      if (!Array.isArray(input)) {
        error(ctx, path, `expected a list, got ${describe(input)}`);
        return fallback();
      }
      return input.map((x, i) => resolveValue(schema.item, x, undefined, [...path, i], ctx));
    }
    case 'map': {
      if (!isPlainObject(input)) {
        error(ctx, path, `expected a mapping, got ${describe(input)}`);
        return fallback();
      }
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(input)) out[k] = resolveValue(schema.value, x, undefined, [...path, k], ctx);
      return out;
    }
    case 'section':
      return resolveSectionValue(schema, input, base, path, ctx);
  }
}

function resolveSectionValue(schema: SectionSchema<unknown>, input: unknown, base: unknown, path: PathPart[], ctx: ResolveContext): Record<string, unknown> {
  const baseObj = isPlainObject(base) ? base : undefined;
  const keys = Object.keys(schema.fields);
  let obj: Record<string, unknown>;
  if (isPlainObject(input)) {
    obj = input;
  } else if (Array.isArray(input)) {
    error(ctx, path, `expected a mapping, got a list`);
    obj = {};
  } else if (keys.length > 0) {
    // Monibuca shorthand: a scalar given for a section fills its first field.
    obj = { [keys[0]]: input };
  } else {
    error(ctx, path, `expected a mapping, got ${describe(input)}`);
    obj = {};
  }

  // Match input keys to schema keys by their normalised form.
  const byNorm = new Map<string, string>();
  for (const k of keys) byNorm.set(normalizeKey(k), k);
  const given = new Map<string, string>(); // schema key → input key used
  for (const inKey of Object.keys(obj)) {
    const k = byNorm.get(normalizeKey(inKey));
    if (k === undefined) {
      warn(ctx, [...path, inKey], `unknown setting "${inKey}" (ignored)`);
      continue;
    }
    const prev = given.get(k);
    if (prev !== undefined) warn(ctx, [...path, inKey], `"${inKey}" repeats "${prev}" (both mean "${normalizeKey(k)}"); the later one wins`);
    given.set(k, inKey);
  }

  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const inKey = given.get(k);
    const fieldPath = [...path, inKey ?? k];
    const v = resolveValue(schema.fields[k], inKey === undefined ? undefined : obj[inKey], baseObj?.[k], fieldPath, ctx);
    out[k] = v;
  }
  return out;
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

/** Options for {@link resolveSection}. */
export interface ResolveWhere {
  /** Section name, the first element of issue paths (`rtmp`). */
  section: string;
  /** Line of an absolute path (section name first), from {@link parseConfigText}. */
  lineOf?: (path: PathPart[]) => number | undefined;
  /** Source name shown in messages (default `config.yaml`). */
  source?: string;
  /** A previously resolved value to start from instead of the schema defaults. */
  base?: unknown;
  /** How to read input values (default `yaml`). */
  mode?: InputMode;
}

export interface ResolveResult<T = Record<string, unknown>> {
  value: T;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

/**
 * Resolves one config section: fills defaults, coerces and validates `input`.
 * Unknown keys are warnings; wrong types, out-of-range numbers, bad enum values and bad durations are
 * errors (the default, or `where.base`, is kept for those settings).
 */
export function resolveSection<S extends SchemaLike>(schema: S, input: unknown, where: ResolveWhere): ResolveResult<Resolved<S>> {
  const ctx: ResolveContext = {
    mode: where.mode ?? 'yaml',
    source: where.source ?? 'config.yaml',
    lineOf: where.lineOf,
    errors: [],
    warnings: [],
  };
  const path = where.section ? [where.section] : [];
  const value = resolveValue(compile(schema), input, where.base, path, ctx) as Resolved<S>;
  return { value, errors: ctx.errors, warnings: ctx.warnings };
}
