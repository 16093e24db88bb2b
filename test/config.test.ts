// Config module tests: schema builders, resolution and validation, file parsing with line numbers,
// the layered build (defaults < inherited global < file < env < modified), query args, diffs, YAML editing.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { t, parseDuration, formatDuration, normalizeKey, resolveSection, ConfigError } from '../src/config/schema.ts';
import type { Resolved } from '../src/config/schema.ts';
import {
  parseConfigText, buildConfig, applyArgs, diffConfig, sectionDiffs, toYaml, setInYamlText,
} from '../src/config/load.ts';
import * as index from '../src/config/index.ts';

// Schemas shaped like the engine's and a plugin's.
const globalSchema = {
  loglevel: t.str('info', { enum: ['trace', 'debug', 'info', 'warn', 'error'] }),
  http: { listenaddr: ':8080', cors: true },
  publish: {
    kickexist: false,
    publishtimeout: t.dur('10s'),
    delayclosetimeout: t.dur(0),
    key: '',
  },
  subscribe: {
    subaudio: true,
    waittimeout: t.dur('10s'),
    submode: t.num(0, { min: 0, max: 2, int: true }),
  },
  pull: t.map(t.section({ url: '', maxretry: t.num(0, { int: true }), retryinterval: t.dur('5s') })),
  pullproxy: t.list(t.section({ streampath: '', url: '' })),
};
const rtmpSchema = {
  tcp: { listenaddr: ':1935' },
  chunksize: t.num(4096, { min: 128, max: 65536, int: true }),
  onsub: { pull: t.map(t.str('')) },
};
const hlsSchema = { fragment: t.dur('2s'), window: 3 };
const sections = { global: globalSchema, rtmp: rtmpSchema, hls: hlsSchema };
const inherit = ['publish', 'subscribe'];

const build = (fileText?: string, extra: { env?: Record<string, string | undefined>; modified?: Record<string, unknown> } = {}) =>
  buildConfig({ sections, inherit, fileText, filename: 'config.yaml', ...extra });

// Compile-time checks of Resolved<> (verified by `deno check`; no-ops at run time).
type Expect<T extends true> = T;
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends (<X>() => X extends B ? 1 : 2) ? true : false;
type G = Resolved<typeof globalSchema>;
export type TypeChecks = [
  Expect<Equal<G['publish']['publishtimeout'], number>>,
  Expect<Equal<G['loglevel'], 'trace' | 'debug' | 'info' | 'warn' | 'error'>>,
  Expect<Equal<G['http']['cors'], boolean>>,
  Expect<Equal<G['pull'], Record<string, { url: string; maxretry: number; retryinterval: number }>>>,
  Expect<Equal<G['pullproxy'], { streampath: string; url: string }[]>>,
  Expect<Equal<Resolved<typeof rtmpSchema>['onsub']['pull'], Record<string, string>>>,
];

