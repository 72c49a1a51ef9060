/**
 * URLs as they may be shown: in messages, log lines, metric labels, error bodies. The userinfo
 * password (or a lone username, which is usually a token) and the values of query parameters whose
 * names look secret are replaced by `***`; everything else stays as written, so the shown URL
 * still says which server and path were meant.
 *
 * Written here rather than taken from npm: @npmcli/redact hides userinfo and npm tokens but not
 * query parameters, and @pinojs/redact (pino's `redact`) masks object paths, not parts of a string.
 */

const MASK = '***';

/**
 * Query parameter names whose values are credentials, compared without case, `-` and `_`:
 * key, api_key, apikey, x-api-key, token, access_token, password, secret, client_secret, sig,
 * signature, auth, authorization, credential, session, X-Amz-Signature, X-Amz-Security-Token, ...
 */
const SECRET_PARAM = /(key|token|secret|passw|pwd|^pass$|sig$|signature|auth|credential|session|cookie)/;

function secretName(rawName: string): boolean {
  let name = rawName;
  try {
    name = decodeURIComponent(rawName.replace(/\+/g, ' '));
  } catch {
    /* shown as written */
  }
  return SECRET_PARAM.test(name.toLowerCase().replace(/[-_\s]/g, ''));
}

/** `a=1&api_key=x` -> `a=1&api_key=***` (`;` separators too). */
function redactQuery(query: string): string {
  return query.replace(/([^&;=]*)=([^&;]*)/g, (all, name: string, value: string) => (value !== '' && secretName(name) ? `${name}=${MASK}` : all));
}

/** Where the userinfo ends: WHATWG's view for a URL that parses; else the last `@` (shows less, never more). */
function userinfoOf(url: string, rest: string): string | null {
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {
    /* not parseable: a password with `/`, `?`, `#` unencoded, a host list */
  }
  if (u && u.username === '' && u.password === '') return null;
  const at = (u ? /^[^/?#]*@/ : /^.*@/s).exec(rest);
  return at ? at[0].slice(0, -1) : null;
}

/** One URL, without its credentials. Strings that are not URLs come back as they are. */
export function redactUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(url);
  if (!m) return url;
  const scheme = m[1];
  let rest = m[2];
  const userinfo = userinfoOf(url, rest);
  if (userinfo !== null) {
    const colon = userinfo.indexOf(':');
    rest = `${colon >= 0 ? `${userinfo.slice(0, colon)}:${MASK}` : MASK}@${rest.slice(userinfo.length + 1)}`;
  }
  const q = rest.indexOf('?');
  if (q < 0) return scheme + rest;
  const hash = rest.indexOf('#', q);
  const query = hash < 0 ? rest.slice(q + 1) : rest.slice(q + 1, hash);
  return `${scheme}${rest.slice(0, q + 1)}${redactQuery(query)}${hash < 0 ? '' : rest.slice(hash)}`;
}

/** Every URL inside a free text (an error message), each without its credentials. */
export function redactUrlsIn(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi, (url) => redactUrl(url));
}
