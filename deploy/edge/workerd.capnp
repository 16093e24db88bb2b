# Standalone workerd (npm package `workerd`) serving the m7s edge module.
#   npm run build:edge      (writes dist/edge.mjs, embedded below)
#   ORIGIN_URL=http://origin:8080 npx workerd serve deploy/edge/workerd.capnp [--socket-addr http=0.0.0.0:8081]
# One Durable Object per stream path coalesces that stream's viewers (see adapters/edge/worker.ts).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edgeWorker),
    # The origin is usually on a private or local address: allow those for outgoing fetches.
    (name = "origin-net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "*:8081", http = (), service = "edge") ],
);

const edgeWorker :Workerd.Worker = (
  modules = [ (name = "edge.mjs", esModule = embed "../../dist/edge.mjs") ],
  compatibilityDate = "2024-09-23",
  globalOutbound = "origin-net",
  bindings = [
    (name = "ORIGIN_URL", fromEnvironment = "ORIGIN_URL"),
    (name = "EDGE_PLAYLIST_TTL_MS", fromEnvironment = "EDGE_PLAYLIST_TTL_MS"),
    (name = "EDGE_SEGMENT_TTL_S", fromEnvironment = "EDGE_SEGMENT_TTL_S"),
    (name = "EDGE_HUB", durableObjectNamespace = "EdgeHubObject"),
  ],
  durableObjectNamespaces = [ (className = "EdgeHubObject", uniqueKey = "m7s-edge-hub") ],
  durableObjectStorage = (inMemory = void),
);
