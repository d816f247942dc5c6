// Everything that touches Cornerstone3D lives here. This module is a separate chunk,
// loaded with import() by viewer.js, so the thumbnails and the rest of the UI shell show
// up before the ~1 MB (compressed) imaging engine has arrived on a slow link.
import {
  init as csInit,
  RenderingEngine,
  Enums,
  eventTarget,
  cache,
  imageLoadPoolManager,
  imageRetrievalPoolManager,
  utilities as csUtils,
} from '@cornerstonejs/core';
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  Enums as ToolEnums,
  annotation as csAnnotation,
  utilities as toolUtils,
  WindowLevelTool,
  ZoomTool,
  PanTool,
  StackScrollTool,
  LengthTool,
  AngleTool,
  EllipticalROITool,
  RectangleROITool,
} from '@cornerstonejs/tools';
import dicomImageLoader from '@cornerstonejs/dicom-image-loader';

const { MouseBindings } = ToolEnums;
const { windowLevel } = csUtils;

/** Tool ids used by the viewer UI and the JS API, and the Cornerstone tool behind each. */
export const TOOLS = {
  windowLevel: WindowLevelTool,
  zoom: ZoomTool,
  pan: PanTool,
  scroll: StackScrollTool,
  length: LengthTool,
  angle: AngleTool,
  ellipse: EllipticalROITool,
  rectangle: RectangleROITool,
};
export const MEASUREMENT_TOOLS = ['length', 'angle', 'ellipse', 'rectangle'];
const TOOL_ID_BY_NAME = Object.fromEntries(Object.entries(TOOLS).map(([id, T]) => [T.toolName, id]));

let initialized = false;
let engineCounter = 0;
const liveEngines = new Set();

/**
 * Failed frame requests. dicom-image-loader 5.x does not always reject the image promise
 * when the WADO-RS request fails (the viewport would wait forever), so failures are
 * picked up from the loader's XHR hooks and routed to the engine that owns the image.
 */
function requestFailed(imageId, error) {
  for (const engine of liveEngines) engine._imageFailed(imageId, error);
}

function initOnce() {
  if (initialized) return;
  initialized = true;
  csInit();
  dicomImageLoader.init({
    // Decoding runs in module web workers (chunks/decodeImageFrameWorker-*.js); they load
    // the codec .wasm files next to themselves (URLs rewritten by the Vite build).
    maxWebWorkers: Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2))),
    beforeSend: (xhr, imageId) => {
      xhr.telemedImageId = imageId;
    },
    errorInterceptor: (error) => {
      const imageId = error?.request?.telemedImageId;
      if (imageId) requestFailed(imageId, error);
    },
  });
  // The loader's own rejection of a failed XHR goes unhandled; it is reported above.
  window.addEventListener('unhandledrejection', (event) => {
    if (event.reason && event.reason.telemedImageId) event.preventDefault();
  });
  toolsInit();
  for (const Tool of Object.values(TOOLS)) addTool(Tool);
  // Slow links: at most a handful of frame requests in flight, current image first.
  imageRetrievalPoolManager.setMaxSimultaneousRequests(Enums.RequestType.Interaction, 6);
  imageLoadPoolManager.setMaxSimultaneousRequests(Enums.RequestType.Prefetch, 6);
}

/** ROI statistics text next to ellipse/rectangle annotations, in the viewer's language. */
function roiTextLines(L) {
  const n = (v) => csUtils.roundNumber(v);
  return (data, targetId) => {
    const st = data.cachedStats?.[targetId] || {};
    const unit = st.modalityUnit ? ` ${st.modalityUnit}` : '';
    const lines = [];
    if (finite(st.area)) lines.push(`${L.area}: ${n(st.area)} ${st.areaUnit || ''}`.trim());
    if (finite(st.mean)) lines.push(`${L.mean}: ${n(st.mean)}${unit}`);
    if (finite(st.max)) lines.push(`${L.max}: ${n(st.max)}${unit}`);
    if (finite(st.min)) lines.push(`${L.min}: ${n(st.min)}${unit}`);
    if (finite(st.stdDev)) lines.push(`${L.stdDev}: ${n(st.stdDev)}${unit}`);
    return lines;
  };
}