describe('schema and durations', () => {
  test('normalizeKey removes case, - and _', () => {
    assert.equal(normalizeKey('listenAddr'), 'listenaddr');
    assert.equal(normalizeKey('listen_addr'), 'listenaddr');
    assert.equal(normalizeKey('LISTEN-ADDR'), 'listenaddr');
  });

  test('parseDuration accepts Go syntax, bare numbers (ms) and numbers', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1m'), 60_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('250'), 250);
    assert.equal(parseDuration('100us'), 0.1);
    assert.equal(parseDuration('-2s'), -2000);
    assert.equal(parseDuration(750), 750);
    for (const bad of ['', '10 s', '10sec', 's', '1d', '1h30', 'abc', '1..5s']) {
      assert.equal(parseDuration(bad), undefined, `"${bad}" should not parse`);
    }
  });

  test('formatDuration renders Go-style strings that parse back', () => {
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(1500), '1.5s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(0), '0s');
    for (const ms of [1, 999, 1000, 61_000, 3_600_001, 90_500]) assert.equal(parseDuration(formatDuration(ms)), ms);
  });

  test('builders reject bad defaults where they are declared', () => {
    assert.throws(() => t.dur('ten seconds'), /not a duration/);
    assert.throws(() => t.num(5, { min: 10 }), /at least 10/);
    assert.throws(() => t.str('loud', { enum: ['quiet'] }), /not one of/);
    assert.throws(() => t.map(t.num(0), { a: 'x' }), /expected a number/);
    assert.throws(() => resolveSection({ listenAddr: '', listen_addr: '' }, {}, { section: 'x' }), /normalise to the same/);
  });

  test('resolveSection fills defaults for nested sections and shorthand literals', () => {
    const r = resolveSection(globalSchema, undefined, { section: 'global' });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.value.loglevel, 'info');
    assert.deepEqual(r.value.http, { listenaddr: ':8080', cors: true });
    assert.equal(r.value.publish.publishtimeout, 10_000);
    assert.equal(r.value.subscribe.submode, 0);
    assert.deepEqual(r.value.pull, {});
    assert.deepEqual(r.value.pullproxy, []);
  });

  test('resolved values are fresh copies, never the schema defaults', () => {
    const s = { tags: ['a'], m: t.map(t.str(''), { x: 'y' }) };
    const a = resolveSection(s, undefined, { section: 's' }).value;
    a.tags.push('b');
    a.m.z = 'w';
    const b = resolveSection(s, undefined, { section: 's' }).value;
    assert.deepEqual(b.tags, ['a']);
    assert.deepEqual(b.m, { x: 'y' });
  });

  test('validation: enum (case-insensitive), min/max, int, booleans', () => {
    const r = resolveSection(globalSchema, {
      loglevel: 'DEBUG', subscribe: { submode: 5 }, http: { cors: 'maybe' }, publish: { kickexist: 'yes' },
    }, { section: 'global' });
    assert.equal(r.value.loglevel, 'debug');
    assert.equal(r.value.publish.kickexist, true, 'YAML 1.1 yes is accepted for booleans');
    assert.equal(r.value.subscribe.submode, 0, 'out-of-range value keeps the default');
    assert.equal(r.value.http.cors, true);
    assert.deepEqual(r.errors.map((e) => e.path), ['global.http.cors', 'global.subscribe.submode']);
    assert.match(r.errors[1].message, /at most 2, got 5/);
    const bad = resolveSection(globalSchema, { loglevel: 'loud', subscribe: { submode: 1.5 } }, { section: 'global' });
    assert.match(bad.errors[0].message, /^global\.loglevel \(config\.yaml\): expected one of "trace", .*got "loud"/);
    assert.match(bad.errors[1].message, /whole number/);
  });

  test('a scalar given for a section fills its first field', () => {
    const r = resolveSection(rtmpSchema, { tcp: ':1936' }, { section: 'rtmp' });
    assert.deepEqual(r.errors, []);
    assert.equal(r.value.tcp.listenaddr, ':1936');
    const m = resolveSection(globalSchema, { pull: { 'live/test': 'rtsp://cam/1', 'live/b': { url: 'rtmp://x', maxretry: -1 } } }, { section: 'global' });
    assert.deepEqual(m.errors, []);
    assert.deepEqual(m.value.pull['live/test'], { url: 'rtsp://cam/1', maxretry: 0, retryinterval: 5000 });
    assert.equal(m.value.pull['live/b'].maxretry, -1);
  });
});

