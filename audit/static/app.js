// fvlm audit: the workbench page. Plain ES module, no framework, nothing
// fetched from outside. Every string from the corpus is put in the page with
// textContent or as an attribute value, never parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

const S = {
  me: null, onto: null, queue: [], page: null, studyId: 0, queuePos: -1,
  sent: 0, link: 0, anat: null, task: 0, viewer: null, anatIndex: new Map(),
  taskIndex: new Map(), busy: false,
};

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

async function api(path, body) {
  const opt = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opt.method = 'POST';
    opt.headers['Content-Type'] = 'application/json';
    if (S.me) opt.headers['X-CSRF-Token'] = S.me.csrf;
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  let data = null;
  const type = r.headers.get('Content-Type') || '';
  if (type.startsWith('application/json')) data = await r.json();
  else data = await r.text();
  if (!r.ok) {
    if (r.status === 401 && !path.endsWith('/login')) showLogin();
    throw new ApiError(r.status, (data && data.error) || ('HTTP ' + r.status));
  }
  return data;
}

let toastTimer = 0;
function toast(msg, err) {
  const t = $('toast');
  t.textContent = msg;
  t.className = 'toast show' + (err ? ' err' : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = 'toast'; }, err ? 4000 : 1600);
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

function showLogin() {
  S.me = null;
  $('login').hidden = false;
  $('work').hidden = true;
  $('statsPage').hidden = true;
  $('top').hidden = true;
  $('loginName').focus();
}

$('loginForm').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('loginError').textContent = '';
  try {
    S.me = await api('/api/login', { name: $('loginName').value, token: $('loginToken').value });
    $('loginToken').value = '';
    await start();
  } catch (e) {
    $('loginError').textContent = e.message;
  }
});

$('btnLogout').addEventListener('click', async () => {
  try { await api('/api/logout', {}); } catch (e) { /* logged out anyway */ }
  showLogin();
});

// ---------------------------------------------------------------------------
// Colours: one per anatomy, stable across studies (ontology order).
// ---------------------------------------------------------------------------

const PALETTE = ['#ffd6a5', '#caffbf', '#9bf6ff', '#bdb2ff', '#ffc6ff', '#fdffb6', '#a0c4ff',
  '#ffadad', '#d0f4de', '#e4c1f9', '#f1c0e8', '#cfbaf0', '#a3c4f3', '#90dbf4', '#8eecf5',
  '#98f5e1', '#b9fbc0', '#fbf8cc', '#fde4cf', '#ffcfd2'];
function colour(anat) {
  const i = S.anatIndex.has(anat) ? S.anatIndex.get(anat) : 0;
  return PALETTE[i % PALETTE.length];
}
function anatName(id) {
  const a = S.onto && S.onto.anatomies[S.anatIndex.get(id)];
  return a ? a.en : id;
}

// Byte offsets (UTF-8, as the corpus stores them) to a substring.
const enc = new TextEncoder(), dec = new TextDecoder();
function byteSlice(text, a, b) {
  const bytes = enc.encode(text);
  return dec.decode(bytes.slice(Math.max(0, a), Math.min(bytes.length, b)));
}

// ---------------------------------------------------------------------------
// Study page
// ---------------------------------------------------------------------------

function linksOf(sid) { return S.page.links.filter((l) => l.sentence_id === sid && l.anatomy !== ''); }
function sentById(id) { return S.page.sentences.find((s) => s.id === id); }
function decisionOn(kind, pred) {
  return S.page.decisions.find((d) => d.kind === kind && pred(d.key));
}

