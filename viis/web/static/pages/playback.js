// Playback: up to 4 cameras played in step from a chosen time, a timeline per camera with
// recorded ranges and gaps (cause on hover), zoom from a day to a minute, click to seek,
// speeds 0.5x-8x, frame step, snapshot, jump to a date and time (Asia/Shanghai shown, UTC
// sent), and "export this range" (files a retrieval request: a copy needs approval, Q23).
//
// Each camera plays through one WebSocket session (/api/cameras/<id>/playback): the door is
// passed once when it opens (one register entry per session). The player asks for 20 s
// windows of fMP4 ahead of the playhead; every window names the wall time of its media time 0
// (origin_ms), so all windows sit on one media timeline (media time = wall - session start)
// and a seek lands on the exact frame. Privacy masks (Q9.2) are drawn opaque over the picture
// by the shared MaskOverlay (player.js), and no picture is shown before they are known.

import { h, clear } from "../dom.js";
import { data } from "../i18n.js";
import { MaskOverlay } from "../player.js";
import { Timeline, ZOOMS, dayStart, fromShanghai, shanghai } from "../timeline.js";
import { useStyles } from "./pages_css.js";

const DAY = 86_400_000;
const WINDOW_MS = 20_000;
const AHEAD_S = 6;
const MAX_CAMERAS = 4;
const SPEEDS = [0.5, 1, 2, 4, 8];

/** The MSE type of an init segment (avc1/hvc1/hev1 sample entry, mp4a when present). */
export function mimeOf(buf) {
  const b = new Uint8Array(buf);
  const find = (s) => {
    const c = [...s].map((x) => x.charCodeAt(0));
    for (let i = 0; i + 4 <= b.length; i++) {
      if (b[i] === c[0] && b[i + 1] === c[1] && b[i + 2] === c[2] && b[i + 3] === c[3]) return i;
    }
    return -1;
  };
  const hex = (n) => n.toString(16).padStart(2, "0");
  const codecs = [];
  const avcc = find("avcC");
  if (avcc >= 0) codecs.push(`avc1.${hex(b[avcc + 5])}${hex(b[avcc + 6])}${hex(b[avcc + 7])}`);
  else if (find("hvcC") >= 0) codecs.push("hvc1.1.6.L93.B0");
  else return null;
  if (find("mp4a") >= 0) codecs.push("mp4a.40.2");
  return `video/mp4; codecs="${codecs.join(", ")}"`;
}

/** One camera's picture in a playback session. */
class SessionPlayer {
  constructor(container, { cam, t, api, onChange }) {
    this.cam = cam;
    this.t = t;
    this.api = api;
    this.onChange = onChange || (() => {});
    this.video = h("video", { muted: true, playsinline: true, disablepictureinpicture: true,
      "data-camera": cam.id });
    this.video.muted = true;
    this.canvas = h("canvas", { class: "mask" });
    this.status = h("div", { class: "status" });
    this.root = h("div", { class: "pb-tile", "data-camera": cam.id }, this.video, this.canvas,
      this.status, h("div", { class: "label" }, data("span", cam.name)));
    container.append(this.root);
    this.overlay = new MaskOverlay(this.video, this.canvas);
    this.queue = [];
    this.pending = new Map(); // id -> {resolve, header, left}
    this.nextId = 1;
    this.inflight = null; // [from, to] of the window being fetched
    this.empty = null; // {from, next_ms}: nothing recorded at the clock's time
    this.fetchedTo = null;
    this.fps = 25;
    this.state = "idle";
  }

