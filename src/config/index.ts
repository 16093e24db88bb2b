// Public surface of the config module: schema builders and types, resolution, file parsing, the layered
// build (defaults < inherited global < file < env < API modifications), query-arg overrides, diffs for
// hot reload, and YAML output/editing.

export {
  t, SCHEMA, compile, isSchema, normalizeKey, parseDuration, formatDuration, formatPath,
  resolveSection, resolveValue, defaultOf, cloneData, fieldOf, withFields, ConfigError,
} from './schema.ts';
export type {
  Schema, SchemaLike, Defaults, Resolved, NumSchema, StrSchema, BoolSchema, DurSchema, MapSchema,
  ListSchema, AnySchema, SectionSchema, ConfigIssue, PathPart, InputMode, ResolveContext, ResolveWhere,
  ResolveResult,
} from './schema.ts';
export {
  parseConfigText, buildConfig, matchEnv, applyArgs, diffConfig, sectionDiffs, toYaml, setInYamlText,
} from './load.ts';
export type { ParsedConfig, EnvOverride, BuildConfigInput, BuiltConfig, ApplyArgsOptions, ConfigDiff } from './load.ts';