function linkWhy(l) {
  const parts = [];
  if (l.source === 'audit') parts.push('added by an annotator');
  else {
    parts.push(l.method);
    if (l.term !== null && l.term !== undefined) parts.push('term “' + l.term + '”' +
      (l.start !== null ? ' @' + l.start + '–' + l.end : ''));
    if (l.rule) parts.push('rule ' + l.rule);
    if (l.continues) {
      const c = sentById(l.continues);
      parts.push('continues #' + (c ? c.idx + 1 : l.continues));
    }
    parts.push('confidence ' + Number(l.confidence).toFixed(2));
  }
  if (l.accepted === 1) parts.push('accepted');
  if (l.accepted === 0) parts.push('rejected');
  return parts.join(' · ');
}

function renderSentences() {
  const ol = $('sentences');
  ol.textContent = '';
  const p = S.page;
  p.sentences.forEach((s, i) => {
    const li = el('li', 'sentence');
    li.dataset.idx = i;
    const links = linksOf(s.id);
    const live = links.filter((l) => l.accepted !== 0);
    if (live.length === 0) li.classList.add('unlinked');
    else li.style.borderLeftColor = colour(live[0].anatomy);
    if (i === S.sent) li.classList.add('sel');
    li.appendChild(el('span', 'idx', '#' + (s.idx + 1)));
    li.appendChild(el('span', 'sec', s.section));
    // The sentence, with the selected link's matched term marked.
    const body = el('span', 'text');
    const sel = i === S.sent ? links[S.link] : null;
    if (sel && sel.start !== null && sel.end !== null && sel.start >= s.start && sel.end <= s.end) {
      const a = sel.start - s.start, b = sel.end - s.start;
      body.appendChild(document.createTextNode(byteSlice(s.text, 0, a)));
      body.appendChild(el('mark', null, byteSlice(s.text, a, b)));
      body.appendChild(document.createTextNode(byteSlice(s.text, b, 1 << 30)));
    } else {
      body.textContent = s.text;
    }
    li.appendChild(body);
    if (live.length === 0) li.appendChild(el('span', 'unlinked-tag', 'unlinked'));
    const chips = el('div', 'links');
    links.forEach((l, j) => {
      const c = el('span', 'chip');
      c.style.background = colour(l.anatomy);
      if (l.accepted === 0) c.classList.add('rejected');
      if (l.accepted === 1 || l.source === 'audit') c.classList.add('accepted');
      if (i === S.sent && j === S.link) c.classList.add('sel');
      c.title = linkWhy(l);
      c.appendChild(el('span', null, anatName(l.anatomy)));
      c.appendChild(el('span', 'why', l.source === 'audit' ? 'audit' : l.method));
      const acc = el('button', null, '✓');
      acc.title = 'accept (a)';
      acc.addEventListener('click', (ev) => { ev.stopPropagation(); S.sent = i; S.link = j; decideLink('accept'); });
      const rej = el('button', null, '✗');
      rej.title = 'reject (r)';
      rej.addEventListener('click', (ev) => { ev.stopPropagation(); S.sent = i; S.link = j; decideLink('reject'); });
      c.appendChild(acc);
      c.appendChild(rej);
      c.addEventListener('click', (ev) => { ev.stopPropagation(); selectSentence(i, j); });
      chips.appendChild(c);
    });
    const add = el('button', null, '+ link');
    add.title = 'add a link to another anatomy (+)';
    add.addEventListener('click', (ev) => { ev.stopPropagation(); S.sent = i; openAdd(); });
    chips.appendChild(add);
    li.appendChild(chips);
    if (sel) li.appendChild(el('div', 'why-line', anatName(sel.anatomy) + ': ' + linkWhy(sel)));
    li.addEventListener('click', () => selectSentence(i, 0));
    ol.appendChild(li);
  });
  const cur = ol.querySelector('.sentence.sel');
  if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: 'nearest' });
}

function renderFlags() {
  const box = $('studyFlags');
  box.textContent = '';
  for (const f of S.page.flags) {
    const d = el('div', 'flag' + (f.kind.startsWith('audit_') ? ' audit' : ''),
      (f.anatomy ? anatName(f.anatomy) + ': ' : '') + f.kind + (f.detail ? ' — ' + f.detail : ''));
    box.appendChild(d);
  }
}