  /** Open the session for [from, to). Masks first: no picture before they are known. */
  async open(from, to) {
    this.close(false);
    this.base = from;
    this.from = from;
    this.to = to;
    this._set("loading");
    try {
      const r = await this.api(`/api/cameras/${this.cam.id}/privacy-masks`);
      this.overlay.setMasks(r && r.masks);
    } catch (e) {
      this._set("error", e.status === 403 ? "playback.forbidden" : "playback.masks_unavailable", e.message);
      return false;
    }
    this.ms = new MediaSource();
    this.video.src = URL.createObjectURL(this.ms);
    await new Promise((res) => this.ms.addEventListener("sourceopen", res, { once: true }));
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/cameras/${this.cam.id}/playback` +
      `?start=${from}&end=${to}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (ev) => this._message(ev);
    ws.onclose = (ev) => {
      for (const p of this.pending.values()) p.resolve({ type: "closed" });
      this.pending.clear();
      if (this.ws !== ws) return;
      if (ev.code === 4403) this._set("error", "playback.forbidden", ev.reason);
      else if (ev.code === 4401) this._set("error", "playback.signed_out");
      else if (ev.code !== 1000) this._set("error", "playback.connection_lost");
    };
    const ok = await new Promise((res) => {
      ws.addEventListener("open", () => res(true), { once: true });
      ws.addEventListener("close", () => res(false), { once: true });
    });
    if (ok) this._set("ready");
    return ok;
  }

  close(remove = true) {
    if (this.ws) { const ws = this.ws; this.ws = null; try { ws.close(1000); } catch { /* gone */ } }
    this.sb = null;
    this.queue = [];
    this.inflight = null;
    this.fetchedTo = null;
    this.empty = null;
    if (this.video.src) {
      const url = this.video.src;
      this.video.removeAttribute("src");
      this.video.load();
      URL.revokeObjectURL(url);
    }
    if (remove) { this.overlay.destroy(); this.root.remove(); }
  }

  /** Wall time (UTC ms) of the frame on screen. */
  wall() { return this.base + this.video.currentTime * 1000; }

  mediaOf(ms) { return (ms - this.base) / 1000; }

  /** Is the frame at wall time ``ms`` in the buffer? */
  has(ms) {
    const b = this.sb && this.sb.buffered;
    const m = this.mediaOf(ms);
    if (!b) return false;
    for (let i = 0; i < b.length; i++) if (m >= b.start(i) - 0.001 && m < b.end(i) - 0.02) return true;
    return false;
  }

  bufferedEnd(ms) {
    const b = this.sb && this.sb.buffered;
    const m = this.mediaOf(ms);
    if (!b) return null;
    for (let i = 0; i < b.length; i++) if (m >= b.start(i) - 0.001 && m <= b.end(i)) return this.base + b.end(i) * 1000;
    return null;
  }

