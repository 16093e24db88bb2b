// The preview page at /preview/: pick a live stream and a protocol (HTTP-FLV, WS-FLV, HLS, LL-HLS,
// fMP4, WHEP — whichever plugins run) and watch it with a latency readout. Built with the console
// (scripts/build-ui.mjs); the player libraries are served from memory, no CDN.
import { definePlugin } from '../../src/plugin.ts';
import { page, serveAsset } from '../console/serve.ts';

export default definePlugin({
  name: 'preview',
  description: 'Preview player page (/preview/)',
  defaults: {},
  setup(ctx) {
    ctx.http.get('/preview.js', (c) => serveAsset(c, 'preview.js'));
    ctx.http.get('/lib/:name', (c) => serveAsset(c, `lib/${c.req.param('name')}`));
    // The page itself at /preview/ (and /preview → /preview/); anything else under /preview/ is not ours.
    ctx.http.get('*', (c) => {
      const p = new URL(c.req.url).pathname;
      if (p === '/preview/' || p === '/preview/index.html') return page(c, 'm7s preview', '/preview/preview.js');
      if (p === '/preview') return c.redirect('/preview/');
      return ctx.fail(c, 404, `no route for GET ${p}`);
    });
  },
});