// Anatomies worth showing: a status other than unmentioned, a link, a region.
function relevantAnatomies() {
  const p = S.page, set = new Set();
  for (const s of p.statuses) if (s.status !== 'unmentioned') set.add(s.anatomy);
  for (const l of p.links) if (l.anatomy) set.add(l.anatomy);
  for (const r of p.regions) if (S.anatIndex.has(r.anatomy)) set.add(r.anatomy);
  return [...set].filter((a) => S.anatIndex.has(a)).sort((a, b) => S.anatIndex.get(a) - S.anatIndex.get(b));
}

function statusWhy(a, st) {
  const p = S.page;
  if (!st) return 'no status (run fvlm align)';
  if (st.source === 'audit') {
    const d = decisionOn('status', (k) => k.anatomy === a);
    return 'set in the workbench' + (d ? ' by ' + d.who + ' (' + d.at + ')' : '');
  }
  const rule = p.status_rule || 'impression';
  const ruleName = rule === 'impression' ? "fVLM's impression rule" : 'the findings rule';
  if (st.status === 'abnormal') {
    const ids = new Set(p.links.filter((l) => l.anatomy === a && l.accepted !== 0).map((l) => l.sentence_id));
    const ev = p.findings.filter((f) => f.anatomy === a && f.polarity !== 0 && ids.has(f.sentence_id) &&
      (rule !== 'impression' || (sentById(f.sentence_id) || {}).section === 'impression'));
    const where = [...new Set(ev.map((f) => '#' + (sentById(f.sentence_id).idx + 1) + ' ' + f.task))];
    return ruleName + ': a linked ' + (rule === 'impression' ? 'impression ' : '') +
      'sentence states a present or uncertain finding' + (where.length ? ' (' + where.join(', ') + ')' : '');
  }
  if (st.status === 'normal') return ruleName + ': the scan covers it and no linked ' +
    (rule === 'impression' ? 'impression ' : '') + 'sentence states a finding of it';
  return 'the scan does not cover it (no mask region)';
}

function tasksOf(a) { return S.onto.tasks.filter((t) => t.anatomy === a); }
const LABEL_WORD = { 1: 'present', 0: 'absent', '-1': 'uncertain' };

function renderAnatomies() {
  const ul = $('anatList');
  ul.textContent = '';
  const list = relevantAnatomies();
  if (!S.anat || !list.includes(S.anat)) S.anat = list[0] || null;
  for (const a of list) {
    const st = S.page.statuses.find((s) => s.anatomy === a);
    const li = el('li', a === S.anat ? 'sel' : '');
    li.style.background = colour(a);
    li.appendChild(el('span', null, anatName(a)));
    li.appendChild(el('span', 'st', st ? st.status : '—'));
    li.addEventListener('click', () => selectAnatomy(a, true));
    ul.appendChild(li);
  }
  renderDetail();
}

