// viewer.js: the CT viewer of the fvlm audit page. An ES module, no
// framework, nothing fetched but the server's own slice PNGs.
//
// API (for app.js):
//   import { Viewer } from '/static/viewer.js';
//   const v = new Viewer();
//   v.mount(el)          builds the toolbar and three panes (axial, coronal,
//                        sagittal) inside el; listens to the keyboard.
//   v.load(page)         a study: the /api/study/ID answer ({study: {id},
//                        volume: {nz, ny, nx, sz, sy, sx, mask} | null}) or
//                        {id, dims: [nz, ny, nx], spacing: [sz, sy, sx]}.
//                        The cursor goes to the volume's middle; the window
//                        and overlay stay; the anatomy is cleared. A study
//                        without a volume empties the panes.
//   v.showAnatomy(id)    overlays that anatomy (ontology id; null: none).
//   v.jumpTo(c)          moves the cursor, and so all three slices, to the
//                        voxel c: {z, y, x} (the /centre answer) or [z, y, x].
//   v.setWindow(wc, ww)  HU; v.setPreset('lung' | 'mediastinum' | 'bone').
//   v.setOverlay('none' | 'outline' | 'fill').
//   v.state()            {study, dims, cursor: {z, y, x}, wc, ww, preset,
//                        overlay, anatomy, active}.
//   v.unmount()          removes the panes and the key listener.
//   Viewer.KEYS          [[keys, what it does], ...] for the page's help.
// Events, dispatched on el: 'fv-slice' with detail {plane, index, url} when a
// pane shows a new slice (the <img class="fv-img" data-plane data-index> is
// then loaded: tests wait for it); 'fv-error' with detail {plane, message}.
//
// Geometry (audit/render.h): voxel arrays are (z, y, x) in RAS (x toward the
// patient's right, y anterior, z superior); the server draws slices in the
// radiological convention, every image axis running against its voxel axis:
//   axial    i = z, columns x (patient's right on the left), rows y (anterior up)
//   coronal  i = y, columns x, rows z (superior up)
//   sagittal i = x, columns y (anterior on the left), rows z
// Pixels are square in mm, so an image's aspect is its physical extent's, and
// voxel u of n along an image axis is at fraction (n - u - 0.5) / n of it.
// Slices: wheel or arrow keys step one slice (wheel down, ↓, ←: index - 1,
// toward inferior, posterior, patient's left), PgUp / PgDn ten. The keys act
// on the active pane: the last one the mouse was over or clicked. Right-drag
// sets the window (horizontal: width, vertical: centre); w and o cycle the
// window presets and the overlays.

const PLANES = [
  // plane, its normal axis, column axis, row axis (indices into z y x), edge letters
  { name: 'axial', n: 0, u: 2, v: 1, edges: ['A', 'P', 'R', 'L'] },
  { name: 'coronal', n: 1, u: 2, v: 0, edges: ['S', 'I', 'R', 'L'] },
  { name: 'sagittal', n: 2, u: 1, v: 0, edges: ['S', 'I', 'A', 'P'] },
];
const AXES = ['z', 'y', 'x'];
const PRESETS = { lung: [-600, 1500], mediastinum: [40, 400], bone: [500, 2000] };
const OVERLAYS = ['none', 'outline', 'fill'];
const PAGE_STEP = 10;
const PREFETCH = 2; // slices fetched ahead in the direction the user is stepping
const CACHE_SLICES = 40; // decoded-ready slices kept per pane (object URLs)
const WHEEL_PX = 50; // pixels of wheel travel per slice (touchpads send many small deltas)

