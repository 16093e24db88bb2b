// Errors the engine raises, each with a stable code the HTTP API and protocol plugins map to replies
// (RTMP onStatus codes, HTTP statuses).

export type EngineErrorCode =
  | 'BadPath' | 'Unauthorized' | 'Forbidden' | 'DuplicatePublish' | 'TooManyPublishers' | 'TooManySubscribers'
  | 'NotFound' | 'Timeout' | 'Closed' | 'Kicked' | 'BadArgument' | 'TooManyStreams' | 'TooManyPulls'
  /** The stream is on another node (cluster redirect mode): `location` is that node's base URL. */
  | 'Redirect';

const HTTP: Record<EngineErrorCode, number> = {
  BadPath: 400, BadArgument: 400, Unauthorized: 401, Forbidden: 403, DuplicatePublish: 409, TooManyPublishers: 503,
  TooManySubscribers: 503, TooManyStreams: 503, NotFound: 404, Timeout: 504, Closed: 410, Kicked: 409, TooManyPulls: 503,
  Redirect: 302,
};

export class EngineError extends Error {
  constructor(readonly code: EngineErrorCode, message: string, readonly location?: string) {
    super(message);
    this.name = 'EngineError';
  }
  get httpStatus(): number { return HTTP[this.code] ?? 500; }
}