function renderDetail() {
  const box = $('anatDetail');
  box.textContent = '';
  const a = S.anat;
  if (!a) { box.appendChild(el('p', 'note', 'No anatomy in this study has a status, link or region yet.')); return; }
  const p = S.page;
  const st = p.statuses.find((s) => s.anatomy === a);
  box.appendChild(el('h3', null, anatName(a) + ' (' + a + ')'));
  // Status and why.
  const row = el('div', 'row');
  row.appendChild(el('span', 'label', 'status'));
  const btns = el('span', 'status-btns');
  ['normal', 'abnormal', 'unmentioned'].forEach((v, i) => {
    const b = el('button', st && st.status === v ? 'on' : '', (i + 1) + ' ' + v);
    b.addEventListener('click', () => decideStatus(v));
    btns.appendChild(b);
  });
  row.appendChild(btns);
  row.appendChild(el('div', 'why-line', statusWhy(a, st)));
  box.appendChild(row);
  // Region.
  const reg = p.regions.find((r) => r.anatomy === a);
  box.appendChild(el('div', 'row note', reg ? 'region: ' + reg.voxels + ' voxels, ' +
    Number(reg.volume_ml).toFixed(1) + ' ml, z [' + reg.z0 + ', ' + reg.z1 + ') y [' + reg.y0 + ', ' +
    reg.y1 + ') x [' + reg.x0 + ', ' + reg.x1 + ')' + (reg.whole ? '' : ', touches the border')
    : 'no mask region'));
  // Labels per task.
  const tasks = tasksOf(a);
  if (tasks.length) {
    const r2 = el('div', 'row');
    r2.appendChild(el('span', 'label', 'labels (t: next task; y present, x absent, u uncertain)'));
    const tb = el('table', 'tasks');
    tasks.forEach((t, i) => {
      const lab = p.labels.find((l) => l.task === t.id);
      const tr = el('tr', i === S.task ? 'sel' : '');
      tr.appendChild(el('td', null, t.en));
      const cell = el('td', 'label-btns');
      [['present', 1], ['absent', 0], ['uncertain', -1]].forEach(([w, v]) => {
        const b = el('button', lab && lab.value === v ? 'on' : '', w);
        b.addEventListener('click', () => { S.task = i; decideLabel(w); });
        cell.appendChild(b);
      });
      tr.appendChild(cell);
      tr.appendChild(el('td', 'src', lab ? (lab.source + (lab.rule ? ' · ' + lab.rule : '')) : 'not mentioned'));
      tr.addEventListener('click', () => { S.task = i; renderDetail(); });
      tb.appendChild(tr);
    });
    r2.appendChild(tb);
    box.appendChild(r2);
  }
  // The training text, exactly as `fvlm train` reads it.
  const smp = p.samples.find((s) => s.anatomy === a);
  const r3 = el('div', 'row');
  r3.appendChild(el('span', 'label', 'training text (samples.text: what fvlm train sees)'));
  if (smp) {
    r3.appendChild(el('div', 'train-text', smp.text));
    r3.appendChild(el('div', 'src', smp.status + ' · diseases ' + smp.diseases));
  } else {
    r3.appendChild(el('div', 'note', 'no training sample for this anatomy (unmentioned, no region, or not a trained anatomy)'));
  }
  box.appendChild(r3);
  // Link decisions a re-parse left behind (their sentence changed).
  if (p.stale && p.stale.length) {
    const rs = el('div', 'row');
    rs.appendChild(el('span', 'label', 'decisions on sentences that changed since (not applied: decide again)'));
    const ul = el('ul', 'note');
    for (const d of p.stale) {
      ul.appendChild(el('li', null, 'sentence #' + (d.key.sent + 1) + ' → ' + anatName(d.key.anatomy) + ': ' +
        d.new + ' (' + d.who + ')'));
    }
    rs.appendChild(ul);
    box.appendChild(rs);
  }
  // Disagreements between annotators on this study.
  if (p.conflicts && p.conflicts.length) {
    const rc = el('div', 'row');
    rc.appendChild(el('span', 'label', 'annotators disagree' + (S.me.role === 'lead' ? ' (your decision settles it)' : '')));
    const ul = el('ul', 'note');
    for (const c of p.conflicts) {
      ul.appendChild(el('li', null, c.kind + ' ' + JSON.stringify(c.key) + ': ' + c.votes +
        (c.settled ? ' (settled by a lead)' : '')));
    }
    rc.appendChild(ul);
    box.appendChild(rc);
  }
  // Decisions on this study.
  const mine = p.mine.filter((d) => !d.undoes && d.kind !== 'undo');
  if (p.decisions.length || mine.length) {
    const r4 = el('div', 'row');
    r4.appendChild(el('span', 'label', 'current decisions on this study'));
    const ul = el('ul', 'note');
    for (const d of p.decisions) {
      ul.appendChild(el('li', null, d.kind + ' ' + JSON.stringify(d.key) + ' → ' + d.new + ' (' + d.who +
        (d.role === 'lead' ? ', lead' : '') + ')' + (d.comment ? ' — ' + d.comment : '')));
    }
    r4.appendChild(ul);
    box.appendChild(r4);
  }
}

