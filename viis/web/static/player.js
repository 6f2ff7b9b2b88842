// Reusable video pieces of the console (live wall, playback):
//  - MseSink: a MediaSource on a <video> with a serial append queue and a bounded buffer;
//  - MaskOverlay: privacy masks (Q9.2, N13.1) drawn opaque on a canvas over the picture,
//    following the video's displayed rectangle (object-fit: contain);
//  - LivePlayer: one live tile (WebSocket /api/cameras/<id>/live -> MSE), recovering by
//    itself after a camera or network drop (backoff), states shown through t().
// No string here is user-visible except through t(); see docs/design/console.md.

import { h, clear } from "./dom.js";
import { data } from "./i18n.js";

/** A MediaSource with one SourceBuffer for ``mime`` on ``video``; appends are serialised. */
export class MseSink {
  constructor(video, mime, { keepSeconds = 20 } = {}) {
    this.video = video;
    this.mime = mime;
    this.keep = keepSeconds;
    this.queue = [];
    this.sb = null;
    this.closed = false;
    this.ms = new MediaSource();
    this.url = URL.createObjectURL(this.ms);
    this.ready = new Promise((resolve, reject) => {
      this.ms.addEventListener("sourceopen", () => {
        try {
          this.sb = this.ms.addSourceBuffer(mime);
          this.sb.mode = "segments";
          this.sb.addEventListener("updateend", () => this._pump());
          this.sb.addEventListener("error", () => { this.error = "append"; });
          resolve();
        } catch (e) {
          reject(e);
        }
      }, { once: true });
    });
    video.src = this.url;
  }

  static supported(mime) {
    return typeof MediaSource !== "undefined" && MediaSource.isTypeSupported(mime);
  }

  append(buf) {
    if (this.closed) return;
    this.queue.push(buf);
    this._pump();
  }

  _pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.closed || this.ms.readyState !== "open") return;
    const v = this.video;
    // Bound memory: drop what is far behind the playhead.
    if (sb.buffered.length && v.currentTime - sb.buffered.start(0) > this.keep * 1.5) {
      try { sb.remove(0, Math.max(0, v.currentTime - this.keep)); return; } catch { /* busy */ }
    }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
    } catch (e) {
      if (e.name === "QuotaExceededError") {
        this.queue.unshift(next);
        try { sb.remove(0, Math.max(0, v.currentTime - 2)); } catch { /* next time */ }
      } else {
        this.error = e.name;
      }
    }
    if (this.onappend) this.onappend();
  }

  /** [start, end] of the buffered range that ends last, or null. */
  edge() {
    const b = this.sb && this.sb.buffered;
    if (!b || !b.length) return null;
    return [b.start(b.length - 1), b.end(b.length - 1)];
  }

  close() {
    this.closed = true;
    this.queue = [];
    try { if (this.ms.readyState === "open") this.ms.endOfStream(); } catch { /* closing */ }
    this.video.removeAttribute("src");
    this.video.load();
    URL.revokeObjectURL(this.url);
  }
}

/** Opaque privacy masks over a <video>: ``masks`` = [{label, points: [[x, y], ...]}] with
 *  x, y normalised 0..1 of the full picture. */
export class MaskOverlay {
  constructor(video, canvas) {
    this.video = video;
    this.canvas = canvas;
    this.masks = [];
    this._draw = () => this.draw();
    this.ro = new ResizeObserver(this._draw);
    this.ro.observe(canvas);
    video.addEventListener("resize", this._draw);
    video.addEventListener("loadedmetadata", this._draw);
  }

  setMasks(masks) {
    this.masks = Array.isArray(masks) ? masks : [];
    this.draw();
  }

  /** The rectangle (CSS px, relative to the canvas) where the picture is shown. */
  pictureRect() {
    const cw = this.canvas.clientWidth, ch = this.canvas.clientHeight;
    const vw = this.video.videoWidth, vh = this.video.videoHeight;
    if (!vw || !vh) return { x: 0, y: 0, w: cw, h: ch };
    const scale = Math.min(cw / vw, ch / vh);
    const w = vw * scale, hh = vh * scale;
    return { x: (cw - w) / 2, y: (ch - hh) / 2, w, h: hh };
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const cw = c.clientWidth, ch = c.clientHeight;
    if (c.width !== Math.round(cw * dpr) || c.height !== Math.round(ch * dpr)) {
      c.width = Math.round(cw * dpr);
      c.height = Math.round(ch * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cw, ch);
    if (!this.masks.length) return;
    const r = this.pictureRect();
    g.fillStyle = "#000";
    for (const m of this.masks) {
      const pts = m.points || [];
      if (pts.length < 3) continue;
      g.beginPath();
      pts.forEach(([x, y], i) => {
        const px = r.x + x * r.w, py = r.y + y * r.h;
        if (i) g.lineTo(px, py); else g.moveTo(px, py);
      });
      g.closePath();
      g.fill();
    }
  }

  destroy() {
    this.ro.disconnect();
    this.video.removeEventListener("resize", this._draw);
    this.video.removeEventListener("loadedmetadata", this._draw);
  }
}

const MAX_LAG_S = 1.2;      // further behind than this: skip to the next keyframe
const MAX_AGE_S = 1.0;      // a keyframe older than this on arrival is skipped
const KEY_ONLY_S = 10;      // keyframes-only spell after repeated decoder lag
const CATCH_UP_LAG_S = 0.3; // behind by more than this: play a little faster
const STALL_MS = 4000;      // no frame for this long: the socket is presumed dead
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];

