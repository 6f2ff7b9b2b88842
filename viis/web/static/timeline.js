// The playback timeline: one row per camera on a canvas, recorded ranges and gaps (gap cause
// on hover), zoom from a day to a minute, click to seek, a cursor at the playing time.
// Times are UTC milliseconds everywhere; labels are drawn in Asia/Shanghai (invariant 5).
// The widget only draws and reports; the page fetches /api/cameras/{id}/timeline.

export const ZOOMS = [86_400_000, 6 * 3_600_000, 3_600_000, 10 * 60_000, 60_000]; // day → minute
export const TZ = "Asia/Shanghai";
const ROW_H = 26;
const AXIS_H = 22;
const LABEL_W = 0;

const fmtCache = new Map();
function fmt(opts) {
  const key = JSON.stringify(opts);
  if (!fmtCache.has(key)) fmtCache.set(key, new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hourCycle: "h23", ...opts }));
  return fmtCache.get(key);
}

/** "YYYY-MM-DD HH:MM:SS" of a UTC ms instant, in Asia/Shanghai. */
export function shanghai(ms, withMs = false) {
  const p = Object.fromEntries(fmt({ year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(ms))
    .map((x) => [x.type, x.value]));
  const base = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  return withMs ? `${base}.${String(Math.floor(((ms % 1000) + 1000) % 1000)).padStart(3, "0")}` : base;
}

/** UTC ms of a wall time "YYYY-MM-DD" + "HH:MM[:SS]" read in Asia/Shanghai (UTC+8, no DST). */
export function fromShanghai(date, time) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date || "");
  const n = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(time || "00:00");
  if (!m || !n) return null;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +n[1], +n[2], +(n[3] || 0)) - 8 * 3_600_000;
  return Number.isFinite(ms) ? ms : null;
}

/** Midnight (Asia/Shanghai) of the day holding ``ms``, as UTC ms. */
export function dayStart(ms) {
  const off = 8 * 3_600_000;
  return Math.floor((ms + off) / 86_400_000) * 86_400_000 - off;
}

function tickStep(span) {
  const steps = [1_000, 5_000, 10_000, 30_000, 60_000, 5 * 60_000, 10 * 60_000, 30 * 60_000,
    3_600_000, 3 * 3_600_000, 6 * 3_600_000];
  return steps.find((s) => span / s <= 12) || 6 * 3_600_000;
}