function render() {
  const p = S.page;
  $('studyTitle').textContent = 'study ' + p.study.id + ' · ' + String(p.study.study_key || '').slice(0, 12);
  $('reportMeta').textContent = [p.study.language, p.study.dataset, p.study.split,
    p.study.n_phi ? p.study.n_phi + ' PHI placeholders' : ''].filter(Boolean).join(' · ');
  renderSentences();
  renderAnatomies();
  renderFlags();
  const q = S.queue, done = q.filter((x) => x.done).length;
  $('queueInfo').textContent = q.length ? 'queue ' + (S.queuePos + 1) + '/' + q.length + ' · ' + done + ' done' : 'no queue';
}

async function reloadStudy() {
  S.page = await api('/api/study/' + S.studyId);
  if (S.sent >= S.page.sentences.length) S.sent = 0;
  render();
}

async function openStudy(id) {
  S.studyId = id;
  S.sent = 0; S.link = 0; S.task = 0; S.anat = null;
  const qi = S.queue.findIndex((q) => q.study_id === id);
  S.queuePos = qi >= 0 ? S.queue[qi].pos : -1;
  history.replaceState(null, '', '#study=' + id);
  await reloadStudy();
  if (S.viewer) {
    try {
      S.viewer.load(S.page);
      $('viewerNote').textContent = S.page.volume ? '' : 'This study has no volume.';
    } catch (e) { $('viewerNote').textContent = 'viewer: ' + e.message; }
  }
  selectSentence(0, 0);
}

function selectSentence(i, j) {
  if (!S.page || !S.page.sentences.length) return;
  S.sent = Math.max(0, Math.min(S.page.sentences.length - 1, i));
  const links = linksOf(S.page.sentences[S.sent].id);
  S.link = links.length ? ((j % links.length) + links.length) % links.length : 0;
  renderSentences();
  if (links.length) selectAnatomy(links[S.link].anatomy, true);
}

