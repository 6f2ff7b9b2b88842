// The live wall (Q19.1 duty monitoring): layouts 1/4/9/16, cameras dragged from the list
// onto tiles, full screen, each tile a LivePlayer; the wall is saved per user.

import { h, clear } from "../dom.js";
import { data } from "../i18n.js";
import { LivePlayer } from "../player.js";

const LAYOUTS = [1, 4, 9, 16];
const DRAG_TYPE = "application/x-viis-camera";

export default async function render(root, ctx) {
  const { t, api } = ctx;
  let cameras = [];
  try {
    cameras = await api("/api/cameras");
  } catch (e) {
    root.append(h("p", { class: "error", role: "alert" }, t("wall.error.cameras"), " ",
      data("span", e.message)));
    return undefined;
  }
  const byId = new Map(cameras.map((c) => [c.id, c]));
  const saved = (ctx.settings && ctx.settings.wall) || null;
  let layout = saved && LAYOUTS.includes(saved.layout) ? saved.layout : 4;
  let tiles = saved && Array.isArray(saved.tiles)
    ? saved.tiles.map((id) => (byId.has(id) ? id : null))
    : cameras.filter((c) => c.enabled !== false).slice(0, layout).map((c) => c.id);
  const players = new Map(); // tile index -> LivePlayer

  // --- camera list ---------------------------------------------------------------------
  const search = h("input", { type: "search", id: "cam-search", placeholder: t("wall.search") });
  const list = h("ul", { class: "cam-list", id: "cam-list" });
  function renderList() {
    clear(list);
    const q = search.value.trim().toLowerCase();
    for (const c of cameras) {
      const hay = `${c.name} ${c.site || ""}`.toLowerCase();
      if (q && !hay.includes(q)) continue;
      const st = (c.status && c.status.state) || "unknown";
      const li = h("li", { draggable: "true", "data-camera": c.id, title: t(`wall.state.${stateKey(st)}`) },
        h("span", { class: `dot ${st}` }), data("span", c.name));
      li.addEventListener("dragstart", (ev) => {
        ev.dataTransfer.setData(DRAG_TYPE, String(c.id));
        ev.dataTransfer.setData("text/plain", String(c.id));
        ev.dataTransfer.effectAllowed = "copy";
      });
      li.addEventListener("dblclick", () => place(firstFree(), c.id));
      list.append(li);
    }
    if (!list.children.length) list.append(h("li", { class: "hint" }, t("wall.no_cameras")));
  }
  search.addEventListener("input", renderList);

  // --- grid ------------------------------------------------------------------------------
  const grid = h("div", { class: "wall-grid", id: "wall-grid" });
  const layoutButtons = LAYOUTS.map((n) => h("button", {
    type: "button", "data-layout": n, id: `layout-${n}`, title: t("wall.layout_n", { n }),
    onclick: () => setLayout(n),
  }, t("wall.layout_n", { n })));
  const full = h("button", { type: "button", id: "wall-fullscreen",
    onclick: () => (document.fullscreenElement ? document.exitFullscreen() : grid.requestFullscreen()) },
  t("wall.fullscreen"));
  const clearBtn = h("button", { type: "button", id: "wall-clear",
    onclick: () => { tiles = []; build(); save(); } }, t("wall.clear"));

  function stateKey(st) {
    return ["recording", "connecting", "backoff", "paused", "disabled", "starting", "stopped"]
      .includes(st) ? st : "unknown";
  }

  function firstFree() {
    for (let i = 0; i < layout; i++) if (!tiles[i]) return i;
    return layout - 1;
  }

  function place(i, camId) {
    tiles = tiles.slice(0, layout);
    while (tiles.length < layout) tiles.push(null);
    const was = tiles.indexOf(camId);
    if (was >= 0 && was !== i) tiles[was] = tiles[i]; // swap when moved between tiles
    tiles[i] = camId;
    build();
    save();
  }

  function tile(i) {
    const camId = tiles[i] || null;
    const el = h("div", { class: "tile", "data-tile": i });
    el.addEventListener("dragover", (ev) => { ev.preventDefault(); el.classList.add("drop"); });
    el.addEventListener("dragleave", () => el.classList.remove("drop"));
    el.addEventListener("drop", (ev) => {
      ev.preventDefault();
      el.classList.remove("drop");
      const id = Number(ev.dataTransfer.getData(DRAG_TYPE) || ev.dataTransfer.getData("text/plain"));
      if (byId.has(id)) place(i, id);
    });
    if (!camId) {
      el.append(h("div", { class: "status" }, t("wall.drop_here")));
      return el;
    }
    const cam = byId.get(camId);
    el.dataset.camera = camId;
    el.draggable = true;
    el.addEventListener("dragstart", (ev) => {
      ev.dataTransfer.setData(DRAG_TYPE, String(camId));
      ev.dataTransfer.setData("text/plain", String(camId));
    });
    el.addEventListener("dblclick", () => {
      if (document.fullscreenElement) document.exitFullscreen(); else el.requestFullscreen();
    });
    const player = new LivePlayer(el, { cameraId: camId, t, api });
    players.set(i, player);
    el.append(h("div", { class: "label" }, data("span", cam ? cam.name : camId)),
      h("button", { type: "button", class: "remove", title: t("wall.remove"),
        onclick: () => { tiles[i] = null; build(); save(); } }, t("wall.remove_symbol")));
    player.start();
    return el;
  }

  function build() {
    for (const p of players.values()) p.stop();
    players.clear();
    clear(grid);
    const side = Math.sqrt(layout);
    grid.style.gridTemplateColumns = `repeat(${side}, 1fr)`;
    grid.style.gridTemplateRows = `repeat(${side}, 1fr)`;
    grid.dataset.layout = layout;
    for (let i = 0; i < layout; i++) grid.append(tile(i));
    for (const b of layoutButtons) b.classList.toggle("active", Number(b.dataset.layout) === layout);
  }

  function setLayout(n) {
    layout = n;
    build();
    save();
  }

  let saveTimer = null;
  function save() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => {
      const wall = { layout, tiles: tiles.slice(0, layout).map((x) => x || null) };
      if (ctx.settings) ctx.settings.wall = wall;
      api("/api/me/settings", { method: "PUT", body: { wall } }).catch(() => {});
    }, 300);
  }

  root.append(h("div", { class: "wall" },
    h("aside", { class: "wall-side" }, h("h2", {}, t("wall.cameras")), search, list),
    h("section", { class: "wall-main" },
      h("div", { class: "wall-tools" }, h("span", { class: "hint" }, t("wall.layout")),
        ...layoutButtons, h("span", { class: "spacer" }), clearBtn, full),
      grid)));
  renderList();
  build();

  // camera states in the list follow the recorder
  const poll = setInterval(async () => {
    try {
      cameras = await api("/api/cameras");
      for (const c of cameras) byId.set(c.id, c);
      renderList();
    } catch { /* next time */ }
  }, 10000);

  return () => {
    clearInterval(poll);
    clearTimeout(saveTimer);
    for (const p of players.values()) p.stop();
    players.clear();
  };
}
