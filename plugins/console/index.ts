// The web console at /admin/ (plugins/console/ui, built by scripts/build-ui.mjs and served from memory):
// overview, streams, a stream's page with preview and kick, proxies, recordings, plugins, config
// editor, log tail, video wall and other instances. Login, sessions and the live feeds it uses are
// the engine's (src/http/live.ts). Docs: docs/console.md.
import { definePlugin } from '../../src/plugin.ts';
import { page, serveAsset } from './serve.ts';

export default definePlugin({
  name: 'admin',
  description: 'Web console (/admin/)',
  defaults: {},
  setup(ctx) {
    ctx.http.get('/app.js', (c) => serveAsset(c, 'app.js'));
    ctx.http.get('/lib/:name', (c) => serveAsset(c, `lib/${c.req.param('name')}`));
    // The page itself at /admin/ (and /admin → /admin/); anything else under /admin/ is not ours.
    ctx.http.get('*', (c) => {
      const p = new URL(c.req.url).pathname;
      if (p === '/admin/' || p === '/admin/index.html') return page(c, 'm7s console', '/admin/app.js');
      if (p === '/admin') return c.redirect('/admin/');
      return ctx.fail(c, 404, `no route for GET ${p}`);
    });
  },
});