async function selectAnatomy(a, jump) {
  S.anat = a;
  S.task = 0;
  renderAnatomies();
  if (!S.viewer || !S.page.volume) return;
  try {
    S.viewer.showAnatomy(a);
    if (jump) {
      const c = await api('/api/study/' + S.studyId + '/centre?anatomy=' + encodeURIComponent(a));
      S.viewer.jumpTo(c);
    }
  } catch (e) { /* an anatomy without mask voxels or box: nowhere to jump */ }
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

function queueOrder() {
  const q = S.queue.find((x) => x.study_id === S.studyId);
  return q ? q.ord : null;
}

async function decide(d, what) {
  if (S.busy) return;
  S.busy = true;
  window.__fvlmBusy = true;  // tests wait for the page to settle
  try {
    await api('/api/decide', Object.assign({ study_id: S.studyId, queue: queueOrder() }, d));
    await reloadStudy();
    toast(what);
  } catch (e) {
    toast(e.message, true);
  } finally {
    S.busy = false;
    window.__fvlmBusy = false;
  }
}

function selectedLink() {
  const s = S.page.sentences[S.sent];
  if (!s) return null;
  return linksOf(s.id)[S.link] || null;
}

function decideLink(v) {
  const l = selectedLink();
  if (!l) { toast('this sentence has no link: add one with +', true); return; }
  decide({ kind: 'link', sentence_id: l.sentence_id, anatomy: l.anatomy, value: v },
    (v === 'accept' ? 'accepted ' : 'rejected ') + anatName(l.anatomy));
}

function decideStatus(v) {
  if (!S.anat) return;
  decide({ kind: 'status', anatomy: S.anat, value: v }, anatName(S.anat) + ': ' + v);
}

function decideLabel(w) {
  const t = tasksOf(S.anat || '')[S.task];
  if (!t) { toast('no task for this anatomy', true); return; }
  decide({ kind: 'label', task: t.id, value: w }, t.en + ': ' + w);
}

async function undo() {
  try {
    const r = await api('/api/undo', {});
    if (r.study_id !== S.studyId) await openStudy(r.study_id);
    else await reloadStudy();
    toast('undone');
  } catch (e) { toast(e.message, true); }
}

function openAdd() {
  const s = S.page.sentences[S.sent];
  if (!s) return;
  $('addSentence').textContent = s.text;
  const sel = $('addAnatomy');
  sel.textContent = '';
  const have = new Set(linksOf(s.id).filter((l) => l.accepted !== 0).map((l) => l.anatomy));
  for (const a of S.onto.anatomies) {
    if (have.has(a.id)) continue;
    const o = el('option', null, a.en + ' · ' + a.zh + ' (' + a.id + ')');
    o.value = a.id;
    sel.appendChild(o);
  }
  $('addDialog').showModal();
  sel.focus();
}
$('addForm').addEventListener('submit', (ev) => {
  ev.preventDefault();
  $('addDialog').close();
  const s = S.page.sentences[S.sent], a = $('addAnatomy').value;
  if (s && a) decide({ kind: 'link', sentence_id: s.id, anatomy: a, value: 'accept' }, 'linked ' + anatName(a));
});
$('addCancel').addEventListener('click', () => $('addDialog').close());

function openFlag() {
  const sel = $('flagKind');
  sel.textContent = '';
  for (const f of S.onto.flags) {
    const o = el('option', null, f.replace(/_/g, ' '));
    o.value = f;
    sel.appendChild(o);
  }
  $('flagComment').value = '';
  $('flagDialog').showModal();
}
$('flagForm').addEventListener('submit', (ev) => {
  ev.preventDefault();
  $('flagDialog').close();
  decide({ kind: 'flag', flag: $('flagKind').value, value: '1', comment: $('flagComment').value },
    'flagged ' + $('flagKind').value);
});
$('flagCancel').addEventListener('click', () => $('flagDialog').close());

// ---------------------------------------------------------------------------
// Queue, search, stats
// ---------------------------------------------------------------------------

async function loadQueue() { S.queue = await api('/api/queue'); }

async function nextStudy(dir) {
  await loadQueue();
  if (dir < 0) {
    const prev = S.queue.filter((q) => q.pos < S.queuePos).pop();
    if (prev) await openStudy(prev.study_id); else toast('start of the queue');
    return;
  }
  const r = await api('/api/next?after=' + S.queuePos);
  if (r.study_id) await openStudy(r.study_id);
  else toast('end of the queue: nothing left to audit');
}

async function markDone() {
  try {
    await api('/api/decide', { study_id: S.studyId, kind: 'done', value: '1', queue: queueOrder() });
    toast('study ' + S.studyId + ' done');
    await nextStudy(1);
  } catch (e) { toast(e.message, true); }
}

$('searchForm').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('searchBox').value.trim();
  if (!q) return;
  try {
    const r = await api('/api/search?q=' + encodeURIComponent(q));
    $('searchBox').value = '';  // an accession does not stay on the screen
    if (!r.length) { toast('no study matches', true); return; }
    await openStudy(r[0].study_id);
    // An accession or archive name may name several studies: say which.
    const ids = [...new Set(r.map((x) => x.study_id))];
    if (ids.length > 1) toast(ids.length + ' studies match (' + ids.join(', ') + '); showing ' + ids[0]);
    $('searchBox').blur();
  } catch (e) { toast(e.message, true); }
});

