// Placeholder: replaced by the real plugin.
import { definePlugin } from '../../src/plugin.ts';

export default definePlugin({ name: 'rtmp', defaults: {}, setup() {} });
