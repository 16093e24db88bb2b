// Deno Deploy entry for the m7s edge: set ORIGIN_URL (and any EDGE_* settings) in the project's
// environment variables, entry point deploy/edge/deno-deploy.ts. Locally:
//   ORIGIN_URL=http://127.0.0.1:8080 deno run --allow-net --allow-env deploy/edge/deno-deploy.ts
// (`deno serve --allow-net --allow-env adapters/edge/worker.ts` serves the same module directly.)
import edge from '../../adapters/edge/worker.ts';

Deno.serve({ port: Number(Deno.env.get('PORT') ?? 8000) }, (req) => edge.fetch(req));
