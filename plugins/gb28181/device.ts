// GB28181 devices and channels as the server knows them, and their persistence: one JSON file (datafile)
// rewritten atomically when a catalog changes, read back at start so channels survive a restart.

import type { SessionHandle } from '../../src/plugin.ts';
import type { SipTarget } from './sip.ts';
import type { CatalogItem } from '../../src/format/sip/manscdp.ts';

/** A channel as the device's Catalog describes it (the MANSCDP item, kept as is). */
export type Channel = CatalogItem;

export class Device {
  name = '';
  manufacturer = '';
  model = '';
  firmware = '';
  online = false;
  /** Where to reach it (null: not registered, or its TCP connection closed). */
  target: SipTarget | null = null;
  /** Request-URI for requests to it (from the REGISTER Contact). */
  contact = '';
  registeredAt = 0;
  /** Registration lifetime (s). */
  expires = 0;
  lastKeepalive = 0;
  /** Last SIP message of any kind from it. */
  lastSeen = 0;
  readonly channels = new Map<string, Channel>();
  handle: SessionHandle | null = null;
  /** Catalog items collected for the response in progress (SN → items). */
  catalogParts = new Map<number, { sumNum: number; items: Channel[] }>();
  keepalives = 0;
  offlineReason = '';

  constructor(readonly id: string) {}

  get transport(): string {
    return this.target?.kind ?? '';
  }

  remote(): string {
    const t = this.target;
    if (!t) return '';
    return t.kind === 'udp' ? `${t.address}:${t.port}` : `${t.conn.remoteAddress}:${t.conn.remotePort}`;
  }

  toJSON(withChannels = false): Record<string, unknown> {
    return {
      id: this.id, name: this.name, manufacturer: this.manufacturer, model: this.model, firmware: this.firmware,
      online: this.online, transport: this.transport, remote: this.remote(),
      registerTime: this.registeredAt ? new Date(this.registeredAt).toISOString() : undefined, expires: this.expires,
      lastKeepalive: this.lastKeepalive ? new Date(this.lastKeepalive).toISOString() : undefined,
      offlineReason: this.online ? undefined : this.offlineReason || undefined,
      channelCount: this.channels.size,
      ...(withChannels ? { channels: [...this.channels.values()] } : {}),
    };
  }

  persisted(): Record<string, unknown> {
    return { id: this.id, name: this.name, manufacturer: this.manufacturer, model: this.model, firmware: this.firmware, channels: [...this.channels.values()] };
  }

  static restore(o: any): Device | null {
    if (!o || typeof o.id !== 'string' || !o.id) return null;
    const d = new Device(o.id);
    for (const k of ['name', 'manufacturer', 'model', 'firmware'] as const) if (typeof o[k] === 'string') d[k] = o[k];
    if (Array.isArray(o.channels)) {
      for (const c of o.channels) if (c && typeof c.deviceId === 'string') d.channels.set(c.deviceId, { ...emptyChannel(c.deviceId), ...c });
    }
    return d;
  }
}

export function emptyChannel(id: string): Channel {
  return { deviceId: id, name: '', manufacturer: '', model: '', status: '', parentId: '', address: '', ptzType: '', longitude: '', latitude: '' };
}
