// Engine events → webhook events. Listeners only copy a few fields and queue (see webhook.ts).

import type { Engine } from '../core/engine.ts';
import type { Publisher } from '../core/publisher.ts';
import type { Stream } from '../core/stream.ts';
import type { Subscriber } from '../core/subscriber.ts';
import type { HookEvent, Webhooks } from './webhook.ts';

const streamInfo = (s: Stream) => ({ path: s.path, app: s.app, name: s.name });
const pubInfo = (p: Publisher) => ({ id: p.id, protocol: p.protocol, type: p.type, remote: p.remote });
const subInfo = (x: Subscriber) => ({ id: x.id, protocol: x.protocol, type: x.type, remote: x.remote });

/** Publisher type → event prefix: a pull is reported as pull_*, a transform as transform_*. */
const pubEvent = (type: string, end: boolean): HookEvent =>
  (type === 'pull' ? (end ? 'pull_end' : 'pull_start') : type === 'transform' ? (end ? 'transform_end' : 'transform_start') : end ? 'publish_end' : 'publish_start');
/** Subscriber type → push_*, record_*, transform_* or subscribe_*. */
const subEvent = (type: string, end: boolean): HookEvent => {
  const base = type === 'push' ? 'push' : type === 'record' ? 'record' : type === 'transform' ? 'transform' : 'subscribe';
  return `${base}_${end ? 'end' : 'start'}` as HookEvent;
};

export function wireWebhooks(engine: Engine, hooks: Webhooks, server: () => Record<string, unknown>): () => void {
  const started = new WeakSet<Subscriber>();
  const offs = [
    engine.events.on('publish', ({ stream, publisher, republish }) =>
      hooks.emit(pubEvent(publisher.type, false), () => ({ server: server(), stream: streamInfo(stream), publisher: pubInfo(publisher), republish }))),
    engine.events.on('unpublish', ({ stream, publisher, reason }) =>
      hooks.emit(pubEvent(publisher.type, true), () => ({ server: server(), stream: streamInfo(stream), publisher: pubInfo(publisher), reason }))),
    engine.events.on('subscribe', ({ stream, subscriber }) => {
      started.add(subscriber);
      hooks.emit(subEvent(subscriber.type, false), () => ({ server: server(), stream: streamInfo(stream), subscriber: subInfo(subscriber) }));
    }),
    engine.events.on('unsubscribe', ({ stream, subscriber, reason }) => {
      // Only subscribers that got as far as subscribe_start (a failed wait is not an end).
      if (!started.has(subscriber)) return;
      started.delete(subscriber);
      hooks.emit(subEvent(subscriber.type, true), () => ({ server: server(), stream: streamInfo(stream), subscriber: subInfo(subscriber), reason }));
    }),
    engine.events.on('stream.missing', ({ path }) => hooks.emit('stream_not_found', () => ({ server: server(), stream: { path } }))),
  ];
  return () => { for (const o of offs) o(); };
}