function round(value, digits) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function firstStats(cachedStats) {
  if (!cachedStats) return {};
  const key = Object.keys(cachedStats)[0];
  return key ? cachedStats[key] || {} : {};
}

function finite(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

/**
 * One Cornerstone rendering engine + tool group per mounted viewer; one stack viewport
 * per pane (the main study, and the prior when comparing).
 */
export class Engine {
  constructor({ readOnly, labels, onImageLoaded, onImageFailed, onAnnotationsChanged }) {
    initOnce();
    engineCounter += 1;
    this.id = `telemed-viewer-${engineCounter}`;
    this.readOnly = !!readOnly;
    this.renderingEngine = new RenderingEngine(this.id);
    this.toolGroup = ToolGroupManager.createToolGroup(`${this.id}-tools`);
    const roi = labels ? { getTextLines: roiTextLines(labels) } : {};
    for (const [id, Tool] of Object.entries(TOOLS)) {
      this.toolGroup.addTool(Tool.toolName, id === 'ellipse' || id === 'rectangle' ? roi : {});
    }
    this.viewports = new Map(); // paneId -> { viewportId, element }
    this.frameByImageId = new Map(); // imageId -> frame descriptor (study/series/sop/frame)
    this.primaryTool = 'windowLevel';
    this.cineFps = new Map();
    this._listeners = [];
    this._failWaiters = new Map(); // imageId -> reject of a pending showStack()
    this._resizeRaf = 0;
    this._pendingViews = null; // paneId -> { zoom, pan } to re-apply once a resize is done
    this._onImageFailed = onImageFailed;
    liveEngines.add(this);
    this.applyBindings();

    const loaded = (event) => {
      const imageId = event.detail?.image?.imageId;
      if (imageId && this.frameByImageId.has(imageId)) onImageLoaded?.(imageId);
    };
    const failed = (event) => this._imageFailed(event.detail?.imageId, event.detail?.error);
    this._on(eventTarget, Enums.Events.IMAGE_LOADED, loaded);
    this._on(eventTarget, Enums.Events.IMAGE_LOAD_FAILED, failed);
    this._on(eventTarget, Enums.Events.IMAGE_LOAD_ERROR, failed);

    let timer = null;
    const changed = (event) => {
      const ann = event.detail?.annotation;
      if (ann && !this.isOurs(ann)) return;
      clearTimeout(timer);
      timer = setTimeout(() => onAnnotationsChanged?.(), 150);
    };
    const E = ToolEnums.Events;
    for (const name of [E.ANNOTATION_COMPLETED, E.ANNOTATION_MODIFIED, E.ANNOTATION_REMOVED]) {
      this._on(eventTarget, name, changed);
    }
  }

  _imageFailed(imageId, error) {
    if (!imageId || !this.frameByImageId.has(imageId)) return;
    const reject = this._failWaiters.get(imageId);
    if (reject) reject(error instanceof Error ? error : new Error(`could not load ${imageId}`));
    this._onImageFailed?.(imageId, error);
  }

  _on(target, name, fn) {
    target.addEventListener(name, fn);
    this._listeners.push([target, name, fn]);
  }

  /** Event names (fired on the viewport element) that mean "the view changed". */
  get viewEvents() {
    return [
      Enums.Events.STACK_NEW_IMAGE,
      Enums.Events.CAMERA_MODIFIED,
      Enums.Events.VOI_MODIFIED,
      Enums.Events.DISPLAY_AREA_MODIFIED,
    ];
  }

  get renderedEvent() {
    return Enums.Events.IMAGE_RENDERED;
  }

  addPane(paneId, element) {
    const viewportId = `${this.id}-${paneId}`;
    this.renderingEngine.enableElement({
      viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] },
    });
    this.toolGroup.addViewport(viewportId, this.id);
    this.viewports.set(paneId, { viewportId, element });
    return viewportId;
  }

  removePane(paneId) {
    const entry = this.viewports.get(paneId);
    if (!entry) return;
    this.stopCine(paneId);
    try {
      toolUtils.stackPrefetch.disable(entry.element);
    } catch {
      /* not enabled */
    }
    this.toolGroup.removeViewports(this.id, entry.viewportId);
    this.renderingEngine.disableElement(entry.viewportId);
    this.viewports.delete(paneId);
  }

  viewport(paneId) {
    const entry = this.viewports.get(paneId);
    return entry ? this.renderingEngine.getViewport(entry.viewportId) : null;
  }

  /** Register the frames' DICOM JSON with the WADO-RS loader and show the stack. */
  async showStack(paneId, frames, index) {
    const vp = this.viewport(paneId);
    const { element } = this.viewports.get(paneId);
    for (const f of frames) {
      if (!this.frameByImageId.has(f.imageId)) {
        dicomImageLoader.wadors.metaDataManager.add(f.imageId, f.meta);
        this.frameByImageId.set(f.imageId, f);
      }
    }
    this.stopCine(paneId);
    try {
      toolUtils.stackPrefetch.disable(element);
    } catch {
      /* first stack */
    }
    const start = Math.max(0, Math.min(frames.length - 1, index || 0));
    const startId = frames[start].imageId;
    const failed = new Promise((resolve, reject) => this._failWaiters.set(startId, reject));
    try {
      await Promise.race([
        vp.setStack(
          frames.map((f) => f.imageId),
          start,
        ),
        failed,
      ]);
    } finally {
      this._failWaiters.delete(startId);
    }
    vp.render();
    // Progressive loading: the current image was requested first; now fetch the rest of
    // the stack in the background, nearest images first.
    toolUtils.stackPrefetch.enable(element);
  }

  isLoaded(imageId) {
    return !!cache.isLoaded?.(imageId);
  }

  currentIndex(paneId) {
    const vp = this.viewport(paneId);
    return vp ? vp.getCurrentImageIdIndex() : 0;
  }

  currentImageId(paneId) {
    const vp = this.viewport(paneId);
    return vp ? vp.getCurrentImageId() : undefined;
  }

  async setIndex(paneId, index) {
    const vp = this.viewport(paneId);
    if (!vp) return;
    const n = vp.getImageIds().length;
    if (!n) return;
    const i = Math.max(0, Math.min(n - 1, index));
    if (i !== vp.getCurrentImageIdIndex()) await vp.setImageIdIndex(i);
  }

  scroll(paneId, delta) {
    const vp = this.viewport(paneId);
    if (vp && vp.getImageIds().length) vp.scroll(delta);
  }

  // ---- tools -----------------------------------------------------------------------

  setPrimaryTool(toolId) {
    if (!TOOLS[toolId]) return;
    if (this.readOnly && MEASUREMENT_TOOLS.includes(toolId)) return;
    this.primaryTool = toolId;
    this.applyBindings();
  }

  /**
   * Left button = the tool chosen in the toolbar (window/level by default); right = zoom,
   * middle = pan, wheel = scroll, whatever the left button does.
   */
  applyBindings() {
    const tg = this.toolGroup;
    const fixed = {
      zoom: [{ mouseButton: MouseBindings.Secondary }],
      pan: [{ mouseButton: MouseBindings.Auxiliary }],
      scroll: [{ mouseButton: MouseBindings.Wheel }],
      windowLevel: [],
    };
    for (const [id, Tool] of Object.entries(TOOLS)) {
      const name = Tool.toolName;
      const bindings = [...(fixed[id] || [])];
      if (id === this.primaryTool) bindings.push({ mouseButton: MouseBindings.Primary });
      if (bindings.length) {
        tg.setToolActive(name, { bindings });
      } else if (MEASUREMENT_TOOLS.includes(id)) {
        // Passive: existing measurements can be moved/edited; read-only: only drawn.
        if (this.readOnly) tg.setToolEnabled(name);
        else tg.setToolPassive(name);
      } else {
        tg.setToolPassive(name);
      }
    }
  }

  // ---- display -----------------------------------------------------------------------

  modality(paneId) {
    const imageId = this.currentImageId(paneId);
    const f = imageId && this.frameByImageId.get(imageId);
    const m = f?.meta?.['00080060']?.Value?.[0];
    return m || '';
  }

  setWindow(paneId, center, width) {
    const vp = this.viewport(paneId);
    if (!vp || !(width > 0)) return;
    vp.setProperties({ voiRange: windowLevel.toLowHighRange(width, center) });
    vp.render();
  }

  defaultWindow(paneId) {
    const vp = this.viewport(paneId);
    if (!vp) return;
    const { invert } = vp.getProperties();
    vp.resetProperties();
    if (invert) vp.setProperties({ invert: true });
    vp.render();
  }

  toggleInvert(paneId) {
    const vp = this.viewport(paneId);
    if (!vp) return false;
    const invert = !vp.getProperties().invert;
    vp.setProperties({ invert });
    vp.render();
    return invert;
  }

  reset(paneId) {
    const vp = this.viewport(paneId);
    if (!vp) return;
    this.stopCine(paneId);
    vp.resetCamera();
    vp.resetProperties();
    vp.render();
  }

  /** Zoom/pan of every pane, to carry across a layout change (see resize()). */
  snapshot() {
    const views = new Map();
    for (const paneId of this.viewports.keys()) {
      const view = this.getView(paneId);
      if (view) views.set(paneId, { zoom: view.zoom, pan: [...view.pan] });
    }
    return views;
  }

  /**
   * After a size/layout change, re-fit every image and then re-apply the zoom (relative to
   * "fit") and pan (in image units) it had before, so zoom 1 keeps meaning "whole image
   * visible". Cornerstone skips a resize while a render is pending, so this retries on the
   * next frames until every canvas has its new size. Pass a snapshot() taken before the
   * layout changed when enabling/disabling viewports (that resets cameras by itself).
   */
  resize(views) {
    if (this._resizeRaf) cancelAnimationFrame(this._resizeRaf);
    const pending = views || this._pendingViews || this.snapshot();
    this._pendingViews = pending;
    let tries = 0;
    const attempt = () => {
      this._resizeRaf = 0;
      if (!this.viewports.size) {
        this._pendingViews = null;
        return;
      }
      this.renderingEngine.resize(true, false);
      for (const paneId of this.viewports.keys()) {
        const vp = this.viewport(paneId);
        if (!vp || !vp.getImageIds().length || !this._settled(vp)) continue;
        const keep = pending.get(paneId);
        if (keep) {
          this._setZoom(vp, keep.zoom);
          this._setPan(vp, keep.pan);
          pending.delete(paneId);
        }
        vp.render();
      }
      const waiting = [...pending.keys()].some((id) => this.viewports.has(id) && this.viewport(id)?.getImageIds().length);
      if (waiting && ++tries < 30) this._resizeRaf = requestAnimationFrame(attempt);
      else this._pendingViews = null;
    };
    attempt();
  }

  // ---- cine ------------------------------------------------------------------------

  playCine(paneId, fps) {
    const entry = this.viewports.get(paneId);
    if (!entry) return;
    const framesPerSecond = Math.max(1, Math.min(60, Number(fps) || 10));
    this.cineFps.set(paneId, framesPerSecond);
    toolUtils.cine.playClip(entry.element, { framesPerSecond, loop: true });
  }

  stopCine(paneId) {
    const entry = this.viewports.get(paneId);
    if (!entry || !this.cineFps.has(paneId)) return;
    this.cineFps.delete(paneId);
    toolUtils.cine.stopClip(entry.element);
  }

  isPlaying(paneId) {
    return this.cineFps.has(paneId);
  }

  // ---- view state (for the API / consult sync) ---------------------------------------
  //
  // Zoom and pan are defined geometrically so that they mean the same on every screen and
  // in both of Cornerstone's render paths (WebGL and the CPU fallback, whose own
  // getZoom()/getPan() use different units):
  //   zoom = 1 when the whole image just fits the viewport, 2 = twice that size;
  //   pan  = where the image centre is, relative to the viewport centre, in image units
  //          (mm when the image has pixel spacing), x to the right, y down.

  /** World units (mm when the image has pixel spacing) per canvas CSS pixel. */
  _worldPerPixel(vp) {
    const a = vp.canvasToWorld([0, 0]);
    const b = vp.canvasToWorld([1, 0]);
    return Math.hypot(b[0] - a[0], b[1] - a[1], b[2] - a[2]) || 1;
  }

  _geometry(vp) {
    const img = vp.getImageData?.();
    // The size the camera is (or will next be) drawn at, which can lag the element's size.
    const dpr = window.devicePixelRatio || 1;
    const size = vp.getRenderedCanvasSize?.() || { width: vp.canvas.width, height: vp.canvas.height };
    const w = size.width / dpr;
    const h = size.height / dpr;
    if (!img || !img.dimensions || !w || !h) return null;
    const [cols, rows] = img.dimensions;
    const [sx, sy] = img.spacing || [1, 1];
    const o = img.origin || [0, 0, 0];
    const d = img.direction || [1, 0, 0, 0, 1, 0, 0, 0, 1];
    const centre = [0, 1, 2].map((i) => o[i] + (d[i] * (cols - 1) * sx) / 2 + (d[3 + i] * (rows - 1) * sy) / 2);
    const k = this._worldPerPixel(vp);
    const fit = Math.max((cols * sx) / w, (rows * sy) / h);
    const c = vp.worldToCanvas(centre);
    return { k, zoom: fit / k, offset: [c[0] - w / 2, c[1] - h / 2] };
  }

  /** Whether the canvas already has the size of its element (i.e. no resize pending). */
  _settled(vp) {
    const c = vp.canvas;
    if (!c) return false;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(c.clientWidth * dpr);
    const h = Math.round(c.clientHeight * dpr);
    return !!w && !!h && Math.abs(c.width - w) <= 1 && Math.abs(c.height - h) <= 1;
  }

  _zoomPan(g) {
    return {
      zoom: round(g.zoom, 3),
      pan: [round(g.offset[0] * g.k, 1), round(g.offset[1] * g.k, 1)].map((x) => (x === 0 ? 0 : x)),
    };
  }

  _setZoom(vp, zoom) {
    const g = this._geometry(vp);
    if (!g || !(zoom > 0) || Math.abs(g.zoom - zoom) < 1e-4) return;
    // Cornerstone's zoom value is proportional to magnification in both render paths.
    vp.setZoom((vp.getZoom() * zoom) / g.zoom);
  }

  _setPan(vp, pan) {
    const g0 = this._geometry(vp);
    if (!g0) return;
    const target = [pan[0] / g0.k, pan[1] / g0.k];
    const delta = [target[0] - g0.offset[0], target[1] - g0.offset[1]];
    if (Math.abs(delta[0]) < 0.5 && Math.abs(delta[1]) < 0.5) return;
    // setPan()'s units and sign differ between render paths: measure them with a probe.
    const p0 = vp.getPan();
    const probe = 64;
    vp.setPan([p0[0] + probe, p0[1] + probe]);
    const g1 = this._geometry(vp);
    const gain = [(g1.offset[0] - g0.offset[0]) / probe, (g1.offset[1] - g0.offset[1]) / probe];
    if (!gain.every((x) => Number.isFinite(x) && Math.abs(x) > 1e-6)) {
      vp.setPan(p0);
      return;
    }
    vp.setPan([p0[0] + delta[0] / gain[0], p0[1] + delta[1] / gain[1]]);
  }

  getView(paneId) {
    const vp = this.viewport(paneId);
    if (!vp || !vp.getImageIds().length) return null;
    const props = vp.getProperties();
    const view = {
      imageIndex: vp.getCurrentImageIdIndex(),
      windowCenter: null,
      windowWidth: null,
      invert: !!props.invert,
      zoom: 1,
      pan: [0, 0],
    };
    if (props.voiRange && finite(props.voiRange.lower) && finite(props.voiRange.upper)) {
      const { windowCenter, windowWidth } = windowLevel.toWindowLevel(props.voiRange.lower, props.voiRange.upper);
      view.windowCenter = round(windowCenter, 2);
      view.windowWidth = round(windowWidth, 2);
    }
    // During a resize, report the view that will be restored once it is done.
    const pending = this._pendingViews?.get(paneId);
    const g = pending ? null : this._geometry(vp);
    const zp = pending || (g && this._zoomPan(g));
    if (zp) Object.assign(view, { zoom: zp.zoom, pan: [...zp.pan] });
    return view;
  }

  async setView(paneId, view) {
    const vp = this.viewport(paneId);
    if (!vp || !vp.getImageIds().length || !view) return;
    if (Number.isInteger(view.imageIndex)) await this.setIndex(paneId, view.imageIndex);
    const props = {};
    if (finite(view.windowWidth) && finite(view.windowCenter) && view.windowWidth > 0) {
      props.voiRange = windowLevel.toLowHighRange(view.windowWidth, view.windowCenter);
    }
    if (typeof view.invert === 'boolean') props.invert = view.invert;
    if (Object.keys(props).length) vp.setProperties(props);
    const zoom = finite(view.zoom) && view.zoom > 0 ? view.zoom : undefined;
    const pan = Array.isArray(view.pan) && view.pan.length === 2 && view.pan.every(finite) ? view.pan : undefined;
    const pending = this._pendingViews?.get(paneId);
    if (pending) {
      // A resize is in progress: it applies zoom/pan once the canvas has its new size.
      if (zoom) pending.zoom = zoom;
      if (pan) pending.pan = [...pan];
      vp.render();
      return;
    }
    if (zoom) this._setZoom(vp, zoom);
    if (pan) this._setPan(vp, pan);
    vp.render();
  }

  // ---- measurements --------------------------------------------------------------------

  isOurs(ann) {
    const id = ann?.metadata?.referencedImageId;
    return !!id && this.frameByImageId.has(id) && !!TOOL_ID_BY_NAME[ann.metadata.toolName];
  }

  /** Our annotations, as plain serialisable measurement records. */
  getMeasurements() {
    const all = csAnnotation.state.getAllAnnotations() || [];
    return all.filter((ann) => this.isOurs(ann)).map((ann) => this._serialise(ann));
  }

  _serialise(ann) {
    const { metadata, data } = ann;
    const f = this.frameByImageId.get(metadata.referencedImageId);
    const type = TOOL_ID_BY_NAME[metadata.toolName];
    const s = firstStats(data.cachedStats);
    const stats = {};
    if (type === 'length') {
      if (finite(s.length)) Object.assign(stats, { length: round(s.length, 2), unit: s.unit || 'mm' });
    } else if (type === 'angle') {
      if (finite(s.angle)) stats.angle = round(s.angle, 1);
    } else {
      for (const k of ['area', 'mean', 'stdDev', 'min', 'max', 'perimeter']) if (finite(s[k])) stats[k] = round(s[k], 2);
      if (s.areaUnit) stats.areaUnit = s.areaUnit;
      if (s.modalityUnit) stats.unit = s.modalityUnit;
    }
    return {
      uid: ann.annotationUID,
      type,
      studyUid: f.studyUid,
      seriesUid: f.seriesUid,
      sopUid: f.sopUid,
      frame: f.frame,
      label: data.label || '',
      stats,
      points: (data.handles?.points || []).map((p) => p.map((c) => round(c, 3))),
      frameOfReferenceUid: metadata.FrameOfReferenceUID || null,
      viewPlaneNormal: metadata.viewPlaneNormal ? [...metadata.viewPlaneNormal] : null,
      viewUp: metadata.viewUp ? [...metadata.viewUp] : null,
    };
  }

  /**
   * Re-create saved measurements (e.g. when a report is reopened). `imageIdFor(m)`
   * returns the image id for a record, or undefined if that image isn't known (yet).
   */
  addMeasurements(paneId, list, imageIdFor) {
    const entry = this.viewports.get(paneId);
    if (!entry) return [];
    const added = [];
    for (const m of list || []) {
      const Tool = TOOLS[m.type];
      const imageId = imageIdFor(m);
      if (!Tool || !MEASUREMENT_TOOLS.includes(m.type) || !imageId || !Array.isArray(m.points)) continue;
      if (m.uid && csAnnotation.state.getAnnotation(m.uid)) continue;
      const annotation = {
        annotationUID: m.uid || csUtils.uuidv4(),
        highlighted: false,
        invalidated: true,
        isLocked: this.readOnly,
        isVisible: true,
        metadata: {
          toolName: Tool.toolName,
          referencedImageId: imageId,
          FrameOfReferenceUID: m.frameOfReferenceUid || undefined,
          viewPlaneNormal: m.viewPlaneNormal || undefined,
          viewUp: m.viewUp || undefined,
        },
        data: {
          label: m.label || '',
          handles: {
            points: m.points.map((p) => [...p]),
            activeHandleIndex: null,
            textBox: {
              hasMoved: false,
              worldPosition: [0, 0, 0],
              worldBoundingBox: { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] },
            },
          },
          cachedStats: {},
        },
      };
      csAnnotation.state.addAnnotation(annotation, entry.element);
      added.push(annotation.annotationUID);
    }
    this.renderAll();
    return added;
  }

  removeMeasurement(uid) {
    const ann = csAnnotation.state.getAnnotation(uid);
    if (!ann || !this.isOurs(ann) || this.readOnly) return false;
    csAnnotation.state.removeAnnotation(uid);
    this.renderAll();
    return true;
  }

  removeSelectedMeasurements() {
    if (this.readOnly) return 0;
    let n = 0;
    for (const uid of csAnnotation.selection.getAnnotationsSelected() || []) {
      const ann = csAnnotation.state.getAnnotation(uid);
      if (ann && this.isOurs(ann)) {
        csAnnotation.state.removeAnnotation(uid);
        n += 1;
      }
    }
    if (n) this.renderAll();
    return n;
  }

  renderAll() {
    for (const paneId of this.viewports.keys()) {
      const vp = this.viewport(paneId);
      if (vp && vp.getImageIds().length) vp.render();
    }
  }

  destroy() {
    liveEngines.delete(this);
    if (this._resizeRaf) cancelAnimationFrame(this._resizeRaf);
    for (const [target, name, fn] of this._listeners) target.removeEventListener(name, fn);
    this._listeners = [];
    for (const paneId of [...this.viewports.keys()]) this.removePane(paneId);
    for (const ann of csAnnotation.state.getAllAnnotations() || []) {
      if (this.isOurs(ann)) csAnnotation.state.removeAnnotation(ann.annotationUID);
    }
    ToolGroupManager.destroyToolGroup(this.toolGroup.id);
    this.renderingEngine.destroy();
  }
}