function make(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

export class Viewer {
  constructor() {
    this.root = null;
    this.study = null; // study id
    this.dims = null; // [nz, ny, nx]
    this.spacing = null; // mm [sz, sy, sx]
    this.cursor = [0, 0, 0]; // voxel (z, y, x)
    this.wc = PRESETS.lung[0];
    this.ww = PRESETS.lung[1];
    this.preset = 'lung';
    this.overlay = 'outline';
    this.anatomy = null;
    this.active = 0; // index into PLANES
    this.panes = [];
    this.onKey = (ev) => this.key(ev);
  }

  static get KEYS() {
    return [
      ['wheel, ↑ / ↓, → / ←', 'next / previous slice in the pane under the mouse'],
      ['PgUp / PgDn', 'ten slices on / back'],
      ['click', 'move the other panes to the point clicked'],
      ['right-drag', 'window: right / left widens / narrows, up / down raises / lowers the centre'],
      ['w', 'next window preset (lung, mediastinum, bone)'],
      ['o', 'next overlay (none, outline, fill)'],
    ];
  }

  // ------------------------------------------------------------ building

  mount(el) {
    this.unmount();
    this.root = el;
    el.classList.add('fv-viewer');
    const bar = make('div', 'fv-toolbar');
    bar.setAttribute('role', 'toolbar');
    bar.setAttribute('aria-label', 'viewer settings');

    const win = make('span', 'fv-group');
    win.appendChild(make('span', 'fv-label', 'window'));
    this.presetButtons = {};
    for (const p of Object.keys(PRESETS)) {
      const b = make('button', 'fv-btn', p);
      b.type = 'button';
      b.title = `${p}: centre ${PRESETS[p][0]}, width ${PRESETS[p][1]} HU`;
      // blur: keys typed next (Enter, Space) are the page's shortcuts, not a second click
      b.addEventListener('click', () => { this.setPreset(p); b.blur(); });
      this.presetButtons[p] = b;
      win.appendChild(b);
    }
    this.wcInput = this.numberInput('centre', 'window centre, HU');
    this.wwInput = this.numberInput('width', 'window width, HU');
    this.wwInput.min = '1';
    const apply = () => {
      const wc = Number(this.wcInput.value), ww = Number(this.wwInput.value);
      if (Number.isFinite(wc) && Number.isFinite(ww) && ww >= 1) this.setWindow(wc, ww);
      else this.syncToolbar();
    };
    for (const i of [this.wcInput, this.wwInput]) {
      i.addEventListener('change', apply);
      i.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { apply(); i.blur(); } });
      win.appendChild(i);
    }
    bar.appendChild(win);

    const ov = make('span', 'fv-group');
    ov.appendChild(make('span', 'fv-label', 'overlay'));
    this.overlayButtons = {};
    for (const o of OVERLAYS) {
      const b = make('button', 'fv-btn', o);
      b.type = 'button';
      b.addEventListener('click', () => { this.setOverlay(o); b.blur(); });
      this.overlayButtons[o] = b;
      ov.appendChild(b);
    }
    bar.appendChild(ov);
    this.anatLabel = make('span', 'fv-anatomy');
    bar.appendChild(this.anatLabel);
    el.appendChild(bar);

    const grid = make('div', 'fv-panes');
    this.panes = PLANES.map((p, k) => this.makePane(p, k, grid));
    el.appendChild(grid);
    document.addEventListener('keydown', this.onKey);
    this.syncToolbar();
    this.drawAll();
  }

  numberInput(placeholder, label) {
    const i = make('input', 'fv-num');
    i.type = 'number';
    i.step = '1';
    i.placeholder = placeholder;
    i.setAttribute('aria-label', label);
    return i;
  }

  makePane(p, k, grid) {
    const fig = make('figure', 'fv-pane fv-' + p.name);
    fig.tabIndex = -1;
    const frame = make('div', 'fv-frame');
    const img = make('img', 'fv-img');
    img.alt = p.name + ' slice';
    img.dataset.plane = p.name;
    img.draggable = false;
    const ch = make('div', 'fv-cross fv-cross-h');
    const cv = make('div', 'fv-cross fv-cross-v');
    frame.append(img, ch, cv);
    const [top, bottom, left, right] = p.edges;
    for (const [cls, t] of [['fv-e-top', top], ['fv-e-bottom', bottom], ['fv-e-left', left], ['fv-e-right', right]])
      frame.appendChild(make('span', 'fv-edge ' + cls, t));
    const cap = make('figcaption', 'fv-caption');
    fig.append(frame, cap);
    grid.appendChild(fig);
    const pane = {
      p, k, fig, frame, img, ch, cv, cap, shown: null, want: null, busy: false, wheel: 0,
      cache: new Map(), // request URL -> object URL, oldest first
      inflight: new Map(), // request URL -> promise of its object URL
      dir: 0, // -1, 0 or +1: the direction of the last step, for prefetching
      prefetching: false,
    };
    fig.addEventListener('mouseenter', () => this.setActive(k));
    frame.addEventListener('click', (ev) => this.click(pane, ev));
    frame.addEventListener('wheel', (ev) => this.wheel(pane, ev), { passive: false });
    frame.addEventListener('contextmenu', (ev) => ev.preventDefault());
    frame.addEventListener('mousedown', (ev) => this.dragStart(pane, ev));
    return pane;
  }

  unmount() {
    document.removeEventListener('keydown', this.onKey);
    for (const pane of this.panes) this.cacheClear(pane);
    this.panes = [];
    if (this.root) {
      this.root.textContent = '';
      this.root.classList.remove('fv-viewer');
    }
    this.root = null;
  }

  // ------------------------------------------------------------ public API

  load(page) {
    let id = null, dims = null, spacing = null;
    if (page && page.volume !== undefined) {
      id = page.study ? page.study.id : page.id;
      const v = page.volume;
      if (v) { dims = [v.nz, v.ny, v.nx]; spacing = [v.sz, v.sy, v.sx]; }
    } else if (page) {
      id = page.id;
      dims = page.dims || null;
      spacing = page.spacing || null;
    }
    const ok = (a) => Array.isArray(a) && a.length === 3 && a.every((x) => Number.isFinite(x) && x > 0);
    this.study = id;
    this.anatomy = null;
    if (id === null || id === undefined || !ok(dims) || !ok(spacing)) {
      this.dims = this.spacing = null;
    } else {
      this.dims = dims.map((x) => Math.floor(x));
      this.spacing = spacing.slice();
      this.cursor = this.dims.map((n) => Math.floor(n / 2));
    }
    for (const pane of this.panes) {
      pane.shown = null;
      pane.want = null;
      pane.dir = 0;
      this.cacheClear(pane);
    }
    this.syncToolbar();
    this.drawAll();
  }

  showAnatomy(id) {
    this.anatomy = id ? String(id) : null;
    this.syncToolbar();
    this.drawAll();
  }

  jumpTo(c) {
    if (!this.dims || !c) return;
    const v = Array.isArray(c) ? c : [c.z, c.y, c.x];
    if (!v.every((x) => Number.isFinite(Number(x)))) return;
    this.cursor = v.map((x, i) => clamp(Math.round(Number(x)), 0, this.dims[i] - 1));
    for (const pane of this.panes) pane.dir = 0;
    this.drawAll();
  }

  setWindow(wc, ww) {
    if (!Number.isFinite(wc) || !Number.isFinite(ww) || ww < 1) return;
    this.wc = wc;
    this.ww = ww;
    this.preset = Object.keys(PRESETS).find((p) => PRESETS[p][0] === wc && PRESETS[p][1] === ww) || null;
    this.syncToolbar();
    this.drawAll();
  }

  setPreset(name) {
    if (PRESETS[name]) this.setWindow(PRESETS[name][0], PRESETS[name][1]);
  }

  setOverlay(o) {
    if (!OVERLAYS.includes(o)) return;
    this.overlay = o;
    this.syncToolbar();
    this.drawAll();
  }

  state() {
    const [z, y, x] = this.cursor;
    return {
      study: this.study, dims: this.dims, cursor: { z, y, x }, wc: this.wc, ww: this.ww,
      preset: this.preset, overlay: this.overlay, anatomy: this.anatomy, active: PLANES[this.active].name,
    };
  }

  // ------------------------------------------------------------ input

  setActive(k) {
    this.active = k;
    this.panes.forEach((pane) => pane.fig.classList.toggle('fv-active', pane.k === k));
  }

  step(k, delta) {
    if (!this.dims) return;
    const n = PLANES[k].n;
    this.cursor[n] = clamp(this.cursor[n] + delta, 0, this.dims[n] - 1);
    if (this.panes[k]) this.panes[k].dir = Math.sign(delta);
    this.drawAll();
  }

  wheel(pane, ev) {
    if (!this.dims) return;
    ev.preventDefault();
    this.setActive(pane.k);
    // lines or pages (deltaMode 1, 2) count one slice each; pixels accumulate
    if (ev.deltaMode !== 0) pane.wheel = Math.sign(ev.deltaY) * WHEEL_PX;
    else pane.wheel += ev.deltaY;
    const steps = Math.trunc(pane.wheel / WHEEL_PX);
    if (steps) {
      pane.wheel -= steps * WHEEL_PX;
      this.step(pane.k, -steps);
    }
  }

  click(pane, ev) {
    if (!this.dims) return;
    this.setActive(pane.k);
    const r = pane.img.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return;
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    if (fx < 0 || fx > 1 || fy < 0 || fy > 1) return;
    const { u, v } = pane.p;
    // fraction f of an axis of n voxels shows voxel n - 1 - floor(f * n)
    this.cursor[u] = clamp(this.dims[u] - 1 - Math.floor(fx * this.dims[u]), 0, this.dims[u] - 1);
    this.cursor[v] = clamp(this.dims[v] - 1 - Math.floor(fy * this.dims[v]), 0, this.dims[v] - 1);
    for (const q of this.panes) q.dir = 0;
    this.drawAll();
  }

  // Right-drag sets the window as on a reading workstation: horizontal
  // travel the width, vertical the centre (up: brighter, a lower centre),
  // in steps that scale with the width the drag started from.
  dragStart(pane, ev) {
    if (ev.button !== 2 || !this.dims) return;
    ev.preventDefault();
    const start = { x: ev.clientX, y: ev.clientY, wc: this.wc, ww: this.ww };
    const k = Math.max(1, start.ww / 200); // HU per pixel of travel
    const move = (e) => {
      const ww = Math.max(1, Math.round(start.ww + (e.clientX - start.x) * 2 * k));
      const wc = Math.round(start.wc + (e.clientY - start.y) * k);
      if (ww !== this.ww || wc !== this.wc) this.setWindow(wc, ww);
    };
    const up = () => {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
    };
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
  }

  key(ev) {
    if (!this.root || !this.dims || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const tag = (t && t.tagName) || '';
    if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (t && t.isContentEditable)) return;
    if (document.querySelector('dialog[open]')) return;
    const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: PAGE_STEP, PageDown: -PAGE_STEP };
    if (ev.key in steps) {
      ev.preventDefault();
      this.step(this.active, steps[ev.key]);
    } else if (ev.key === 'w') {
      ev.preventDefault();
      const names = Object.keys(PRESETS);
      this.setPreset(names[(names.indexOf(this.preset) + 1) % names.length]);
    } else if (ev.key === 'o') {
      ev.preventDefault();
      this.setOverlay(OVERLAYS[(OVERLAYS.indexOf(this.overlay) + 1) % OVERLAYS.length]);
    }
  }

  // ------------------------------------------------------------ drawing

  syncToolbar() {
    if (!this.root) return;
    for (const [p, b] of Object.entries(this.presetButtons)) b.setAttribute('aria-pressed', String(p === this.preset));
    for (const [o, b] of Object.entries(this.overlayButtons)) b.setAttribute('aria-pressed', String(o === this.overlay));
    if (document.activeElement !== this.wcInput) this.wcInput.value = String(this.wc);
    if (document.activeElement !== this.wwInput) this.wwInput.value = String(this.ww);
    this.anatLabel.textContent = this.anatomy ? 'anatomy: ' + this.anatomy : 'no anatomy selected';
    this.root.classList.toggle('fv-empty', !this.dims);
  }

  sliceUrl(p, index) {
    const q = new URLSearchParams({
      plane: p.name, i: String(index), wc: String(this.wc), ww: String(this.ww),
      overlay: this.anatomy ? this.overlay : 'none',
    });
    if (this.anatomy) q.set('anatomy', this.anatomy);
    return '/api/study/' + encodeURIComponent(String(this.study)) + '/slice?' + q.toString();
  }

  drawAll() {
    for (const pane of this.panes) this.draw(pane);
  }

  draw(pane) {
    const { p } = pane;
    if (!this.dims) {
      pane.img.removeAttribute('src');
      pane.img.hidden = true;
      pane.ch.hidden = pane.cv.hidden = true;
      pane.cap.textContent = p.name;
      pane.frame.style.aspectRatio = '';
      return;
    }
    const d = this.dims, s = this.spacing;
    pane.img.hidden = false;
    pane.frame.style.aspectRatio = `${d[p.u] * s[p.u]} / ${d[p.v] * s[p.v]}`;
    // the crosshair: the cursor's two in-plane coordinates
    const fu = (d[p.u] - this.cursor[p.u] - 0.5) / d[p.u], fv = (d[p.v] - this.cursor[p.v] - 0.5) / d[p.v];
    pane.cv.style.left = (100 * fu).toFixed(3) + '%';
    pane.ch.style.top = (100 * fv).toFixed(3) + '%';
    pane.ch.hidden = pane.cv.hidden = false;
    const index = this.cursor[p.n];
    pane.cap.textContent = `${p.name} ${AXES[p.n]} ${index + 1} / ${d[p.n]}`;
    pane.want = { url: this.sliceUrl(p, index), index };
    this.fetchSlice(pane);
  }

  // ------------------------------------------------------------ fetching

  cacheClear(pane) {
    for (const url of pane.cache.values()) URL.revokeObjectURL(url);
    pane.cache.clear();
  }

  cachePut(pane, key, url) {
    pane.cache.set(key, url);
    while (pane.cache.size > CACHE_SLICES) {
      // the oldest; revoking a URL does not blank an image already decoded from it
      const [k0, u0] = pane.cache.entries().next().value;
      pane.cache.delete(k0);
      URL.revokeObjectURL(u0);
    }
  }

  // The slice at url as an object URL: from the pane's cache, or fetched and
  // cached. A server error becomes an Error carrying the server's message.
  async sliceObjectUrl(pane, url) {
    const hit = pane.cache.get(url);
    if (hit) {
      pane.cache.delete(url); // most recently used goes last
      pane.cache.set(url, hit);
      return hit;
    }
    let pending = pane.inflight.get(url); // a prefetch of this very slice
    if (!pending) {
      pending = (async () => {
        const r = await fetch(url, { credentials: 'same-origin' });
        if (!r.ok) {
          let msg = r.status + ' ' + r.statusText;
          try { const j = await r.json(); if (j && j.error) msg = j.error; } catch (e) { /* not JSON */ }
          throw new Error(msg);
        }
        const obj = URL.createObjectURL(await r.blob());
        this.cachePut(pane, url, obj);
        return obj;
      })();
      pane.inflight.set(url, pending);
      pending.then(() => pane.inflight.delete(url), () => pane.inflight.delete(url));
    }
    return pending;
  }

  // One request per pane at a time: while one is out, later wishes replace
  // each other and only the last is asked for (a fast wheel costs no more
  // requests than the server can answer). A slice already fetched (stepped
  // back to, or prefetched) is shown without a request.
  async fetchSlice(pane) {
    if (pane.busy || !pane.want || (pane.shown && pane.shown.url === pane.want.url)) return;
    const want = pane.want;
    pane.busy = true;
    pane.fig.classList.add('fv-loading');
    let ok = false;
    try {
      const url = await this.sliceObjectUrl(pane, want.url);
      await new Promise((done, fail) => {
        pane.img.onload = done;
        pane.img.onerror = () => fail(new Error('the slice image cannot be decoded'));
        pane.img.src = url;
      });
      pane.shown = want;
      pane.img.dataset.index = String(want.index);
      pane.fig.classList.remove('fv-failed');
      ok = true;
      if (this.root) this.root.dispatchEvent(new CustomEvent('fv-slice', { detail: { plane: pane.p.name, index: want.index, url: want.url } }));
    } catch (e) {
      pane.shown = want; // do not retry the same request in a loop
      pane.fig.classList.add('fv-failed');
      pane.cap.textContent = `${pane.p.name}: ${e.message}`;
      if (this.root) this.root.dispatchEvent(new CustomEvent('fv-error', { detail: { plane: pane.p.name, message: e.message } }));
    } finally {
      pane.busy = false;
      pane.fig.classList.remove('fv-loading');
    }
    if (pane.want && pane.want !== want) this.fetchSlice(pane);
    else if (ok) this.prefetch(pane);
  }

  // After a step, the next PREFETCH slices the same way, one at a time and
  // only while the pane has nothing of its own to fetch.
  async prefetch(pane) {
    if (pane.prefetching || !pane.dir || !this.dims) return;
    pane.prefetching = true;
    try {
      const n = pane.p.n;
      for (let d = 1; d <= PREFETCH; d++) {
        const index = this.cursor[n] + pane.dir * d;
        if (index < 0 || index >= this.dims[n] || pane.busy) break;
        const url = this.sliceUrl(pane.p, index);
        if (!pane.cache.has(url)) await this.sliceObjectUrl(pane, url);
      }
    } catch (e) {
      /* a prefetch that fails is retried, with its message, when shown */
    } finally {
      pane.prefetching = false;
    }
  }
}
