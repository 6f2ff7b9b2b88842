// Reusable video pieces of the console (live wall, playback):
//  - MseSink: a MediaSource on a <video> with a serial append queue and a bounded buffer;
//  - MaskOverlay: privacy masks (Q9.2, N13.1) drawn opaque on a canvas over the picture,
//    following the video's displayed rectangle (object-fit: contain);
//  - CodecSink: the live fragments' samples decoded with WebCodecs (VideoDecoder) and shown
//    through a MediaStreamTrackGenerator on the same <video>; the page sees its decoder's
//    queue and each frame's age, so it drops to the next keyframe (or keyframes only) instead
//    of presenting late pictures;
//  - LivePlayer: one live tile (WebSocket /api/cameras/<id>/live -> CodecSink, or MseSink
//    where WebCodecs is absent), recovering by itself after a camera or network drop
//    (backoff), states shown through t().
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

/** Top-level or nested ISO-BMFF box ``type`` (4 chars) inside ``u8`` from ``start`` to
 *  ``end``: [payload start, payload end] or null. Walks the given containers only. */
function findBox(u8, path, start = 0, end = u8.length) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  let [type, ...rest] = path;
  let i = start;
  while (i + 8 <= end) {
    let size = dv.getUint32(i), head = 8;
    if (size === 1 && i + 16 <= end) { size = Number(dv.getBigUint64(i + 8)); head = 16; }
    else if (size === 0) size = end - i;
    if (size < head || i + size > end) return null;
    const t = String.fromCharCode(u8[i + 4], u8[i + 5], u8[i + 6], u8[i + 7]);
    if (t === type) {
      if (!rest.length) return [i + head, i + size];
      return findBox(u8, rest, i + head, i + size);
    }
    i += size;
  }
  return null;
}

/** The decoder configuration record (avcC/hvcC payload) of an init segment, or null. It
 *  sits at moov/trak/mdia/minf/stbl/stsd/<sample entry>/<record>: found by its type. */
export function codecDescription(buf) {
  const u8 = new Uint8Array(buf);
  for (let i = 4; i + 4 <= u8.length; i++) {
    const t = String.fromCharCode(u8[i], u8[i + 1], u8[i + 2], u8[i + 3]);
    if (t === "avcC" || t === "hvcC") {
      const size = new DataView(u8.buffer).getUint32(i - 4);
      if (size >= 8 && i - 4 + size <= u8.length) return u8.slice(i + 4, i - 4 + size);
    }
  }
  return null;
}

/** One live fragment (moof+mdat, one sample; viis/media/live.py): its decode time (tfdt,
 *  in the track's timescale), whether it is a keyframe, and the sample (length-prefixed
 *  NAL units, as WebCodecs takes them with a description). */
export function parseFragment(buf) {
  const u8 = new Uint8Array(buf);
  const tfdt = findBox(u8, ["moof", "traf", "tfdt"]);
  const mdat = findBox(u8, ["mdat"]);
  if (!tfdt || !mdat) return null;
  const dv = new DataView(buf);
  const v1 = u8[tfdt[0]] === 1;
  const t = v1 ? Number(dv.getBigUint64(tfdt[0] + 4)) : dv.getUint32(tfdt[0] + 4);
  return { t, key: isKeyFragment(buf), data: u8.subarray(mdat[0], mdat[1]) };
}

const DECODE_QUEUE_MAX = 6;   // chunks waiting in the decoder: more and it is behind
const LATE_MS = 600;          // a frame decoded this long after it arrived: behind
const BEHIND_N = 3;           // behind this often within BEHIND_S: keyframes only ...
const BEHIND_S = 5;
const CODEC_KEY_ONLY_S = 5;   // ... for this long, then every frame again
const MAX_SHOWN_AGE_S = 1.0;  // never present a frame older than this (camera to screen)
const PACE_QUANTILE = 0.8;    // of recent decode-output delays: when a frame is shown
const PACE_BURST = 3;         // more frames than this due at once: show the newest

/** One requestAnimationFrame loop for every CodecSink of the page, running while one
 *  of them has frames waiting for their time. */