  /** Ask for the window [a, b) (clamped to the session). -> the server's header. */
  fetch(a, b) {
    a = Math.max(this.from, Math.round(a));
    b = Math.min(this.to, Math.round(b));
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || b <= a) return Promise.resolve(null);
    const id = this.nextId++;
    this.inflight = [a, b];
    return new Promise((resolve) => {
      this.pending.set(id, { resolve, header: null, left: 0 });
      this.ws.send(JSON.stringify({ op: "fetch", id, from: a, to: b }));
    }).then((head) => {
      if (this.inflight && this.inflight[0] === a) this.inflight = null;
      if (head && head.type === "window") {
        this.fetchedTo = b;
        // footage starts later than asked: [a, origin) is a gap
        this.empty = head.origin_ms > a + 1 ? { from: a, to: head.origin_ms, next_ms: head.origin_ms } : null;
      }
      if (head && head.type === "empty") this.empty = { from: a, to: b, next_ms: head.next_ms };
      return head;
    });
  }

  _message(ev) {
    if (typeof ev.data === "string") {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === "error") {
        this.errorText = msg.error;
        const p = [...this.pending.values()].find((x) => !x.header);
        if (p) { this.pending.forEach((v, k) => { if (v === p) this.pending.delete(k); }); p.resolve(msg); }
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      if (msg.type === "window") {
        p.header = msg;
        p.left = msg.parts;
        this.current = msg.id;
        this._enqueue({ offset: (msg.origin_ms - this.base) / 1000 });
      } else {
        this.pending.delete(msg.id);
        p.resolve(msg);
      }
      return;
    }
    const p = this.pending.get(this.current);
    if (!p) return;
    if (!this.sb) {
      const mime = mimeOf(ev.data);
      if (!mime || !MediaSource.isTypeSupported(mime)) {
        this._set("error", "playback.unsupported");
        return;
      }
      this.sb = this.ms.addSourceBuffer(mime);
      this.sb.mode = "segments";
      this.sb.addEventListener("updateend", () => this._pump());
    }
    p.left -= 1;
    const done = p.left === 0;
    this._enqueue(ev.data, done ? () => { this.pending.delete(this.current); p.resolve(p.header); } : null);
  }

  _enqueue(item, after = null) {
    this.queue.push({ item, after });
    this._pump();
  }

  _pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.ms.readyState !== "open") return;
    while (this.queue.length) {
      const { item, after } = this.queue.shift();
      if (item && item.offset !== undefined) { sb.timestampOffset = item.offset; continue; }
      try {
        sb.appendBuffer(item);
      } catch (e) {
        if (e.name === "QuotaExceededError") {
          this.queue.unshift({ item, after });
          const now = this.video.currentTime;
          try { sb.remove(0, Math.max(0, now - 10)); } catch { /* next time */ }
          return;
        }
        this._set("error", "playback.decode_error");
        return;
      }
      if (after) sb.addEventListener("updateend", () => { after(); this.onChange(); }, { once: true });
      return;
    }
  }

  /** Bring the frame at ``ms`` into the buffer (fetching its window when needed). */
  async ensure(ms) {
    if (this.has(ms)) return true;
    if (this.inflight && ms >= this.inflight[0] && ms < this.inflight[1]) return false;
    if (this.empty && ms >= this.empty.from && ms < this.empty.to) return false;
    const head = await this.fetch(ms, ms + WINDOW_MS);
    return !!(head && head.type === "window");
  }

  /** Keep ``AHEAD_S`` seconds of play time (at ``rate``) buffered past ``ms``. */
  pump(ms, rate) {
    if (this.inflight || !this.sb) return;
    const end = this.bufferedEnd(ms);
    if (end === null) return;
    if (end - ms < AHEAD_S * 1000 * Math.max(1, rate) && end < this.to) this.fetch(end, end + WINDOW_MS * Math.max(1, rate / 2));
  }

  /** Show the frame at wall time ``ms`` (paused) or play from there. */
  show(ms, playing, rate) {
    const v = this.video;
    const target = this.mediaOf(ms);
    if (!this.has(ms)) {
      if (!v.paused) v.pause();
      if (this.empty && ms >= this.empty.from && ms < this.empty.to) this._set("gap");
      else this._set("loading");
      return false;
    }
    this._set("ready");
    const drift = Math.abs(v.currentTime - target);
    if (playing) {
      if (v.playbackRate !== rate) v.playbackRate = rate;
      if (drift > 0.3 * Math.max(1, rate)) v.currentTime = target;
      if (v.paused) v.play().catch(() => {});
    } else {
      if (!v.paused) v.pause();
      if (drift > 0.0005) v.currentTime = target;
    }
    return true;
  }

  _set(state, key = null, detail = null) {
    if (this.state === state && !key) return;
    this.state = state;
    this.root.dataset.state = state;
    clear(this.status);
    const text = key || { loading: "playback.loading", gap: "playback.no_footage" }[state];
    if (text) this.status.append(this.t(text));
    if (detail) this.status.append(h("br"), data("small", detail));
    this.status.hidden = !text;
    this.onChange();
  }
}

/** The clock all players follow: wall time, rate, playing. */
class Clock {
  constructor(ms) { this.set(ms); this.rate = 1; this.playing = false; }
  set(ms) { this.anchor = ms; this.perf = performance.now(); }
  now() { return this.playing ? this.anchor + (performance.now() - this.perf) * this.rate : this.anchor; }
  play() { this.set(this.now()); this.playing = true; }
  pause() { this.set(this.now()); this.playing = false; }
  setRate(r) { this.set(this.now()); this.rate = r; }
}

