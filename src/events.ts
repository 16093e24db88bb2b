// A small typed event bus. Listeners run synchronously in registration order; a throwing listener is
// logged by the caller's `onError` and never stops the others.

export class EventBus<M extends object> {
  private readonly map = new Map<keyof M, Set<(e: any) => void>>();
  constructor(private readonly onError: (err: unknown, event: PropertyKey) => void = () => {}) {}

  on<K extends keyof M>(event: K, fn: (e: M[K]) => void): () => void {
    let set = this.map.get(event);
    if (!set) this.map.set(event, (set = new Set()));
    set.add(fn);
    return () => { set!.delete(fn); };
  }

  once<K extends keyof M>(event: K, fn: (e: M[K]) => void): () => void {
    const off = this.on(event, (e) => { off(); fn(e); });
    return off;
  }

  emit<K extends keyof M>(event: K, e: M[K]): void {
    const set = this.map.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try { fn(e); } catch (err) { this.onError(err, event); }
    }
  }

  listenerCount(event: keyof M): number { return this.map.get(event)?.size ?? 0; }
}