describe('config file', () => {
  test('an empty or comment-only file is {}', () => {
    assert.deepEqual(parseConfigText('', 'c.yaml').data, {});
    assert.deepEqual(parseConfigText('# nothing\n', 'c.yaml').data, {});
    const b = build('');
    assert.deepEqual(b.errors, []);
    assert.equal(b.config.rtmp.chunksize, 4096);
    assert.equal(b.config.rtmp.enable, true);
    assert.equal(b.config.global.disableall, false);
  });

  test('keys are normalised in any spelling; map keys stay verbatim', () => {
    const text = [
      'Global:',
      '  HTTP:',
      '    listen_addr: ":9000"',
      'rtmp:',
      '  TCP: {listenAddr: ":1940"}',
      '  chunk-size: 8192',
      '  onSub:',
      '    pull:',
      '      "^live/(Cam_1)$": rtsp://cam/$1',
    ].join('\n');
    const b = build(text);
    assert.deepEqual(b.errors, []);
    assert.deepEqual(b.warnings, []);
    assert.equal(b.config.global.http.listenaddr, ':9000');
    assert.equal(b.config.rtmp.tcp.listenaddr, ':1940');
    assert.equal(b.config.rtmp.chunksize, 8192);
    assert.deepEqual(b.config.rtmp.onsub.pull, { '^live/(Cam_1)$': 'rtsp://cam/$1' });
  });

  test('durations in the file: strings, numbers (ms) and "0"; a bad one is an error with its line', () => {
    const text = 'global:\n  publish:\n    publishtimeout: 1h30m\n    delayclosetimeout: 500\n  subscribe:\n    waittimeout: "0"\nhls:\n  fragment: 2 seconds\n';
    const b = build(text);
    assert.equal(b.config.global.publish.publishtimeout, 5_400_000);
    assert.equal(b.config.global.publish.delayclosetimeout, 500);
    assert.equal(b.config.global.subscribe.waittimeout, 0);
    assert.equal(b.errors.length, 1);
    assert.equal(b.errors[0].path, 'hls.fragment');
    assert.equal(b.errors[0].line, 8);
    assert.match(b.errors[0].message, /^hls\.fragment \(config\.yaml:8\): expected a duration .*got "2 seconds"$/);
    assert.equal(b.config.hls.fragment, 2000, 'the default is kept');
  });

  test('a wrong type names the key and its line', () => {
    const b = build('rtmp:\n  tcp: {listenaddr: ":1935"}\n  chunksize: abc\n');
    assert.equal(b.errors.length, 1);
    assert.deepEqual(
      { path: b.errors[0].path, line: b.errors[0].line },
      { path: 'rtmp.chunksize', line: 3 },
    );
    assert.equal(b.errors[0].message, 'rtmp.chunksize (config.yaml:3): expected a number, got "abc"');
    // A quoted number is a string in YAML: an error, with a hint.
    const q = build('\n\nrtmp:\n  chunksize: "8192"\n');
    assert.equal(q.errors[0].line, 4);
    assert.match(q.errors[0].message, /remove the quotes/);
    assert.equal(q.config.rtmp.chunksize, 4096);
  });

  test('errors inside lists and maps name the element and line', () => {
    const text = 'global:\n  pullproxy:\n    - streampath: live/a\n      url: rtsp://a\n    - streampath: [x]\n  pull:\n    live/b:\n      maxretry: lots\n';
    const b = build(text);
    const byPath = Object.fromEntries(b.errors.map((e) => [e.path, e.line]));
    assert.deepEqual(byPath, { 'global.pullproxy[1].streampath': 5, 'global.pull["live/b"].maxretry': 8 });
    assert.equal(b.config.global.pullproxy[0].url, 'rtsp://a');
  });

  test('a YAML syntax error names the file, line and column', () => {
    const text = 'global:\n  http:\n    listenaddr: ":8080\nrtmp:\n  chunksize: 1\n';
    assert.throws(() => parseConfigText(text, 'my.yaml'), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.ok(e instanceof Error);
      assert.equal(e.issues[0].line, 3);
      assert.match(e.message, /^my\.yaml:3:17: YAML syntax error: Missing closing "quote/);
      return true;
    });
    const bad = 'rtmp:\n  chunksize: [1, 2\n  tcp: x\n';
    const b = buildConfig({ sections, inherit, fileText: bad, filename: 'config.yaml' });
    assert.equal(b.errors.length, 1);
    assert.ok(b.errors[0].line! >= 2, 'line of the unterminated list or after it');
    assert.match(b.errors[0].message, /^config\.yaml:\d+:\d+: YAML syntax error/);
    assert.throws(() => parseConfigText('global:\n  http:\n    a: 1\n   b: 2\n', 'i.yaml'), /i\.yaml:4:1: YAML syntax error: All mapping items must start at the same column/);
    assert.throws(() => parseConfigText('a: 1\na: 2\n', 'dup.yaml'), /dup\.yaml:2:1: YAML syntax error: Map keys must be unique/);
  });

  test('the top level must be a mapping', () => {
    assert.throws(() => parseConfigText('- a\n- b\n', 'c.yaml'), /c\.yaml:1: the top level must be a mapping.*got a list/);
  });

  test('unknown keys and unknown sections are warnings with lines', () => {
    const b = build('rtmp:\n  chunksize: 512\n  chunksise: 1024\nfoo:\n  bar: 1\n');
    assert.deepEqual(b.errors, []);
    assert.equal(b.config.rtmp.chunksize, 512);
    assert.deepEqual(b.warnings.map((w) => [w.path, w.line]), [['foo', 4], ['rtmp.chunksise', 3]]);
    assert.match(b.warnings[0].message, /unknown plugin section "foo"/);
    assert.match(b.warnings[1].message, /^rtmp\.chunksise \(config\.yaml:3\): unknown setting "chunksise"/);
    assert.deepEqual(b.raw.foo, { bar: 1 }, 'unknown sections are kept in raw');
    assert.equal(b.config.foo, undefined);
  });

  test('YAML anchors and merge keys work', () => {
    const b = build('global:\n  publish: &pub\n    publishtimeout: 3s\n    kickexist: true\nrtmp:\n  publish:\n    <<: *pub\n    kickexist: false\n');
    assert.deepEqual(b.errors, []);
    assert.deepEqual(b.warnings, []);
    assert.equal(b.config.rtmp.publish.publishtimeout, 3000);
    assert.equal(b.config.rtmp.publish.kickexist, false);
  });

  test('lineOf finds keys by normalised name', () => {
    const p = parseConfigText('# top\nglobal:\n  HTTP:\n    listen_addr: ":1"\n', 'c.yaml');
    assert.equal(p.lineOf(['global', 'http', 'listenaddr']), 4);
    assert.equal(p.lineOf(['global']), 2);
    assert.equal(p.lineOf(['nope']), undefined);
  });
});

