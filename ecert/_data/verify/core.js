/* ecert verifier core: the checks of ecert's Python verifier, in the browser.
 *
 * A port of ecert/_formats (strict JSON and base64url, JWS, keys, trust lists, status
 * lists, QR containers, copies), ecert/trust.py (trust lists, root rotations),
 * ecert/_verification (the pipeline and its policies) and the verifier's edge
 * (ecert/verify.py, ecert/_state.py): docs/format.md is the specification, the Python
 * code the reference. Error codes and statuses are the same as the Python verifier's.
 * Signatures with WebCrypto (ES256; Ed25519 where the browser has it), status lists
 * inflated with DecompressionStream. No DOM here: app.js is the page.
 */
'use strict';
(function (G) {
  const TE = new TextEncoder();
  const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const utf8 = (s) => TE.encode(s);

  // -- errors ------------------------------------------------------------------------------
  class FormatError extends Error {
    constructor(message, code = 'malformed') { super(message); this.code = code; }
  }
  /** One check failed: the verdict, its stable code, a message (vocabulary.Failure). */
  class Failure extends Error {
    constructor(status, code, message) {
      super(message); this.status = status; this.code = code; this.kind = null;
    }
  }
  class TrustListError extends Error {
    constructor(message, code) { super(message); this.code = code; }
  }
  /** The browser cannot do what a check needs (Ed25519 in WebCrypto). */
  class Unsupported extends Error {}
  /** Throw a FormatError (of `code`, 'malformed' by default). */
  const fail = (message, code) => { throw new FormatError(message, code); };
  const failList = (message, code) => { throw new TrustListError(message, code); };
  const invalid = (c, m) => new Failure('invalid', c, m);
  const untrusted = (c, m) => new Failure('untrusted', c, m);

  // -- values ------------------------------------------------------------------------------
  /** A JSON number with a fraction or exponent (a Python float): never an integer. */
  class JFloat { constructor(v) { this.v = v; } }
  const isStr = (v) => typeof v === 'string';
  // Integers parse to numbers (at most 15 digits) or BigInts; floats to JFloat.
  const isInt = (v) => typeof v === 'number' || typeof v === 'bigint';
  const isArr = Array.isArray;
  const isObj = (v) => v !== null && typeof v === 'object' && !isArr(v) &&
    !(v instanceof JFloat) && !(v instanceof Uint8Array);
  const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  const get = (o, k) => (has(o, k) ? o[k] : undefined);
  const none = (v) => v === undefined || v === null; // Python's None from dict.get
  const add = (a, b) => (typeof a === 'bigint' || typeof b === 'bigint' ? BigInt(a) + BigInt(b) : a + b);
  const MAX_TIME = 253402300799;
  const isTime = (v) => isInt(v) && v >= 0 && v <= MAX_TIME;
  /** Length in code points, as Python counts a str. */
  function cpLen(s) {
    let n = s.length;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { n--; i++; }
      }
    }
    return n;
  }
  // Python's str.isspace() characters, for str.strip().
  const PY_WS = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
  const pyStrip = (s) => s.replace(PY_WS, '');
  /** Code point order (Python's string order), not UTF-16's. */
  function cpCompare(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      let x = a.charCodeAt(i), y = b.charCodeAt(i);
      if (x !== y) {
        x = x >= 0xe000 ? x - 0x800 : x >= 0xd800 ? x + 0x2000 : x;
        y = y >= 0xe000 ? y - 0x800 : y >= 0xd800 ? y + 0x2000 : y;
        return x - y;
      }
    }
    return a.length - b.length;
  }
  function concat(parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

  // -- base64 ------------------------------------------------------------------------------
  const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const B64S = B64U.slice(0, 62) + '+/';
  function table(alphabet) {
    const t = new Int8Array(128).fill(-1);
    for (let i = 0; i < 64; i++) t[alphabet.charCodeAt(i)] = i;
    return t;
  }
  const B64U_V = table(B64U), B64S_V = table(B64S);
  function decode64(s, t, what) {
    const n = s.length;
    if (n % 4 === 1) fail('not ' + what);
    const out = new Uint8Array((n * 3) >> 2);
    let acc = 0, bits = 0, o = 0;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i), v = c < 128 ? t[c] : -1;
      if (v < 0) fail('not ' + what);
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) { bits -= 8; out[o++] = (acc >> bits) & 255; acc &= (1 << bits) - 1; }
    }
    if (acc) fail('non-canonical ' + what);
    return out;
  }
  /** Strict unpadded base64url: no padding, no other alphabet, canonical trailing bits. */
  function b64u(s) {
    if (!isStr(s)) fail('base64url must be text');
    return decode64(s, B64U_V, 'base64url');
  }
  function encode64(b, alphabet) {
    let s = '', i = 0;
    for (; i + 2 < b.length; i += 3) {
      const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
      s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
    }
    if (b.length - i === 1) {
      const n = b[i] << 16;
      s += alphabet[n >> 18] + alphabet[(n >> 12) & 63];
    } else if (b.length - i === 2) {
      const n = (b[i] << 16) | (b[i + 1] << 8);
      s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63];
    }
    return s;
  }
  const b64uEncode = (b) => encode64(b, B64U);
  const b64Encode = (b) => { const s = encode64(b, B64S); return s + '='.repeat((4 - (s.length % 4)) % 4); };
  /** Strict, canonical, padded standard base64 (signed notes). */
  function b64Std(s) {
    if (!isStr(s) || s.length % 4) fail('not base64');
    const bare = s.replace(/={1,2}$/, '');
    const out = decode64(bare, B64S_V, 'base64');
    if (b64Encode(out) !== s) fail('non-canonical base64');
    return out;
  }

  // -- strict JSON (ecert._formats.jose.strict_json_loads) ----------------------------------
  // Python refuses nesting somewhat below its recursion limit of 1000 frames.
  const MAX_DEPTH = 960;
  const LONE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
  const NUM = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
  const ESC = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
  function parseJSON(text) {
    let i = 0;
    const n = text.length;
    const bad = (why) => { fail('invalid JSON' + (why ? ': ' + why : '')); };
    const ws = () => {
      for (let c; i < n && ((c = text.charCodeAt(i)) === 32 || c === 9 || c === 10 || c === 13);) i++;
    };
    function str() {
      i++;
      let out = '', start = i, escaped = false;
      for (;;) {
        if (i >= n) bad('unterminated string');
        const c = text.charCodeAt(i);
        if (c === 34) { out += text.slice(start, i); i++; break; }
        if (c < 32) bad('control character in a string');
        if (c !== 92) { i++; continue; }
        out += text.slice(start, i);
        const e = text[i + 1];
        if (e === 'u') {
          const h = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) bad('bad escape');
          out += String.fromCharCode(parseInt(h, 16));
          escaped = true;
          i += 6;
        } else {
          if (!has(ESC, e)) bad('bad escape');
          out += ESC[e];
          i += 2;
        }
        start = i;
      }
      if (escaped && LONE.test(out)) fail('JSON escapes a lone surrogate');
      return out;
    }
    function num() {
      NUM.lastIndex = i;
      const m = NUM.exec(text);
      if (!m) bad();
      i = NUM.lastIndex;
      const t = m[0];
      if (m[1] === undefined && m[2] === undefined) {
        const digits = t.length - (t[0] === '-' ? 1 : 0);
        if (digits > 4300) bad('integer too long'); // Python's int() limit
        return digits <= 15 ? Number(t) + 0 : BigInt(t);
      }
      const f = Number(t);
      if (!isFinite(f)) fail('number overflows');
      return new JFloat(f);
    }
    function val(depth) {
      ws();
      const c = text.charCodeAt(i);
      if (c === 123 || c === 91) {
        if (depth >= MAX_DEPTH) bad('nested too deeply');
        return c === 123 ? obj(depth + 1) : arr(depth + 1);
      }
      if (c === 34) return str();
      if (c === 45 || (c >= 48 && c <= 57)) return num();
      for (const [w, v] of [['true', true], ['false', false], ['null', null]]) {
        if (text.startsWith(w, i)) { i += w.length; return v; }
      }
      bad();
    }
    function obj(depth) {
      i++;
      const o = Object.create(null);
      ws();
      if (text.charCodeAt(i) === 125) { i++; return o; }
      for (;;) {
        ws();
        if (text.charCodeAt(i) !== 34) bad();
        const k = str();
        ws();
        if (text.charCodeAt(i) !== 58) bad();
        i++;
        const v = val(depth);
        if (has(o, k)) fail('duplicate JSON member');
        o[k] = v;
        ws();
        const d = text.charCodeAt(i++);
        if (d === 125) return o;
        if (d !== 44) bad();
      }
    }
    function arr(depth) {
      i++;
      const a = [];
      ws();
      if (text.charCodeAt(i) === 93) { i++; return a; }
      for (;;) {
        a.push(val(depth));
        ws();
        const d = text.charCodeAt(i++);
        if (d === 93) return a;
        if (d !== 44) bad();
      }
    }
    const value = val(0);
    ws();
    if (i !== n) bad('extra data');
    return value;
  }
  function strictJSON(bytes) {
    let text;
    try { text = isStr(bytes) ? bytes : UTF8.decode(bytes); } catch (e) { fail('invalid JSON'); }
    return parseJSON(text);
  }

  // -- canonical JSON (Python's json.dumps(sort_keys, compact, ensure_ascii=False)) --------
  function jstr(s) {
    return '"' + s.replace(/[\x00-\x1f"\\]/g, (c) => {
      const e = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' }[c];
      return e || '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
    }) + '"';
  }
  /** Python's repr of a finite float. */
  function pyFloat(x) {
    if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
    const [mant, ex] = Math.abs(x).toExponential().split('e');
    const digits = mant.replace('.', ''), e = parseInt(ex, 10), point = e + 1;
    let out;
    if (point > 16 || point <= -4) {
      out = digits[0] + (digits.length > 1 ? '.' + digits.slice(1) : '') + 'e' +
        (e < 0 ? '-' : '+') + String(Math.abs(e)).padStart(2, '0');
    } else if (point <= 0) out = '0.' + '0'.repeat(-point) + digits;
    else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length) + '.0';
    else out = digits.slice(0, point) + '.' + digits.slice(point);
    return (x < 0 ? '-' : '') + out;
  }
  function canon(v) {
    if (v === null) return 'null';
    if (v === true || v === false) return String(v);
    if (isInt(v)) return String(v);
    if (v instanceof JFloat) return pyFloat(v.v);
    if (isStr(v)) return jstr(v);
    if (isArr(v)) return '[' + v.map(canon).join(',') + ']';
    return '{' + Object.keys(v).sort(cpCompare).map((k) => jstr(k) + ':' + canon(v[k])).join(',') + '}';
  }

  // -- URLs ecert fetches (ecert._formats.url.check_http_url) -------------------------------
  const badUrl = (u, why) => new FormatError(`URL ${JSON.stringify(u.slice(0, 120))} ${why}`, 'invalid_url');
  function ipv4(s) {
    const parts = s.split('.');
    if (parts.length !== 4) return false;
    return parts.every((p) => /^[0-9]{1,3}$/.test(p) && !(p.length > 1 && p[0] === '0') && Number(p) <= 255);
  }
  function ipv6(s) {
    const pct = s.indexOf('%');
    if (pct >= 0) {
      const scope = s.slice(pct + 1);
      if (!scope || scope.includes('%')) return false;
      s = s.slice(0, pct);
    }
    const parts = s.split(':');
    if (parts.length < 3) return false;
    if (parts[parts.length - 1].includes('.')) {
      if (!ipv4(parts.pop())) return false;
      parts.push('0', '0');
    }
    if (parts.length > 9) return false;
    let skip = -1;
    for (let i = 1; i < parts.length - 1; i++) {
      if (!parts[i]) { if (skip >= 0) return false; skip = i; }
    }
    let hi, lo;
    if (skip >= 0) {
      hi = skip; lo = parts.length - skip - 1;
      if (!parts[0] && --hi) return false;
      if (!parts[parts.length - 1] && --lo) return false;
      if (8 - (hi + lo) < 1) return false;
    } else {
      if (parts.length !== 8 || !parts[0] || !parts[parts.length - 1]) return false;
      hi = parts.length; lo = 0;
    }
    const hextets = parts.slice(0, hi).concat(lo ? parts.slice(-lo) : []);
    return hextets.every((h) => /^[0-9a-fA-F]{1,4}$/.test(h));
  }
  function checkHost(host) {
    if (host.startsWith('[') || host.includes(':')) {
      if (!ipv6(host.replace(/^\[+|\]+$/g, ''))) fail('host is not an IPv6 address', 'invalid_url');
      return;
    }
    if (/^[0-9]+(?:\.[0-9]+)*$/.test(host)) {
      if (!ipv4(host)) fail('host is not an IPv4 address', 'invalid_url');
      return;
    }
    if (host.length > 253 || !host.toLowerCase().split('.').every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(l))) {
      fail('host is not a DNS name', 'invalid_url');
    }
  }
  function checkHttpUrl(url, base = false) {
    if (!isStr(url)) fail('a URL must be a string', 'invalid_url');
    if (url.length > 2048) throw badUrl(url, 'is too long');
    if (!/^[\x21-\x7e]+$/.test(url)) throw badUrl(url, 'must be printable ASCII without spaces');
    const m = /^(https?):\/\/([^/]*)(.*)$/.exec(url);
    if (!m) throw badUrl(url, 'is not an http:// or https:// URL');
    if (url.includes('?') || url.includes('#')) throw badUrl(url, 'must not have a query or fragment');
    const netloc = m[2], path = m[3];
    if (netloc.includes('[') !== netloc.includes(']')) throw badUrl(url, 'cannot be parsed');
    if (netloc.includes('[')) {
      const bracketed = netloc.split('[')[1].split(']')[0];
      if (bracketed.startsWith('v') ? !/^v[a-fA-F0-9]+\..+$/.test(bracketed) : !ipv6(bracketed)) {
        throw badUrl(url, 'cannot be parsed');
      }
    }
    if (netloc.includes('@')) throw badUrl(url, 'must not carry user information');
    // urlsplit's hostname and port
    const info = netloc;
    let hostname, port;
    const open = info.indexOf('[');
    if (open >= 0) {
      const rest = info.slice(open + 1);
      hostname = rest.split(']')[0];
      const after = rest.slice(rest.indexOf(']') + 1);
      port = after.includes(':') ? after.slice(after.indexOf(':') + 1) : '';
    } else {
      const c = info.indexOf(':');
      hostname = c >= 0 ? info.slice(0, c) : info;
      port = c >= 0 ? info.slice(c + 1) : '';
    }
    if (!hostname) throw badUrl(url, 'has no host');
    if (port) {
      if (!/^[0-9]+$/.test(port) || Number(port) > 65535 || Number(port) === 0) throw badUrl(url, 'has an invalid port');
    }
    if (netloc.endsWith(':')) throw badUrl(url, 'has an empty port');
    const host = netloc.startsWith('[') ? netloc.slice(0, netloc.indexOf(']') + 1) : netloc.split(':')[0];
    try { checkHost(host); } catch (e) { throw badUrl(url, 'has an invalid host'); }
    if (!/^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/.test(path)) throw badUrl(url, 'has characters outside RFC 3986 path characters');
    const segments = path ? path.split('/').slice(1) : [];
    if (base) {
      if (path.endsWith('/')) throw badUrl(url, 'must not end with a slash');
    } else if (!segments.length || !segments[segments.length - 1]) throw badUrl(url, 'names no document');
    if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) {
      throw badUrl(url, "has an empty, '.' or '..' path segment");
    }
    return url;
  }
  /** The bundle path of uri under base_url (ecert._formats.bundle.relative_path). */
  function relativePath(baseUrl, uri) {
    const prefix = baseUrl.replace(/\/+$/, '') + '/';
    if (!uri.startsWith(prefix)) fail(`${uri} is not under ${baseUrl}`, 'foreign_uri');
    const rest = uri.slice(prefix.length);
    if (!rest || rest.includes('?') || rest.split('/').some((p) => p === '' || p === '.' || p === '..' || p.includes('\\'))) {
      fail(`${uri} is not a bundle path`, 'foreign_uri');
    }
    return rest;
  }
  const origin = (url) => { try { return new URL(url).origin; } catch (e) { return null; } };

  // -- keys and signatures (ecert._formats.jose) -------------------------------------------
  const ES256 = 'ES256', ED25519 = 'Ed25519';
  const ALLOWED = new Set([ES256, ED25519]);
  const KEY_BEARING = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];
  const P = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
  const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
  const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const big = (b) => BigInt('0x' + (hex(b) || '0'));
  function onCurve(xb, yb) {
    const x = big(xb), y = big(yb);
    return x < P && y < P && ((y * y - (x * x * x - 3n * x + B)) % P + P) % P === 0n;
  }
  async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)); }

  /** A public JWK, checked strictly: {alg, raw} (raw: 04||x||y, or the Ed25519 key). */
  function keyFromJwk(jwk) {
    if (!isObj(jwk)) fail('a JWK is a JSON object');
    if (has(jwk, 'd')) fail('a published JWK holds no private key');
    const kty = get(jwk, 'kty'), crv = get(jwk, 'crv');
    let alg, raw;
    if (kty === 'EC' && crv === 'P-256') {
      if (!has(jwk, 'x') || !has(jwk, 'y')) fail('invalid JWK');
      const x = b64u(jwk.x), y = b64u(jwk.y);
      if (x.length !== 32 || y.length !== 32) fail('P-256 coordinates have 32 bytes');
      if (!onCurve(x, y)) fail('invalid JWK');
      alg = ES256;
      raw = concat([Uint8Array.of(4), x, y]);
    } else if (kty === 'OKP' && crv === 'Ed25519') {
      if (!has(jwk, 'x')) fail('invalid JWK');
      raw = b64u(jwk.x);
      if (raw.length !== 32) fail('invalid JWK');
      alg = ED25519;
    } else fail(`unsupported key type ${kty}/${crv}`, 'unsupported_key');
    const declared = get(jwk, 'alg');
    if (!none(declared) && declared !== alg) fail('JWK alg does not match its key');
    return { alg, raw };
  }
  /** RFC 7638 thumbprint: ecert's kid. */
  async function thumbprint(jwk) {
    const kty = get(jwk, 'kty');
    const members = kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : kty === 'OKP' ? ['crv', 'kty', 'x'] : null;
    if (!members) fail('unsupported JWK key type', 'unsupported_key');
    if (!members.every((m) => isStr(get(jwk, m)))) fail('JWK members must be strings');
    const json = '{' + members.map((m) => jstr(m) + ':' + jstr(jwk[m]).replace(/[\u0080-\uffff]/g,
      (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))).join(',') + '}';
    return b64uEncode(await sha256(utf8(json)));
  }
  const imported = new Map();
  let ed25519Supported = null;
  async function cryptoKey(alg, raw) {
    const id = alg + ':' + b64uEncode(raw);
    let key = imported.get(id);
    if (!key) {
      const params = alg === ES256 ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
      key = crypto.subtle.importKey('raw', raw, params, false, ['verify']);
      imported.set(id, key);
    }
    try { return await key; } catch (e) {
      imported.delete(id);
      if (alg === ED25519 && !await supportsEd25519()) throw new Unsupported('this browser cannot check Ed25519 signatures');
      throw e;
    }
  }
  /** Whether WebCrypto here verifies Ed25519 (checked once). */
  async function supportsEd25519() {
    if (ed25519Supported === null) {
      try {
        // RFC 8032's first test key: a valid point, so only a missing algorithm fails.
        const key = Uint8Array.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'.match(/../g), (h) => parseInt(h, 16));
        await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
        ed25519Supported = true;
      } catch (e) { ed25519Supported = false; }
    }
    return ed25519Supported;
  }
  function scalarOk(b) {
    const v = big(b);
    return v > 0n && v < N;
  }
  /** Check a JWS signature with a trusted key (alg must be the key's). */
  async function verifySignature(alg, raw, data, sig) {
    if (sig.length !== 64 || (alg !== ES256 && alg !== ED25519)) return false;
    // r = s = 0 and friends are never valid (CVE-2022-21449).
    if (alg === ES256 && (!scalarOk(sig.subarray(0, 32)) || !scalarOk(sig.subarray(32)))) return false;
    let key;
    try { key = await cryptoKey(alg, raw); } catch (e) {
      if (e instanceof Unsupported) throw e;
      return false; // a key WebCrypto refuses verifies nothing (as cryptography's verify would)
    }
    const params = alg === ES256 ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'Ed25519' };
    return crypto.subtle.verify(params, key, sig, data);
  }

  // -- compact JWS ------------------------------------------------------------------------
  function parseCompact(token, maxBytes) {
    if (!isStr(token)) fail('token must be text');
    if (token.length > maxBytes && cpLen(token) > maxBytes) fail(`token exceeds ${maxBytes} bytes`, 'too_large');
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((p) => p)) fail('a compact JWS has three non-empty parts');
    const header = strictJSON(b64u(parts[0]));
    const payload = strictJSON(b64u(parts[1]));
    if (!isObj(header) || !isObj(payload)) fail('JWS header and payload are JSON objects');
    return { header, payload, input: utf8(parts[0] + '.' + parts[1]), signature: b64u(parts[2]) };
  }
  function checkHeader(h, typ) {
    const alg = get(h, 'alg');
    if (!isStr(alg) || !ALLOWED.has(alg)) fail('algorithm is not allowed', 'unsupported_alg');
    if (KEY_BEARING.some((k) => has(h, k))) fail('keys named by the token itself are refused', 'embedded_key');
    if (has(h, 'crit')) fail('critical header extensions are refused', 'unsupported_crit');
    if (get(h, 'typ') !== typ) fail(`typ must be ${typ}`, 'wrong_typ');
    const kid = get(h, 'kid');
    if (!isStr(kid) || !kid || cpLen(kid) > 128) fail('header lacks a kid');
    return kid;
  }
  /** bytes.decode("ascii", "replace") */
  function asciiText(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return s.replace(/[\x80-\xff]/g, '\ufffd');
  }

  // -- trust list (ecert._formats.trustlist) ------------------------------------------------
  const TRUST_LIST_TYP = 'ecert-trustlist+jwt', ROTATION_TYP = 'ecert-root-rotation+jwt';
  const req = (ok, what) => { if (!ok) fail('trust list: ' + what); };
  const optInt = (v) => { req(none(v) || isInt(v), 'times are integers'); return none(v) ? null : v; };
  const strings = (v) => isArr(v) && v.every(isStr);
  async function trustedKey(v) {
    req(isObj(v), 'a key entry is an object');
    const jwk = get(v, 'jwk');
    req(isObj(jwk) && Object.values(jwk).every(isStr), 'key entry needs a jwk');
    const { alg, raw } = keyFromJwk(jwk);
    req(get(jwk, 'kid') === await thumbprint(jwk), 'kid is not the JWK thumbprint');
    const validFrom = get(v, 'valid_from');
    req(isInt(validFrom), 'key entry needs valid_from');
    const status = get(v, 'status');
    req(['active', 'retired', 'compromised'].includes(status), 'key status is active, retired or compromised');
    const compromisedSince = optInt(get(v, 'compromised_since'));
    req((status === 'compromised') === (compromisedSince !== null), 'only compromised keys carry compromised_since');
    return { jwk, kid: jwk.kid, alg, raw, validFrom, validUntil: optInt(get(v, 'valid_until')), status, compromisedSince };
  }
  /** Why a signature made at `at` must not be trusted, or null (TrustedKey.refuses). */
  function refuses(key, at, leeway) {
    if (key.compromisedSince !== null && at >= add(key.compromisedSince, -leeway)) return 'compromised';
    if (at < add(key.validFrom, -leeway) || (key.validUntil !== null && at > key.validUntil)) return 'outside';
    return null;
  }
  function typeWindow(v) {
    req(isObj(v), 'a type window is an object');
    const code = get(v, 'code'), start = get(v, 'from'), end = get(v, 'until');
    req(isStr(code), 'a type window names its type');
    req((none(start) || isInt(start)) && (none(end) || isInt(end)), 'type window times are integers');
    req(none(start) || none(end) || end > start, 'a type window ends after it starts');
    req(!none(start) || !none(end), 'a type window is limited in time');
    return { code, start: none(start) ? null : start, end: none(end) ? null : end };
  }
  async function agency(v) {
    req(isObj(v), 'an agency is an object');
    const [code, name, uscc, uri] = ['code', 'name', 'uscc', 'uri'].map((k) => get(v, k));
    req([code, name, uscc, uri].every(isStr), 'agency needs code, name, uscc, uri');
    const types = get(v, 'types'), keys = get(v, 'keys');
    req(strings(types), 'agency types are a list of strings');
    req(isArr(keys), 'agency keys are a list');
    const windows = has(v, 'type_windows') ? v.type_windows : [];
    req(isArr(windows), 'agency type_windows are a list');
    const parsed = windows.map(typeWindow);
    req(!parsed.some((w) => types.includes(w.code)), 'a type is unlimited or limited in time');
    const requester = has(v, 'requester_keys') ? v.requester_keys : [];
    req(isArr(requester), 'agency requester_keys are a list');
    const signing = [];
    for (const k of keys) signing.push(await trustedKey(k));
    const requesting = [];
    for (const k of requester) requesting.push(await trustedKey(k));
    req(!requesting.some((r) => signing.some((s) => s.kid === r.kid)), 'a requester key is not also a signing key');
    return { code, name, uscc, uri, types, keys: signing, windows: parsed, requesterKeys: requesting };
  }
  /** Whether the agency may issue `type` at `at` (undefined: at some time). */
  function authorizes(a, type, at) {
    if (a.types.includes(type)) return true;
    return a.windows.some((w) => w.code === type && (at === undefined ||
      ((w.start === null || w.start <= at) && (w.end === null || at < w.end))));
  }
  const typeCodes = (a) => [...new Set([...a.types, ...a.windows.map((w) => w.code)])];
  function typeEntry(v) {
    req(isObj(v), 'a type is an object');
    const [code, name, ntc, version] = ['code', 'name', 'national_type_code', 'version'].map((k) => get(v, k));
    req(isStr(code) && isStr(name) && isStr(ntc) && isInt(version), 'type needs code, version, name, national_type_code');
    return { code, version, name, nationalTypeCode: ntc };
  }
  async function agreement(v) {
    req(isObj(v), 'an agreement is an object');
    const [region, name, url, jwk, types] = ['region', 'name', 'trust_list', 'root_key', 'types'].map((k) => get(v, k));
    const validFrom = get(v, 'valid_from'), validUntil = get(v, 'valid_until');
    req(isStr(region) && isStr(name) && isStr(url), 'agreement needs region, name and trust_list');
    req(isObj(jwk) && Object.values(jwk).every(isStr), 'agreement needs root_key');
    keyFromJwk(jwk);
    req(get(jwk, 'kid') === await thumbprint(jwk), 'root_key kid is not its thumbprint');
    req(isObj(types) && Object.values(types).every(isStr), 'agreement types map codes to ours');
    req(isInt(validFrom), 'agreement needs valid_from');
    req(none(validUntil) || (isInt(validUntil) && validUntil > validFrom), 'agreement valid_until follows valid_from');
    return { region, name, rootJwk: jwk, trustListUrl: url, validFrom, validUntil: none(validUntil) ? null : validUntil, types };
  }
  const inForce = (a, now) => a.validFrom <= now && (a.validUntil === null || now < a.validUntil);
  function entitlement(v) {
    req(isObj(v), 'an entitlement is an object');
    const id = get(v, 'id'), requester = get(v, 'requester'), claims = get(v, 'claims');
    const ok = (x) => isArr(x) && x.length > 0 && x.every((s) => isStr(s) && s) && new Set(x).size === x.length;
    req(isStr(id) && /^[a-z0-9][a-z0-9-]{0,63}$/.test(id), 'an entitlement has an id');
    req(isStr(requester) && /^[A-Z]{2,8}(\/[a-z0-9][a-z0-9.-]{0,99})?$/.test(requester), 'a requester is REGION or REGION/agency-code');
    req(ok(get(v, 'types')) && ok(get(v, 'purposes')), 'an entitlement names types and purposes');
    req(none(claims) || ok(claims), 'entitlement claims are distinct names');
    req(typeof get(v, 'without_consent') === 'boolean', 'without_consent is true or false');
    const from = get(v, 'valid_from'), until = get(v, 'valid_until');
    req(isInt(from), 'an entitlement needs valid_from');
    req(none(until) || (isInt(until) && until > from), 'entitlement valid_until follows valid_from');
    return { id, requester };
  }
  function logInfo(v) {
    req(isObj(v), 'log is an object');
    const [o, k, s, r, w] = ['origin', 'key', 'size', 'root', 'witness'].map((x) => get(v, x));
    req(isStr(o) && isStr(k) && isStr(r) && isInt(s) && s >= 0, 'log needs origin, key, size and root');
    req(none(w) || isStr(w), 'log witness is a key');
    return { origin: o, key: k, size: s, root: r };
  }
  /** The verifier page's files and their SHA-256 (format 1.3, `verifier_page`). */
  function verifierPage(v) {
    req(isObj(v) && Object.keys(v).length === 1 && isObj(get(v, 'files')), 'verifier_page is {"files": {...}}');
    const files = v.files, names = Object.keys(files);
    req(names.length >= 1 && names.length <= 32, 'verifier_page names 1 to 32 files');
    for (const name of names) {
      req(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name), 'verifier_page file names are plain');
      let digest;
      try { digest = b64u(files[name]); } catch (e) { digest = null; }
      req(digest !== null && digest.length === 32, 'verifier_page digests are SHA-256');
    }
    return { files };
  }
  async function trustListFromPayload(p) {
    const region = get(p, 'region');
    if (!isObj(region)) fail('trust list: region is an object');
    const [code, name, base] = ['code', 'name', 'base_url'].map((k) => get(region, k));
    const [seq, iat, nxt] = ['seq', 'iat', 'next_update'].map((k) => get(p, k));
    req(isStr(code) && isStr(name) && isStr(base), 'region needs code, name, base_url');
    req(isInt(seq) && isInt(iat) && isInt(nxt) && nxt > iat, 'seq, iat, next_update are integers, iat first');
    const [agencies, statusKeys, types, agreements] = ['agencies', 'status_keys', 'types', 'agreements'].map((k) => get(p, k));
    req([agencies, statusKeys, types, agreements].every(isArr), 'agencies, status_keys, types, agreements are lists');
    const statusLists = has(p, 'status_lists') ? p.status_lists : [];
    req(strings(statusLists), 'status_lists is a list of URIs');
    checkHttpUrl(base, true);
    statusLists.forEach((u) => checkHttpUrl(u));
    const rotations = has(p, 'root_rotations') ? p.root_rotations : [];
    req(strings(rotations), 'root_rotations is a list of compact JWS');
    const parsedAgreements = [];
    for (const a of agreements) parsedAgreements.push(await agreement(a));
    req(new Set(parsedAgreements.map((a) => a.region)).size === parsedAgreements.length, 'at most one agreement per region');
    const sharing = has(p, 'sharing_keys') ? p.sharing_keys : [];
    const ents = has(p, 'entitlements') ? p.entitlements : [];
    req(isArr(sharing) && isArr(ents), 'sharing_keys and entitlements are lists');
    const parsedEnts = ents.map(entitlement);
    req(new Set(parsedEnts.map((e) => e.id)).size === parsedEnts.length, 'entitlement ids are distinct');
    const parsedAgencies = [];
    for (const a of agencies) parsedAgencies.push(await agency(a));
    const parsedSharing = [];
    for (const k of sharing) parsedSharing.push(await trustedKey(k));
    const signing = new Set(parsedAgencies.flatMap((a) => a.keys.map((k) => k.kid)));
    req(!parsedSharing.some((k) => signing.has(k.kid)), 'a sharing key is not also an agency key');
    const parsedStatus = [];
    for (const k of statusKeys) parsedStatus.push(await trustedKey(k));
    const log = get(p, 'log'), page = get(p, 'verifier_page');
    return {
      region: code, name, baseUrl: base, sequence: seq, issuedAt: iat, nextUpdate: nxt,
      agencies: parsedAgencies, statusKeys: parsedStatus, types: types.map(typeEntry),
      agreements: parsedAgreements, statusLists, rootRotations: rotations,
      log: none(log) ? null : logInfo(log), sharingKeys: parsedSharing,
      verifierPage: none(page) ? null : verifierPage(page),
    };
  }

  // -- anchor (ecert._formats.bundle.decode_anchor) ----------------------------------------
  async function decodeAnchor(bytes) {
    try {
      if (bytes.length > 65536) fail('anchor file is too large', 'too_large');
      const doc = strictJSON(bytes);
      if (!isObj(doc) || !isInt(get(doc, 'version')) || doc.version !== 1) fail('not an ecert anchor (version 1)');
      const [region, name, url, jwk] = ['region', 'name', 'trust_list', 'root_key'].map((k) => get(doc, k));
      if (!(isStr(region) && isStr(name) && isStr(url) && isObj(jwk))) fail('anchor needs region, name, trust_list, root_key');
      checkHttpUrl(url);
      const cut = url.lastIndexOf('/');
      if (url.slice(cut + 1) !== 'trustlist.jwt') fail('anchor trust_list must be <base URL>/trustlist.jwt');
      checkHttpUrl(url.slice(0, cut), true);
      keyFromJwk(jwk);
      if (get(jwk, 'kid') !== await thumbprint(jwk)) fail('anchor root key kid is not its thumbprint');
      return { region, name, rootJwk: jwk, trustListUrl: url, kid: jwk.kid };
    } catch (e) {
      if (e instanceof FormatError) failList('anchor is malformed: ' + e.message, 'anchor_malformed');
      throw e;
    }
  }
  const baseOf = (anchor) => anchor.trustListUrl.slice(0, anchor.trustListUrl.lastIndexOf('/'));

  // -- trust list verification (ecert.trust.verify_trust_list) ------------------------------
  async function followRotations(anchor, statements, signerKid) {
    let current = anchor.rootJwk;
    if (signerKid === current.kid) return current;
    for (const statement of statements) {
      let parsed, kid;
      try {
        parsed = parseCompact(statement, 65536);
        kid = checkHeader(parsed.header, ROTATION_TYP);
      } catch (e) {
        if (e instanceof FormatError) failList('root rotation statement is malformed: ' + e.message, 'trust_list_malformed');
        throw e;
      }
      if (kid !== current.kid) continue; // a link from a root older than the one we trust
      const { alg, raw } = keyFromJwk(current);
      const p = parsed.payload, next = get(p, 'new_root_key');
      if (parsed.header.alg !== alg || !await verifySignature(alg, raw, parsed.input, parsed.signature) ||
          get(p, 'region') !== anchor.region || !isObj(next)) {
        failList('root rotation not signed by the previous root', 'trust_list_bad_signature');
      }
      let tp;
      try { keyFromJwk(next); tp = await thumbprint(next); } catch (e) {
        if (e instanceof FormatError) failList('root rotation names an invalid key', 'trust_list_malformed');
        throw e;
      }
      if (get(next, 'kid') !== tp) failList('root rotation key kid is not its thumbprint', 'trust_list_malformed');
      current = next;
      if (signerKid === current.kid) return current;
    }
    failList(`trust list of ${anchor.region} is not signed by its pinned root key`, 'trust_list_bad_signature');
  }
  async function verifyTrustList(token, anchor, { now, grace, seen }) {
    let parsed, kid, list;
    try {
      parsed = parseCompact(pyStrip(token), 4 * 1024 * 1024);
      kid = checkHeader(parsed.header, TRUST_LIST_TYP);
      list = await trustListFromPayload(parsed.payload);
    } catch (e) {
      if (e instanceof FormatError) failList('trust list is malformed: ' + e.message, 'trust_list_malformed');
      throw e;
    }
    const root = await followRotations(anchor, list.rootRotations, kid);
    const { alg, raw } = keyFromJwk(root);
    if (kid !== root.kid || parsed.header.alg !== alg || !await verifySignature(alg, raw, parsed.input, parsed.signature)) {
      failList(`trust list of ${anchor.region} is not signed by its pinned root key`, 'trust_list_bad_signature');
    }
    if (list.region !== anchor.region) {
      failList(`trust list is for region ${list.region}, anchor is ${anchor.region}`, 'trust_list_wrong_region');
    }
    if (seen !== null && seen !== undefined && list.sequence < seen) {
      failList(`trust list sequence ${list.sequence} is older than ${seen} (rollback)`, 'trust_list_rollback');
    }
    if (now > add(list.nextUpdate, grace)) {
      failList(`trust list of ${anchor.region} (${list.sequence}) is past its next update`, 'trust_list_expired');
    }
    const current = root === anchor.rootJwk ? anchor
      : { region: anchor.region, name: list.name, rootJwk: root, trustListUrl: anchor.trustListUrl, kid: root.kid };
    return { list, current };
  }

  // -- status lists (ecert._formats.statuslist) ---------------------------------------------
  const STATUS_LIST_TYP = 'statuslist+jwt';
  const MAX_LIST_BYTES = 16 * 1024 * 1024;
  class Overflow extends Error {}
  /** Inflate with DecompressionStream, stopping once more than `limit` bytes come out. */
  async function inflate(bytes, format, limit) {
    const stream = new DecompressionStream(format);
    const writer = stream.writable.getWriter();
    writer.write(bytes).catch(() => {});
    writer.close().catch(() => {});
    const reader = stream.readable.getReader();
    const chunks = [];
    let total = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > limit) { reader.cancel().catch(() => {}); throw new Overflow(); }
        chunks.push(value);
      }
    } catch (e) {
      if (e instanceof Overflow || total >= limit) throw new Overflow();
      fail('not valid compressed data');
    }
    return concat(chunks);
  }
  async function decodeStatusList(claim) {
    if (!isObj(claim)) fail('status_list is a JSON object');
    const bits = get(claim, 'bits'), lst = get(claim, 'lst');
    if (!isInt(bits) || ![1, 2, 4, 8].includes(bits) || !isStr(lst)) fail('status_list needs bits and lst');
    if (lst.length > MAX_LIST_BYTES) fail('status list is too large', 'too_large');
    let data;
    try { data = await inflate(b64u(lst), 'deflate', MAX_LIST_BYTES); } catch (e) {
      if (e instanceof Overflow) fail('status list inflates beyond the limit', 'too_large');
      throw e;
    }
    if (!data.length) fail('status list is empty');
    return { bits, data, size: (data.length * 8) / bits };
  }
  const entry = (list, i) => {
    const bit = i * list.bits;
    return (list.data[bit >> 3] >> (bit & 7)) & ((1 << list.bits) - 1);
  };
  async function readStatusListPayload(p) {
    const uri = get(p, 'sub'), iat = get(p, 'iat'), exp = get(p, 'exp'), ttl = get(p, 'ttl');
    if (!isStr(uri) || !isInt(iat)) fail('status list token needs sub and iat');
    if (!none(exp) && !isInt(exp)) fail('status list exp must be an integer');
    if (!none(ttl) && (!isInt(ttl) || ttl <= 0)) fail('status list ttl must be a positive integer');
    if (none(exp) && none(ttl)) fail('status list token needs exp or ttl');
    const list = await decodeStatusList(get(p, 'status_list'));
    const expires = none(exp) ? add(iat, ttl) : exp;
    return { uri, issuedAt: iat, expiresAt: none(exp) ? null : exp, ttl: none(ttl) ? null : ttl, expires, list };
  }

  // -- identifiers (ecert.identifiers) -----------------------------------------------------
  const MOD37 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const USCC_A = '0123456789ABCDEFGHJKLMNPQRTUWXY';
  const USCC_W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
  const ID_PREFIX = '1.2.156.3005.2';
  function isValidUscc(code) {
    if (code.length !== 18 || !/^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$/.test(code)) return false;
    let total = 0;
    for (let i = 0; i < 17; i++) total += USCC_A.indexOf(code[i]) * USCC_W[i];
    return USCC_A[(31 - (total % 31)) % 31] === code[17];
  }
  function mod37State(data, state) {
    for (const c of data) state = ((((state || 36) * 2) % 37) + MOD37.indexOf(c)) % 36;
    return state;
  }
  const mod37Final = (state) => MOD37[(((1 - (((state || 36) * 2) % 37)) % 36) + 36) % 36];
  /** The checks of CertificateId's constructor; raises bad_certificate_id. */
  function checkIdParts(type, issuer, serial, version) {
    const ok = /^[0-9A-Z]{21}$/.test(type) && /^[0-9A-Z]{18}$/.test(issuer) && isValidUscc(issuer) &&
      isValidUscc(type.slice(0, 18)) && /^[0-9A-Z]{1,32}$/.test(serial) && /^[0-9]{3}$/.test(version);
    if (!ok) throw invalid('bad_certificate_id', 'malformed certificate id');
    return `${ID_PREFIX}.${type}.${issuer}.${serial}.${version}.${mod37Final(mod37State(type + issuer + serial + version, 18))}`;
  }
  /** CertificateIdPrefix: ids of one type and issuer, prefix checked once. */
  function idPrefix(type, issuer) {
    checkIdParts(type, issuer, '0', '001');
    const prefix = `${ID_PREFIX}.${type}.${issuer}.`, state = mod37State(type + issuer, 18);
    return (text) => {
      if (!text.startsWith(prefix)) return false;
      const rest = text.slice(prefix.length).split('.');
      if (rest.length !== 3 || !/^[0-9A-Z]{1,32}$/.test(rest[0]) || !/^[0-9]{3}$/.test(rest[1])) return false;
      return mod37Final(mod37State(rest[0] + rest[1], state)) === rest[2];
    };
  }

  // -- certificate and copy claims ---------------------------------------------------------
  function certificateClaims(p) {
    const bad = (m) => new FormatError(m, 'bad_claims');
    const status = get(p, 'status'), list = isObj(status) ? get(status, 'status_list') : undefined;
    if (!isObj(list) || !has(list, 'idx') || !has(list, 'uri')) throw bad('token lacks status.status_list');
    const idx = list.idx, uri = list.uri, exp = get(p, 'exp'), supersedes = get(p, 'supersedes');
    const ok = ['iss', 'sub', 'jti', 'vct', 'region', 'holder_name'].every((k) => isStr(get(p, k))) &&
      ['iat', 'nbf', 'vct_version'].every((k) => isInt(get(p, k))) && (none(exp) || isInt(exp)) &&
      (none(supersedes) || isStr(supersedes)) && isObj(get(p, 'claims')) && isInt(idx) && idx >= 0 && isStr(uri);
    if (!ok) throw bad('token claims have the wrong shape');
    if (!(isTime(p.iat) && isTime(p.nbf) && (none(exp) || isTime(exp)))) throw bad('token times are outside 1970-9999');
    return {
      iss: p.iss, sub: p.sub, jti: p.jti, iat: p.iat, nbf: p.nbf, exp: none(exp) ? null : exp,
      vct: p.vct, vctVersion: p.vct_version, region: p.region, holderName: p.holder_name,
      claims: p.claims, statusUri: uri, statusIndex: idx, supersedes: none(supersedes) ? null : supersedes,
    };
  }
  const COPY_TYP = 'ecert-copy+jwt';
  function copyClaims(p) {
    const bad = (m) => new FormatError('copy: ' + m, 'bad_claims');
    if (has(p, 'vct')) throw bad('a copy has no top-level vct');
    const status = get(p, 'status'), list = isObj(status) ? get(status, 'status_list') : undefined;
    if (!isObj(list) || !has(list, 'idx') || !has(list, 'uri') || !has(p, 'original')) throw bad('lacks status.status_list or original');
    const idx = list.idx, uri = list.uri, o = p.original;
    if (!['iss', 'jti', 'region', 'aud', 'purpose', 'case', 'copy_of'].every((k) => isStr(get(p, k)) && get(p, k))) throw bad('strings are non-empty');
    if (!isInt(get(p, 'iat')) || !isInt(get(p, 'exp'))) throw bad('iat and exp are integers');
    if (!(isObj(get(p, 'claims')) && isObj(o) && isInt(idx) && idx >= 0 && isStr(uri))) throw bad('claims and original are objects');
    if (cpLen(p.purpose) > 200 || cpLen(p.case) > 100) throw bad('purpose or case number too long');
    const oexp = get(o, 'exp');
    if (!(isStr(get(o, 'iss')) && isStr(get(o, 'vct')) && isInt(get(o, 'vct_version')) && isInt(get(o, 'iat')) &&
          isInt(get(o, 'nbf')) && (none(oexp) || isInt(oexp)))) throw bad('original needs iss, vct, vct_version, iat, nbf');
    if (![p.iat, p.exp, o.iat, o.nbf].every(isTime) || !(none(oexp) || isTime(oexp))) throw bad('times are outside 1970-9999');
    const life = add(p.exp, -p.iat);
    if (!(life > 0 && life <= 604800)) throw bad('a copy expires within 7 days of its making');
    return {
      iss: p.iss, jti: p.jti, iat: p.iat, exp: p.exp, region: p.region, aud: p.aud, purpose: p.purpose,
      case: p.case, copyOf: p.copy_of, claims: p.claims, statusUri: uri, statusIndex: idx,
      original: { iss: o.iss, vct: o.vct, vctVersion: o.vct_version, iat: o.iat, nbf: o.nbf, exp: none(oexp) ? null : oexp },
    };
  }

  // -- QR container (ecert._formats.qr) ----------------------------------------------------
  const QR_TYP = 'ecert-qr+jwt', QR_RE = /^EC([0-9]{1,3}):/;
  const B45 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
  const qrErr = (m, code = 'qr_malformed') => new FormatError(m, code);
  /** Strict base45 (or base43, a link's: B45 without space and %); 2 bytes in 3 characters. */
  function baseDecode(text, alphabet) {
    const r = alphabet.length, name = 'base' + r;
    if (cpLen(text) % 3 === 1) throw qrErr(name + ' text has a dangling character');
    const values = Array.from(text, (c) => { const v = alphabet.indexOf(c); if (v < 0 || c.length !== 1) throw qrErr(`not a ${name} character`); return v; });
    const out = [];
    for (let i = 0; i < values.length; i += 3) {
      const triple = i + 2 < values.length, n = values[i] + values[i + 1] * r + (triple ? values[i + 2] * r * r : 0);
      if (n > (triple ? 0xffff : 0xff)) throw qrErr(name + ' group overflows');
      if (triple) out.push(n >> 8, n & 255); else out.push(n);
    }
    return Uint8Array.from(out);
  }
  const b45decode = (text) => baseDecode(text, B45);
  function b45encode(data) {
    let s = '';
    for (let i = 0; i + 1 < data.length; i += 2) {
      const n = data[i] * 256 + data[i + 1];
      s += B45[n % 45] + B45[Math.floor(n / 45) % 45] + B45[Math.floor(n / 2025)];
    }
    if (data.length % 2) s += B45[data[data.length - 1] % 45] + B45[Math.floor(data[data.length - 1] / 45)];
    return s;
  }
  /** The QR text a verification link's fragment carries (format section 14.1). */
  function qrTextFromLink(fragment) {
    const m = QR_RE.exec(fragment);
    if (!m || cpLen(fragment) > 4400) throw qrErr('not an ecert link fragment');
    return m[0] + b45encode(baseDecode(fragment.slice(m[0].length), B45.replace(/[ %]/g, '')));
  }
  const GB_OK = /^[\x20-\x7e\u3000-\u303f\u4e00-\u9fff\uff01-\uff5e]*$/;
  let GB;
  function decodeValue(data) {
    let pos = 0, depth = 0;
    const texts = [];
    const take = (n) => {
      if (n > data.length - pos) throw qrErr('QR payload is truncated');
      const c = data.subarray(pos, pos + Number(n));
      pos += Number(n);
      return c;
    };
    const arg = (info) => {
      if (info < 24) return info;
      if (info > 27) throw qrErr('reserved length in QR payload');
      const size = 1 << (info - 24), bytes = take(size);
      let v = 0n;
      for (const b of bytes) v = (v << 8n) | BigInt(b);
      if (v < (size === 1 ? 24n : 1n << BigInt(4 * size))) throw qrErr('non-minimal length in QR payload');
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    };
    const text = (major, length) => {
      const raw = take(length);
      let t;
      try {
        if (major === 2) {
          t = b64uEncode(raw);
          if (t.length < 16) throw qrErr('short base64url text');
        } else if (major === 3) t = UTF8.decode(raw);
        else {
          GB = GB || new TextDecoder('gb18030', { fatal: true });
          t = GB.decode(raw);
          if (!GB_OK.test(t) || utf8(t).length <= raw.length) throw qrErr('GB18030 text out of range');
        }
      } catch (e) { if (e instanceof FormatError) throw e; throw qrErr('bad text in QR payload'); }
      if (cpLen(t) >= 2 && texts.length < 256) {
        if (texts.includes(t)) throw qrErr('repeated text not back-referenced');
        texts.push(t);
      }
      return t;
    };
    const simple = (info) => {
      if (info < 20 || info === 24) {
        const index = info < 20 ? info : take(1)[0];
        if (info === 24 && index < 20) throw qrErr('non-minimal back-reference');
        if (index >= texts.length) throw qrErr('back-reference to an unseen text');
        return texts[index];
      }
      if (info === 20 || info === 21) return info === 21;
      if (info === 22) return null;
      if (info === 27) {
        const b = take(8), f = new DataView(b.buffer, b.byteOffset, 8).getFloat64(0);
        if (!isFinite(f)) throw qrErr('number not allowed in QR payload');
        return new JFloat(f);
      }
      throw qrErr('unknown simple value in QR payload');
    };
    const value = () => {
      const initial = take(1)[0], major = initial >> 5, info = initial & 31;
      if (major === 7) return simple(info);
      const a = arg(info);
      if (major === 0) return a;
      if (major === 1) return typeof a === 'bigint' || a >= Number.MAX_SAFE_INTEGER ? -1n - BigInt(a) : -1 - a;
      if (major === 2 || major === 3 || major === 6) return text(major, a);
      if (++depth > 16) throw qrErr('QR payload nests too deeply');
      if (a > data.length - pos) throw qrErr('QR payload is truncated');
      let result;
      if (major === 4) {
        result = [];
        for (let i = 0; i < a; i++) result.push(value());
      } else {
        result = Object.create(null);
        let previous = null;
        for (let i = 0; i < a; i++) {
          const key = value();
          if (!isStr(key)) throw qrErr('object keys are text');
          if (previous !== null && cpCompare(key, previous) <= 0) throw qrErr('object keys are not sorted');
          previous = key;
          result[key] = value();
        }
      }
      depth--;
      return result;
    };
    const v = value();
    if (pos !== data.length) throw qrErr('trailing bytes after the QR payload');
    return v;
  }
  /** Decode QR text into its parts; the payload is the exact signed bytes (qr.unwrap). */
  async function qrUnwrap(text) {
    if (cpLen(text) > 4400) throw qrErr('QR text is too long', 'too_large');
    const m = QR_RE.exec(text);
    if (!m) throw qrErr('not an ecert QR code (no EC1: prefix)');
    if (m[1] !== '1') throw qrErr(`QR container version ${m[1]} is not supported`, 'qr_unknown_version');
    const data = b45decode(text.slice(m[0].length));
    if (data.length <= 69) throw qrErr('QR container is truncated');
    const flags = data[0];
    if (flags & ~0b1111 || (flags & 3) > 1) throw qrErr('QR container has unknown flags');
    let body = data.subarray(69);
    if (flags & 4) {
      try { body = await inflate(body, 'deflate-raw', 4096); } catch (e) {
        if (e instanceof Overflow) throw qrErr('QR body inflates past 4096 bytes', 'qr_too_large');
        throw qrErr('QR body is not valid deflate data');
      }
    }
    const payload = utf8(canon(decodeValue(body)));
    return { alg: flags & 3 ? ED25519 : ES256, kidRef: data.subarray(1, 5), signature: data.subarray(5, 69), payload, copy: flags > 7 };
  }
  /** The exact compact JWS a container holds, under `kid` (flag bit 3: a copy, 17.4). */
  const qrCompact = (u, kid) => [utf8(canon({ alg: u.alg, kid, typ: u.copy ? COPY_TYP : QR_TYP })), u.payload, u.signature].map(b64uEncode).join('.');
  function kidRef(kid) {
    try { return b64u(kid).subarray(0, 4); } catch (e) { return utf8(kid).subarray(0, 4); }
  }
  function readQrPayload(p) {
    const g = (k, d) => (has(p, k) ? p[k] : d);
    const t = (v) => isInt(v) && v >= 0 && v <= MAX_TIME;
    const s = g('s'), x = g('x', 1);
    const ok = isStr(g('t')) && t(g('v')) && isStr(g('r')) && isStr(g('n')) && isStr(g('w', '001')) &&
      t(g('i')) && t(g('f', 0)) && (none(g('e')) || t(g('e'))) && t(g('a')) && isArr(s) && s.length === 2 &&
      (t(s[0]) || isStr(s[0])) && t(s[1]) && isObj(g('c')) && isStr(g('h')) && isStr(g('d')) &&
      (x === 1 || x === true || (x instanceof JFloat && x.v === 1)) && Object.keys(p).every((k) => k.length === 1 && 'tvrnwifeascdhx'.includes(k));
    if (!ok) fail('QR token claims have the wrong shape', 'bad_claims');
    return {
      vct: p.t, vctVersion: p.v, region: p.r, serial: p.n, idVersion: g('w', '001'), iat: p.i, nbf: g('f', p.i),
      exp: none(g('e')) ? null : p.e, signedAt: p.a, statusRef: s[0], statusIndex: s[1], claims: p.c,
      holderName: p.h, digest: p.d, complete: has(p, 'x'),
    };
  }

  // -- a verified trust list, indexed (ecert._verification.region) ------------------------
  function regionIndex(list) {
    const agencyKeys = new Map(), types = new Map(list.types.map((t) => [t.code, t]));
    for (const a of list.agencies) {
      for (const k of a.keys) {
        agencyKeys.set(k.kid, { agency: a, key: k, issuer: { region: list.region, agency: a.code, name: a.name, uscc: a.uscc, uri: a.uri, kid: k.kid } });
      }
    }
    const prefixes = new Map();
    for (const a of list.agencies) {
      for (const type of typeCodes(a)) {
        const t = types.get(type);
        if (!t) continue;
        try { prefixes.set(a.code + '\n' + type, idPrefix(t.nationalTypeCode, a.uscc)); } catch (e) { /* such ids never verify */ }
      }
    }
    return {
      list, code: list.region, agencyKeys, types, prefixes,
      statusKeys: new Map(list.statusKeys.map((k) => [k.kid, k])),
      sharingKeys: new Map(list.sharingKeys.map((k) => [k.kid, k])),
      byUri: new Map(list.agencies.map((a) => [a.uri, a])),
    };
  }
  function checkWindow(a, type, at) {
    if (!authorizes(a, type, at)) {
      throw untrusted('type_not_authorized_at_iat', `agency ${a.code} could not issue ${type} when this was issued`);
    }
  }
  function checkType(index, a, vct, version, iat, jti) {
    const t = index.types.get(vct);
    if (!authorizes(a, vct) || !t) throw untrusted('type_not_authorized', `agency ${a.code} is not authorized to issue ${vct}`);
    checkWindow(a, vct, iat);
    if (!(version >= 1 && version <= t.version)) throw invalid('bad_claims', `type version ${version} of ${vct} is unknown`);
    const prefix = index.prefixes.get(a.code + '\n' + vct);
    if (!prefix || !prefix(jti)) {
      throw invalid('bad_certificate_id', 'certificate id is malformed, or not of this agency and type');
    }
  }
  function checkIssuer(index, c, a) {
    if (c.iss !== a.uri) throw untrusted('issuer_mismatch', `iss ${c.iss} is not the key's agency ${a.uri}`);
    if (c.region !== index.code) throw untrusted('region_mismatch', `region ${c.region} is not ${index.code}`);
    checkType(index, a, c.vct, c.vctVersion, c.iat, c.jti);
  }
  function checkCopy(index, c) {
    if (c.iss !== index.list.baseUrl) throw untrusted('issuer_mismatch', `iss ${c.iss} is not ${index.code}'s base URL`);
    if (c.region !== index.code) throw untrusted('region_mismatch', `region ${c.region} is not ${index.code}`);
    const a = index.byUri.get(c.original.iss);
    if (!a) throw untrusted('issuer_mismatch', `original iss ${c.original.iss} is no agency of ${index.code}`);
    checkType(index, a, c.original.vct, c.original.vctVersion, c.original.iat, c.copyOf);
    return a;
  }
  async function checkStatusList(index, data, uri, now, limits) {
    const bad = (m) => invalid('status_list_invalid', `status list ${uri}: ${m}`);
    let parsed, kid, token;
    try {
      parsed = parseCompact(pyStrip(asciiText(data)), limits.maxStatusListBytes);
      kid = checkHeader(parsed.header, STATUS_LIST_TYP);
    } catch (e) { if (e instanceof FormatError) throw bad(e.message); throw e; }
    const key = index.statusKeys.get(kid);
    if (!key) throw bad('not signed by a status key of the region');
    if (parsed.header.alg !== key.alg || !await verifySignature(key.alg, key.raw, parsed.input, parsed.signature)) {
      throw bad('signature does not verify');
    }
    try { token = await readStatusListPayload(parsed.payload); } catch (e) { if (e instanceof FormatError) throw bad(e.message); throw e; }
    if (token.uri !== uri) throw bad('its sub is not the status URI');
    const refused = refuses(key, token.issuedAt, limits.leeway);
    if (refused === 'compromised') throw bad('signed with a compromised key');
    if (refused) throw bad('its key was not valid at its issue');
    if (token.issuedAt > now + limits.leeway) throw bad('issued in the future');
    if (now >= add(token.expires, limits.leeway)) {
      throw invalid('status_list_expired', `status list ${uri} expired`);
    }
    return token;
  }

  // -- decoders and policies (ecert._verification.decoders, .policies) ---------------------
  async function signed(parsed, alg, raw) {
    if (parsed.header.alg !== alg) throw invalid('alg_key_mismatch', 'alg does not match the key type');
    if (!await verifySignature(alg, raw, parsed.input, parsed.signature)) throw invalid('bad_signature', 'signature does not verify');
  }
  /** The key `kid` among `pick(region)` at home or, if the token names another region, there. */
  async function findKey(view, kid, claimed, now, pick) {
    const found = pick(view.home).get(kid);
    if (found) return [null, view.home, found];
    if (!isStr(claimed) || claimed === view.home.code) {
      throw untrusted('unknown_kid', `key ${kid} is not a trusted key of region ${view.home.code}`);
    }
    const [agreementFound, region] = await view.recognized(claimed, now);
    const key = pick(region).get(kid);
    if (!key) throw untrusted('unknown_kid', `key ${kid} is not a trusted key of region ${claimed}`);
    return [agreementFound, region, key];
  }
  const agencyKeysOf = (r) => r.agencyKeys, sharingKeysOf = (r) => r.sharingKeys;
  const wrapFormat = (code) => (e) => { if (e instanceof FormatError) throw invalid(code, e.message); throw e; };
  const CERT = {
    kind: 'certificate', typ: 'ecert+jwt', regionClaim: 'region',
    async decode(parsed, kid, token, view, now) {
      let found = view.home.agencyKeys.get(kid), region = view.home, agreementFound = null;
      if (!found) [agreementFound, region, found] = await findKey(view, kid, get(parsed.payload, this.regionClaim), now, agencyKeysOf);
      await signed(parsed, found.key.alg, found.key.raw);
      const [claims, qr] = this.claims(parsed.payload, found.agency, region);
      checkIssuer(region, claims, found.agency);
      return {
        kind: this.kind, region, agreement: agreementFound, key: found.key, issuer: found.issuer,
        signedAt: qr ? qr.signedAt : claims.iat, issuedAt: claims.iat, type: claims.vct,
        validFrom: claims.nbf, validUntil: claims.exp, statusUri: claims.statusUri,
        statusIndex: claims.statusIndex, token, certificate: claims, qr, copy: null, expiresAt: null,
      };
    },
    claims(payload) {
      try { return [certificateClaims(payload), null]; } catch (e) { return wrapFormat('bad_claims')(e); }
    },
  };
  const QR = Object.assign(Object.create(CERT), {
    kind: 'qr', typ: QR_TYP, regionClaim: 'r',
    /* A QR token's key among the agency keys of the region its payload names (r); a
     * copy's (flag bit 3) as its token's: our sharing keys, then those of the region it
     * names if we recognize it — a copy, by its flags, whatever fails after. */
    async unwrap(text, view, now) {
      const u = await qrUnwrap(text), claimed = strictJSON(u.payload), home = view.home;
      const r = isObj(claimed) ? get(claimed, u.copy ? 'region' : 'r') : undefined;
      const matching = (keys) => [...keys].filter(([kid]) => equalBytes(kidRef(kid), u.kidRef)).map(([kid, k]) => [kid, k.key || k]);
      let region = home, candidates = [];
      if (u.copy) {
        candidates = matching(home.sharingKeys);
        if (isStr(r) && r !== home.code) {
          try { candidates.push(...matching((await view.recognized(r, now))[1].sharingKeys)); } catch (e) {
            if (!candidates.length || !(e instanceof Failure)) throw Object.assign(e, { kind: 'copy' });
          }
        }
      } else {
        if (isStr(r) && r !== home.code) region = (await view.recognized(r, now))[1];
        candidates = matching(region.agencyKeys);
      }
      if (!candidates.length) {
        throw Object.assign(untrusted('unknown_kid', `QR key reference ${hex(u.kidRef)} names no key of ${u.copy && isStr(r) ? r : region.code}`), { kind: u.copy ? 'copy' : null });
      }
      if (candidates.length > 1) {
        for (const [kid, k] of candidates.slice(0, 8)) { // a 4-byte reference: more than one match is rare
          const token = qrCompact(u, kid);
          if (k.alg === u.alg && await verifySignature(k.alg, k.raw, utf8(token.slice(0, token.lastIndexOf('.'))), u.signature)) return token;
        }
      }
      return qrCompact(u, candidates[0][0]);
    },
    claims(payload, a, region) {
      try {
        const qr = readQrPayload(payload);
        const t = region.types.get(qr.vct);
        if (!t || !authorizes(a, qr.vct)) throw untrusted('type_not_authorized', `agency ${a.code} is not authorized to issue ${qr.vct}`);
        checkWindow(a, qr.vct, qr.iat);
        if (qr.signedAt < qr.iat) fail('QR signed before its certificate was issued', 'bad_claims');
        const jti = checkIdParts(t.nationalTypeCode, a.uscc, qr.serial, qr.idVersion);
        const statusUri = isStr(qr.statusRef) ? qr.statusRef : `${region.list.baseUrl}/status/${qr.statusRef}.jwt`;
        return [{
          iss: a.uri, sub: '', jti, iat: qr.iat, nbf: qr.nbf, exp: qr.exp, vct: qr.vct, vctVersion: qr.vctVersion,
          region: qr.region, holderName: qr.holderName, claims: qr.claims, statusUri, statusIndex: qr.statusIndex, supersedes: null,
        }, qr];
      } catch (e) { return wrapFormat('bad_claims')(e); }
    },
  });
  const COPY = {
    kind: 'copy', typ: COPY_TYP,
    async decode(parsed, kid, token, view, now) {
      const [agreementFound, region, key] = await findKey(view, kid, get(parsed.payload, 'region'), now, sharingKeysOf);
      await signed(parsed, key.alg, key.raw);
      let c;
      try { c = copyClaims(parsed.payload); } catch (e) { wrapFormat('bad_claims')(e); }
      const a = checkCopy(region, c);
      return {
        kind: 'copy', region, agreement: agreementFound, key,
        issuer: { region: region.code, agency: a.code, name: a.name, uscc: a.uscc, uri: a.uri, kid },
        signedAt: c.iat, issuedAt: c.iat, type: c.original.vct, validFrom: c.original.nbf,
        validUntil: c.original.exp, statusUri: c.statusUri, statusIndex: c.statusIndex, token,
        certificate: null, qr: null, copy: c, expiresAt: c.exp,
      };
    },
  };
  const policies = {
    typeRecognition(t, now, home) {
      if (t.agreement && !has(t.agreement.types, t.type)) {
        throw untrusted('type_not_recognized', `${home} does not recognize ${t.type} of ${t.agreement.region}`);
      }
    },
    keyValidity(t, now, home, leeway) {
      const r = refuses(t.key, t.signedAt, leeway);
      if (r === 'compromised') throw untrusted('key_compromised', 'signed with a key compromised by its issue time');
      if (r) throw untrusted('key_not_valid_at_iat', 'the key was not valid at the time of issue');
    },
    notInFuture(t, now, home, leeway) {
      if ((t.issuedAt > t.signedAt ? t.issuedAt : t.signedAt) > now + leeway) throw invalid('issued_in_future', 'issued in the future');
    },
  };
  function copyUse(t, use) {
    if (!t.copy) return;
    if (none(use.audience)) throw untrusted('audience_required', 'a copy is verified only for its requester: give the audience');
    if (t.copy.aud !== use.audience) throw untrusted('wrong_audience', `the copy was made for ${t.copy.aud}, not ${use.audience}`);
    if (!none(use.purpose) && t.copy.purpose !== use.purpose) throw untrusted('wrong_purpose', 'the copy was made for another purpose');
  }
  const PRIORITY = [['revoked', 'revoked'], ['suspended', 'suspended'], ['expired', 'expired'], ['copy_expired', 'expired'], ['not_yet_valid', 'not_yet_valid']];
  function lifecycle(t, value, now, leeway) {
    const whose = t.kind === 'copy' ? 'the original is ' : '', errors = [], messages = [];
    if (value === 1) { errors.push('revoked'); messages.push(whose + 'revoked by its issuer'); }
    else if (value === 2) { errors.push('suspended'); messages.push(whose + 'suspended by its issuer'); }
    else if (value !== 0) throw invalid('status_unknown_value', `unknown status value ${value}`);
    if (t.validUntil !== null && now >= add(t.validUntil, leeway)) { errors.push('expired'); messages.push(whose + 'expired'); }
    if (t.expiresAt !== null && now >= add(t.expiresAt, leeway)) { errors.push('copy_expired'); messages.push('the copy has expired'); }
    if (t.validFrom > now + leeway) { errors.push('not_yet_valid'); messages.push(whose + 'not yet valid'); }
    if (!errors.length) return ['valid', [], []];
    return [PRIORITY.find(([code]) => errors.includes(code))[1], errors, messages];
  }
  const FORMAT_CODES = new Set(['too_large', 'malformed', 'unsupported_alg', 'embedded_key', 'unsupported_crit', 'wrong_typ', 'qr_malformed', 'qr_unknown_version', 'qr_too_large']);
  /** The pipeline (ecert._verification.pipeline.run): raises a Failure, or the outcome. */
  async function run(token, view, limits, now, use) {
    let decoder = CERT, parsed, kid, fromQr;
    try {
      token = pyStrip(token);
      if (QR_RE.test(token)) { token = await QR.unwrap(token, view, now); decoder = QR; }
      parsed = parseCompact(token, limits.maxTokenBytes);
      if (get(parsed.header, 'typ') === COPY_TYP) [fromQr, decoder] = [decoder === QR, COPY]; // as token or QR
      kid = checkHeader(parsed.header, decoder.typ);
    } catch (e) {
      if (e instanceof FormatError) throw invalid(FORMAT_CODES.has(e.code) ? e.code : 'malformed', e.message);
      throw e;
    }
    let checked, status, errors, messages, value;
    try {
      checked = await decoder.decode(parsed, kid, token, view, now);
      if (fromQr) checked.qr = { complete: true }; // a copy's QR carries all of it
      const home = view.home.code, leeway = limits.leeway;
      const steps = checked.copy ? [policies.keyValidity, policies.notInFuture]
        : [policies.typeRecognition, policies.keyValidity, policies.notInFuture];
      for (const step of steps) step(checked, now, home, leeway);
      if (checked.copy) copyUse(checked, use);
      const list = await view.statusList(checked.region.code, checked.statusUri, now);
      if (checked.statusIndex >= list.list.size) throw invalid('status_index_out_of_range', 'status index is outside the status list');
      value = entry(list.list, Number(checked.statusIndex));
      [status, errors, messages] = lifecycle(checked, value, now, leeway);
    } catch (e) {
      if (e instanceof Failure) e.kind = decoder.kind;
      throw e;
    }
    const localType = checked.agreement === null ? checked.type : (get(checked.agreement.types, checked.type) ?? null);
    return { checked, status, errors, messages, value, localType };
  }

  // -- signed notes, checkpoints and tiles (ecert._formats.note, .merkle) -----------------
  const CONTROL = /[\x00-\x09\x0b-\x1f]/;
  const validName = (n) => n !== '' && !n.includes('+') && !/[\s\x00-\x1f\x85\ud800-\udfff]/.test(n);
  async function parseVerifierKey(vkey) {
    if (!isStr(vkey) || vkey.length > 4096) fail('a vkey is a short string');
    const [name, id, b64] = [vkey.split('+')[0], vkey.split('+')[1], vkey.split('+').slice(2).join('+')];
    if (!/^[0-9a-f]{8}$/.test(id || '')) fail('vkey key id is 8 lowercase hex digits');
    const raw = b64Std(b64);
    if (raw.length !== 33 || raw[0] !== 1 || !validName(name)) fail('not an Ed25519 note key');
    const keyId = (await sha256(concat([utf8(name), Uint8Array.of(10, 1), raw.subarray(1)]))).subarray(0, 4);
    if (hex(keyId) !== id) fail('vkey key id does not match its key');
    return { name, keyId, raw: raw.subarray(1) };
  }
  /** Verify a signed checkpoint with one Ed25519 note key: {origin, size, root}. */
  async function openCheckpoint(bytes, key) {
    let message;
    try { message = UTF8.decode(bytes); } catch (e) { fail('note is not UTF-8'); }
    if (bytes.length > 1 << 20 || CONTROL.test(message)) fail('note is malformed');
    const split = message.lastIndexOf('\n\n');
    if (split < 0) fail('note has no signature block');
    const text = message.slice(0, split + 1), block = message.slice(split + 2);
    if (!block.endsWith('\n')) fail('note does not end with a signature line');
    const lines = block.slice(0, -1).split('\n');
    if (lines.length > 100) fail('note has too many signatures');
    let verified = false;
    for (const line of lines) {
      if (!line.startsWith('\u2014 ')) fail('malformed signature line');
      const rest = line.slice(2), space = rest.indexOf(' ');
      const name = space < 0 ? rest : rest.slice(0, space), b64 = space < 0 ? '' : rest.slice(space + 1);
      if (!validName(name) || !b64) fail('malformed signature line');
      const sig = b64Std(b64);
      if (sig.length < 5) fail('signature too short');
      if (name !== key.name || !equalBytes(sig.subarray(0, 4), key.keyId)) continue;
      if (sig.length !== 68 || !await verifySignature(ED25519, key.raw, utf8(text), sig.subarray(4))) {
        fail('invalid signature for the log key');
      }
      verified = true;
    }
    if (!verified) fail('the checkpoint is not signed by the log key');
    const body = text.slice(0, -1).split('\n');
    if (body.length < 3 || !body[0] || !/^(0|[1-9][0-9]{0,19})$/.test(body[1]) || BigInt(body[1]) > 2n ** 64n - 1n) {
      fail('malformed checkpoint');
    }
    const root = b64Std(body[2]);
    if (root.length !== 32) fail('checkpoint root hash has 32 bytes');
    const size = BigInt(body[1]);
    return { origin: body[0], size: size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : size, root };
  }
  const nodeHash = async (l, r) => sha256(concat([Uint8Array.of(1), l, r]));
  function tilePath(level, index, width) {
    const groups = [];
    do { groups.unshift(index % 1000); index = Math.floor(index / 1000); } while (index);
    const n = groups.map((g, i) => (i < groups.length - 1 ? 'x' : '') + String(g).padStart(3, '0')).join('/');
    return `tile/${level}/${n}${width === 256 ? '' : '.p/' + width}`;
  }
  /** Perfect subtree hashes of the tree of `size` leaves, read from tiles (merkle._TileNodes). */
  function tileNodes(readTile, size) {
    const tiles = new Map();
    const tile = async (level, index) => {
      const key = level + '/' + index;
      if (!tiles.has(key)) {
        const width = Math.max(0, Math.min(256, Math.floor(size / 256 ** level) - index * 256));
        const data = await readTile(level, index, width);
        if (data.length !== width * 32) fail(`tile ${key} must be ${width} hashes`);
        tiles.set(key, data);
      }
      return tiles.get(key);
    };
    const node = async (height, index) => {
      const level = Math.floor(height / 8), rest = height % 8, first = index * 2 ** rest;
      const data = await tile(level, Math.floor(first / 256));
      const offset = first % 256;
      let layer = [];
      for (let i = offset; i < offset + 2 ** rest; i++) layer.push(data.subarray(i * 32, i * 32 + 32));
      while (layer.length > 1) {
        const up = [];
        for (let i = 0; i < layer.length; i += 2) up.push(await nodeHash(layer[i], layer[i + 1]));
        layer = up;
      }
      return layer[0];
    };
    const mth = async (lo, hi) => {
      const nodes = [];
      let start = lo;
      for (let bit = Math.floor(Math.log2(hi - lo)); bit >= 0; bit--) {
        if (Math.floor((hi - lo) / 2 ** bit) % 2) { nodes.push(await node(bit, start / 2 ** bit)); start += 2 ** bit; }
      }
      let result = nodes.pop();
      while (nodes.length) result = await nodeHash(nodes.pop(), result);
      return result;
    };
    const k = (n) => 2 ** Math.floor(Math.log2(n - 1));
    const subproof = async (m, lo, hi, whole) => {
      const n = hi - lo;
      if (m === n) return whole ? [] : [await mth(lo, hi)];
      const s = k(n);
      if (m <= s) return [...await subproof(m, lo, lo + s, whole), await mth(lo + s, hi)];
      return [...await subproof(m - s, lo + s, hi, false), await mth(lo, lo + s)];
    };
    /* The root of [lo, hi) recomputed from leaf m's hash: merkle.verify_inclusion applied
     * to the proof merkle.tile_inclusion_proof reads (the same siblings, in its order). */
    const rootWith = async (m, leaf, lo, hi) => {
      const s = lo + k(hi - lo);
      if (hi - lo === 1) return leaf;
      return m < s ? nodeHash(await rootWith(m, leaf, lo, s), await mth(s, hi)) : nodeHash(await mth(lo, s), await rootWith(m, leaf, s, hi));
    };
    return { subproof, rootWith };
  }
  /** Tiles under `read`; a partial tile not published is cut from the full one. */
  const tileReader = (read) => async (level, index, width) => {
    try { return await read(tilePath(level, index, width)); } catch (e) {
      if (width === 256) throw e;
      return (await read(tilePath(level, index, 256))).subarray(0, width * 32);
    }
  };
  /** tiles.decode_entry_bundle: exactly `width` entries, each after its 16-bit length. */
  function entryBundle(data, width) {
    const out = [];
    for (let i = 0, n; i < data.length; i += 2 + n) {
      n = data[i] * 256 + data[i + 1]; // NaN inside the length prefix
      if (out.length === width || !(i + 2 + n <= data.length)) fail('malformed entry bundle');
      out.push(data.subarray(i + 2, i + 2 + n));
    }
    if (out.length !== width) fail(`entry bundle of ${out.length}, not ${width}`);
    return out;
  }
  const MEMBERS = ['v', 't', 'a', 's', 'op', 'd', 'sig'];
  /** log.Entry.decode: strict, canonical, the members of version 1. */
  function logEntry(data) {
    const v = strictJSON(data), [ver, t, a, s, op, d, sig] = MEMBERS.map((k) => isObj(v) && get(v, k));
    if (!(isObj(v) && Object.keys(v).every((k) => MEMBERS.includes(k)) && ver === 1 && isInt(t) && t >= 0 && t <= 253402300799 &&
      isStr(a) && a && cpLen(a) <= 64 && isStr(s) && cpLen(s) <= 256 && isStr(op) && op && cpLen(op) <= 128 && isObj(d) &&
      (none(sig) || isStr(sig)) && canon(v) === UTF8.decode(data))) fail('not a log entry');
    return { t, a, d };
  }
  /** Why the entry does not prove the token (inclusion._not_the_entry); null: it does. */
  async function notTheEntry(e, token, r) {
    const digest = b64uEncode(await sha256(utf8(pyStrip(token)))), d = e.d, copies = get(d, 'copies');
    if (!r.copy) return e.a !== 'certificate.issue' || get(d, 'token') !== digest ? 'is not the issue of this token' : null;
    if (e.a !== 'share.fetch' || get(d, 'version') !== 2 || get(d, 'outcome') !== 'granted' || !isArr(copies) || !copies.includes(digest)) {
      return 'is not the use record of this copy';
    }
    return Number(e.t) !== Number(r.copy.issued_at) ? 'was not made when this copy was' : null;
  }
  class Unreachable extends Error {}
  /** A region's log (RegionLog): its files (a failed download: Unreachable), and its
   * checkpoint verified with the log key under the log's origin (else FormatError). */
  function logOf(v, list) {
    const read = async (path, max = 1 << 20) => {
      try { return (await v.fetch(`${list.baseUrl}/log/${path}`, max)).data; } catch (e) { throw new Unreachable(`cannot fetch ${path}: ${e.message}`); }
    };
    const checkpoint = async (key) => {
      const cp = await openCheckpoint(await read('checkpoint', 65536), key);
      if (cp.origin !== list.log.origin) fail('another origin');
      return cp;
    };
    return { read, checkpoint };
  }
  /** RFC 9162 section 2.1.4.2 (merkle.verify_consistency). */
  async function verifyConsistency(m, n, proof, rootM, rootN) {
    if (m === 0 || m > n) return false;
    if (m === n) return !proof.length && equalBytes(rootM, rootN);
    if (!proof.length) return false;
    const path = (m & (m - 1)) === 0 ? [rootM, ...proof] : [...proof];
    let fn = m - 1, sn = n - 1;
    while (fn % 2) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if (!(fn % 2)) while (fn && !(fn % 2)) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else sr = await nodeHash(sr, c);
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equalBytes(fr, rootM) && equalBytes(sr, rootN);
  }

  // -- the verifier's memory (ecert._state) ------------------------------------------------
  /** trust-state.json in localStorage (or memory): per region the pin, sequence and root. */
  class TrustState {
    constructor(storage, anchor) {
      this.storage = storage;
      this.key = `ecert-trust-state/${anchor.region}/${anchor.kid}`;
      this.anchor = anchor;
    }
    regions() {
      const text = this.storage.getItem(this.key);
      if (text === null) return {};
      let doc;
      try { doc = JSON.parse(text); } catch (e) { doc = null; }
      const ok = isObj(doc) && isObj(doc.regions) && doc.version === 2 &&
        Object.values(doc.regions).every((e) => isObj(e) && isStr(e.pinned_kid) &&
          /^[0-9]+$/.test(String(e.sequence)) && isObj(e.root_key) && isStr(e.root_key.kid));
      if (!ok) failList('the trust state is corrupt: reset it', 'trust_state_corrupt');
      return doc.regions;
    }
    pinned(anchor) {
      const e = this.regions()[anchor.region];
      if (!e) return [anchor, null];
      const seq = typeof e.sequence === 'string' ? BigInt(e.sequence) : e.sequence;
      if (e.pinned_kid === anchor.kid) {
        if (e.root_key.kid !== anchor.kid) return [{ ...anchor, rootJwk: e.root_key, kid: e.root_key.kid }, seq];
        return [anchor, seq];
      }
      if (e.root_key.kid === anchor.kid) return [anchor, seq];
      return [anchor, null];
    }
    record(pinned, current, sequence) {
      const regions = this.regions(), e = regions[pinned.region];
      if (e && BigInt(e.sequence) > BigInt(sequence) && (pinned.kid === e.pinned_kid || current.kid === e.root_key.kid)) return;
      regions[pinned.region] = {
        pinned_kid: pinned.kid, sequence: typeof sequence === 'bigint' ? String(sequence) : sequence,
        root_key: current.rootJwk,
      };
      this.storage.setItem(this.key, JSON.stringify({ version: 2, anchor: { region: this.anchor.region, root_kid: this.anchor.kid }, regions }));
    }
    reset() { this.storage.removeItem(this.key); }
  }
  class MemoryStorage {
    constructor() { this.items = new Map(); }
    getItem(k) { return this.items.has(k) ? this.items.get(k) : null; }
    setItem(k, v) { this.items.set(k, String(v)); }
    removeItem(k) { this.items.delete(k); }
  }

  // -- the verifier's edge (ecert.verify.Verifier) ------------------------------------------
  const LIMITS = { maxTokenBytes: 65536, leeway: 60, grace: 86400, maxStatusListBytes: 8 * 1024 * 1024 };
  const REFRESH_RETRY = 300, FAILED_RETRY = 30;
  /** One region's verified trust list with its status lists (verify._Region). */
  class Region {
    constructor(verifier, list, anchor, source) {
      this.verifier = verifier;
      this.index = regionIndex(list);
      this.list = list;
      this.anchor = anchor;
      this.source = source; // how the trust list arrived: {cachedAt}
      this.statusLists = new Map();
      this.pinnedKid = null;
      this.checkedAt = 0;
      this.log = { state: 'unchecked', detail: '' };
    }
    usable(now, grace) {
      return now <= this.list.nextUpdate || (now < this.checkedAt + REFRESH_RETRY && now <= add(this.list.nextUpdate, grace));
    }
    async statusList(uri, now) {
      const cached = this.statusLists.get(uri);
      if (cached && now < cached.refreshAt) return cached.token;
      const v = this.verifier;
      let doc;
      try {
        relativePath(this.list.baseUrl, uri);
        checkHttpUrl(uri);
        doc = await v.fetch(uri, v.limits.maxStatusListBytes);
      } catch (e) {
        if (e instanceof Unsupported) throw e;
        throw invalid('status_list_unavailable', `status list ${uri} is unavailable: ${e.message}`);
      }
      const token = await checkStatusList(this.index, doc.data, uri, now, v.limits);
      v.verified(uri, doc);
      let refreshAt = now + Number(token.ttl || 300);
      if (token.expires !== null && token.expires < refreshAt) refreshAt = Number(token.expires);
      this.statusLists.set(uri, { token, refreshAt: Math.max(refreshAt, now + 1), source: doc });
      return token;
    }
  }
  class Verifier {
    /**
     * anchor: the decoded home anchor; fetch(url, maxBytes) → {data, cachedAt}; clock() →
     * seconds; storage: localStorage-like; verified(url, doc): a document that verified.
     */
    constructor(anchor, { fetch, clock, storage, verified, checkLog = true } = {}) {
      this.pinned = anchor;
      this.fetch = fetch;
      this.clock = clock || (() => Math.floor(Date.now() / 1000));
      this.state = new TrustState(storage || new MemoryStorage(), anchor);
      this.verified = verified || (() => {});
      this.checkLog = checkLog;
      this.limits = LIMITS;
      this.home = null;
      this.foreign = new Map();
      this.foreignSeen = new Map();
      this.foreignFailed = new Map();
      const self = this;
      this.view = {
        get home() { return self.home.index; },
        async recognized(code, now) { const [a, r] = await self.recognized(code, now); return [a, r.index]; },
        async statusList(code, uri, now) {
          const r = code === self.home.index.code ? self.home : self.foreign.get(code);
          return r.statusList(uri, now);
        },
      };
    }
    now() { return this.clock(); }
    /** Fetch and verify a region's trust list; follow and remember root rotations. */
    async loadRegion(anchor, now, minSequence) {
      const [effective, seen] = this.state.pinned(anchor);
      const floors = [seen, minSequence].filter((s) => s !== null && s !== undefined);
      const floor = floors.length ? floors.reduce((a, b) => (a > b ? a : b)) : null;
      let doc;
      try {
        checkHttpUrl(anchor.trustListUrl);
        doc = await this.fetch(anchor.trustListUrl, 4 * 1024 * 1024);
      } catch (e) {
        if (e instanceof Unsupported) throw e;
        failList(`cannot fetch ${anchor.trustListUrl}: ${e.message}`, 'trust_list_unavailable');
      }
      const { list, current } = await verifyTrustList(asciiText(doc.data), effective, { now, grace: this.limits.grace, seen: floor });
      const region = new Region(this, list, current, doc);
      region.checkedAt = now;
      if (this.checkLog) await this.checkCheckpoint(region);
      this.verified(anchor.trustListUrl, doc);
      this.state.record(anchor, current, list.sequence);
      return region;
    }
    /** The home trust list, loaded (or refreshed past next_update); raises TrustListError. */
    async ensureHome(now) {
      if (!this.home) {
        this.home = await this.loadRegion(this.pinned, now, null);
        return;
      }
      const home = this.home;
      if (now <= home.list.nextUpdate || home.usable(now, this.limits.grace)) return;
      try {
        this.home = await this.loadRegion(this.pinned, now, home.list.sequence);
        this.foreign.clear(); // agreements may have changed
      } catch (e) {
        if (!(e instanceof TrustListError)) throw e;
        home.checkedAt = now; // keep what we have; the grace check decides
      }
    }
    async recognized(code, now) {
      const agreementFound = this.home.list.agreements.find((a) => a.region === code);
      if (!agreementFound) throw untrusted('region_not_recognized', `${this.home.list.region} does not recognize region ${code}`);
      if (!inForce(agreementFound, now)) throw untrusted('agreement_not_in_force', `the agreement with ${code} is not in force now`);
      const grace = this.limits.grace;
      let cached = this.foreign.get(code);
      if (cached && cached.pinnedKid !== agreementFound.rootJwk.kid) cached = null;
      if (cached && cached.usable(now, grace)) return [agreementFound, cached];
      const failed = this.foreignFailed.get(code);
      if (!cached && failed && now < failed[0] + FAILED_RETRY) throw untrusted('foreign_trust_list_invalid', failed[1]);
      const anchor = { region: agreementFound.region, name: agreementFound.name, rootJwk: agreementFound.rootJwk, trustListUrl: agreementFound.trustListUrl, kid: agreementFound.rootJwk.kid };
      let region;
      try {
        region = await this.loadRegion(anchor, now, this.foreignSeen.get(code));
      } catch (e) {
        if (!(e instanceof TrustListError)) throw e;
        if (cached && now <= add(cached.list.nextUpdate, grace)) { cached.checkedAt = now; return [agreementFound, cached]; }
        const message = `trust list of ${code} cannot be used: ${e.message}`;
        this.foreignFailed.set(code, [now, message]);
        throw untrusted('foreign_trust_list_invalid', message);
      }
      region.pinnedKid = agreementFound.rootJwk.kid;
      this.foreign.set(code, region);
      this.foreignFailed.delete(code);
      const seen = this.foreignSeen.get(code);
      this.foreignSeen.set(code, seen !== undefined && seen > region.list.sequence ? seen : region.list.sequence);
      return [agreementFound, region];
    }
    /**
     * The region's log checkpoint against the tree its trust list names (format 15.7,
     * 15.8): signed by log.key under log.origin, and the same tree or one that extends
     * it (a consistency proof from the published tiles). A checkpoint that cannot be read
     * leaves the log unchecked; one that contradicts the trust list refuses the list.
     */
    async checkCheckpoint(region) {
      const log = region.list.log;
      if (!log) { region.log = { state: 'none', detail: '' }; return; }
      if (!await supportsEd25519()) { region.log = { state: 'unchecked', detail: 'ed25519' }; return; }
      const { read, checkpoint } = logOf(this, region.list);
      let key, cp;
      try { key = await parseVerifierKey(log.key); } catch (e) { failList('the trust list names a malformed log key', 'trust_list_malformed'); }
      const refuse = (why) => { failList(`the log checkpoint of ${region.list.region} contradicts the trust list: ${why}`, 'log_checkpoint_mismatch'); };
      try { cp = await checkpoint(key); } catch (e) {
        if (e instanceof Unreachable) { region.log = { state: 'unchecked', detail: e.message }; return; }
        if (e instanceof FormatError) refuse(e.message);
        throw e;
      }
      let listRoot;
      try { listRoot = b64u(log.root); } catch (e) { refuse('the trust list names a malformed root'); }
      if (cp.size < log.size) refuse('older than the trust list');
      if (cp.size == log.size) { // eslint-disable-line eqeqeq
        if (!equalBytes(cp.root, listRoot)) refuse('a different tree of the same size (a fork)');
        region.log = { state: 'consistent', detail: `${cp.size}` };
        return;
      }
      if (typeof cp.size === 'bigint' || typeof log.size === 'bigint' || log.size === 0) {
        region.log = { state: log.size === 0 ? 'consistent' : 'unchecked', detail: `${cp.size}` };
        return;
      }
      let proof;
      try {
        proof = await tileNodes(tileReader(read), cp.size).subproof(log.size, 0, cp.size, true);
      } catch (e) { region.log = { state: 'unchecked', detail: e.message }; return; }
      if (!await verifyConsistency(log.size, cp.size, proof, listRoot, cp.root)) refuse('the checkpoint does not extend the trust list\'s tree');
      region.log = { state: 'consistent', detail: `${log.size}..${cp.size}` };
    }
    /**
     * ecert.inclusion.check_inclusion (without witnesses) for a token `r` is the result of:
     * the entry at leaf index `leaf` is the token's issue (a copy's: the use entry that
     * served it), included in the checkpoint signed by the log key of the issuing region's
     * verified trust list (the proof computed from the published tiles). Never throws.
     */
    async inclusion(token, r, leaf) {
      const code = r.region && r.region.code;
      let facts = {};
      const refuse = (error, message) => ({ included: false, region: code || null, leaf_index: null, checkpoint_size: null, ...facts, errors: [error], messages: [message] });
      if (!code || !(r.certificate || r.copy)) return refuse('not_verified', 'the token did not verify');
      if (r.qr) return refuse('qr_form', 'inclusion is of the full token, not its QR');
      if (!/^[0-9]{1,15}$/.test(leaf)) return refuse('no_proof', "give the entry's leaf index");
      const region = code === this.home.list.region ? this.home : this.foreign.get(code), log = region.list.log, index = Number(leaf);
      if (!log) return refuse('not_logged', `region ${code} publishes no log`);
      if (!await supportsEd25519()) return refuse('ed25519_unsupported', 'no Ed25519 here');
      const { read, checkpoint } = logOf(this, region.list);
      try {
        let cp;
        try { cp = await checkpoint(await parseVerifierKey(log.key)); } catch (e) {
          if (e instanceof FormatError) return refuse('checkpoint_invalid', `the checkpoint of ${code}: ${e.message}`);
          throw e;
        }
        const size = cp.size, start = index - index % 256;
        facts = { leaf_index: index, checkpoint_size: typeof size === 'bigint' ? String(size) : size };
        if (index >= size) return refuse('not_included', `entry ${index} is beyond the checkpoint of ${size} entries`);
        if (typeof size === 'bigint') throw new Error('too large a tree');
        const width = Math.min(256, size - start), data = entryBundle(await read(tilePath('entries', start / 256, width), 256 * 65537), width)[index - start];
        let why;
        try { why = await notTheEntry(logEntry(data), token, r); } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          why = `is malformed: ${e.message}`;
        }
        if (why) return refuse('not_logged', `entry ${index} ${why}`);
        const root = await tileNodes(tileReader(read), size).rootWith(index, await sha256(concat([Uint8Array.of(0), data])), 0, size);
        if (!equalBytes(root, cp.root)) return refuse('not_included', `entry ${index} is not in the checkpoint of ${size} entries of ${code}`);
        return { included: true, region: code, ...facts, errors: [], messages: [] };
      } catch (e) {
        return refuse(e instanceof Unreachable ? 'log_unreachable' : 'not_included', e.message);
      }
    }
    /** Verify a token, QR text or copy; never throws (Verifier.verify). */
    async verify(token, { audience = null, purpose = null } = {}) {
      const now = this.now();
      try {
        try {
          await this.ensureHome(now);
        } catch (e) {
          if (e instanceof TrustListError) return result({ status: 'untrusted', errors: [e.code], messages: [e.message], trustList: true });
          throw e;
        }
        if (now > add(this.home.list.nextUpdate, this.limits.grace)) {
          throw untrusted('trust_list_expired', 'the trust list is past its next update');
        }
        const outcome = await run(token, this.view, this.limits, now, { audience, purpose });
        return result(outcome);
      } catch (e) {
        if (e instanceof Failure) return result({ status: e.status, errors: [e.code], messages: [e.message], kind: e.kind });
        if (e instanceof Unsupported) return result({ status: 'invalid', errors: ['ed25519_unsupported'], messages: [e.message] });
        return result({ status: 'invalid', errors: ['malformed'], messages: [`internal error: ${e && e.name}`] });
      }
    }
  }
  /** The result (VerificationResult.to_json's members, plus what the page shows). */
  function result(o) {
    if (!o.checked) return { valid: false, kind: null, ...o, errors: o.errors };
    const t = o.checked, out = {
      valid: o.status === 'valid' && !o.errors.length, status: o.status, errors: o.errors,
      messages: o.messages, kind: t.kind, issuer: t.issuer, local_type: o.localType,
      agreement: t.agreement ? { region: t.agreement.region, types: t.agreement.types, name: t.agreement.name } : null,
      region: { code: t.region.code, name: t.region.list.name, base_url: t.region.list.baseUrl },
    };
    if (t.copy) {
      const c = t.copy;
      out.copy = { id: c.jti, copy_of: c.copyOf, audience: c.aud, purpose: c.purpose, case: c.case, type: c.original.vct,
        type_version: c.original.vctVersion, claims: c.claims, issued_at: c.iat, expires_at: c.exp,
        original: { issued_at: c.original.iat, valid_from: c.original.nbf, valid_until: c.original.exp } };
      out.certificate_id = c.copyOf;
    } else {
      const c = t.certificate;
      out.certificate = { id: c.jti, type: c.vct, type_version: c.vctVersion, region: c.region, holder_name: c.holderName,
        claims: c.claims, issued_at: c.iat, valid_from: c.nbf, valid_until: c.exp, status_list: { uri: c.statusUri, idx: c.statusIndex } };
      out.certificate_id = c.jti;
    }
    if (t.qr) out.qr = { claims_present: Object.keys((t.copy || t.certificate).claims).sort(cpCompare), digest_bound: !t.qr.complete, digest: t.qr.digest };
    return out;
  }

  /**
   * Whether a full certificate token is the one a verified QR binds
   * (VerificationResult.qr_matches): every field the QR states, and the digest.
   */
  async function qrMatches(qrResult, token) {
    const cert = qrResult.qr ? qrResult.certificate : null;
    if (!cert || !qrResult.issuer) return false;
    let full, digest;
    try {
      const parts = pyStrip(token).split('.');
      const payloadBytes = b64u(parts[1]);
      digest = b64uEncode((await sha256(payloadBytes)).subarray(0, 16));
      const p = strictJSON(payloadBytes);
      if (!isObj(p)) return false;
      full = certificateClaims(p);
    } catch (e) { return false; }
    const carried = cert.claims;
    const same = (a, b) => { try { return canon(a) === canon(b); } catch (e) { return false; } };
    const claimsAgree = Object.keys(carried).every((k) => has(full.claims, k) && same(full.claims[k], carried[k])) &&
      (qrResult.qr.digest_bound || same(Object.keys(full.claims).sort(), Object.keys(carried).sort()));
    return digest === qrResult.qr.digest && full.jti === cert.id && full.vct === cert.type &&
      full.vctVersion == cert.type_version && full.region === cert.region && full.iss === qrResult.issuer.uri && // eslint-disable-line eqeqeq
      full.holderName === cert.holder_name && full.iat == cert.issued_at && full.nbf == cert.valid_from && // eslint-disable-line eqeqeq
      (full.exp === null ? cert.valid_until === null : full.exp == cert.valid_until) && // eslint-disable-line eqeqeq
      full.statusUri === cert.status_list.uri && full.statusIndex == cert.status_list.idx && claimsAgree; // eslint-disable-line eqeqeq
  }

  G.EcertCore = {
    Verifier, TrustState, MemoryStorage, FormatError, Failure, TrustListError, Unsupported, JFloat,
    decodeAnchor, baseOf, checkHttpUrl, origin, strictJSON, canon, b64u, b64uEncode, sha256, utf8, hex,
    supportsEd25519, qrMatches, isObj, isInt, cpCompare, QR_RE, qrTextFromLink, qrUnwrap,
  };
})(typeof self !== 'undefined' ? self : globalThis);
