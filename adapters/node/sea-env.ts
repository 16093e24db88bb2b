// Imported first by the Node single-executable entry (sea.ts): a SEA's require() loads built-in
// modules only, so `ws` must not try its optional native add-ons (it would print a warning at start).
import process from 'node:process';

process.env.WS_NO_BUFFER_UTIL ??= '1';
process.env.WS_NO_UTF_8_VALIDATE ??= '1';