/** Whether a live fragment (one moof+mdat from viis/media/live.py) starts with a keyframe:
 *  its tfhd (at byte 32, after moof and mfhd headers) carries default sample flags (0x20)
 *  only when every sample is a sync sample. */
export function isKeyFragment(buf) {
  const b = new Uint8Array(buf, 0, Math.min(44, buf.byteLength));
  return b.length === 44 && b[36] === 0x74 && b[37] === 0x66 && b[38] === 0x68 &&
    b[39] === 0x64 && (b[43] & 0x20) !== 0;
}

/** One live picture in ``container``. States (``state`` and the ``data-state`` attribute):
 *  connecting, playing, lost (camera signal lost), reconnecting, unsupported, forbidden,
 *  error, stopped. */
export class LivePlayer {
  constructor(container, { cameraId, t, api, onState } = {}) {
    this.cameraId = cameraId;
    this.t = t;
    this.api = api;
    this.onState = onState;
    this.attempt = 0;
    this.stopped = false;
    this.offsets = [];
    this.keyOnlyUntil = 0;
    this.clockOffset = 0; // server ms - page ms, from the best probe
    this.video = h("video", { muted: true, autoplay: true, playsinline: true,
      "disablepictureinpicture": true });
    this.video.muted = true;
    this.canvas = h("canvas", { class: "mask" });
    this.status = h("div", { class: "status" });
    this.root = h("div", { class: "player" }, this.video, this.canvas, this.status);
    this.root.player = this; // for diagnostics and bench/live_latency.py (clock offset)
    container.append(this.root);
    this.overlay = new MaskOverlay(this.video, this.canvas);
    this.video.addEventListener("playing", () => { if (this.state !== "playing") this._set("playing"); });
    this._watchDecoder();
  }

  async start() {
    this.stopped = false;
    this._set("connecting");
    if (!(await this._loadMasks())) return;
    this._connect();
  }

  /** Fail closed: no picture until the privacy masks of the camera are known. */
  async _loadMasks() {
    while (!this.stopped) {
      try {
        const r = await this.api(`/api/cameras/${this.cameraId}/privacy-masks`);
        this.overlay.setMasks(r && r.masks);
        return true;
      } catch (e) {
        if (e.status === 401) { this._set("error", "wall.tile.signed_out"); return false; }
        if (e.status === 403) { this._set("forbidden", null, e.message); return false; }
        if (e.status === 404) { this._set("error", "wall.tile.no_camera"); return false; }
        this._set("reconnecting");
        await this._sleep(this._backoff());
      }
    }
    return false;
  }

  _backoff() {
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    return base * (0.8 + Math.random() * 0.4);
  }

  _sleep(ms) {
    return new Promise((resolve) => { this.timer = setTimeout(resolve, ms); });
  }