export default async function render(root, ctx) {
  const { t, api } = ctx;
  useStyles();
  const all = (await api("/api/cameras")) || [];
  const cams = all.filter((c) => c.enabled !== false);
  const wrap = h("div", { class: "pb" });
  root.append(wrap);
  if (!cams.length) {
    wrap.append(h("p", { class: "notice" }, t("playback.no_cameras")));
    return () => {};
  }
  const clock = new Clock(Date.now() - 60_000);
  let chosen = [cams[0].id];
  let players = [];
  let period = null;
  let timer = null;
  let refresh = null;
  let stopped = false;

  // --- controls ----------------------------------------------------------------------
  const camBox = h("div", { class: "pb-cams", role: "group", "aria-label": t("playback.cameras") });
  const camHint = h("span", { class: "hint" }, t("playback.cameras_hint", { n: MAX_CAMERAS }));
  function camPicker() {
    clear(camBox);
    camBox.append(h("span", { class: "pb-label" }, t("playback.cameras")));
    for (const c of cams) {
      const box = h("input", { type: "checkbox", value: c.id, id: `pb-cam-${c.id}`,
        checked: chosen.includes(c.id),
        disabled: !chosen.includes(c.id) && chosen.length >= MAX_CAMERAS });
      box.addEventListener("change", () => {
        chosen = box.checked ? [...chosen, c.id].slice(0, MAX_CAMERAS) : chosen.filter((x) => x !== c.id);
        camPicker();
        openPlayers(clock.now());
      });
      camBox.append(h("label", { for: `pb-cam-${c.id}`, class: "pb-cam" }, box, data("span", c.name)));
    }
    camBox.append(camHint);
  }
  const dateIn = h("input", { type: "date", id: "pb-date", "aria-label": t("playback.date") });
  const timeIn = h("input", { type: "time", id: "pb-time", step: 1, "aria-label": t("playback.time") });
  const goBtn = h("button", { type: "button", id: "pb-go" }, t("playback.go"));
  const playBtn = h("button", { type: "button", id: "pb-play", class: "primary" }, t("playback.play"));
  const backBtn = h("button", { type: "button", id: "pb-step-back", title: t("playback.step_back") }, t("playback.step_back_short"));
  const fwdBtn = h("button", { type: "button", id: "pb-step", title: t("playback.step") }, t("playback.step_short"));
  const speedSel = h("select", { id: "pb-speed", "aria-label": t("playback.speed") },
    ...SPEEDS.map((s) => h("option", { value: s, selected: s === 1 }, t("playback.speed_x", { n: s }))));
  const snapBtn = h("button", { type: "button", id: "pb-snapshot" }, t("playback.snapshot"));
  const zoomIn = h("button", { type: "button", id: "pb-zoom-in", title: t("playback.zoom_in") }, t("playback.plus"));
  const zoomOut = h("button", { type: "button", id: "pb-zoom-out", title: t("playback.zoom_out") }, t("playback.minus"));
  const zoomSel = h("select", { id: "pb-zoom", "aria-label": t("playback.zoom") },
    ...ZOOMS.map((z, i) => h("option", { value: z }, t(`playback.zoom.${i}`))));
  const exportBtn = h("button", { type: "button", id: "pb-export" }, t("playback.export"));
  const markIn = h("button", { type: "button", id: "pb-mark-in" }, t("playback.mark_in"));
  const markOut = h("button", { type: "button", id: "pb-mark-out" }, t("playback.mark_out"));
  const posText = h("span", { id: "pb-position", class: "pb-pos" });
  const tz = h("span", { class: "hint" }, t("playback.timezone"));
  const grid = h("div", { class: "pb-grid", id: "pb-grid" });
  const canvas = h("canvas", { class: "pb-timeline", id: "pb-timeline" });
  const tip = h("div", { class: "pb-tip", id: "pb-tip", hidden: true });
  const legend = h("div", { class: "pb-legend hint" },
    h("span", { class: "sw rec" }), t("playback.legend.recorded"),
    h("span", { class: "sw gap" }), t("playback.legend.gap"),
    h("span", { class: "hint" }, t("playback.legend.select")));
  const message = h("p", { class: "error", role: "alert", id: "pb-error" });
  const form = h("div", { class: "pb-export", id: "pb-export-form", hidden: true });
  wrap.append(
    camBox,
    h("div", { class: "pb-tools" }, dateIn, timeIn, goBtn, tz, h("span", { class: "spacer" }),
      backBtn, playBtn, fwdBtn, speedSel, snapBtn),
    grid,
    h("div", { class: "pb-tools" }, zoomOut, zoomSel, zoomIn, h("span", { class: "pb-label" }, t("playback.position")),
      posText, h("span", { class: "spacer" }), markIn, markOut, exportBtn),
    h("div", { class: "pb-tl-wrap" }, canvas, tip),
    legend, message, form,
  );
  camPicker();

  // --- timeline ----------------------------------------------------------------------
  const tl = new Timeline(canvas, {
    onSeek: (ms) => seek(ms),
    onView: () => { zoomSel.value = String(ZOOMS.reduce((a, z) => (Math.abs(z - tl.span) < Math.abs(a - tl.span) ? z : a))); loadTimeline(); },
    onSelect: (sel) => showSelection(sel),
    onHover: (hit, x) => {
      if (!hit || hit.kind === "none" || !hit.row) { tip.hidden = true; return; }
      clear(tip);
      if (hit.kind === "gap") {
        const g = hit.item;
        tip.append(h("strong", {}, t("playback.gap")), " ", t(`playback.cause.${g.cause}`), h("br"),
          data("span", `${shanghai(g.start_ms)} – ${shanghai(g.end_ms)}`));
        if (g.detail) tip.append(h("br"), data("small", g.detail));
      } else {
        const r = hit.item;
        tip.append(h("strong", {}, t("playback.recorded")), h("br"),
          data("span", `${shanghai(r.start_ms)} – ${shanghai(r.end_ms)}`));
        if (r.hidden_gaps) {
          tip.append(h("br"), t("playback.hidden_gaps", { n: r.hidden_gaps }), " ",
            ...Object.keys(r.hidden_causes || {}).map((c) => h("span", { class: "cause" }, t(`playback.cause.${c}`))));
        }
      }
      tip.append(h("br"), data("small", hit.row.name));
      tip.hidden = false;
      tip.style.left = `${Math.min(x + 12, canvas.clientWidth - 260)}px`;
    },
  });
  canvas.dataset.from = tl.from;

  let tlSeq = 0;
  async function loadTimeline() {
    const seq = ++tlSeq;
    canvas.dataset.from = tl.from;
    canvas.dataset.to = tl.to;
    const rows = await Promise.all(chosen.map(async (id) => {
      const cam = cams.find((c) => c.id === id);
      try {
        const r = await api(`/api/cameras/${id}/timeline?start=${tl.from}&end=${tl.to}&resolution_ms=${tl.resolution}`);
        return { id, name: cam.name, ranges: r.ranges, gaps: r.gaps };
      } catch (e) {
        return { id, name: cam.name, ranges: [], gaps: [], error: e.message };
      }
    }));
    if (seq !== tlSeq || stopped) return;
    tl.setRows(rows);
    canvas.dataset.loaded = String(seq);
    canvas.dataset.rows = JSON.stringify(rows.map((r) => ({ id: r.id, gaps: r.gaps })));
  }

  // --- players -----------------------------------------------------------------------
  function layout() {
    grid.dataset.n = players.length;
  }

  async function openPlayers(at) {
    for (const p of players) p.close();
    players = [];
    clear(grid);
    const start = dayStart(at) - DAY;
    period = [start, start + 3 * DAY];
    players = chosen.map((id) => new SessionPlayer(grid, {
      cam: cams.find((c) => c.id === id), t, api, onChange: () => {},
    }));
    layout();
    await Promise.all(players.map((p) => p.open(period[0], period[1])));
    loadTimeline();
    seek(at);
  }

  function seek(ms) {
    ms = Math.round(ms);
    if (period && (ms < period[0] + 60_000 || ms > period[1] - 60_000)) {
      clock.set(ms);
      openPlayers(ms);
      return;
    }
    clock.set(ms);
    root.dataset.seekMs = ms;
    for (const p of players) { p.empty = null; p.ensure(ms).then(() => tick()); }
    if (ms < tl.from || ms > tl.to) tl.zoomTo(tl.span, ms);
    tick();
  }

  function tick() {
    if (stopped) return;
    let now = clock.now();
    // follow the first picture that is really playing: the clock keeps its pace
    if (clock.playing) {
      const lead = players.find((p) => p.has(now) && !p.video.paused && p.video.readyState >= 3);
      if (lead) { clock.set(lead.wall()); now = clock.anchor; }
      // nothing anywhere: jump to where footage resumes
      if (players.length && players.every((p) => p.empty && now >= p.empty.from && now < p.empty.to)) {
        const next = players.map((p) => p.empty.next_ms).filter((x) => x);
        if (next.length) { clock.set(Math.min(...next)); now = clock.anchor; }
      }
    }
    for (const p of players) {
      if (!p.has(now)) p.ensure(now);
      p.show(now, clock.playing, clock.rate);
      p.pump(now, clock.rate);
    }
    tl.setCursor(now);
    clear(posText).append(data("span", shanghai(now, true)));
    root.dataset.positionMs = Math.round(now);
    const ready = players.length && players.every((p) => p.has(now) && p.video.readyState >= 2 && !p.video.seeking &&
      Math.abs(p.video.currentTime - p.mediaOf(now)) < 0.002);
    root.dataset.frameReady = ready && !clock.playing ? "1" : "0";
  }

  // --- actions -----------------------------------------------------------------------
  function setPlaying(on) {
    if (on) clock.play(); else clock.pause();
    clear(playBtn).append(t(on ? "playback.pause" : "playback.play"));
    tick();
  }
  playBtn.addEventListener("click", () => setPlaying(!clock.playing));
  speedSel.addEventListener("change", () => { clock.setRate(Number(speedSel.value)); tick(); });
  function step(dir) {
    setPlaying(false);
    const fps = players[0] ? players[0].fps : 25;
    seek(clock.now() + dir * (1000 / fps));
  }
  fwdBtn.addEventListener("click", () => step(1));
  backBtn.addEventListener("click", () => step(-1));
  goBtn.addEventListener("click", () => {
    const ms = fromShanghai(dateIn.value, timeIn.value);
    if (ms === null) { message.textContent = t("playback.bad_time"); return; }
    message.textContent = "";
    seek(ms);
  });
  snapBtn.addEventListener("click", () => {
    const at = Math.round(clock.now());
    for (const p of players) {
      const a = h("a", { href: `/api/cameras/${p.cam.id}/snapshot.jpg?at=${at}`,
        download: `camera${p.cam.id}-${at}.jpg` });
      document.body.append(a);
      a.click();
      a.remove();
    }
  });
  zoomIn.addEventListener("click", () => tl.zoomIn());
  zoomOut.addEventListener("click", () => tl.zoomOut());
  zoomSel.addEventListener("change", () => tl.zoomTo(Number(zoomSel.value), clock.now()));
  markIn.addEventListener("click", () => {
    const now = Math.round(clock.now());
    const end = tl.selection ? Math.max(tl.selection[1], now + 1000) : now + 60_000;
    tl.selection = [now, end];
    showSelection(tl.selection);
  });
  markOut.addEventListener("click", () => {
    const now = Math.round(clock.now());
    const start = tl.selection ? Math.min(tl.selection[0], now - 1000) : now - 60_000;
    tl.selection = [start, now];
    showSelection(tl.selection);
  });
  function showSelection(sel) {
    tl.draw();
    exportBtn.dataset.from = sel[0];
    exportBtn.dataset.to = sel[1];
  }
  exportBtn.addEventListener("click", () => openExport());

  function openExport() {
    const sel = tl.selection || [Math.round(clock.now()) - 60_000, Math.round(clock.now()) + 60_000];
    clear(form);
    const field = (id, label, input) => h("label", { for: id }, h("span", {}, label), input);
    const kind = h("select", { id: "ex-kind" }, ...["police", "department", "emergency", "individual"]
      .map((k) => h("option", { value: k }, t(`playback.export.kind.${k}`))));
    const basis = h("input", { id: "ex-basis", required: true, maxlength: 2000 });
    const purpose = h("input", { id: "ex-purpose", required: true, maxlength: 2000 });
    const caseNo = h("input", { id: "ex-case", maxlength: 100 });
    const staff = h("input", { id: "ex-staff", maxlength: 200, value: ctx.user && ctx.user.work_id ? ctx.user.work_id : "" });
    const until = h("input", { id: "ex-until", type: "date",
      value: shanghai(Date.now() + 7 * DAY).slice(0, 10) });
    const person = h("input", { id: "ex-person", maxlength: 200 });
    const relation = h("select", { id: "ex-relation" }, ...["self", "close_relative", "guardian", "carer"]
      .map((k) => h("option", { value: k }, t(`playback.export.relation.${k}`))));
    const status = h("p", { class: "error", role: "alert", id: "ex-status" });
    const ranges = chosen.map((id) => ({ camera_id: id, start: String(Math.round(sel[0])), end: String(Math.round(sel[1])) }));
    const submit = h("button", { type: "submit", class: "primary", id: "ex-submit" }, t("playback.export.submit"));
    const f = h("form", { id: "ex-form" },
      h("h3", {}, t("playback.export.title")),
      h("p", { class: "hint" }, t("playback.export.why")),
      h("p", {}, t("playback.export.range"), " ", data("span", `${shanghai(sel[0])} – ${shanghai(sel[1])}`),
        " ", t("playback.export.cameras", { n: ranges.length })),
      field("ex-kind", t("playback.export.kind"), kind),
      field("ex-basis", t("playback.export.basis"), basis),
      field("ex-purpose", t("playback.export.purpose"), purpose),
      field("ex-case", t("playback.export.case"), caseNo),
      field("ex-staff", t("playback.export.staff"), staff),
      field("ex-until", t("playback.export.until"), until),
      field("ex-person", t("playback.export.person"), person),
      field("ex-relation", t("playback.export.relation"), relation),
      status,
      h("div", { class: "actions" }, submit,
        h("button", { type: "button", id: "ex-cancel", onclick: () => { form.hidden = true; } }, t("common.cancel"))));
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      status.className = "error";
      clear(status);
      try {
        const body = {
          kind: kind.value, legal_basis: basis.value, purpose: purpose.value,
          case_number: caseNo.value, ranges,
          staff_work_ids: staff.value.split(/[,\s]+/).filter(Boolean),
          valid_until: `${until.value}T23:59:59+08:00`,
        };
        if (kind.value === "individual") Object.assign(body, { person_name: person.value, person_relation: relation.value });
        const r = await api("/api/retrievals", { method: "POST", body });
        status.className = "ok";
        status.append(t("playback.export.filed", { id: r.id }));
      } catch (err) {
        status.append(t("playback.export.refused"), " ", data("span", err.message));
        const arts = err.body && err.body.articles;
        if (arts && arts.length) status.append(" ", data("span", arts.join(", ")));
      }
    });
    form.append(f);
    form.hidden = false;
  }

  // --- start -------------------------------------------------------------------------
  // start a little before the newest footage of the first camera, else a minute ago
  const now = Date.now();
  let at = now - 60_000;
  try {
    const r = await api(`/api/cameras/${chosen[0]}/timeline?start=${now - DAY}&end=${now + 60_000}&resolution_ms=1000`);
    const last = r.ranges[r.ranges.length - 1];
    if (last) at = Math.max(last.start_ms, last.end_ms - 15_000);
  } catch { /* no timeline for this user: start a minute ago */ }
  clock.set(at);
  dateIn.value = shanghai(at).slice(0, 10);
  timeIn.value = shanghai(at).slice(11, 19);
  tl.setView(at - 30 * 60_000, at + 30 * 60_000);
  zoomSel.value = String(ZOOMS[2]);
  await openPlayers(at);
  timer = setInterval(tick, 100);
  refresh = setInterval(loadTimeline, 10_000);
  return () => {
    stopped = true;
    clearInterval(timer);
    clearInterval(refresh);
    for (const p of players) p.close();
    tl.destroy();
  };
}