describe('layers: inherit, env, disableall, modified', () => {
  test('plugins inherit global publish/subscribe; a plugin may override one key', () => {
    const text = 'global:\n  publish:\n    publishtimeout: 30s\n    kickexist: true\n  subscribe:\n    subaudio: false\nrtmp:\n  publish:\n    kickexist: false\n';
    const b = build(text);
    assert.deepEqual(b.errors, []);
    assert.equal(b.config.rtmp.publish.publishtimeout, 30_000, 'inherited from global');
    assert.equal(b.config.rtmp.publish.kickexist, false, 'plugin override');
    assert.equal(b.config.global.publish.kickexist, true, 'global untouched');
    assert.equal(b.config.rtmp.subscribe.subaudio, false);
    assert.equal(b.config.hls.publish.kickexist, true, 'other plugins inherit the global value');
    assert.notEqual(b.config.hls.publish, b.config.global.publish, 'each section has its own object');
    assert.equal(b.config.rtmp.http, undefined, 'only listed keys are inherited');
  });

  test('env overrides: plugin keys, GLOBAL_* (inherited), ENABLE, multi-segment keys', () => {
    const b = build('rtmp:\n  tcp:\n    listenaddr: ":1935"\n', {
      env: {
        RTMP_TCP_LISTENADDR: ':1936',
        GLOBAL_HTTP_LISTEN_ADDR: ':9090',
        GLOBAL_PUBLISH_PUBLISHTIMEOUT: '20s',
        HLS_ENABLE: 'false',
        RTMP_CHUNKSIZE: '8192',
        RTMP_ONSUB_PULL: '{"^live/(.*)$": "rtsp://cam/$1"}',
        PATH: '/usr/bin', HOME: '/root', HTTP_PROXY: 'http://p', GLOBALS_X: '1', rtmp_chunksize: '1',
        HLS_WINDOW: '',
      },
    });
    assert.deepEqual(b.errors, []);
    assert.deepEqual(b.warnings, []);
    assert.equal(b.config.rtmp.tcp.listenaddr, ':1936', 'env beats the file');
    assert.equal(b.config.global.http.listenaddr, ':9090');
    assert.equal(b.config.global.publish.publishtimeout, 20_000);
    assert.equal(b.config.rtmp.publish.publishtimeout, 20_000, 'GLOBAL_ env reaches inherited sections');
    assert.equal(b.config.hls.enable, false);
    assert.equal(b.config.rtmp.enable, true);
    assert.equal(b.config.rtmp.chunksize, 8192);
    assert.deepEqual(b.config.rtmp.onsub.pull, { '^live/(.*)$': 'rtsp://cam/$1' });
    assert.equal(b.config.hls.window, 3, 'empty env values are ignored');
  });

  test('a whole-section env var applies before more specific ones', () => {
    const b = build(undefined, { env: { RTMP_TCP_LISTENADDR: ':2', RTMP_TCP: '{listenaddr: ":1"}', HLS_PUBLISH: 'kickexist: true' } });
    assert.deepEqual(b.errors, []);
    assert.equal(b.config.rtmp.tcp.listenaddr, ':2');
    assert.equal(b.config.hls.publish.kickexist, true);
    assert.equal(b.config.hls.publish.publishtimeout, 10_000, 'keys not in the env text keep their value');
    const bad = build(undefined, { env: { RTMP_TCP: '{listenaddr: [' } });
    assert.match(bad.errors[0].message, /^rtmp\.tcp \(env RTMP_TCP\): expected JSON or YAML text/);
  });

  test('plugin env beats the inherited global value', () => {
    const b = build(undefined, { env: { GLOBAL_PUBLISH_KICKEXIST: 'true', RTMP_PUBLISH_KICKEXIST: 'no' } });
    assert.equal(b.config.hls.publish.kickexist, true);
    assert.equal(b.config.rtmp.publish.kickexist, false);
  });

  test('bad env values are errors naming the variable; unknown keys of a known section are warnings', () => {
    const b = build('rtmp:\n  chunksize: 1024\n', { env: { RTMP_CHUNKSIZE: 'big', HLS_ENABLE: 'nope', HLS_FRAGMENTS: '1', GLOBAL_PUBLISH_PUBLISHTIMEOUT: '5 min' } });
    assert.deepEqual(b.errors.map((e) => e.path).sort(), ['global.publish.publishtimeout', 'hls.enable', 'rtmp.chunksize']);
    const chunk = b.errors.find((e) => e.path === 'rtmp.chunksize')!;
    assert.equal(chunk.message, 'rtmp.chunksize (env RTMP_CHUNKSIZE): expected a number, got "big"');
    assert.equal(b.config.rtmp.chunksize, 1024, 'the file value is kept');
    assert.ok(b.errors.some((e) => e.message.includes('env HLS_ENABLE')));
    assert.equal(b.warnings.length, 1);
    assert.match(b.warnings[0].message, /^env HLS_FRAGMENTS: no setting hls\.fragments/);
  });

  test('global.disableall turns plugins off unless they say enable: true', () => {
    const b = build('global:\n  disableall: true\nrtmp:\n  enable: true\n');
    assert.equal(b.config.rtmp.enable, true);
    assert.equal(b.config.hls.enable, false);
    const env = build(undefined, { env: { GLOBAL_DISABLEALL: 'true', HLS_ENABLE: 'true' } });
    assert.equal(env.config.rtmp.enable, false);
    assert.equal(env.config.hls.enable, true);
  });

  test('API modifications have the highest priority', () => {
    const b = build('rtmp:\n  chunksize: 1024\nglobal:\n  publish:\n    key: abc\n', {
      env: { RTMP_CHUNKSIZE: '2048' },
      modified: { rtmp: { chunkSize: 8192 }, global: { publish: { publishtimeout: '1m' } }, nosuch: { a: 1 } },
    });
    assert.deepEqual(b.errors, []);
    assert.equal(b.config.rtmp.chunksize, 8192);
    assert.equal(b.config.global.publish.publishtimeout, 60_000);
    assert.equal(b.config.global.publish.key, 'abc', 'other keys of a modified section stay');
    assert.equal(b.config.rtmp.publish.publishtimeout, 60_000, 'modified global reaches inherited sections');
    assert.match(b.warnings[0].message, /unknown section "nosuch"/);
    const bad = build(undefined, { modified: { rtmp: { chunksize: 'huge' } } });
    assert.equal(bad.errors[0].message, 'rtmp.chunksize (API modification): expected a number, got "huge"');
  });

  test('index re-exports the API', () => {
    assert.equal(typeof index.t.dur, 'function');
    for (const name of ['buildConfig', 'parseConfigText', 'resolveSection', 'applyArgs', 'diffConfig', 'sectionDiffs', 'toYaml', 'setInYamlText', 'ConfigError']) {
      assert.equal(typeof (index as Record<string, unknown>)[name], 'function', name);
    }
  });
});

