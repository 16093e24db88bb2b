// RTSP/1.0: message parser and serializer, header values, authentication.
export * from './message.ts';
export * from './headers.ts';
export * from './auth.ts';
