// The admin secret: generated at first start (32 random bytes, hex), kept beside the config file in
// `.m7s/secret` with mode 0600, and in memory only when there is no config file. The console signs its
// admin session tokens with it (signHs256 in ./jwt.ts); nothing else may use a constant key.

import type { Runtime } from '../net/types.ts';

export function secretFileFor(configFile: string): string {
  const dir = configFile.replace(/[^/\\]*$/, '');
  return `${dir}.m7s/secret`;
}

export function randomSecret(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Read the admin secret, creating it on first start. Without a config file: a fresh one per process. */
export async function loadAdminSecret(rt: Runtime, configFile?: string): Promise<{ secret: string; file?: string }> {
  if (!configFile) return { secret: randomSecret() };
  const file = secretFileFor(configFile);
  if ((await rt.stat(file))?.isFile) {
    const text = (await rt.readTextFile(file)).trim();
    if (/^[0-9a-f]{64,}$/i.test(text)) return { secret: text, file };
  }
  const secret = randomSecret();
  await rt.mkdir(file.replace(/[^/\\]*$/, ''));
  await rt.writeFile(file, secret + '\n', { mode: 0o600 });
  return { secret, file };
}