function table(head, rows) {
  const t = el('table');
  const tr = el('tr');
  head.forEach((h) => tr.appendChild(el('th', null, h)));
  t.appendChild(tr);
  rows.forEach((r) => {
    const x = el('tr');
    r.forEach((c) => x.appendChild(el('td', null, c)));
    t.appendChild(x);
  });
  return t;
}

const fmt = (v) => (v === null || v === undefined ? '—' : Number(v).toFixed(3));

async function showStats() {
  try {
    const s = await api('/api/stats');
    const b = $('statsBody');
    b.textContent = '';
    b.appendChild(el('h3', null, 'Decisions per annotator and day'));
    b.appendChild(table(['day', 'annotator', 'decisions'], s.per_day.map((r) => [r.day, r.who, r.decisions])));
    b.appendChild(el('h3', null, "Agreement (Cohen's kappa, items two annotators decided)"));
    b.appendChild(table(['kind', 'items', 'agree', 'kappa'], s.agreement.map((r) => [r.kind, r.items, r.agree, fmt(r.kappa)])));
    b.appendChild(el('h3', null, 'Precision from the random sample (' + s.sample_studies + ' studies reviewed whole; 95% Wilson interval)'));
    for (const [k, title] of [['link_precision_by_anatomy', 'links per anatomy'], ['link_precision_by_rule', 'links per rule'], ['label_precision_by_task', 'labels per task']]) {
      b.appendChild(el('h4', null, title));
      b.appendChild(table(['', 'correct / n', 'precision', '95% CI'], s[k].map((r) => [r.name, r.correct + ' / ' + r.n, fmt(r.precision), '[' + fmt(r.lo) + ', ' + fmt(r.hi) + ']'])));
    }
    b.appendChild(el('h3', null, 'Remaining'));
    b.appendChild(table(['annotator', 'queued', 'done'], s.remaining.map((r) => [r.who, r.queued, r.done])));
    b.appendChild(el('p', null, s.never_audited + ' of ' + s.studies + ' studies never audited.'));
    $('statsPage').hidden = false;
    $('work').hidden = true;
  } catch (e) { toast(e.message, true); }
}
function closeStats() { $('statsPage').hidden = true; $('work').hidden = false; }
$('btnStatsClose').addEventListener('click', closeStats);

// ---------------------------------------------------------------------------
// Keyboard
// ---------------------------------------------------------------------------

const KEYS = [
  ['j / k', 'next / previous sentence', () => selectSentence(S.sent + 1, 0), () => selectSentence(S.sent - 1, 0)],
  ['l / h', 'next / previous link of the sentence', () => selectSentence(S.sent, S.link + 1), () => selectSentence(S.sent, S.link - 1)],
  ['a', 'accept the selected link', () => decideLink('accept')],
  ['r', 'reject the selected link', () => decideLink('reject')],
  ['+', 'add a link from the sentence to another anatomy', () => openAdd()],
  ['1 / 2 / 3', "set the selected anatomy's status: normal / abnormal / unmentioned"],
  ['t / T', 'next / previous task of the selected anatomy', () => { S.task = (S.task + 1) % Math.max(1, tasksOf(S.anat || '').length); renderDetail(); },
    () => { const n = Math.max(1, tasksOf(S.anat || '').length); S.task = (S.task + n - 1) % n; renderDetail(); }],
  ['y / x / u', "set the selected task's label: present / absent / uncertain"],
  ['f', 'flag the study (PHI seen, wrong series, bad mask, not CT) with a comment', () => openFlag()],
  ['z', 'undo my last decision', () => undo()],
  ['c', "jump the viewer to the selected anatomy's centre", () => selectAnatomy(S.anat, true)],
  ['Enter', 'mark the study reviewed (done) and open the next', () => markDone()],
  ['n / p', 'next / previous study of my queue', () => nextStudy(1), () => nextStudy(-1)],
  ['/', 'search by study id, key or accession', () => $('searchBox').focus()],
  ['g', 'statistics', () => showStats()],
  ['?', 'this list', () => $('helpDialog').showModal()],
  ['Esc', 'close a dialog or the statistics', () => closeStats()],
];

