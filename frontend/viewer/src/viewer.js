// The viewer UI shell: toolbar, series thumbnails, panes, overlays, key images and the
// public API object. It has no Cornerstone imports: the imaging engine (engine.js) is
// fetched with import() in parallel with the study's series list and thumbnails.
import { makeLabels, format } from './labels.js';
import { WL_PRESETS, PRESET_MODALITIES } from './presets.js';
import { DicomWebClient, buildStack, defaultFps, str, formatDate, TAG } from './dicomweb.js';

const NON_IMAGE_MODALITIES = new Set(['SR', 'KO', 'PR', 'DOC', 'REG', 'RTSTRUCT', 'RTPLAN', 'RTRECORD', 'SEG', 'FID', 'ECG']);
const EVENTS = ['viewportchange', 'measurementschange', 'keyimageschange', 'serieschange', 'ready', 'error'];

let engineModulePromise = null;
function loadEngineModule() {
  if (!engineModulePromise) engineModulePromise = import('./engine.js');
  return engineModulePromise;
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Next animation frame, or 100 ms later in a background tab (where rAF is paused). */
function nextFrame() {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 100);
    requestAnimationFrame(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

function keyOf(f) {
  return `${f.seriesUid}|${f.sopUid}|${f.frame || 1}`;
}

function fmtNumber(v, digits = 1) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–';
}

/** One-line text for a measurement record (also used in the side list). */
export function measurementText(m, L) {
  const s = m.stats || {};
  if (m.type === 'length') return s.length !== undefined ? `${fmtNumber(s.length)} ${s.unit || 'mm'}` : '';
  if (m.type === 'angle') return s.angle !== undefined ? `${fmtNumber(s.angle)}°` : '';
  const parts = [];
  if (s.area !== undefined) parts.push(`${L.area} ${fmtNumber(s.area)} ${s.areaUnit || ''}`.trim());
  if (s.mean !== undefined) parts.push(`${L.mean} ${fmtNumber(s.mean)}${s.unit ? ` ${s.unit}` : ''}`);
  if (s.stdDev !== undefined) parts.push(`${L.stdDev} ${fmtNumber(s.stdDev)}`);
  return parts.join(', ');
}

/**
 * A viewing area showing one stack of one study: the main study ("main") or a prior
 * ("prior") next to it.
 */
class Pane {
  constructor(viewer, id, studyUid, priorLabel) {
    this.viewer = viewer;
    this.id = id;
    this.studyUid = studyUid;
    this.priorLabel = priorLabel || '';
    this.series = null; // QIDO results
    this.seriesError = null;
    this.seriesUid = null;
    this.frames = [];
    this.frameIds = new Set();
    this.indexByKey = new Map();
    this.loadedIds = new Set();
    this.thumbs = null;
    this.studyInfo = {};
    this.fps = null;
    this.fpsTouched = false;
    this.loadToken = 0;
    this.rendered = false;
    this.stackShown = false;
    this.metadataCache = new Map();
    const L = viewer.labels;

    this.viewportEl = h('div', { class: 'tv-viewport', tabindex: '0', 'aria-label': L.viewer });
    this.placeholder = h('img', { class: 'tv-placeholder', alt: '', hidden: true });
    this.overlay = {
      tl: h('div', { class: 'tv-ov tv-ov-tl' }),
      tr: h('div', { class: 'tv-ov tv-ov-tr' }),
      bl: h('div', { class: 'tv-ov tv-ov-bl' }),
      br: h('div', { class: 'tv-ov tv-ov-br' }),
    };
    this.statusEl = h('div', { class: 'tv-status', role: 'status', 'aria-live': 'polite' });
    this.keyBadge = h('div', { class: 'tv-key-badge', hidden: true, text: `★ ${L.keyImage}` });
    this.closeBtn =
      id === 'prior'
        ? h('button', { type: 'button', class: 'tv-close', title: L.closeCompare, 'aria-label': L.closeCompare, text: '×', onclick: () => viewer.closePrior() })
        : null;
    this.el = h(
      'div',
      { class: 'tv-pane', dataset: { pane: id } },
      this.viewportEl,
      this.placeholder,
      Object.values(this.overlay),
      this.keyBadge,
      this.statusEl,
      this.closeBtn,
    );
    this.el.addEventListener('pointerdown', () => viewer.setActivePane(this), true);
    this.viewportEl.addEventListener('contextmenu', (e) => e.preventDefault());
    this.viewportEl.addEventListener('keydown', (e) => viewer.onKey(this, e));
    this.viewportEl.addEventListener('focus', () => viewer.setActivePane(this));
  }

  status(text) {
    this.statusEl.textContent = text || '';
    this.statusEl.hidden = !text;
  }

  async loadSeriesList() {
    const { client, labels: L } = this.viewer;
    try {
      this.series = await client.searchSeries(this.studyUid);
      if (!this.series.length) this.status(L.noSeries);
    } catch (error) {
      this.series = [];
      this.seriesError = error;
      this.status(L.loadFailed);
      this.viewer.emit('error', { pane: this.id, error: String(error) });
    }
    if (this.viewer.activePane === this) this.viewer.renderThumbnails();
    return this.series;
  }

  firstImageSeries(preferred) {
    const list = (this.series || []).filter((s) => !NON_IMAGE_MODALITIES.has(s.modality));
    if (!list.length) return this.series?.[0];
    if (preferred) {
      const byDesc = list.find((s) => s.modality === preferred.modality && s.description && s.description === preferred.description);
      if (byDesc) return byDesc;
      const byMod = list.find((s) => s.modality === preferred.modality);
      if (byMod) return byMod;
    }
    return list[0];
  }

  seriesInfo(seriesUid) {
    return (this.series || []).find((s) => s.seriesUid === seriesUid);
  }

  async metadata(seriesUid) {
    if (!this.metadataCache.has(seriesUid)) {
      const p = this.viewer.client.seriesMetadata(this.studyUid, seriesUid);
      this.metadataCache.set(seriesUid, p);
      p.catch(() => this.metadataCache.delete(seriesUid));
    }
    return this.metadataCache.get(seriesUid);
  }

  /**
   * Open a series: fetch its metadata, show the server-rendered JPEG of the first image
   * as a placeholder, then the real stack as soon as the engine is there.
   */
  async loadSeries(seriesUid, { index = 0, sopUid, frame, fraction } = {}) {
    const viewer = this.viewer;
    const L = viewer.labels;
    const token = ++this.loadToken;
    this.seriesUid = seriesUid;
    this.frames = [];
    this.frameIds = new Set();
    this.stackShown = false;
    this.rendered = false;
    this.loadedIds = new Set();
    this.placeholder.hidden = true;
    if (viewer.activePane === this) viewer.renderThumbnails();
    this.status(L.loading);
    let instances;
    try {
      instances = await this.metadata(seriesUid);
    } catch (error) {
      if (token === this.loadToken) this.status(L.loadFailed);
      viewer.emit('error', { pane: this.id, error: String(error) });
      return false;
    }
    if (token !== this.loadToken) return false;
    const frames = buildStack(viewer.client, this.studyUid, seriesUid, instances);
    if (!frames.length) {
      this.status(L.unsupported);
      return false;
    }
    this.frames = frames;
    this.frameIds = new Set(frames.map((f) => f.imageId));
    this.indexByKey = new Map(frames.map((f, i) => [keyOf(f), i]));
    const first = frames[0].meta;
    this.studyInfo = {
      date: str(first, TAG.StudyDate),
      description: str(first, TAG.StudyDescription),
      patientName: str(first, TAG.PatientName),
      patientId: str(first, TAG.PatientID),
      modality: str(first, TAG.Modality),
      seriesDescription: str(first, TAG.SeriesDescription),
      seriesNumber: str(first, TAG.SeriesNumber),
    };
    if (!this.fpsTouched) this.fps = defaultFps(first);
    let start = index;
    if (typeof fraction === 'number' && Number.isFinite(fraction)) start = Math.round(fraction * (frames.length - 1));
    if (sopUid) {
      const i = this.indexByKey.get(`${seriesUid}|${sopUid}|${frame || 1}`);
      if (i !== undefined) start = i;
    }
    start = Math.max(0, Math.min(frames.length - 1, start || 0));
    const f0 = frames[start];
    if (!viewer.engine || !viewer.engine.isLoaded(f0.imageId)) {
      this.placeholder.hidden = false;
      this.placeholder.src = viewer.client.renderedUrl(this.studyUid, seriesUid, f0.sopUid);
      this.placeholder.onerror = () => {
        this.placeholder.hidden = true;
      };
    }
    this.updateOverlay();
    if (viewer.activePane === this) {
      viewer.renderThumbnails();
      viewer.syncToolbar();
    }
    const engine = await viewer.engineReady;
    if (token !== this.loadToken || !engine || viewer.destroyed) return false;
    this.status(format(L.loadingImages, { loaded: 0, total: frames.length }));
    try {
      await engine.showStack(this.id, frames, start);
    } catch (error) {
      if (token === this.loadToken) this.status(L.imageFailed);
      viewer.emit('error', { pane: this.id, error: String(error) });
      return false;
    }
    if (token !== this.loadToken) return false;
    this.stackShown = true;
    for (const f of frames) if (engine.isLoaded(f.imageId)) this.loadedIds.add(f.imageId);
    this.updateProgress();
    viewer.restorePendingMeasurements(this);
    viewer.emit('serieschange', { pane: this.id, studyUid: this.studyUid, seriesUid });
    viewer.scheduleViewportChange();
    if (viewer.activePane === this) viewer.syncToolbar();
    return true;
  }

  currentFrame() {
    if (!this.frames.length) return null;
    const engine = this.viewer.engine;
    const i = engine && this.stackShown ? engine.currentIndex(this.id) : 0;
    return this.frames[i] || this.frames[0];
  }

  onImageLoaded(imageId) {
    if (this.frameIds.has(imageId)) {
      this.loadedIds.add(imageId);
      this.updateProgress();
    }
  }

  updateProgress() {
    const total = this.frames.length;
    const loaded = this.loadedIds.size;
    if (this.stackShown) {
      if (loaded >= total) this.status('');
      else if (this.rendered) this.status(format(this.viewer.labels.loadingImages, { loaded, total }));
    }
    this.viewer.updateThumbProgress(this, loaded, total);
  }

  onRendered() {
    // Ignore renders of an empty viewport or of the previous series' stack.
    const shown = this.viewer.engine?.currentImageId(this.id);
    if (!this.rendered && shown && this.frameIds.has(shown)) {
      this.rendered = true;
      this.placeholder.hidden = true;
      this.placeholder.removeAttribute('src');
      this.updateProgress();
    }
    this.updateOverlay();
  }

  updateOverlay() {
    const L = this.viewer.labels;
    const info = this.studyInfo;
    const f = this.currentFrame();
    const engine = this.viewer.engine;
    const view = engine && this.stackShown ? engine.getView(this.id) : null;
    const tl = [];
    if (info.patientName || info.patientId) tl.push([info.patientName, info.patientId].filter(Boolean).join(' · '));
    tl.push([info.modality, info.seriesNumber && `#${info.seriesNumber}`, info.seriesDescription].filter(Boolean).join(' '));
    this.overlay.tl.textContent = tl.filter(Boolean).join('\n');
    const tr = [];
    if (this.id === 'prior') tr.push(this.priorLabel || L.studyPrior);
    tr.push([formatDate(info.date), info.description].filter(Boolean).join(' '));
    this.overlay.tr.textContent = tr.filter(Boolean).join('\n');
    const bl = [];
    if (f) {
      const i = this.frames.indexOf(f);
      bl.push(`${L.image} ${i + 1}/${this.frames.length}`);
      if (f.frameCount > 1) bl.push(`${L.frame} ${f.frame}/${f.frameCount}`);
    }
    this.overlay.bl.textContent = bl.join('\n');
    const br = [];
    if (view) {
      if (view.windowWidth !== null) br.push(`${L.ww} ${Math.round(view.windowWidth)} ${L.wl} ${Math.round(view.windowCenter)}`);
      br.push(`${L.zoomShort} ${Math.round(view.zoom * 100)}%`);
    }
    this.overlay.br.textContent = br.join('\n');
    const isKey = !!(f && this.viewer.keyImages.has(keyOf(f)));
    this.keyBadge.hidden = !isKey;
  }

  indexOf(sopUid, frame) {
    return this.indexByKey.get(`${this.seriesUid}|${sopUid}|${frame || 1}`);
  }
}

export class Viewer {
  constructor(element, options = {}) {
    if (!element) throw new Error('TelemedViewer.mount: element is required');
    if (!options.studyUid) throw new Error('TelemedViewer.mount: studyUid is required');
    this.element = element;
    this.options = options;
    this.labels = makeLabels(options.labels);
    this.readOnly = !!options.readOnly;
    this.client = new DicomWebClient(options.dicomwebRoot || '/dicomweb', options.csrfToken);
    this.listeners = Object.fromEntries(EVENTS.map((e) => [e, new Set()]));
    this.priors = (options.priors || [])
      .map((p) => (typeof p === 'string' ? { studyUid: p, label: '' } : { studyUid: p.studyUid, label: p.label || '' }))
      .filter((p) => p.studyUid && p.studyUid !== options.studyUid);
    this.keyImages = new Map();
    for (const k of options.keyImages || []) if (k && k.seriesUid && k.sopUid) this.keyImages.set(keyOf(k), { studyUid: k.studyUid || options.studyUid, seriesUid: k.seriesUid, sopUid: k.sopUid, frame: k.frame || 1 });
    // Saved measurements are shown once their series is opened; until then they are kept
    // (and returned by getMeasurements()) as they are.
    this.pendingMeasurements = (Array.isArray(options.measurements) ? options.measurements : [])
      .filter((m) => m && m.seriesUid && m.sopUid)
      .map((m) => ({ ...m, uid: m.uid || `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}` }));
    this.engine = null;
    this.destroyed = false;
    this.applying = 0;
    this.lastEmitted = null;
    this.viewChangeScheduled = false;
    this.lastMeasurements = this.getMeasurements(); // saved ones: re-showing them is no change

    this.buildDom();
    this.main = new Pane(this, 'main', options.studyUid);
    this.prior = null;
    this.panesEl.append(this.main.el);
    this.activePane = this.main;
    this.main.el.classList.add('tv-active');
    this.syncToolbar();
    this.renderMeasurements();

    this.engineReady = this.startEngine();
    this.ready = this.start();
    this.api = this.makeApi();
  }

  // ---- construction -----------------------------------------------------------------

  buildDom() {
    const L = this.labels;
    const toolBtn = (id, text, extra = {}) =>
      h('button', { type: 'button', class: 'tv-btn tv-tool', dataset: { tool: id }, title: text, 'aria-pressed': 'false', onclick: () => this.setTool(id), ...extra }, text);
    this.toolButtons = [
      toolBtn('windowLevel', L.windowLevel),
      toolBtn('zoom', L.zoom),
      toolBtn('pan', L.pan),
      toolBtn('scroll', L.scroll),
    ];
    this.measureButtons = this.readOnly
      ? []
      : [toolBtn('length', L.length), toolBtn('angle', L.angle), toolBtn('ellipse', L.ellipse), toolBtn('rectangle', L.rectangle)];

    this.presetSelect = h(
      'select',
      { class: 'tv-select', title: L.presets, 'aria-label': L.presets, onchange: (e) => this.applyPreset(e.target.value) },
      h('option', { value: '', text: L.presets }),
      h('option', { value: 'default', text: L.presetDefault }),
      WL_PRESETS.map((p) => h('option', { value: p.id, dataset: { ct: '1' }, text: `${L[p.label]} (${p.center}/${p.width})` })),
    );
    this.invertBtn = h('button', { type: 'button', class: 'tv-btn', 'aria-pressed': 'false', onclick: () => this.invert() }, L.invert);
    this.resetBtn = h('button', { type: 'button', class: 'tv-btn', onclick: () => this.reset() }, L.reset);
    this.cineBtn = h('button', { type: 'button', class: 'tv-btn tv-cine', 'aria-pressed': 'false', onclick: () => this.toggleCine() }, `▶ ${L.cinePlay}`);
    this.fpsInput = h('input', { class: 'tv-fps', type: 'number', min: '1', max: '60', step: '1', value: '10', title: L.fps, 'aria-label': L.fps, onchange: () => this.onFpsChange() });
    this.keyBtn = this.readOnly ? null : h('button', { type: 'button', class: 'tv-btn', 'aria-pressed': 'false', onclick: () => this.markKeyImage() }, `☆ ${L.keyImage}`);
    this.compareBtn = h(
      'button',
      { type: 'button', class: 'tv-btn', 'aria-pressed': 'false', 'aria-haspopup': this.priors.length > 1 ? 'menu' : null, disabled: !this.priors.length, title: this.priors.length ? L.compare : L.noPriors, onclick: () => this.onCompareClick() },
      L.compare,
    );
    this.priorMenu = h('div', { class: 'tv-menu', role: 'menu', hidden: true });

    const group = (...items) => h('div', { class: 'tv-group' }, ...items);
    this.toolbar = h(
      'div',
      { class: 'tv-toolbar', role: 'toolbar', 'aria-label': L.tools },
      group(...this.toolButtons),
      this.measureButtons.length ? group(...this.measureButtons) : null,
      group(this.presetSelect, this.invertBtn, this.resetBtn),
      group(this.cineBtn, h('label', { class: 'tv-fps-label' }, this.fpsInput, h('span', { text: L.fps }))),
      group(this.keyBtn, h('div', { class: 'tv-compare' }, this.compareBtn, this.priorMenu)),
    );

    this.studyHead = h('div', { class: 'tv-study-head' });
    this.thumbList = h('ul', { class: 'tv-thumbs', 'aria-label': L.series });
    this.measureList = h('ul', { class: 'tv-measure-list' });
    this.keyList = h('div', { class: 'tv-keyimages' });
    this.side = h(
      'aside',
      { class: 'tv-side' },
      this.studyHead,
      this.thumbList,
      h('section', { class: 'tv-measures' }, h('h3', { text: L.measurements }), this.measureList, this.keyList),
    );
    this.panesEl = h('div', { class: 'tv-panes' });
    this.root = h('div', { class: `tv-root${this.readOnly ? ' tv-readonly' : ''}` }, this.toolbar, h('div', { class: 'tv-body' }, this.side, this.panesEl));
    this.element.replaceChildren(this.root);

    this.resizeObserver = new ResizeObserver(() => this.engine?.resize());
    this.resizeObserver.observe(this.panesEl);
    this.onDocClick = (e) => {
      if (!this.priorMenu.hidden && !this.priorMenu.parentElement.contains(e.target)) this.priorMenu.hidden = true;
    };
    document.addEventListener('click', this.onDocClick);
  }

  async startEngine() {
    const L = this.labels;
    this.main?.status(L.loadingEngine);
    let mod;
    try {
      mod = await loadEngineModule();
    } catch (error) {
      this.main?.status(L.loadFailed);
      this.emit('error', { error: `engine: ${error}` });
      return null;
    }
    if (this.destroyed) return null;
    const engine = new mod.Engine({
      readOnly: this.readOnly,
      labels: this.labels,
      onImageLoaded: (imageId) => {
        this.main?.onImageLoaded(imageId);
        this.prior?.onImageLoaded(imageId);
      },
      onImageFailed: (imageId) => {
        for (const pane of [this.main, this.prior]) {
          if (pane && pane.currentFrame()?.imageId === imageId) pane.status(this.labels.imageFailed);
        }
      },
      onAnnotationsChanged: () => this.onMeasurementsChanged(),
    });
    this.engine = engine;
    this.engineModule = mod;
    this.attachPane(this.main);
    if (this.prior) this.attachPane(this.prior);
    this.setTool(engine.primaryTool);
    return engine;
  }

  attachPane(pane) {
    const engine = this.engine;
    if (!engine || pane.attached) return;
    pane.attached = true;
    engine.addPane(pane.id, pane.viewportEl);
    const onView = () => {
      pane.updateOverlay();
      if (pane === this.activePane) this.syncKeyButton();
      this.scheduleViewportChange();
    };
    for (const name of engine.viewEvents) pane.viewportEl.addEventListener(name, onView);
    let raf = 0;
    pane.viewportEl.addEventListener(engine.renderedEvent, () => {
      if (raf) return;
      raf = requestAnimationFrame(() => {
        raf = 0;
        pane.onRendered();
      });
    });
  }

  async start() {
    const main = this.main;
    const series = await main.loadSeriesList();
    if (this.destroyed || !series.length) {
      this.started = true;
      return this.api;
    }
    const initial = this.options.initialState || {};
    const first = (initial.seriesUid && main.seriesInfo(initial.seriesUid)) || main.firstImageSeries();
    const ok = await main.loadSeries(first.seriesUid, { sopUid: initial.sopUid, frame: initial.frame, index: initial.imageIndex });
    if (ok && Object.keys(initial).length) await this.setState(initial);
    this.started = true;
    this.lastEmitted = this.getState();
    if (!this.destroyed) this.emit('ready', this.lastEmitted);
    return this.api;
  }

  // ---- events -------------------------------------------------------------------------

  /**
   * Subscribe; returns an unsubscribe function. `{ throttleMs }` delivers at most one call
   * per interval and always the latest value last (useful to send view changes over a
   * consult's WebSocket).
   */
  on(name, cb, { throttleMs = 0 } = {}) {
    if (!this.listeners[name]) throw new Error(`TelemedViewer: unknown event "${name}" (known: ${EVENTS.join(', ')})`);
    if (typeof cb !== 'function') throw new Error('TelemedViewer.on: callback must be a function');
    let fn = cb;
    if (throttleMs > 0) {
      let last = 0;
      let timer = null;
      let pending;
      const fire = () => {
        timer = null;
        last = Date.now();
        cb(pending);
      };
      fn = (detail) => {
        pending = detail;
        if (timer) return;
        const wait = Math.max(0, last + throttleMs - Date.now());
        if (wait === 0) fire();
        else timer = setTimeout(fire, wait);
      };
    }
    this.wrapped ??= new Map();
    if (!this.wrapped.has(name)) this.wrapped.set(name, new Map());
    this.wrapped.get(name).set(cb, fn);
    this.listeners[name].add(fn);
    return () => this.off(name, cb);
  }

  off(name, cb) {
    const fn = this.wrapped?.get(name)?.get(cb) || cb;
    this.wrapped?.get(name)?.delete(cb);
    this.listeners[name]?.delete(fn);
  }

  emit(name, detail) {
    for (const cb of this.listeners[name] || []) {
      try {
        cb(detail);
      } catch (error) {
        console.error('TelemedViewer listener failed', error); // eslint-disable-line no-console
      }
    }
  }

  /** Coalesce camera/VOI/image events into at most one "viewportchange" per frame. */
  scheduleViewportChange() {
    if (this.viewChangeScheduled || this.destroyed) return;
    this.viewChangeScheduled = true;
    requestAnimationFrame(() => {
      this.viewChangeScheduled = false;
      const state = this.getState();
      if (!state || sameJSON(state, this.lastEmitted)) return;
      this.lastEmitted = state;
      // Changes caused by setState() (e.g. a remote peer's view in a consult) are not
      // echoed back, which would otherwise loop between the two sides.
      if (this.applying || !this.started) return;
      this.emit('viewportchange', state);
    });
  }

  // ---- state -------------------------------------------------------------------------

  paneState(pane) {
    if (!pane || !pane.seriesUid) return null;
    const f = pane.currentFrame();
    const view = this.engine && pane.stackShown ? this.engine.getView(pane.id) : null;
    return {
      studyUid: pane.studyUid,
      seriesUid: pane.seriesUid,
      sopUid: f ? f.sopUid : null,
      frame: f ? f.frame : null,
      imageIndex: view ? view.imageIndex : f ? pane.frames.indexOf(f) : 0,
      windowCenter: view ? view.windowCenter : null,
      windowWidth: view ? view.windowWidth : null,
      invert: view ? view.invert : false,
      zoom: view ? view.zoom : 1,
      pan: view ? view.pan : [0, 0],
    };
  }

  getState() {
    const state = this.paneState(this.main);
    if (!state) return null;
    state.compare = this.prior ? this.paneState(this.prior) : null;
    return state;
  }

  async applyPaneState(pane, s) {
    if (!pane || !s) return;
    if (s.seriesUid && s.seriesUid !== pane.seriesUid) {
      if (!pane.series) await pane.loadSeriesList();
      await pane.loadSeries(s.seriesUid, { sopUid: s.sopUid, frame: s.frame, index: s.imageIndex });
    } else if (pane.seriesUid && !pane.stackShown) {
      await this.engineReady;
    }
    if (!this.engine || !pane.stackShown) return;
    let imageIndex = Number.isInteger(s.imageIndex) ? s.imageIndex : undefined;
    if (s.sopUid) {
      const i = pane.indexOf(s.sopUid, s.frame);
      if (i !== undefined) imageIndex = i;
    }
    await this.engine.setView(pane.id, { ...s, imageIndex });
    pane.updateOverlay();
  }

  async setState(state) {
    if (!state || this.destroyed) return this.getState();
    this.applying += 1;
    try {
      // Layout first (open/close the prior pane), then each pane's view.
      if (state.compare === null && this.prior) {
        this.closePrior();
      } else if (state.compare && state.compare.studyUid && (!this.prior || this.prior.studyUid !== state.compare.studyUid)) {
        await this.openPrior(state.compare.studyUid, { seriesUid: state.compare.seriesUid, sopUid: state.compare.sopUid, frame: state.compare.frame });
      }
      await this.applyPaneState(this.main, state);
      if (state.compare && this.prior && this.prior.studyUid === state.compare.studyUid) {
        await this.applyPaneState(this.prior, state.compare);
      }
      await nextFrame();
      await nextFrame();
      this.lastEmitted = this.getState();
    } finally {
      this.applying -= 1;
    }
    this.syncToolbar();
    return this.getState();
  }

  // ---- panes ---------------------------------------------------------------------------

  setActivePane(pane) {
    if (!pane || this.activePane === pane) return;
    this.activePane?.el.classList.remove('tv-active');
    this.activePane = pane;
    pane.el.classList.add('tv-active');
    this.renderThumbnails();
    this.syncToolbar();
  }

  onCompareClick() {
    if (this.prior) {
      this.closePrior();
      return;
    }
    if (this.priors.length === 1) {
      this.openPrior(this.priors[0].studyUid);
      return;
    }
    this.showPriorMenu();
  }

  async showPriorMenu() {
    const L = this.labels;
    const menu = this.priorMenu;
    const render = () => {
      menu.replaceChildren(
        h('div', { class: 'tv-menu-title', text: L.choosePrior }),
        this.priors.map((p) =>
          h('button', {
            type: 'button',
            role: 'menuitem',
            class: 'tv-menu-item',
            text: p.label || p.studyUid,
            onclick: () => {
              menu.hidden = true;
              this.openPrior(p.studyUid);
            },
          }),
        ),
      );
    };
    render();
    menu.hidden = false;
    // Best effort: label priors without a label by their study date/description (QIDO).
    const unlabeled = this.priors.filter((p) => !p.label && !p.queried);
    if (unlabeled.length) {
      await Promise.all(
        unlabeled.map(async (p) => {
          p.queried = true;
          try {
            const s = await this.client.searchStudy(p.studyUid);
            if (s) p.label = [formatDate(s.date), s.description, s.modalities].filter(Boolean).join(' · ');
          } catch {
            /* keep the UID */
          }
        }),
      );
      if (!menu.hidden) render();
    }
  }

  async openPrior(studyUid, { seriesUid, sopUid, frame } = {}) {
    if (this.prior && this.prior.studyUid === studyUid) return this.prior;
    if (this.prior) this.closePrior();
    const known = this.priors.find((p) => p.studyUid === studyUid);
    const pane = new Pane(this, 'prior', studyUid, known?.label);
    const views = this.engine?.snapshot();
    this.prior = pane;
    this.panesEl.append(pane.el);
    this.root.classList.add('tv-comparing');
    this.compareBtn.setAttribute('aria-pressed', 'true');
    this.compareBtn.textContent = this.labels.closeCompare;
    if (this.engine) {
      this.attachPane(pane);
      this.engine.resize(views);
    }
    this.setActivePane(pane);
    const series = await pane.loadSeriesList();
    if (this.prior !== pane || !series.length) return pane;
    const mainInfo = this.main.seriesInfo(this.main.seriesUid);
    const chosen = (seriesUid && pane.seriesInfo(seriesUid)) || pane.firstImageSeries(mainInfo);
    // Start the prior at the same relative position in its stack as the current image.
    const cur = this.main.currentFrame();
    const n = this.main.frames.length;
    const fraction = cur && n > 1 ? this.main.frames.indexOf(cur) / (n - 1) : 0;
    await pane.loadSeries(chosen.seriesUid, { sopUid, frame, fraction });
    this.scheduleViewportChange();
    return pane;
  }

  closePrior() {
    const pane = this.prior;
    if (!pane) return;
    pane.loadToken += 1;
    const views = this.engine?.snapshot();
    if (this.engine && pane.attached) this.engine.removePane(pane.id);
    pane.el.remove();
    this.prior = null;
    this.root.classList.remove('tv-comparing');
    this.compareBtn.setAttribute('aria-pressed', 'false');
    this.compareBtn.textContent = this.labels.compare;
    this.activePane = null;
    this.setActivePane(this.main);
    this.engine?.resize(views);
    this.onMeasurementsChanged();
    this.scheduleViewportChange();
  }

  // ---- thumbnails ------------------------------------------------------------------------

  /** Show the active pane's study in the side strip (thumbnail elements are built once). */
  renderThumbnails() {
    const pane = this.activePane;
    const L = this.labels;
    const info = pane.studyInfo;
    const head = pane.id === 'prior' ? pane.priorLabel || L.studyPrior : L.studyCurrent;
    this.studyHead.textContent = [head, formatDate(info.date)].filter(Boolean).join(' · ');
    if (pane.series && !pane.thumbs) pane.thumbs = new Map(pane.series.map((s) => [s.seriesUid, this.buildThumb(pane, s)]));
    const items = pane.thumbs ? [...pane.thumbs.values()] : [];
    if (items.length !== this.thumbList.children.length || items.some((li, i) => this.thumbList.children[i] !== li)) {
      this.thumbList.replaceChildren(...items);
    }
    for (const [uid, li] of pane.thumbs || []) {
      const btn = li.firstChild;
      if (uid === pane.seriesUid) btn.setAttribute('aria-current', 'true');
      else btn.removeAttribute('aria-current');
    }
    if (pane.stackShown) pane.updateProgress();
  }

  buildThumb(pane, s) {
    const L = this.labels;
    const count = s.count !== undefined ? format(L.images, { n: s.count }) : '';
    const fallback = h('span', { class: 'tv-thumb-fallback', text: s.modality || '?' });
    const pic = h('span', { class: 'tv-thumb-pic' }, fallback);
    if (!NON_IMAGE_MODALITIES.has(s.modality)) {
      // Thumbnails come first: they are small server-rendered JPEGs, loaded before any pixel data.
      const img = h('img', { class: 'tv-thumb-img', alt: '', decoding: 'async', src: this.client.seriesThumbnailUrl(pane.studyUid, s.seriesUid) });
      fallback.hidden = true;
      img.addEventListener('error', () => {
        img.remove();
        fallback.hidden = false;
      });
      pic.prepend(img);
    }
    const bar = h('span', { class: 'tv-thumb-progress', hidden: true }, h('span'));
    const btn = h(
      'button',
      {
        type: 'button',
        class: 'tv-thumb',
        title: s.description || s.seriesUid,
        onclick: () => {
          if (s.seriesUid !== pane.seriesUid) pane.loadSeries(s.seriesUid);
        },
      },
      pic,
      h(
        'span',
        { class: 'tv-thumb-text' },
        h('span', { class: 'tv-thumb-desc', text: [s.modality, s.description].filter(Boolean).join(' ') || L.series }),
        h('span', { class: 'tv-thumb-count', text: [s.number !== undefined ? `#${s.number}` : '', count].filter(Boolean).join(' · ') }),
      ),
      bar,
    );
    return h('li', { dataset: { series: s.seriesUid } }, btn);
  }

  updateThumbProgress(pane, loaded, total) {
    const li = pane.thumbs?.get(pane.seriesUid);
    const bar = li?.querySelector('.tv-thumb-progress');
    if (!bar) return;
    bar.hidden = !total || loaded >= total;
    bar.firstChild.style.width = `${total ? Math.round((100 * loaded) / total) : 0}%`;
  }

  // ---- toolbar actions ---------------------------------------------------------------

  setTool(id) {
    if (this.engine) this.engine.setPrimaryTool(id);
    const active = this.engine ? this.engine.primaryTool : 'windowLevel';
    for (const b of [...this.toolButtons, ...this.measureButtons]) b.setAttribute('aria-pressed', String(b.dataset.tool === active));
  }

  syncToolbar() {
    const pane = this.activePane;
    const modality = pane?.studyInfo?.modality || '';
    const ct = PRESET_MODALITIES.has(modality);
    for (const opt of this.presetSelect.options) if (opt.dataset.ct) opt.disabled = !ct;
    const playing = !!(this.engine && pane && this.engine.isPlaying(pane.id));
    this.cineBtn.setAttribute('aria-pressed', String(playing));
    this.cineBtn.textContent = playing ? `❚❚ ${this.labels.cinePause}` : `▶ ${this.labels.cinePlay}`;
    this.cineBtn.disabled = !pane || pane.frames.length < 2;
    if (pane?.fps) this.fpsInput.value = String(pane.fps);
    const view = this.engine && pane?.stackShown ? this.engine.getView(pane.id) : null;
    this.invertBtn.setAttribute('aria-pressed', String(!!view?.invert));
    this.syncKeyButton();
  }

  syncKeyButton() {
    if (!this.keyBtn) return;
    const f = this.activePane?.currentFrame();
    const on = !!(f && this.keyImages.has(keyOf(f)));
    this.keyBtn.setAttribute('aria-pressed', String(on));
    this.keyBtn.textContent = on ? `★ ${this.labels.keyImage}` : `☆ ${this.labels.keyImage}`;
    this.keyBtn.disabled = !f;
  }

  applyPreset(id) {
    this.presetSelect.value = '';
    const pane = this.activePane;
    if (!this.engine || !pane?.stackShown || !id) return;
    if (id === 'default') this.engine.defaultWindow(pane.id);
    else {
      const p = WL_PRESETS.find((x) => x.id === id);
      if (p) this.engine.setWindow(pane.id, p.center, p.width);
    }
    this.scheduleViewportChange();
  }

  invert() {
    const pane = this.activePane;
    if (!this.engine || !pane?.stackShown) return;
    const on = this.engine.toggleInvert(pane.id);
    this.invertBtn.setAttribute('aria-pressed', String(on));
    pane.updateOverlay();
    this.scheduleViewportChange();
  }

  reset() {
    const pane = this.activePane;
    if (!this.engine || !pane?.stackShown) return;
    this.engine.reset(pane.id);
    this.syncToolbar();
    pane.updateOverlay();
    this.scheduleViewportChange();
  }

  toggleCine(play) {
    const pane = this.activePane;
    if (!this.engine || !pane?.stackShown || pane.frames.length < 2) return;
    const playing = this.engine.isPlaying(pane.id);
    const want = play === undefined ? !playing : !!play;
    if (want && !playing) this.engine.playCine(pane.id, pane.fps || Number(this.fpsInput.value) || 10);
    else if (!want && playing) this.engine.stopCine(pane.id);
    this.syncToolbar();
  }

  onFpsChange() {
    const pane = this.activePane;
    const fps = Math.max(1, Math.min(60, Math.round(Number(this.fpsInput.value) || 10)));
    this.fpsInput.value = String(fps);
    if (!pane) return;
    pane.fps = fps;
    pane.fpsTouched = true;
    if (this.engine?.isPlaying(pane.id)) this.engine.playCine(pane.id, fps);
  }

  onKey(pane, e) {
    if (!this.engine || !pane.stackShown) return;
    const n = pane.frames.length;
    const i = this.engine.currentIndex(pane.id);
    let handled = true;
    switch (e.key) {
      case 'ArrowUp':
      case 'ArrowLeft':
        this.engine.scroll(pane.id, -1);
        break;
      case 'ArrowDown':
      case 'ArrowRight':
        this.engine.scroll(pane.id, 1);
        break;
      case 'PageUp':
        this.engine.setIndex(pane.id, i - 10);
        break;
      case 'PageDown':
        this.engine.setIndex(pane.id, i + 10);
        break;
      case 'Home':
        this.engine.setIndex(pane.id, 0);
        break;
      case 'End':
        this.engine.setIndex(pane.id, n - 1);
        break;
      case ' ':
        this.toggleCine();
        break;
      case 'Delete':
      case 'Backspace':
        handled = this.engine.removeSelectedMeasurements() > 0;
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  }

  // ---- key images --------------------------------------------------------------------

  getKeyImages() {
    return [...this.keyImages.values()].map((k) => ({ ...k }));
  }

  /** Toggle (or set, with a boolean) the key-image flag of the active pane's image. */
  markKeyImage(on) {
    if (this.readOnly) return false;
    const f = this.activePane?.currentFrame();
    if (!f) return false;
    const key = keyOf(f);
    const want = on === undefined ? !this.keyImages.has(key) : !!on;
    if (want) this.keyImages.set(key, { studyUid: f.studyUid, seriesUid: f.seriesUid, sopUid: f.sopUid, frame: f.frame });
    else this.keyImages.delete(key);
    this.activePane.updateOverlay();
    this.syncKeyButton();
    this.renderMeasurements();
    const list = this.getKeyImages();
    this.emit('keyimageschange', list);
    this.options.onKeyImagesChanged?.(list);
    return want;
  }

  // ---- measurements --------------------------------------------------------------------

  getMeasurements() {
    const L = this.labels;
    const live = this.engine ? this.engine.getMeasurements() : [];
    const liveIds = new Set(live.map((m) => m.uid));
    const pending = this.pendingMeasurements.filter((m) => !liveIds.has(m.uid));
    return [...live, ...pending].map((m) => ({ ...m, text: measurementText(m, L) }));
  }

  restorePendingMeasurements(pane) {
    if (!this.engine || !this.pendingMeasurements.length) return;
    const mine = this.pendingMeasurements.filter((m) => m.seriesUid === pane.seriesUid && (!m.studyUid || m.studyUid === pane.studyUid));
    if (!mine.length) return;
    const known = new Set(pane.frames.map((f) => f.imageId));
    this.engine.addMeasurements(pane.id, mine, (m) => {
      const id = this.client.imageId(pane.studyUid, m.seriesUid, m.sopUid, m.frame || 1);
      return known.has(id) ? id : undefined;
    });
    const restored = new Set(this.engine.getMeasurements().map((m) => m.uid));
    this.pendingMeasurements = this.pendingMeasurements.filter((m) => !restored.has(m.uid));
    this.renderMeasurements();
  }

  onMeasurementsChanged() {
    const list = this.getMeasurements();
    this.renderMeasurements(list);
    if (sameJSON(list, this.lastMeasurements)) return;
    this.lastMeasurements = list;
    this.emit('measurementschange', list);
    this.options.onMeasurementsChanged?.(list);
  }

  renderMeasurements(list = this.getMeasurements()) {
    const L = this.labels;
    const items = list.map((m) =>
      h(
        'li',
        { class: 'tv-measure' },
        h('button', { type: 'button', class: 'tv-measure-go', onclick: () => this.goTo(m) }, h('span', { class: 'tv-measure-type', text: L[m.type] || m.type }), ' ', h('span', { text: m.text || measurementText(m, L) })),
        this.readOnly ? null : h('button', { type: 'button', class: 'tv-measure-del', title: L.deleteMeasurement, 'aria-label': L.deleteMeasurement, text: '×', onclick: () => this.deleteMeasurement(m.uid) }),
      ),
    );
    this.measureList.replaceChildren(...(items.length ? items : [h('li', { class: 'tv-empty', text: L.noMeasurements })]));
    const keys = this.getKeyImages();
    this.keyList.replaceChildren(
      ...(keys.length
        ? [
            h('h3', { text: `${L.keyImages} (${keys.length})` }),
            h(
              'ul',
              { class: 'tv-key-list' },
              keys.map((k) => {
                const pane = k.studyUid === this.prior?.studyUid ? this.prior : this.main;
                const info = pane?.seriesInfo(k.seriesUid);
                const i = pane && pane.seriesUid === k.seriesUid ? pane.indexOf(k.sopUid, k.frame) : undefined;
                const text = `★ ${info ? [info.modality, info.description].filter(Boolean).join(' ') : L.series}${i !== undefined ? ` · ${L.image} ${i + 1}` : ''}`;
                return h('li', {}, h('button', { type: 'button', class: 'tv-measure-go', text, onclick: () => this.goTo(k) }));
              }),
            ),
          ]
        : []),
    );
  }

  deleteMeasurement(uid) {
    if (this.readOnly) return false;
    const before = this.pendingMeasurements.length;
    this.pendingMeasurements = this.pendingMeasurements.filter((m) => m.uid !== uid);
    const removed = (this.engine && this.engine.removeMeasurement(uid)) || before !== this.pendingMeasurements.length;
    this.onMeasurementsChanged();
    return removed;
  }

  /** Show the image a measurement / key image refers to. */
  async goTo(ref) {
    const pane = ref.studyUid && this.prior && ref.studyUid === this.prior.studyUid ? this.prior : this.main;
    if (ref.studyUid && ref.studyUid !== pane.studyUid) return;
    this.setActivePane(pane);
    if (pane.seriesUid !== ref.seriesUid) {
      if (!pane.seriesInfo(ref.seriesUid)) return;
      await pane.loadSeries(ref.seriesUid, { sopUid: ref.sopUid, frame: ref.frame });
    } else {
      const i = pane.indexOf(ref.sopUid, ref.frame);
      if (i !== undefined && this.engine) await this.engine.setIndex(pane.id, i);
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.resizeObserver.disconnect();
    document.removeEventListener('click', this.onDocClick);
    for (const set of Object.values(this.listeners)) set.clear();
    try {
      this.engine?.destroy();
    } catch (error) {
      console.warn('TelemedViewer: engine teardown', error); // eslint-disable-line no-console
    }
    this.element.replaceChildren();
  }

  makeApi() {
    const api = {
      /** Resolves (with this object) once the first series is on screen (or failed). */
      ready: null,
      getState: () => this.getState(),
      setState: (state) => this.setState(state),
      on: (name, cb, opts) => this.on(name, cb, opts),
      off: (name, cb) => this.off(name, cb),
      getMeasurements: () => this.getMeasurements(),
      getKeyImages: () => this.getKeyImages(),
      markKeyImage: (on) => this.markKeyImage(on),
      deleteMeasurement: (uid) => this.deleteMeasurement(uid),
      setTool: (id) => this.setTool(id),
      openPrior: (studyUid) => {
        const uid = studyUid || this.priors[0]?.studyUid;
        return uid ? this.openPrior(uid).then(() => undefined) : Promise.resolve();
      },
      closePrior: () => this.closePrior(),
      scroll: (delta) => this.engine?.scroll(this.activePane.id, delta),
      destroy: () => this.destroy(),
    };
    api.ready = this.ready.then(() => api);
    return api;
  }
}