describe('query args, diffs, YAML output', () => {
  test('applyArgs overrides keys from a URL query and leaves the original alone', () => {
    const sub = resolveSection(globalSchema.subscribe, undefined, { section: 'subscribe' }).value;
    const { value, errors } = applyArgs(globalSchema.subscribe, sub, new URLSearchParams('waitTimeout=2s&sub_audio=0&unknown=1'));
    assert.deepEqual(errors, []);
    assert.equal(value.waittimeout, 2000);
    assert.equal(value.subaudio, false);
    assert.equal(sub.waittimeout, 10_000, 'input not mutated');
    assert.equal(applyArgs(globalSchema.subscribe, sub, {}).value, sub, 'no args: the section itself, no copy');
    const flag = applyArgs(globalSchema.subscribe, sub, { subaudio: '' });
    assert.equal(flag.value.subaudio, true, 'a bare flag means true');
    const bad = applyArgs(globalSchema.subscribe, sub, { submode: '7' }, { section: 'subscribe' });
    assert.equal(bad.value.submode, 0);
    assert.equal(bad.errors[0].path, 'subscribe.submode');
    assert.match(bad.errors[0].message, /query arg "submode"\): must be at most 2/);
    const nested = applyArgs(rtmpSchema, resolveSection(rtmpSchema, undefined, { section: 'rtmp' }).value, { 'tcp.listenaddr': ':2000' });
    assert.equal(nested.value.tcp.listenaddr, ':2000');
  });

  test('applyArgs deny list protects secrets', () => {
    const pub = resolveSection(globalSchema.publish, { key: 's3cret' }, { section: 'publish' }).value;
    const r = applyArgs(globalSchema.publish, pub, { key: 'mine', kickexist: 'true' }, { deny: ['key'] });
    assert.equal(r.value.key, 's3cret');
    assert.equal(r.value.kickexist, true);
  });

  test('diffConfig lists changed leaves in a stable order; sectionDiffs groups them', () => {
    const a = build('rtmp:\n  chunksize: 1024\n').config;
    const b = build('rtmp:\n  chunksize: 2048\n  onsub:\n    pull:\n      "x.y": z\nglobal:\n  subscribe:\n    waittimeout: 3s\n').config;
    const d = diffConfig(a, b);
    assert.deepEqual(d.map((x) => [x.path, x.old, x.new]), [
      ['global.subscribe.waittimeout', 10_000, 3000],
      ['rtmp.chunksize', 1024, 2048],
      ['rtmp.onsub.pull["x.y"]', undefined, 'z'],
      ['rtmp.subscribe.waittimeout', 10_000, 3000],
      ['hls.subscribe.waittimeout', 10_000, 3000],
    ]);
    const by = sectionDiffs(d);
    assert.deepEqual([...by.keys()], ['global', 'rtmp', 'hls']);
    assert.equal(by.get('rtmp')!.length, 3);
    assert.deepEqual(diffConfig(a, build('rtmp:\n  chunksize: 1024\n').config), []);
    assert.deepEqual(diffConfig({ l: [1, 2] }, { l: [1, 3] }).map((x) => x.path), ['l'], 'lists compare whole');
  });

  test('toYaml renders durations readably and parses back to the same config', () => {
    const b = build('global:\n  publish:\n    publishtimeout: 90s\n');
    const text = toYaml(b.config, b.schemas);
    assert.match(text, /publishtimeout: 1m30s/);
    const again = build(text);
    assert.deepEqual(again.errors, []);
    assert.deepEqual(diffConfig(b.config, again.config), []);
  });

  test('setInYamlText edits values and keeps comments', () => {
    const text = [
      '# m7s config',
      'global:',
      '  http:',
      '    listenAddr: ":8080"   # the API port',
      '  # publishing',
      '  publish:',
      '    kickexist: false',
      'rtmp:',
      '',
    ].join('\n');
    let out = setInYamlText(text, ['global', 'http', 'listenaddr'], ':9090');
    out = setInYamlText(out, ['rtmp', 'chunksize'], 8192);
    out = setInYamlText(out, ['global', 'publish', 'kickexist'], true);
    out = setInYamlText(out, ['hls', 'fragment'], '4s');
    assert.match(out, /^# m7s config$/m);
    assert.match(out, /listenAddr: ":9090" +# the API port/);
    assert.match(out, /^ {2}# publishing$/m);
    const p = parseConfigText(out, 'c.yaml');
    assert.deepEqual(p.data.global, { http: { listenAddr: ':9090' }, publish: { kickexist: true } });
    assert.deepEqual(p.data.rtmp, { chunksize: 8192 });
    assert.deepEqual(p.data.hls, { fragment: '4s' });
    const removed = setInYamlText(out, ['global', 'publish', 'kickexist'], undefined);
    assert.deepEqual(parseConfigText(removed, 'c.yaml').data.global, { http: { listenAddr: ':9090' }, publish: {} });
    assert.deepEqual(parseConfigText(setInYamlText('', ['rtmp', 'tcp', 'listenaddr'], ':1'), 'c.yaml').data, { rtmp: { tcp: { listenaddr: ':1' } } });
    assert.deepEqual(parseConfigText(setInYamlText('# empty\n', ['a', 'b'], { c: [1, 2] }), 'c.yaml').data, { a: { b: { c: [1, 2] } } });
    assert.throws(() => setInYamlText('a: [1\n', ['a'], 1), ConfigError);
  });
});