function fillHelp() {
  const t = $('helpTable');
  t.textContent = '';
  const viewerKeys = S.viewer && S.viewer.constructor.KEYS ? S.viewer.constructor.KEYS : [];
  for (const [k, what] of KEYS.concat(viewerKeys.map(([vk, vw]) => [vk, 'viewer: ' + vw]))) {
    const tr = el('tr');
    const td = el('td');
    td.appendChild(el('kbd', null, k));
    tr.appendChild(td);
    tr.appendChild(el('td', null, what));
    t.appendChild(tr);
  }
}

document.addEventListener('keydown', (ev) => {
  if (!S.me || !S.page) return;
  const tag = (ev.target && ev.target.tagName) || '';
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') {
    if (ev.key === 'Escape') ev.target.blur();
    return;
  }
  if (document.querySelector('dialog[open]')) return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key;
  const act = {
    j: () => selectSentence(S.sent + 1, 0), k: () => selectSentence(S.sent - 1, 0),
    l: () => selectSentence(S.sent, S.link + 1), h: () => selectSentence(S.sent, S.link - 1),
    a: () => decideLink('accept'), r: () => decideLink('reject'), '+': openAdd, '=': openAdd,
    1: () => decideStatus('normal'), 2: () => decideStatus('abnormal'), 3: () => decideStatus('unmentioned'),
    t: KEYS[6][2], T: KEYS[6][3],
    y: () => decideLabel('present'), x: () => decideLabel('absent'), u: () => decideLabel('uncertain'),
    f: openFlag, z: undo, c: () => selectAnatomy(S.anat, true), Enter: markDone,
    n: () => nextStudy(1), p: () => nextStudy(-1), '/': () => $('searchBox').focus(),
    g: showStats, '?': () => $('helpDialog').showModal(), Escape: closeStats,
  }[k];
  if (act) {
    ev.preventDefault();
    act();
  }
});

$('btnNext').addEventListener('click', () => nextStudy(1));
$('btnPrev').addEventListener('click', () => nextStudy(-1));
$('btnDone').addEventListener('click', markDone);
$('btnUndo').addEventListener('click', undo);
$('btnStats').addEventListener('click', showStats);
$('btnHelp').addEventListener('click', () => $('helpDialog').showModal());

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

async function mountViewer() {
  if (S.viewer) return;
  try {
    const mod = await import('/static/viewer.js');
    S.viewer = new mod.Viewer();
    S.viewer.mount($('viewer'));
    window.__fvlmViewer = S.viewer;  // tests read its state
  } catch (e) {
    $('viewerNote').textContent = 'The CT viewer could not be loaded: ' + e.message;
  }
}

async function start() {
  $('login').hidden = true;
  $('top').hidden = false;
  $('work').hidden = false;
  $('whoami').textContent = S.me.name + ' (' + S.me.role + ')';
  if (!S.me.accession_search) $('searchBox').placeholder = 'study id or key  ( / )';
  S.onto = await api('/api/ontology');
  S.onto.anatomies.forEach((a, i) => S.anatIndex.set(a.id, i));
  await mountViewer();
  fillHelp();
  await loadQueue();
  const m = /#study=(\d+)/.exec(location.hash);
  if (m) { await openStudy(Number(m[1])); return; }
  const r = await api('/api/next?after=-1');
  if (r.study_id) await openStudy(r.study_id);
  else if (S.queue.length) await openStudy(S.queue[0].study_id);
  else {
    $('sentences').textContent = '';
    $('sentences').appendChild(el('li', 'note', 'Your queue is empty: ask the lead to run fvlm audit queue, or search for a study ( / ).'));
  }
}

(async () => {
  try {
    S.me = await api('/api/me');
    await start();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) toast(e.message, true);
    showLogin();
  }
})();