  _connect() {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/cameras/${this.cameraId}/live`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.lastData = performance.now();
    ws.onopen = () => { this._probeClock(); };
    ws.onmessage = (ev) => this._message(ev);
    ws.onclose = (ev) => this._closed(ev);
    clearInterval(this.watch);
    this.watch = setInterval(() => this._tick(), 500);
  }

  _probeClock() {
    let n = 0;
    const once = () => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN || n++ >= 5) return;
      this.ws.send(JSON.stringify({ op: "time", t0: Date.now() }));
      setTimeout(once, 200);
    };
    once();
  }

  _message(ev) {
    if (typeof ev.data === "string") {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === "key") {
        // The next fragment is a keyframe received by the server at msg.wall_ms: if that is
        // already old, a backlog built up (network, socket buffers, a busy page): skip it.
        const age = (Date.now() + this.clockOffset - msg.wall_ms) / 1000;
        this.staleKey = !this.startKey && age > MAX_AGE_S; // not the GOP a new view starts with
        this.age = age;
        this.keyT = msg.t;
      } else if (msg.type === "init") this._init(msg);
      else if (msg.type === "lost") this._lost();
      else if (msg.type === "time") {
        const t1 = Date.now(), rtt = t1 - msg.t0;
        this.offsets.push([rtt, msg.server_ms - (msg.t0 + t1) / 2]);
        this.offsets.sort((a, b) => a[0] - b[0]);
        this.clockOffset = this.offsets[0][1]; // the probe with the shortest round trip
      }
      return;
    }
    this.lastData = performance.now();
    if (!this.sink) return;
    const key = isKeyFragment(ev.data);
    if (performance.now() < this.keyOnlyUntil) {
      // The page cannot decode this camera in real time: show its keyframes only, fresh.
      if (!key) return;
      this.skipping = false;
      this.staleKey = false;
      this.jumpToKey = true;
    } else if (key && this.staleKey) {
      // Behind real time: decode nothing until a fresh keyframe, then show it at once —
      // the client-side twin of the server's drop to a keyframe.
      this.staleKey = false;
      this.skipping = true;
    } else if (this.skipping) {
      if (!key) return;
      this.skipping = false;
      this.jumpToKey = true;
      this.skips = (this.skips || 0) + 1;
    }
    if (this.skipping) return;
    if (key) this.startKey = false;
    this.sink.append(ev.data);
  }

  _init(msg) {
    if (this.sink) this.sink.close();
    this.sink = null;
    this.codec = msg.codec;
    if (!MseSink.supported(msg.mime)) {
      this._set("unsupported", null, msg.codec);
      this.stopped = true; // waiting will not help: this browser cannot decode it
      try { this.ws.close(); } catch { /* closing */ }
      return;
    }
    this.sink = new MseSink(this.video, msg.mime);
    this.startKey = true;
    this.sink.onappend = () => this._follow();
    this.sink.ready.catch(() => this._set("error", "wall.tile.decode_error"));
    this.attempt = 0;
    this._set("connecting");
  }

  _lost() {
    if (this.sink) this.sink.close();
    this.sink = null;
    this._set("lost");
  }

  /** The decoder can fall behind the playhead on a busy machine (frames decoded late are
   *  dropped, the picture shown gets old while currentTime looks live). Compare the media
   *  time of each presented frame with the newest frame received: when it is more than
   *  MAX_LAG_S behind, skip to the next keyframe; when that happens twice within
   *  KEY_ONLY_S, show keyframes only for KEY_ONLY_S. */
  _watchDecoder() {
    const v = this.video;
    if (!v.requestVideoFrameCallback) return;
    const onFrame = (now, meta) => {
      if (this.stopped) return;
      const e = this.sink && this.sink.edge();
      if (e && !this.skipping && e[1] - meta.mediaTime > MAX_LAG_S) {
        this.skipping = true;
        if (now - (this.lastDecoderSkip || -1e9) < KEY_ONLY_S * 1000) {
          this.keyOnlyUntil = now + KEY_ONLY_S * 1000;
          this.keyOnly = (this.keyOnly || 0) + 1;
        }
        this.lastDecoderSkip = now;
      }
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }

  /** Stay at the live edge: catch up gently when a little behind, jump when far behind. */
  _follow() {
    const v = this.video, e = this.sink && this.sink.edge();
    if (!e) return;
    const [start, end] = e;
    const lag = end - v.currentTime;
    if (this.jumpToKey) {
      this.jumpToKey = false;
      v.currentTime = this.keyT; // the keyframe just appended (its time from the "key" message)
    } else if (v.currentTime < start) {
      v.currentTime = Math.max(start, end - 0.1);
    } else if (lag > MAX_LAG_S) {
      this.skipping = true;
    }
    v.playbackRate = lag > CATCH_UP_LAG_S ? 1.1 : 1.0;
    if (v.paused && v.readyState >= 2) v.play().catch(() => {});
  }

  _tick() {
    if (this.stopped || !this.ws) return;
    const quiet = performance.now() - this.lastData;
    if (this.ws.readyState === WebSocket.OPEN && this.state === "playing" && quiet > STALL_MS) {
      this._set("lost");
      try { this.ws.close(); } catch { /* closing */ }
    }
  }

  _closed(ev) {
    clearInterval(this.watch);
    if (this.sink) { this.sink.close(); this.sink = null; }
    if (this.stopped) return;
    if (ev.code === 4401) { this._set("error", "wall.tile.signed_out"); return; }
    if (ev.code === 4403) { this._set("forbidden", null, ev.reason); return; }
    if (ev.code === 4404) { this._set("error", "wall.tile.no_camera"); return; }
    if (this.state !== "lost") this._set("reconnecting");
    this._sleep(this._backoff()).then(() => {
      if (this.stopped) return;
      if (this.state === "lost") this._set("reconnecting");
      this._connect();
    });
  }

  _set(state, key = null, detail = null) {
    this.state = state;
    this.root.dataset.state = state;
    const t = this.t;
    const text = {
      connecting: "wall.tile.connecting", lost: "wall.tile.lost",
      reconnecting: "wall.tile.reconnecting", forbidden: "wall.tile.forbidden",
      unsupported: "wall.tile.unsupported", stopped: "",
    }[state];
    clear(this.status);
    this.status.className = "status" + (state === "lost" || state === "reconnecting" ? " lost"
      : state === "error" || state === "forbidden" || state === "unsupported" ? " error" : "");
    const k = key || text;
    if (state !== "playing" && k) {
      this.status.append(state === "unsupported" ? t(k, { codec: (detail || "").toUpperCase() }) : t(k));
      if (detail && state === "forbidden") this.status.append(h("br"), data("small", detail));
    }
    if (this.onState) this.onState(state);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watch);
    if (this.ws) { this.ws.onclose = null; try { this.ws.close(); } catch { /* closing */ } }
    if (this.sink) this.sink.close();
    this.sink = null;
    this.overlay.destroy();
    this.root.remove();
  }
}