const PACER = {
  sinks: new Set(),
  running: false,
  add(sink) {
    this.sinks.add(sink);
    if (!this.running) {
      this.running = true;
      requestAnimationFrame((t) => this.loop(t));
    }
  },
  remove(sink) { this.sinks.delete(sink); },
  loop() {
    const now = performance.now();
    for (const s of this.sinks) {
      s._tick(now);
      if (!s.frames.length) this.sinks.delete(s);
    }
    if (this.sinks.size) requestAnimationFrame((t) => this.loop(t));
    else this.running = false;
  },
};

/** Live video through WebCodecs: each fragment's sample goes to a VideoDecoder, decoded
 *  frames to a MediaStreamTrackGenerator shown by the tile's <video> (so the mask overlay,
 *  full screen and frame callbacks stay as they are). Unlike MSE, the page sees how far
 *  behind decoding is (decodeQueueSize, the time from arrival to output), so it bounds what
 *  it shows (Q2.1, Q19.1: a duty wall must be live):
 *  - a decoder that falls behind (queue > DECODE_QUEUE_MAX or output > LATE_MS after
 *    arrival) skips to the next keyframe; queued work is discarded at that keyframe;
 *  - a frame older than MAX_SHOWN_AGE_S (its keyframe's age on arrival at the server
 *    + its time in this page) is never presented;
 *  - behind BEHIND_N times within BEHIND_S: keyframes only for CODEC_KEY_ONLY_S
 *    (``keyOnly``, which the tile says, and the server is asked for keyframes only);
 *  - decoded frames are paced to one per display refresh at their media time plus the
 *    usual decode delay (PACE_QUANTILE), so bursts from the network do not lose frames
 *    and no queue grows (at most PACE_BURST due at once, else the newest is shown).
 *  ``support(msg)`` says whether this browser can do it for a stream; otherwise the player
 *  uses MseSink. */
export class CodecSink {
  static available() {
    return typeof VideoDecoder !== "undefined" && typeof MediaStreamTrackGenerator !== "undefined"
      && typeof EncodedVideoChunk !== "undefined";
  }

