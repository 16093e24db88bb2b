// SIP (RFC 3261) for GB28181: messages, transactions and MANSCDP bodies. Digest auth reuses
// src/format/rtsp/auth.ts (RFC 2617/7616 MD5 is the same scheme in both protocols).
export * from './message.ts';
export * from './transaction.ts';
export * from './manscdp.ts';
export { authorizationFor, checkAuthorization, digestChallenge, parseAuthorization, parseChallenges } from '../rtsp/auth.ts';
