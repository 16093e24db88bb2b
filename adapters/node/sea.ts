// Entry point of the Node single-executable build (`npm run build:binary -- --node`, Node SEA):
// bundled to CommonJS, which SEA requires, so no top-level await here.
import './sea-env.ts';
import { nodeRuntime } from './runtime.ts';
import { main } from '../../src/main.ts';
import { builtinPlugins } from '../../plugins/index.ts';

void main(nodeRuntime, builtinPlugins);
