// Codec helpers: parameter sets, framing and codec strings. Pure functions over Uint8Array.
export * from './h264.ts';
export * from './h265.ts';
export * from './aac.ts';
export * from './opus.ts';
export * from './g711.ts';
export * from './config.ts';
export * from './access-unit.ts';
export * from './dts.ts';
export * from './codec-string.ts';
