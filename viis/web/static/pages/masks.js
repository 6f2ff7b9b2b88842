// Privacy masks editor (Q9.2, N13.1): polygons drawn on a snapshot of the camera. Click to
// add points, click the first point (or "Close polygon") to finish, drag a corner to move it,
// click inside a polygon to select it, delete, label, save. Points are stored normalised 0..1
// of the full picture (GET/PUT /api/cameras/<id>/privacy-masks); live view and playback draw
// them opaque for every user. The editor shows them half-transparent so the picture under
// them can be checked.

import { h, clear } from "../dom.js";
import { data } from "../i18n.js";
import { useStyles } from "./pages_css.js";

const HANDLE = 7; // px: how near a click must be to grab a corner
const MAX_MASKS = 32;
const MAX_POINTS = 64;

function inside(pt, poly) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > pt[1]) !== (yj > pt[1]) && pt[0] < ((xj - xi) * (pt[1] - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

export default async function render(root, ctx) {
  const { t, api } = ctx;
  useStyles();
  const id = Number(ctx.params[0]);
  const wrap = h("div", { class: "mk" });
  root.append(wrap);
  let cam;
  try {
    cam = await api(`/api/cameras/${id}`);
  } catch (e) {
    wrap.append(h("p", { class: "error" }, t("masks.no_camera"), " ", data("span", e.message)));
    return () => {};
  }
  let masks = [];
  let meta = {};
  try {
    const r = await api(`/api/cameras/${id}/privacy-masks`);
    masks = (r.masks || []).map((m) => ({ label: m.label || "", points: m.points.map((p) => [...p]) }));
    meta = r;
  } catch (e) {
    wrap.append(h("p", { class: "error" }, t("masks.load_failed"), " ", data("span", e.message)));
    return () => {};
  }
  let drawing = null; // points of the polygon being drawn
  let selected = masks.length ? 0 : -1;
  let drag = null; // {mask, point}
  let dirty = false;

  const img = h("img", { id: "mk-img", alt: t("masks.snapshot_alt") });
  const canvas = h("canvas", { id: "mk-canvas" });
  const stage = h("div", { class: "mk-stage", id: "mk-stage" }, img, canvas);
  const list = h("ul", { class: "mk-list", id: "mk-list" });
  const status = h("p", { class: "error", role: "alert", id: "mk-status" });
  const info = h("p", { class: "hint", id: "mk-info" });
  const newBtn = h("button", { type: "button", id: "mk-new" }, t("masks.new"));
  const closeBtn = h("button", { type: "button", id: "mk-close" }, t("masks.close"));
  const delBtn = h("button", { type: "button", id: "mk-delete" }, t("masks.delete"));
  const saveBtn = h("button", { type: "button", id: "mk-save", class: "primary" }, t("common.save"));
  const backLink = h("a", { href: "#/cameras", id: "mk-back" }, t("masks.back"));
  wrap.append(
    h("div", { class: "mk-tools" }, backLink, h("strong", {}, t("masks.title")), data("span", cam.name),
      h("span", { class: "spacer" }), newBtn, closeBtn, delBtn, saveBtn),
    h("p", { class: "hint" }, t("masks.how")),
    h("div", { class: "mk-body" }, stage, h("div", { class: "mk-side" },
      h("strong", {}, t("masks.list")), list, info, status)),
  );

  // the picture: the newest recorded frame (a footage use like any other: it passes the door)
  const now = Date.now();
  try {
    const r = await api(`/api/cameras/${id}/timeline?start=${now - 86_400_000}&end=${now + 60_000}&resolution_ms=60000`);
    const last = r.ranges[r.ranges.length - 1];
    if (last) {
      await new Promise((res) => {
        img.onload = res;
        img.onerror = res;
        img.src = `/api/cameras/${id}/snapshot.jpg?at=${last.end_ms - 1000}&unmasked=true`;
      });
    }
  } catch { /* no picture: the polygons can still be drawn on the empty frame */ }
  if (!img.naturalWidth) {
    img.hidden = true;
    wrap.append(h("p", { class: "hint", id: "mk-no-picture" }, t("masks.no_snapshot")));
  }

  /** Where the picture is shown (object-fit: contain), CSS px within the stage. */
  function rect() {
    const cw = stage.clientWidth, ch = stage.clientHeight;
    const vw = img.naturalWidth || 16, vh = img.naturalHeight || 9;
    const k = Math.min(cw / vw, ch / vh);
    return { x: (cw - vw * k) / 2, y: (ch - vh * k) / 2, w: vw * k, h: vh * k };
  }
  const toPx = ([x, y], r) => [r.x + x * r.w, r.y + y * r.h];
  const toNorm = (px, py, r) => [
    Math.min(1, Math.max(0, (px - r.x) / r.w)), Math.min(1, Math.max(0, (py - r.y) / r.h))];

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const cw = stage.clientWidth, ch = stage.clientHeight;
    canvas.width = Math.round(cw * dpr);
    canvas.height = Math.round(ch * dpr);
    const r = rect();
    canvas.dataset.rect = JSON.stringify(r);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cw, ch);
    g.strokeStyle = "#3d8bfd";
    g.strokeRect(r.x, r.y, r.w, r.h);
    const poly = (pts, fill, stroke, closed = true) => {
      if (!pts.length) return;
      g.beginPath();
      pts.forEach((p, i) => { const [x, y] = toPx(p, r); if (i) g.lineTo(x, y); else g.moveTo(x, y); });
      if (closed) g.closePath();
      if (fill) { g.fillStyle = fill; g.fill(); }
      g.strokeStyle = stroke;
      g.lineWidth = 2;
      g.stroke();
      for (const p of pts) { const [x, y] = toPx(p, r); g.fillStyle = stroke; g.fillRect(x - 4, y - 4, 8, 8); }
    };
    masks.forEach((m, i) => poly(m.points, "rgba(0,0,0,0.65)", i === selected ? "#3d8bfd" : "#ffb020"));
    if (drawing) poly(drawing, null, "#3ecf8e", false);
    canvas.dataset.masks = String(masks.length);
    canvas.dataset.drawing = drawing ? String(drawing.length) : "";
  }

  function renderList() {
    clear(list);
    masks.forEach((m, i) => {
      const label = h("input", { value: m.label, maxlength: 64, "aria-label": t("masks.label"),
        placeholder: t("masks.label"), id: `mk-label-${i}` });
      label.addEventListener("input", () => { m.label = label.value; dirty = true; });
      list.append(h("li", { class: i === selected ? "selected" : "", onclick: () => { selected = i; renderList(); draw(); } },
        label, h("span", { class: "hint" }, t("masks.points", { n: m.points.length }))));
    });
    if (!masks.length) list.append(h("li", { class: "hint" }, t("masks.none")));
    delBtn.disabled = selected < 0;
    closeBtn.disabled = !drawing || drawing.length < 3;
  }

  function finish() {
    if (!drawing || drawing.length < 3) return;
    if (masks.length >= MAX_MASKS) { clear(status).append(t("masks.too_many", { n: MAX_MASKS })); return; }
    masks.push({ label: t("masks.default_label", { n: masks.length + 1 }), points: drawing });
    selected = masks.length - 1;
    drawing = null;
    dirty = true;
    renderList();
    draw();
  }

  function nearest(px, py) {
    const r = rect();
    for (let i = masks.length - 1; i >= 0; i--) {
      for (let j = 0; j < masks[i].points.length; j++) {
        const [x, y] = toPx(masks[i].points[j], r);
        if (Math.abs(x - px) <= HANDLE && Math.abs(y - py) <= HANDLE) return { mask: i, point: j };
      }
    }
    return null;
  }

  canvas.addEventListener("mousedown", (e) => {
    if (drawing) return;
    const hit = nearest(e.offsetX, e.offsetY);
    if (hit) { drag = hit; selected = hit.mask; renderList(); }
  });
  canvas.addEventListener("mousemove", (e) => {
    if (!drag) return;
    masks[drag.mask].points[drag.point] = toNorm(e.offsetX, e.offsetY, rect());
    dirty = true;
    draw();
  });
  window.addEventListener("mouseup", onUp);
  function onUp() { if (drag) { drag = null; renderList(); } }
  canvas.addEventListener("click", (e) => {
    const r = rect();
    if (drawing) {
      if (drawing.length >= 3) {
        const [fx, fy] = toPx(drawing[0], r);
        if (Math.abs(fx - e.offsetX) <= HANDLE && Math.abs(fy - e.offsetY) <= HANDLE) { finish(); return; }
      }
      if (drawing.length >= MAX_POINTS) { clear(status).append(t("masks.too_many_points", { n: MAX_POINTS })); return; }
      drawing.push(toNorm(e.offsetX, e.offsetY, r));
      renderList();
      draw();
      return;
    }
    if (nearest(e.offsetX, e.offsetY)) return;
    const p = toNorm(e.offsetX, e.offsetY, r);
    const i = masks.findIndex((m) => inside(p, m.points));
    if (i >= 0) { selected = i; renderList(); draw(); return; }
    // a click on free picture starts a new polygon
    drawing = [p];
    renderList();
    draw();
  });
  newBtn.addEventListener("click", () => { drawing = []; clear(status); renderList(); draw(); });
  closeBtn.addEventListener("click", finish);
  delBtn.addEventListener("click", () => {
    if (selected < 0) return;
    masks.splice(selected, 1);
    selected = masks.length ? Math.min(selected, masks.length - 1) : -1;
    dirty = true;
    renderList();
    draw();
  });
  saveBtn.addEventListener("click", async () => {
    clear(status);
    try {
      const r = await api(`/api/cameras/${id}/privacy-masks`, { method: "PUT",
        body: { masks: masks.map((m) => ({ label: m.label, points: m.points })) } });
      meta = r || {};
      dirty = false;
      status.className = "ok";
      status.append(t("masks.saved", { n: masks.length }));
      showMeta();
    } catch (e) {
      status.className = "error";
      status.append(t("masks.refused"), " ", data("span", e.message));
    }
  });
  function showMeta() {
    clear(info);
    if (meta.updated_at) info.append(t("masks.updated"), " ", data("span", `${meta.updated_at} · ${meta.updated_by || ""}`));
  }
  const ro = new ResizeObserver(draw);
  ro.observe(stage);
  showMeta();
  renderList();
  draw();
  const beforeUnload = (e) => { if (dirty) { e.preventDefault(); e.returnValue = ""; } };
  window.addEventListener("beforeunload", beforeUnload);
  root.dataset.masksReady = "1";
  return () => {
    ro.disconnect();
    window.removeEventListener("mouseup", onUp);
    window.removeEventListener("beforeunload", beforeUnload);
  };
}
