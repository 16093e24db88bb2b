// The path and query of a request URL, without a URL object where the string is already in the form
// a URL object would give: a player's join parses its request URL once, and `new URL()` was a tenth
// of the route's time in a join storm (timed in a Node server, 1000 WS-FLV joins).

/** Absolute http(s) URL whose path and query need nothing from the URL parser: no dot segment (`.`,
 * `..`, or either spelled with `%2e`), no backslash, no character it would percent-encode, no fragment. */
const PLAIN_URL = /^https?:\/\/[^/?#\\\s]+((?:\/(?!(?:\.|%2[eE]){1,2}(?:[/?]|$))[A-Za-z0-9\-._~!$&'()*+,;=:@%]*)*)(\?[A-Za-z0-9\-._~!$&()*+,;=:@%/?]*)?$/;

/** `new URL(url)`'s pathname and search (empty, or starting with `?`). */
export function urlParts(url: string): { pathname: string; search: string } {
  const m = PLAIN_URL.exec(url);
  if (m) return { pathname: m[1] || '/', search: m[2] && m[2].length > 1 ? m[2] : '' };
  const u = new URL(url);
  return { pathname: u.pathname, search: u.search };
}
