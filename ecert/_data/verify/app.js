/* ecert verifier page: input (camera, photo, pasted text, URL fragment), the result, the
 * trust data and its age. The checks are core.js's; this file only reads and shows.
 * Everything from a token is shown with textContent: no markup is ever built from data.
 */
'use strict';
(function () {
  const C = window.EcertCore;
  const $ = (id) => document.getElementById(id);
  const meta = (name) => { const m = document.querySelector(`meta[name="${name}"]`); return m ? m.content : ''; };
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // -- language: Chinese by default, English on request --------------------------------
  const W = {
    title: ['电子证照核验', 'Certificate verification'],
    check_address: ['请核对地址：只有这个地址上的核验页面才可信。', 'Check the address: trust only the page at this address.'],
    paste: ['粘贴证照或二维码内容', 'Paste a certificate or QR text'],
    verify: ['核验', 'Verify'],
    camera: ['扫描二维码', 'Scan a QR code'],
    stop: ['停止扫描', 'Stop scanning'],
    photo: ['从照片或截图读取', 'Read from a photo or screenshot'],
    full: ['核对完整证照（可选）', 'Check against the full certificate (optional)'],
    full_hint: ['粘贴完整证照，以核对二维码的摘要绑定', 'Paste the full certificate to check the QR code\'s digest binding'],
    copy: ['加注件的用证方与事由', 'Purpose-bound copy: requester and purpose'],
    audience: ['用证方（地区/机构，如 ZJ/zj-amr）', 'Requester (REGION/agency, e.g. ZJ/zj-amr)'],
    purpose: ['用证事由（可选）', 'Purpose (optional)'],
    result: ['核验结果', 'Result'],
    working: ['正在核验…', 'Verifying…'],
    no_qr: ['图片中没有找到二维码', 'No QR code found in the image'],
    no_camera: ['无法使用摄像头', 'The camera cannot be used'],
    valid: ['有效', 'Valid'], revoked: ['已撤销', 'Revoked'], suspended: ['已暂停', 'Suspended'],
    expired: ['已过期', 'Expired'], not_yet_valid: ['尚未生效', 'Not yet valid'],
    untrusted: ['签发方不受信任', 'Not trusted'], invalid: ['无效', 'Invalid'],
    type: ['证照类型', 'Type'], id: ['证照标识', 'Identifier'], holder: ['持证主体', 'Holder'],
    period: ['有效期', 'Valid'], forever: ['长期', 'no end'], issued: ['签发时间', 'Issued'],
    issuer: ['签发机构', 'Issuer'], region: ['签发地区', 'Region'], claims: ['证照信息', 'Claims'],
    agreement: ['互认协议', 'Recognized under'], local_type: ['本地区视同', 'Counts here as'],
    qr_short: ['二维码（简版）：其余信息仅由摘要绑定', 'QR code (short form): other claims bound by the digest only'],
    qr_full: ['二维码（完整版）', 'QR code (full form)'],
    binding_held: ['摘要绑定成立：完整证照与二维码一致', 'Digest binding held: the full certificate matches'],
    binding_failed: ['摘要绑定不成立：完整证照与二维码不一致', 'Digest binding failed: the full certificate differs'],
    binding_unchecked: ['未核对摘要绑定（可粘贴完整证照核对）', 'Digest binding not checked (paste the full certificate)'],
    copy_of: ['原证照', 'Copy of'], copy_aud: ['用证方', 'Requester'], copy_purpose: ['用证事由', 'Purpose'],
    copy_case: ['业务流水号', 'Case'], copy_until: ['加注件有效至', 'Copy valid until'],
    trust: ['信任数据', 'Trust data'], trust_list: ['信任列表', 'Trust list'], status_list: ['状态列表', 'Status list'],
    seq: ['序号', 'sequence'], signed: ['签发于', 'signed'], next_update: ['下次更新', 'next update'],
    expires: ['到期', 'expires'], fetched_now: ['刚从网络获取', 'fetched just now'],
    offline_copy: ['离线副本，获取于', 'offline copy fetched'], ago: ['前', 'ago'],
    log: ['公开日志', 'Public log'], log_consistent: ['检查点与信任列表一致', 'checkpoint agrees with the trust list'],
    log_unchecked: ['未能核对检查点', 'checkpoint not checked'], log_none: ['信任列表未指明日志', 'the trust list names no log'],
    page_check: ['核对本页面文件', 'Check this page\'s files'],
    page_match: ['页面文件与信任列表中的摘要一致', 'The page\'s files match the digests in the trust list'],
    page_mismatch: ['页面文件与信任列表中的摘要不一致：', 'The page\'s files differ from the digests in the trust list: '],
    page_absent: ['信任列表未登记页面摘要', 'The trust list names no page digests'],
    page_unavailable: ['无法读取页面文件', 'The page\'s files cannot be read'],
    keep: ['下载本页面（单个文件，可离线保存后打开）', 'Download this page (one file, to open offline)'],
    test_clock: ['测试时钟生效中', 'Test clock in use'],
    ed25519: ['此浏览器不支持 Ed25519 签名，无法核验；请使用较新的浏览器。', 'This browser cannot check Ed25519 signatures: use a newer one.'],
    reset: ['重置信任状态', 'Reset the trust state'],
    framed: ['核验页面不能嵌入其他页面中使用。', 'This page does not work inside another page.'],
    lang: ['English', '中文'],
    log_entry: ['要求已记入公开日志', 'Require the entry in the public log'],
    leaf: ['日志条目序号', 'Log entry number'],
    included: ['已记入公开日志', 'In the public log'], not_included: ['未能证明已记入公开日志', 'Not proven to be in the public log'],
    entry: ['日志条目', 'Log entry'],
  };
  const E = {
    too_large: ['过大', 'too large'], malformed: ['文档格式错误', 'malformed document'],
    unsupported_alg: ['不支持的算法', 'unsupported algorithm'], embedded_key: ['文档中嵌入的密钥不被接受', 'a key embedded in the document is refused'],
    unsupported_crit: ['不支持的关键头部', 'unsupported critical header'], wrong_typ: ['文档类型错误', 'wrong document type'],
    unknown_kid: ['签名密钥不在信任列表中', 'signed with a key the trust list does not have'],
    alg_key_mismatch: ['算法与密钥不符', 'the algorithm does not match the key'],
    bad_signature: ['签名验证失败：已被篡改或伪造', 'the signature does not verify: altered or forged'],
    bad_claims: ['声明项无效', 'invalid claims'], issuer_mismatch: ['签发者与密钥所属机构不符', "the issuer does not match the key's agency"],
    region_mismatch: ['地区与信任列表不符', 'the region does not match the trust list'],
    type_not_authorized: ['该机构不得签发此类型', 'the agency may not issue this type'],
    type_not_authorized_at_iat: ['签发时该机构无权签发此类型', 'the agency could not issue this type then'],
    bad_certificate_id: ['证照标识格式错误', 'malformed certificate id'],
    key_not_valid_at_iat: ['签名时密钥不在有效期内', 'the key was not valid when it was signed'],
    key_compromised: ['以已泄露的密钥签名', 'signed with a compromised key'], issued_in_future: ['签发时间在未来', 'issued in the future'],
    trust_list_expired: ['信任列表已过期', 'the trust list has expired'],
    region_not_recognized: ['本地区不承认的地区', 'a region not recognized here'],
    agreement_not_in_force: ['互认协议当前不在有效期内', 'the recognition agreement is not in force'],
    type_not_recognized: ['互认协议未涵盖此类型', 'a type the agreement does not cover'],
    foreign_trust_list_invalid: ['对方地区的信任列表无法使用', "the other region's trust list cannot be used"],
    status_list_unavailable: ['无法获取状态列表', 'the status list cannot be fetched'],
    status_list_invalid: ['状态列表无效', 'the status list is invalid'], status_list_expired: ['状态列表已过期', 'the status list has expired'],
    status_index_out_of_range: ['状态索引超出状态列表范围', 'the status index is outside the status list'],
    status_unknown_value: ['未知的状态值', 'unknown status value'],
    qr_malformed: ['二维码格式错误', 'malformed QR code'], qr_unknown_version: ['未知的二维码格式版本', 'unknown QR format version'],
    qr_too_large: ['内容过多，无法放入二维码', 'too much for a QR code'],
    audience_required: ['加注件只为其用证方核验：请填写用证方', 'a copy is verified for its requester only: give it'],
    wrong_audience: ['加注件是为其他用证方出具的', 'the copy was made for another requester'],
    wrong_purpose: ['加注件是为其他用证事由出具的', 'the copy was made for another purpose'],
    copy_expired: ['加注件已过期：请重新获取', 'the copy has expired: fetch a new one'],
    trust_list_bad_signature: ['信任列表的签名有误', "the trust list's signature is wrong"],
    trust_list_malformed: ['信任列表格式错误', 'the trust list is malformed'],
    trust_list_rollback: ['信任列表比已见过的更旧', 'the trust list is older than one already seen'],
    trust_list_unavailable: ['无法获取信任列表', 'the trust list cannot be fetched'],
    trust_list_wrong_region: ['信任列表属于其他地区', 'the trust list is of another region'],
    trust_state_corrupt: ['验证器的信任状态已损坏', "the verifier's trust state is corrupt"],
    log_checkpoint_mismatch: ['公开日志的检查点与信任列表矛盾', 'the public log checkpoint contradicts the trust list'],
    ed25519_unsupported: ['此浏览器不支持 Ed25519 签名', 'this browser cannot check Ed25519 signatures'],
    not_verified: ['证照未通过核验，无从查找', 'the token did not verify'],
    qr_form: ['公开日志记录的是完整证照，不是二维码', 'the log proves the full token, not its QR code'],
    no_proof: ['请填写日志条目序号', 'give the log entry number'],
    not_logged: ['该日志条目不是此证照的记录', 'that log entry is not this token\'s record'],
    not_included: ['该条目不在已签名的检查点中', 'the entry is not in the signed checkpoint'],
    log_unreachable: ['无法读取公开日志', 'the public log cannot be read'],
    checkpoint_invalid: ['检查点未用日志密钥签名', 'the checkpoint is not signed by the log key'],
  };
  const params = new URLSearchParams(location.search);
  let lang = params.get('lang') || localStorage.getItem('ecert-lang') || 'zh';
  const L = () => (lang === 'en' ? 1 : 0);
  const w = (k) => (W[k] || [k, k])[L()];
  const e = (k) => (E[k] || W[k] || [k, k])[L()]; // a status's code: its name

  // -- the test clock: honoured only on loopback and file pages (docs/verifier-page.md) ---
  const local = location.protocol === 'file:' || ['127.0.0.1', 'localhost', '[::1]'].includes(location.hostname);
  function testClock() {
    if (!local) return null;
    const hook = window.__ecertClock;
    if (typeof hook === 'function') return () => Math.floor(hook());
    if (typeof hook === 'number') return () => Math.floor(hook);
    const q = params.get('clock');
    return q !== null && /^[0-9]{1,12}$/.test(q) ? () => Number(q) : null;
  }
  const clock = testClock();

  // -- documents: one deadline per download, redirects only within the origin ------------
  const DEADLINE_MS = 10000;
  async function fetchDoc(url, maxBytes) {
    const control = new AbortController();
    // With a service worker, it applies the deadline before serving its offline copy.
    const timer = setTimeout(() => control.abort(), navigator.serviceWorker && navigator.serviceWorker.controller ? DEADLINE_MS + 5000 : DEADLINE_MS);
    try {
      const response = await fetch(url, { signal: control.signal, cache: 'no-cache', credentials: 'omit', redirect: 'follow', referrerPolicy: 'no-referrer' });
      if (response.redirected && C.origin(response.url) !== C.origin(url)) throw new Error('refusing to follow a redirect to another origin');
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      const reader = response.body.getReader(), chunks = [];
      let total = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > maxBytes) { reader.cancel().catch(() => {}); throw new Error(`${url} exceeds ${maxBytes} bytes`); }
        chunks.push(value);
      }
      const data = new Uint8Array(total);
      let o = 0;
      for (const c of chunks) { data.set(c, o); o += c.length; }
      const cached = response.headers.get('x-ecert-cached-at');
      return { url, data, cachedAt: cached ? Number(cached) : null, at: Date.now() };
    } catch (err) {
      throw new Error(err.name === 'AbortError' ? `the download took longer than ${DEADLINE_MS / 1000} s` : err.message);
    } finally { clearTimeout(timer); }
  }
  /** A document verified: the service worker may keep it for offline use (only then). */
  function verified(url, doc) {
    const sw = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (sw && doc.cachedAt === null) sw.postMessage({ type: 'verified', url, body: doc.data, fetchedAt: doc.at });
  }

  let anchor = null, verifier = null;
  const storage = (() => { try { localStorage.setItem('ecert-probe', '1'); localStorage.removeItem('ecert-probe'); return localStorage; } catch (err) { return new C.MemoryStorage(); } })();
  async function setup() {
    anchor = await C.decodeAnchor(C.b64u(meta('ecert-anchor')));
    verifier = new C.Verifier(anchor, { fetch: fetchDoc, clock: clock || undefined, storage, verified });
  }

  // -- reading QR codes: BarcodeDetector where the browser has it, else jsQR --------------
  // Trusted Types: the page loads no script but these two, by these names.
  let policy;
  const scriptUrl = (u) => {
    if (!window.trustedTypes) return u;
    policy = policy || trustedTypes.createPolicy('ecert', {
      createScriptURL: (x) => { if (x !== 'jsqr.js' && x !== 'sw.js') throw new Error('not a script of this page'); return x; },
    });
    return policy.createScriptURL(u);
  };
  let jsqrLoading = null;
  function loadJsQR() {
    if (window.jsQR) return Promise.resolve();
    if (!jsqrLoading) {
      jsqrLoading = new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.integrity = meta('ecert-jsqr-integrity');
        s.crossOrigin = 'anonymous';
        s.onload = resolve;
        s.onerror = () => { jsqrLoading = null; reject(new Error('the QR decoder cannot be loaded')); };
        s.src = scriptUrl('jsqr.js');
        document.head.append(s);
      });
    }
    return jsqrLoading;
  }
  let detector;
  async function readQr(source, width, height) {
    if ('BarcodeDetector' in window) {
      try {
        detector = detector || new window.BarcodeDetector({ formats: ['qr_code'] });
        const found = await detector.detect(source);
        if (found.length) return found.map((f) => f.rawValue);
      } catch (err) { /* fall back to jsQR */ }
    }
    await loadJsQR();
    const scale = Math.min(1, 1600 / Math.max(width, height));
    const cw = Math.max(1, Math.round(width * scale)), ch = Math.max(1, Math.round(height * scale));
    const canvas = document.createElement('canvas');
    canvas.width = cw; canvas.height = ch;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(source, 0, 0, cw, ch);
    const code = window.jsQR(ctx.getImageData(0, 0, cw, ch).data, cw, ch, { inversionAttempts: 'attemptBoth' });
    return code ? [code.data] : [];
  }
  /** QR text from what was read: EC… itself, or a verify/ link carrying it (in base43) in
   * its fragment. A link that does not decode is given as it is: the verifier refuses it. */
  function fromFragment(hash) {
    try { return C.qrTextFromLink(hash.replace(/^#/, '')); } catch (err) { return hash; }
  }
  function qrTextOf(texts) {
    for (const t of texts) {
      if (C.QR_RE.test(t)) return t;
      const at = t.indexOf('#EC');
      if (/^https?:\/\//i.test(t) && at > 0) return fromFragment(t.slice(at));
    }
    return texts[0];
  }

  // -- time ---------------------------------------------------------------------------
  const when = (s) => (s === null || s === undefined ? w('forever') : new Date(Number(s) * 1000).toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN', { dateStyle: 'medium', timeStyle: 'short' }));
  function age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const [n, u] = s < 120 ? [s, ['秒', 's']] : s < 7200 ? [Math.round(s / 60), ['分钟', 'min']] : s < 172800 ? [Math.round(s / 3600), ['小时', 'h']] : [Math.round(s / 86400), ['天', 'd']];
    return lang === 'en' ? `${n} ${u[1]} ${w('ago')}` : `${n} ${u[0]}${w('ago')}`;
  }
  const source = (doc) => (doc.cachedAt === null ? w('fetched_now') : `${w('offline_copy')} ${age((Date.now() - doc.cachedAt) / 1000)}`);

  // -- showing a result ---------------------------------------------------------------
  const row = (label, value) => el('div', { class: 'row' }, el('dt', { text: label }), el('dd', { text: String(value) }));
  function claimList(claims) {
    const dl = el('dl', { class: 'claims' });
    for (const [k, v] of Object.entries(claims)) dl.append(row(k, typeof v === 'string' ? v : C.canon(v)));
    return dl;
  }
  function typeName(code, region) {
    const t = region && region.list.types.find((x) => x.code === code);
    return t ? `${t.name} (${code})` : code;
  }
  let last = null;
  function render(r, extra) {
    last = { r, extra };
    const box = $('result'), home = verifier && verifier.home;
    box.dataset.count = String(Number(box.dataset.count || 0) + 1);
    box.dataset.status = r.status;
    box.dataset.errors = r.errors.join(' ');
    box.dataset.kind = r.kind || '';
    box.dataset.qrMatches = extra.matches == null ? '' : String(extra.matches); // eslint-disable-line eqeqeq
    if (extra.elapsed !== undefined) box.dataset.elapsedMs = extra.elapsed.toFixed(1);
    box.className = 'result ' + (r.status === 'valid' ? 'ok' : ['untrusted', 'invalid'].includes(r.status) ? 'bad' : 'warn');
    const inc = r.inclusion, unproven = inc && !inc.included && r.status === 'valid';
    box.dataset.included = inc ? String(inc.included) : '';
    box.dataset.inclusionErrors = inc ? inc.errors.join(' ') : '';
    if (unproven) box.className = 'result bad';
    const body = [el('h2', { text: w(unproven ? 'not_included' : r.status) })];
    const why = (errors, messages) => {
      const ul = el('ul', { class: 'why' });
      errors.forEach((code, i) => ul.append(el('li', {}, el('span', { text: e(code) }), el('small', { text: ` (${code}) ${messages[i] || ''}` }))));
      body.push(ul);
    };
    if (r.errors.length) why(r.errors, r.messages);
    if (inc && !inc.included) why(inc.errors, inc.messages);
    if (r.issuer) {
      const issuing = r.region.code === (home && home.list.region) ? home : verifier.foreign.get(r.region.code);
      const dl = el('dl', {});
      const c = r.certificate;
      if (c) {
        dl.append(row(w('type'), typeName(c.type, issuing)), row(w('holder'), c.holder_name), row(w('id'), c.id),
          row(w('period'), `${when(c.valid_from)} – ${when(c.valid_until)}`), row(w('issued'), when(c.issued_at)));
      }
      if (r.copy) {
        const cp = r.copy;
        dl.append(row(w('type'), typeName(cp.type, issuing)), row(w('copy_of'), cp.copy_of), row(w('copy_aud'), cp.audience),
          row(w('copy_purpose'), cp.purpose), row(w('copy_case'), cp.case), row(w('copy_until'), when(cp.expires_at)),
          row(w('period'), `${when(cp.original.valid_from)} – ${when(cp.original.valid_until)}`));
      }
      dl.append(row(w('issuer'), `${r.issuer.name} (${r.issuer.agency}, ${r.issuer.uscc})`),
        row(w('region'), `${r.region.name} (${r.region.code}) · ${r.region.base_url}`));
      if (inc && inc.included) dl.append(row(w('entry'), `${w('included')}: ${inc.leaf_index} / ${inc.checkpoint_size}`));
      if (r.agreement) {
        dl.append(row(w('agreement'), `${home.list.region} ↔ ${r.agreement.region}`));
        if (r.local_type) dl.append(row(w('local_type'), typeName(r.local_type, home)));
      }
      body.push(dl);
      if (r.qr) {
        body.push(el('p', { class: 'note', text: r.qr.digest_bound ? w('qr_short') : w('qr_full') }));
        if (r.qr.digest_bound || typeof extra.matches === 'boolean') {
          body.push(el('p', { class: 'note', text: extra.matches === true ? w('binding_held') : extra.matches === false ? w('binding_failed') : w('binding_unchecked') }));
        }
      }
      const claims = c ? c.claims : r.copy.claims;
      body.push(el('h3', { text: w('claims') }), claimList(claims));
    }
    if (r.errors.includes('trust_state_corrupt')) {
      const b = el('button', { type: 'button', text: w('reset') });
      b.addEventListener('click', () => { verifier.state.reset(); location.reload(); });
      body.push(b);
    }
    box.replaceChildren(...body);
    window.ecert.lastResult = r;
    renderTrust();
  }
  function regionPanel(region, title) {
    const log = region.log.state;
    const items = [
      el('h3', { text: `${title}: ${region.list.name} (${region.list.region}) · ${region.list.baseUrl}` }),
      el('p', { text: `${w('trust_list')} ${w('seq')} ${region.list.sequence} · ${w('signed')} ${when(region.list.issuedAt)} · ${w('next_update')} ${when(region.list.nextUpdate)} · ${source(region.source)}` }),
      el('p', { text: `${w('log')}: ${w('log_' + (log === 'consistent' ? 'consistent' : log === 'none' ? 'none' : 'unchecked'))}` }),
    ];
    for (const [uri, s] of region.statusLists) {
      items.push(el('p', { text: `${w('status_list')} ${uri} · ${w('signed')} ${when(s.token.issuedAt)} · ${w('expires')} ${when(s.token.expires)} · ${source(s.source)}` }));
    }
    return el('div', { class: 'region', 'data-region': region.list.region, 'data-log': log, 'data-source': region.source.cachedAt === null ? 'network' : 'cache' }, ...items);
  }
  function renderTrust() {
    const panel = $('trust-data');
    if (!verifier || !verifier.home) { panel.replaceChildren(); return; }
    const parts = [regionPanel(verifier.home, w('trust'))];
    for (const region of verifier.foreign.values()) parts.push(regionPanel(region, w('agreement')));
    panel.replaceChildren(...parts);
    $('page-check').hidden = false;
  }

  // -- verifying ----------------------------------------------------------------------
  async function verify(text) {
    const box = $('result');
    box.dataset.status = '';
    box.dataset.errors = '';
    box.replaceChildren(el('p', { text: w('working') }));
    const opts = { audience: $('audience').value || null, purpose: $('purpose').value || null };
    const started = performance.now();
    const r = await verifier.verify(text, opts);
    const elapsed = performance.now() - started, leaf = $('leaf').value.trim();
    if (leaf) { // --require-inclusion --leaf-index N
      r.inclusion = await verifier.inclusion(text, r, leaf);
      r.valid = r.valid && r.inclusion.included;
    }
    let matches = null;
    const full = $('full').value;
    if (r.qr && full.trim()) matches = await C.qrMatches(r, full);
    render(r, { elapsed, matches });
    return r;
  }
  async function verifyImage(file) {
    try {
      const bitmap = await createImageBitmap(file);
      const texts = await readQr(bitmap, bitmap.width, bitmap.height);
      if (!texts.length) { showMessage(w('no_qr')); return; }
      $('input').value = qrTextOf(texts);
      await verify($('input').value);
    } catch (err) { showMessage(`${w('no_qr')}: ${err.message}`); }
  }
  function showMessage(text) {
    const box = $('result');
    box.dataset.count = String(Number(box.dataset.count || 0) + 1);
    box.dataset.status = '';
    box.dataset.errors = '';
    box.className = 'result';
    box.replaceChildren(el('p', { text }));
  }
  let stream = null;
  async function camera() {
    if (stream) { stopCamera(); return; }
    const video = $('video');
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    } catch (err) { showMessage(`${w('no_camera')}: ${err.message}`); return; }
    video.srcObject = stream;
    video.hidden = false;
    $('camera').textContent = w('stop');
    await video.play();
    const tick = async () => {
      if (!stream) return;
      if (video.videoWidth) {
        const texts = await readQr(video, video.videoWidth, video.videoHeight).catch(() => []);
        if (texts.length) { stopCamera(); $('input').value = qrTextOf(texts); await verify($('input').value); return; }
      }
      setTimeout(tick, 250);
    };
    tick();
  }
  function stopCamera() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    $('video').hidden = true;
    $('camera').textContent = w('camera');
  }
  /** The page's own files against the digests in the signed trust list (format 1.3). */
  async function checkPage() {
    const out = $('page-result'), page = verifier.home.list.verifierPage;
    let state = 'match';
    const differing = [];
    if (!page) state = 'absent';
    else {
      for (const [name, digest] of Object.entries(page.files)) {
        try {
          const doc = await fetchDoc(`${verifier.home.list.baseUrl}/verify/${name}`, 8 * 1024 * 1024);
          if (C.b64uEncode(await C.sha256(doc.data)) !== digest) differing.push(name);
        } catch (err) { state = 'unavailable'; }
      }
      if (differing.length) state = 'mismatch';
    }
    out.dataset.pageCheck = state;
    out.textContent = w('page_' + state) + (state === 'mismatch' ? differing.join(', ') : '');
  }

  // -- the page -------------------------------------------------------------------------
  function applyLanguage() {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    document.querySelectorAll('[data-w]').forEach((n) => { n.textContent = w(n.dataset.w); });
    document.querySelectorAll('[data-wp]').forEach((n) => { n.placeholder = w(n.dataset.wp); });
    document.title = `${w('title')} · ${anchor ? anchor.name : ''}`;
    if (last) render(last.r, last.extra);
  }
  async function main() {
    // For people and tests alike: verify text, read the last result, start afresh.
    window.ecert = {
      verify: (text) => verify(text), lastResult: null,
      reset: async () => { await setup(); window.ecert.verifier = verifier; renderTrust(); },
    };
    if (window.top !== window.self) { document.body.replaceChildren(el('p', { text: w('framed') })); return; }
    $('lang').addEventListener('click', () => { lang = lang === 'en' ? 'zh' : 'en'; localStorage.setItem('ecert-lang', lang); applyLanguage(); });
    applyLanguage(); // the labels' text is W's (the HTML holds none but the header's)
    try { await setup(); } catch (err) { showMessage(err.message); return; }
    window.ecert.verifier = verifier;
    applyLanguage();
    if (clock) { $('test-clock').hidden = false; }
    if (!await C.supportsEd25519()) $('ed25519').hidden = false;
    $('verify').addEventListener('click', () => verify(qrTextOf([$('input').value])));
    $('camera').addEventListener('click', camera);
    $('file').addEventListener('change', (ev) => { if (ev.target.files[0]) verifyImage(ev.target.files[0]); });
    $('page-check').addEventListener('click', checkPage);
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) $('camera').hidden = true;
    if (meta('ecert-mode') === 'hosted' && navigator.serviceWorker && location.protocol !== 'file:') {
      navigator.serviceWorker.register(scriptUrl('sw.js'), { scope: './' }).catch(() => {});
    }
    document.body.dataset.ready = 'true';
    if (location.hash.startsWith('#EC')) {
      const text = fromFragment(location.hash);
      // The certificate stays on this phone: out of the address bar and the history.
      history.replaceState(null, '', location.pathname + location.search);
      $('input').value = text;
      await verify(text);
    }
  }
  main();
})();