export class Timeline {
  /** canvas: the <canvas>; opts: {onSeek(ms), onHover(info|null, x, y), onView(from, to)} */
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.opts = opts;
    this.rows = []; // [{id, name, ranges, gaps}]
    this.from = dayStart(Date.now());
    this.to = this.from + ZOOMS[0];
    this.cursor = null;
    this.selection = null; // [from, to] for "export this range"
    this._drag = null;
    canvas.addEventListener("click", (e) => this._click(e));
    canvas.addEventListener("mousemove", (e) => this._move(e));
    canvas.addEventListener("mouseleave", () => this.opts.onHover && this.opts.onHover(null));
    canvas.addEventListener("wheel", (e) => this._wheel(e), { passive: false });
    canvas.addEventListener("mousedown", (e) => { if (e.shiftKey) this._drag = this.timeAt(e.offsetX); });
    canvas.addEventListener("mouseup", (e) => {
      if (this._drag !== null && e.shiftKey) {
        const b = this.timeAt(e.offsetX);
        this.selection = [Math.min(this._drag, b), Math.max(this._drag, b)];
        this.opts.onSelect && this.opts.onSelect(this.selection);
        this._suppressClick = true;
        this.draw();
      }
      this._drag = null;
    });
    this._ro = new ResizeObserver(() => this.draw());
    this._ro.observe(canvas);
  }

  destroy() { this._ro.disconnect(); }

  get span() { return this.to - this.from; }

  /** Resolution to ask the API for: what one CSS pixel covers. */
  get resolution() { return Math.max(1, Math.floor(this.span / Math.max(100, this.width))); }

  get width() { return this.canvas.clientWidth || 800; }

  setView(from, to) {
    this.from = Math.round(from);
    this.to = Math.round(to);
    this.draw();
    this.opts.onView && this.opts.onView(this.from, this.to);
  }

  /** Zoom to ``span`` (one of ZOOMS or any) keeping ``around`` (default: cursor/centre) in place. */
  zoomTo(span, around) {
    const c = around ?? (this.cursor !== null && this.cursor >= this.from && this.cursor <= this.to
      ? this.cursor : (this.from + this.to) / 2);
    const frac = (c - this.from) / this.span;
    this.setView(c - frac * span, c - frac * span + span);
  }

  zoomIn() {
    const next = ZOOMS.find((z) => z < this.span - 1) ?? ZOOMS[ZOOMS.length - 1];
    this.zoomTo(next);
  }

  zoomOut() {
    const bigger = [...ZOOMS].reverse().find((z) => z > this.span + 1) ?? ZOOMS[0];
    this.zoomTo(bigger);
  }

  pan(fraction) {
    const d = this.span * fraction;
    this.setView(this.from + d, this.to + d);
  }

  setRows(rows) { this.rows = rows; this.draw(); }

  setCursor(ms) { this.cursor = ms; this.draw(); }

  xOf(ms) { return LABEL_W + ((ms - this.from) / this.span) * (this.width - LABEL_W); }

  timeAt(x) { return this.from + ((x - LABEL_W) / (this.width - LABEL_W)) * this.span; }

  /** What is under (x, y): {row, kind: "range"|"gap"|"none", item, at}. */
  hit(x, y) {
    const i = Math.floor((y - AXIS_H) / ROW_H);
    const row = this.rows[i];
    const at = this.timeAt(x);
    if (!row) return { row: null, kind: "none", at };
    const slack = this.span / this.width * 2; // 2 px either side: thin gaps stay hoverable
    const gap = row.gaps.find((g) => at >= g.start_ms - slack && at <= Math.max(g.end_ms, g.start_ms) + slack);
    if (gap) return { row, kind: "gap", item: gap, at };
    const range = row.ranges.find((r) => at >= r.start_ms && at <= r.end_ms);
    if (range) return { row, kind: "range", item: range, at };
    return { row, kind: "none", at };
  }

  _click(e) {
    if (this._suppressClick) { this._suppressClick = false; return; }
    const at = this.timeAt(e.offsetX);
    this.opts.onSeek && this.opts.onSeek(Math.round(at));
  }

  _move(e) {
    if (!this.opts.onHover) return;
    const h = this.hit(e.offsetX, e.offsetY);
    this.opts.onHover(h, e.offsetX, e.offsetY);
  }

  _wheel(e) {
    e.preventDefault();
    const at = this.timeAt(e.offsetX);
    const span = Math.min(ZOOMS[0] * 2, Math.max(ZOOMS[ZOOMS.length - 1] / 2, this.span * (e.deltaY > 0 ? 1.5 : 1 / 1.5)));
    this.zoomTo(span, at);
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = this.width;
    const hgt = AXIS_H + ROW_H * Math.max(1, this.rows.length) + 4;
    c.style.height = `${hgt}px`;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#10151b";
    g.fillRect(0, 0, w, hgt);
    // axis, in Asia/Shanghai
    const step = tickStep(this.span);
    const off = 8 * 3_600_000;
    const first = Math.ceil((this.from + off) / step) * step - off;
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    const opts = step < 60_000 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
      : { hour: "2-digit", minute: "2-digit" };
    for (let tk = first; tk <= this.to; tk += step) {
      const x = this.xOf(tk);
      g.fillStyle = "#2f3945";
      g.fillRect(Math.round(x), AXIS_H - 4, 1, hgt - AXIS_H + 4);
      g.fillStyle = "#9aa7b4";
      g.fillText(fmt(opts).format(new Date(tk)), x + 3, AXIS_H / 2);
    }
    this.rows.forEach((row, i) => {
      const y = AXIS_H + i * ROW_H + 3;
      const hh = ROW_H - 6;
      g.fillStyle = "#1a2028";
      g.fillRect(0, y, w, hh);
      for (const r of row.ranges) {
        const x0 = Math.max(0, this.xOf(r.start_ms));
        const x1 = Math.min(w, this.xOf(r.end_ms));
        if (x1 < 0 || x0 > w) continue;
        g.fillStyle = r.browser_playable === false ? "#8a6d1f" : "#2e9e6b";
        g.fillRect(x0, y, Math.max(1, x1 - x0), hh);
        if (r.hidden_gaps) { // short gaps too small to draw at this zoom: a red tick
          g.fillStyle = "#ff5d5d";
          g.fillRect(x0, y + hh - 3, Math.max(1, x1 - x0), 3);
        }
      }
      for (const gp of row.gaps) {
        const x0 = Math.max(0, this.xOf(gp.start_ms));
        const x1 = Math.min(w, this.xOf(Math.max(gp.end_ms, gp.start_ms)));
        if (x1 < 0 || x0 > w) continue;
        g.fillStyle = "rgba(255, 93, 93, 0.85)";
        g.fillRect(x0, y, Math.max(2, x1 - x0), hh);
      }
      if (row.name) { // the camera's name at the row's left edge (data, not a UI string)
        g.font = "11px system-ui, sans-serif";
        const tw = g.measureText(row.name).width;
        g.fillStyle = "rgba(15, 19, 24, 0.75)";
        g.fillRect(2, y + 2, tw + 8, hh - 4);
        g.fillStyle = "#e6ebf0";
        g.fillText(row.name, 6, y + hh / 2);
      }
    });
    if (this.selection) {
      const [a, b] = this.selection;
      g.fillStyle = "rgba(61, 139, 253, 0.25)";
      g.fillRect(this.xOf(a), AXIS_H, Math.max(2, this.xOf(b) - this.xOf(a)), hgt - AXIS_H);
    }
    if (this.cursor !== null && this.cursor >= this.from && this.cursor <= this.to) {
      const x = Math.round(this.xOf(this.cursor));
      g.fillStyle = "#3d8bfd";
      g.fillRect(x - 1, 0, 2, hgt);
    }
  }
}
