// The plugins built into the m7s executable, in start order.
import type { PluginDef } from '../src/plugin.ts';

export const builtinPlugins: PluginDef<any>[] = [];