  /** Resolves true when the init message's codec can be decoded by WebCodecs here. */
  static async support(msg) {
    if (!CodecSink.available()) return false;
    const m = /codecs="([^"]+)"/.exec(msg.mime || "");
    if (!m) return false;
    try {
      const r = await VideoDecoder.isConfigSupported({ codec: m[1], optimizeForLatency: true });
      return !!r.supported;
    } catch {
      return false;
    }
  }

  constructor(video, msg, { onKeyOnly, ageOfKey } = {}) {
    this.video = video;
    this.codec = /codecs="([^"]+)"/.exec(msg.mime)[1];
    this.timescale = msg.timescale || 90000;
    this.onKeyOnly = onKeyOnly;
    this.ageOfKey = ageOfKey || (() => 0); // s: the newest keyframe's age when it arrived
    this.closed = false;
    this.configured = false;
    this.waitKey = true;
    this.startup = true;     // the GOP a view starts with is shown even if a little old
    this.keyOnly = false;
    this.keyOnlyUntil = 0;
    this.behinds = []; // when the decoder was last found behind (page ms)
    this.arrivals = new Map(); // chunk timestamp (us) -> [arrival ms, age of its key s]
    this.skips = 0; this.keyOnlyCount = 0; this.late = 0; this.decoded = 0; this.shown = 0;
    this.error = null;
    this.next = null;
    this.writing = false;
    this.frames = [];   // [decoded frame, due (page ms)], waiting for their time (pacing)
    this.offsets = [];  // output (page ms) - media time (ms) of recent frames
    this.offset = 0;
    this.gen = new MediaStreamTrackGenerator({ kind: "video" });
    this.writer = this.gen.writable.getWriter();
    this.decoder = new VideoDecoder({
      output: (f) => this._output(f),
      error: (e) => { this.error = e.name || "decode"; this.configured = false; this.waitKey = true; },
    });
    video.srcObject = new MediaStream([this.gen]);
    video.play().catch(() => {});
    this.ready = Promise.resolve();
  }

  _configure() {
    if (this.decoder.state === "closed") {
      this.decoder = new VideoDecoder({
        output: (f) => this._output(f),
        error: (e) => { this.error = e.name || "decode"; this.configured = false; this.waitKey = true; },
      });
    }
    const cfg = { codec: this.codec, optimizeForLatency: true };
    if (this.description) cfg.description = this.description;
    this.decoder.configure(cfg);
    this.configured = true;
  }

  append(buf) {
    if (this.closed) return;
    const now = performance.now();
    if (this.description === undefined) { // the init segment comes first
      this.description = codecDescription(buf);
      this._configure();
      return;
    }
    const f = parseFragment(buf);
    if (!f) return;
    if (f.key) {
      if (this.sawKey) this.startup = false; // the start GOP is over at the next keyframe
      this.sawKey = true;
      if (this.keyOnly && now >= this.keyOnlyUntil) {
        this.keyOnly = false;
        if (this.onKeyOnly) this.onKeyOnly(false);
      }
      if (!this.configured || this.decoder.decodeQueueSize > 0 || this.pending() > 2) {
        // A keyframe needs nothing before it: drop what the decoder still holds.
        if (this.decoder.state === "configured") this.decoder.reset();
        this.arrivals.clear();
        this._configure();
      }
      this.waitKey = false;
    } else if (this.waitKey || this.keyOnly) {
      return;
    } else if (!this.startup && (this.decoder.decodeQueueSize > DECODE_QUEUE_MAX)) {
      this._behind(now);
      return;
    }
    const ts = Math.round(f.t * 1e6 / this.timescale);
    this.arrivals.set(ts, [now, this.ageOfKey()]);
    try {
      this.decoder.decode(new EncodedVideoChunk({ type: f.key ? "key" : "delta", timestamp: ts,
        data: f.data }));
    } catch (e) {
      this.error = e.name;
      this.configured = false;
      this.waitKey = true;
    }
  }

  /** Chunks handed to the decoder whose frame has not come out yet. */
  pending() {
    return this.arrivals.size;
  }

  _behind(now) {
    this.waitKey = true;
    this.skips += 1;
    this.behinds.push(now);
    while (this.behinds.length && now - this.behinds[0] > BEHIND_S * 1000) this.behinds.shift();
    if (this.behinds.length >= BEHIND_N) {
      if (!this.keyOnly && this.onKeyOnly) this.onKeyOnly(true);
      this.keyOnly = true;
      this.keyOnlyCount += 1;
      this.keyOnlyUntil = now + CODEC_KEY_ONLY_S * 1000;
      this.behinds = [];
    }
  }

  _output(frame) {
    if (this.closed) { frame.close(); return; }
    const now = performance.now();
    const a = this.arrivals.get(frame.timestamp);
    this.arrivals.delete(frame.timestamp);
    this.decoded += 1;
    if (a) {
      const inPage = now - a[0];
      const age = a[1] + inPage / 1000;
      if (!this.startup && (inPage > LATE_MS || age > MAX_SHOWN_AGE_S)) {
        if (!this.waitKey) this._behind(now);
        if (age > MAX_SHOWN_AGE_S) {
          this.late += 1;
          frame.close();
          return;
        }
      }
    }
    if (this.startup && this.decoder.decodeQueueSize === 0 && this.arrivals.size === 0) {
      this.startup = false; // the start GOP is through: from now on, every bound holds
    }
    // Pacing: frames come out of the decoder in bursts (the network, a busy server loop);
    // handed on as they come, two within one display refresh lose the first. Each frame is
    // due at its media time + the PACE_QUANTILE of (output time - media time) over the last
    // ~2 s (so most frames are due after they are decoded, none much later); the pacer
    // hands on one due frame per display refresh, oldest first.
    // (The GOP a view starts with comes in one burst: shown at once, not a pacing sample.)
    let due = -Infinity;
    if (!this.startup) {
      this.offsets.push(now - frame.timestamp / 1000);
      if (this.offsets.length > 50) this.offsets.shift();
      if (this.offsets.length === 1 || this.decoded % 5 === 0) {
        const o = [...this.offsets].sort((x, y) => x - y);
        this.offset = o[Math.floor((o.length - 1) * PACE_QUANTILE)];
      }
      due = frame.timestamp / 1000 + this.offset;
    }
    this.frames.push([frame, due]);
    if (this.frames.length > 8) this.frames.shift()[0].close(); // never a growing queue
    PACER.add(this);
  }

  /** Hand on the oldest frame that is due (when more than PACE_BURST are due, only the
   *  newest of them); called once per display refresh by the shared pacer. */
  _tick(now) {
    if (this.closed || !this.frames.length) return;
    let due = 0;
    while (due < this.frames.length && this.frames[due][1] <= now + 4) due++;
    if (!due) return;
    if (due > PACE_BURST) {
      for (const [f] of this.frames.splice(0, due - 1)) f.close();
    }
    if (this.next) this.next.close(); // only the newest frame waits for the track
    this.next = this.frames.shift()[0];
    this._write();
  }

  _write() {
    if (this.writing || !this.next || this.closed) return;
    const f = this.next;
    this.next = null;
    this.writing = true;
    this.writer.write(f).then(() => {
      this.writing = false;
      this.shown += 1;
      this._write();
    }, () => { this.writing = false; try { f.close(); } catch { /* closed */ } });
  }

  /** No buffered range: WebCodecs has no media timeline to follow. */
  edge() {
    return null;
  }

  close() {
    this.closed = true;
    PACER.remove(this);
    for (const [f] of this.frames) f.close();
    this.frames = [];
    if (this.next) { this.next.close(); this.next = null; }
    try { if (this.decoder.state !== "closed") this.decoder.close(); } catch { /* closed */ }
    try { this.writer.releaseLock(); } catch { /* pending write */ }
    try { this.gen.stop(); } catch { /* stopped */ }
    this.video.srcObject = null;
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
    this.note = h("div", { class: "note", hidden: true }, t("wall.tile.key_only"));
    this.root = h("div", { class: "player" }, this.video, this.canvas, this.status, this.note);
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
    if (this.pendingBufs) { // WebCodecs support is being asked: keep the start in order
      if (this.pendingBufs.length < 400) this.pendingBufs.push(ev.data);
      return;
    }
    this._feed(ev.data);
  }

  _feed(buf) {
    if (!this.sink) return;
    const key = isKeyFragment(buf);
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
    this.sink.append(buf);
  }

  /** A new epoch: WebCodecs when this browser decodes the stream with it (and the page is
   *  not told otherwise: localStorage "viis.player" = "mse"), else MSE. Fragments that
   *  arrive while the browser is asked are kept and fed in order. */
  _init(msg) {
    if (this.sink) this.sink.close();
    this.sink = null;
    this.pendingBufs = null;
    this.codec = msg.codec;
    this._showKeyOnly(false);
    const epoch = this.epochs = (this.epochs || 0) + 1;
    let forced = null;
    try { forced = localStorage.getItem("viis.player"); } catch { /* storage off */ }
    if (forced !== "mse" && CodecSink.available()) {
      const pending = this.pendingBufs = [];
      this.startKey = true;
      this.attempt = 0;
      this._set("connecting");
      CodecSink.support(msg).then((ok) => {
        if (this.stopped || epoch !== this.epochs) return;
        this.pendingBufs = null;
        if (ok) {
          this.sink = new CodecSink(this.video, msg, {
            onKeyOnly: (on) => { this._showKeyOnly(on); this._askKeysOnly(on); },
            ageOfKey: () => this.age || 0 });
          this.root.dataset.decoder = "webcodecs";
        } else if (!this._initMse(msg)) {
          return;
        }
        for (const b of pending) this._feed(b);
      });
      return;
    }
    this._initMse(msg);
  }

  /** Keyframes only from the server too (nothing else would be decoded): less to send
   *  and less for this busy page to receive. */
  _askKeysOnly(on) {
    try {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ op: "keys", on }));
      }
    } catch { /* closing */ }
  }

  _showKeyOnly(on) {
    this.note.hidden = !on;
    this.root.dataset.keyOnly = on ? "1" : "";
  }

  _initMse(msg) {
    if (!MseSink.supported(msg.mime)) {
      this._set("unsupported", null, msg.codec);
      this.stopped = true; // waiting will not help: this browser cannot decode it
      try { this.ws.close(); } catch { /* closing */ }
      return false;
    }
    this.sink = new MseSink(this.video, msg.mime);
    this.root.dataset.decoder = "mse";
    this.startKey = true;
    this.sink.onappend = () => this._follow();
    this.sink.ready.catch(() => this._set("error", "wall.tile.decode_error"));
    this.attempt = 0;
    this._set("connecting");
    return true;
  }

  _dropSink() {
    if (this.sink) this.sink.close();
    this.sink = null;
    this.pendingBufs = null;
    this.epochs = (this.epochs || 0) + 1; // a support answer still on its way is ignored
    this._showKeyOnly(false);
  }

  _lost() {
    this._dropSink();
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
    this._dropSink();
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
    this._dropSink();
    this.overlay.destroy();
    this.root.remove();
  }
}
