// The health wall (issue 5; Q19.3 keep images clear and time accurate, keep the system
// running, have faults repaired and take an emergency measure when a repair cannot be quick;
// Q19.6 storage quality). One tile per camera the user may see: status (recording, offline,
// fault), open faults with type and since-when, the open ticket's state and repair deadline
// (overdue highlighted; "emergency measure required" when overdue without one, Q19.3),
// availability over 24 h, the latest clock offset; the server's clock state; a status filter;
// refreshed every few seconds. A click opens the camera's 30-day history (daily availability
// bars, faults, clock readings). Ticket actions only for users whose roles carry ticket.work
// (the server checks again: viis/access/policy.py).
// Data: GET /api/health/cameras, /api/health/tickets?open=true, /api/cameras (recorder state),
// /api/health/cameras/{id}/history; POST /api/health/tickets/{id}/{ack,repair,emergency}.

import { h, clear } from "../dom.js";
import { data } from "../i18n.js";
import { useStyles } from "./pages_css.js";

const REFRESH_MS = 5000;
// roles that carry "ticket.work" in viis/access/policy.py (the buttons are a convenience:
// the API refuses everyone else)
const WORK_ROLES = ["maintainer", "unit_admin", "platform_admin"];
const KNOWN_KINDS = new Set(["video_black", "video_blur", "video_occluded", "video_scene_change",
  "video_frozen", "video_too_dark", "video_too_bright", "video_colour_cast", "video_noise",
  "video_stripes", "video_no_signal", "video_signal_loss", "clock_offset", "storage_quality",
  "disk_full", "retention_exceeded", "retention_at_risk",
  // GB/T 28181 device alarms on a channel's camera (viis/interconnect/gb28181/alarms.py)
  "device_tamper", "device_disk_full", "device_high_temperature", "device_low_temperature",
  "video_anomaly", "device_disk_fault", "device_fan_fault", "device_fault", "gb_device_alarm"]);
// Faults of a whole GB/T 28181 device (no camera): gb_offline_<id>, gb_<kind>_<id>
const GB_DEVICE_KIND = /^gb_(.+)_(\d{20})$/;
const TICKET_STATES = ["open", "acknowledged", "repaired", "cleared", "closed"];

// Times are shown in Asia/Shanghai (architecture invariant 5), whatever the browser's zone.
const FMT = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric",
  month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  hour12: false });
const when = (iso) => (iso ? FMT.format(new Date(iso)) : "—");
const pct = (x) => (x == null ? "—" : `${(x * 100).toFixed(x > 0 && x < 0.01 ? 3 : 1)} %`);
const secs = (ms) => (ms == null ? "—" : `${ms >= 0 ? "+" : "−"}${(Math.abs(ms) / 1000).toFixed(1)} s`);

/** The most recent clock reading of a tile (any source) as [source, reading]. */
function latestClock(clock) {
  let best = null;
  for (const [src, r] of Object.entries(clock || {})) {
    if (!best || Date.parse(r.at) > Date.parse(best[1].at)) best = [src, r];
  }
  return best;
}

const CSS = `
.health { padding: 12px; }
.health-tools { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.health-tools h2 { margin: 0 8px 0 0; font-size: 18px; }
.health-tools .spacer { flex: 1; }
.health #health-message { margin: 4px 0; min-height: 0; }
.health-body { display: flex; gap: 12px; align-items: flex-start; }
.health-grid { list-style: none; padding: 0; margin: 8px 0; flex: 1; display: grid; gap: 10px;
  grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); }
.health-tile { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--ok);
  border-radius: 6px; padding: 10px; display: flex; flex-direction: column; gap: 6px; }
.health-tile.offline { border-left-color: var(--muted); }
.health-tile.fault { border-left-color: var(--danger); }
.health-tile .row { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; }
.health-tile button.link { background: none; border: none; padding: 0; color: var(--accent);
  font-weight: 600; cursor: pointer; text-decoration: underline; }
.health .badge { padding: 1px 8px; border-radius: 10px; background: var(--panel2); font-size: 12px; }
.health .badge.recording, .health .badge.ok { background: var(--ok); color: #000; }
.health .badge.offline { background: var(--muted); color: #000; }
.health .badge.fault, .health .badge.warn { background: var(--danger); color: #fff; }
.health .healthy { color: var(--ok); margin: 0; }
.health ul.faults { margin: 0; padding-left: 18px; }
.health li.fault.critical { color: var(--danger); }
.health li.fault.warning { color: var(--warn); }
.health .ticket { border: 1px solid var(--line); border-radius: 4px; padding: 6px; background: var(--panel2); }
.health .ticket.overdue { border-color: var(--danger); }
.health .due.overdue { color: var(--danger); font-weight: 600; }
.health .emergency-required { color: #fff; background: var(--danger); padding: 2px 6px; border-radius: 3px;
  margin-top: 4px; font-weight: 600; }
.health .actions { margin-top: 6px; }
.health .actions input { flex: 1; min-width: 120px; }
.health .src::before { content: "("; } .health .src::after { content: ")"; }
.health-history { width: 420px; flex: none; background: var(--panel); border: 1px solid var(--line);
  border-radius: 6px; padding: 10px; margin-top: 8px; }
.health-history .row { display: flex; align-items: center; }
.health-history .row .spacer { flex: 1; }
.health-history h3 { margin: 0; }
.health-history .bars { display: flex; align-items: flex-end; gap: 2px; height: 80px;
  border-bottom: 1px solid var(--line); }
.health-history .bar { flex: 1; height: 100%; display: flex; align-items: flex-end; background: var(--panel2); }
.health-history .bar .fill { width: 100%; background: var(--ok); }
.health-history table { width: 100%; border-collapse: collapse; font-size: 12px; }
.health-history td, .health-history th { text-align: left; padding: 2px 4px; border-bottom: 1px solid var(--line); }
`;

function useHealthStyles() {
  if (document.getElementById("health-css")) return;
  document.head.append(Object.assign(document.createElement("style"), { id: "health-css", textContent: CSS }));
}

export default async function render(root, ctx) {
  const { t, api } = ctx;
  useStyles();
  useHealthStyles();
  const roles = (ctx.user && ctx.user.roles) || [];
  const canWork = roles.some((r) => WORK_ROLES.includes(r));
  const kind = (k) => {
    if (KNOWN_KINDS.has(k)) return t(`health.kind.${k}`);
    const m = GB_DEVICE_KIND.exec(k);
    if (m && m[1] === "offline") return t("health.kind.gb_offline", { id: m[2] });
    if (m && KNOWN_KINDS.has(m[1])) {
      return t("health.kind.gb_device", { id: m[2], kind: t(`health.kind.${m[1]}`) });
    }
    return data("span", k);
  };
  const source = (s) => (["timecode", "rtcp_sr", "onvif", "ocr", "segment_rtcp_sr"].includes(s)
    ? t(`health.clock_source.${s}`) : data("span", s));

  const filter = h("select", { id: "health-filter", "aria-label": t("health.filter") },
    ...["all", "recording", "offline", "fault"].map((f) =>
      h("option", { value: f }, t(`health.filter.${f}`))));
  const serverClock = h("span", { id: "health-server-clock" });
  const counts = h("span", { class: "hint", id: "health-counts" });
  const updated = h("span", { class: "hint", id: "health-updated" });
  const message = h("p", { class: "error", role: "alert", id: "health-message" });
  const grid = h("ul", { class: "health-grid", id: "health-grid" });
  const panel = h("section", { class: "health-history", id: "health-history", hidden: true });
  root.append(h("div", { class: "health" },
    h("div", { class: "health-tools" }, h("h2", {}, t("health.title")), serverClock,
      h("span", { class: "spacer" }), counts,
      h("label", { for: "health-filter" }, t("health.filter"), " ", filter), updated),
    message, h("div", { class: "health-body" }, grid, panel)));

  let tiles = [];
  let tickets = [];
  let rec = new Map(); // camera id -> recorder state
  let openHistory = null;
  let stopped = false;
  let timer = null;

  function statusOf(tile) {
    if (tile.open_faults.length) return "fault";
    return rec.get(tile.id) === "recording" ? "recording" : "offline";
  }

  async function load() {
    try {
      const [wall, tk, cams] = await Promise.all([api("/api/health/cameras"),
        api("/api/health/tickets?open=true"), api("/api/cameras").catch(() => [])]);
      tiles = wall.cameras || [];
      tickets = tk || [];
      rec = new Map((cams || []).map((c) => [c.id, c.status && c.status.state]));
      clear(message);
      drawClock(wall.server_clock || {});
      draw();
      clear(updated).append(t("health.updated"), " ", data("span", when(new Date().toISOString())));
    } catch (e) {
      clear(message).append(t("health.load_failed"), " ", data("span", e.message));
    }
  }

  function drawClock(sc) {
    const state = sc.synced === true ? "synced" : sc.synced === false ? "unsynced" : "unknown";
    clear(serverClock).append(t("health.server_clock"), " ",
      h("span", { class: `badge ${state === "synced" ? "ok" : "warn"}`, id: "health-server-clock-state" },
        t(`health.server_clock.${state}`)));
    if (sc.offset_ms != null) serverClock.append(" ", data("span", secs(sc.offset_ms)));
  }

  function busy() { // a maintainer typing a note: do not redraw under their hands
    const el = document.activeElement;
    return el && grid.contains(el) && el.tagName === "INPUT" && el.value !== "";
  }

  function draw() {
    if (busy()) return;
    clear(grid);
    const want = filter.value;
    const byStatus = { recording: 0, offline: 0, fault: 0 };
    for (const tile of tiles) byStatus[statusOf(tile)] += 1;
    clear(counts).append(t("health.counts", byStatus));
    const shown = tiles.filter((x) => want === "all" || statusOf(x) === want);
    for (const tile of shown) grid.append(card(tile));
    if (!shown.length) grid.append(h("li", { class: "notice" }, t(tiles.length ? "health.no_match" : "health.none")));
  }

  function card(tile) {
    const st = statusOf(tile);
    const li = h("li", { class: `health-tile ${st}`, "data-camera": tile.id, "data-status": st,
      id: `health-tile-${tile.id}` });
    li.append(h("div", { class: "row" },
      h("button", { type: "button", class: "link name", id: `health-open-${tile.id}`,
        title: t("health.history.open"), onclick: () => showHistory(tile.id) }, data("span", tile.name)),
      h("span", { class: `badge ${st}`, id: `health-status-${tile.id}` }, t(`health.status.${st}`))));
    if (!tile.open_faults.length) {
      li.append(h("p", { class: "ok healthy" }, t("health.healthy")));
    } else {
      li.append(h("ul", { class: "faults" }, ...tile.open_faults.map((f) =>
        h("li", { class: `fault ${f.severity}`, "data-kind": f.kind }, kind(f.kind), " ",
          t("health.since"), " ", data("span", when(f.opened), { class: "since" })))));
    }
    for (const tk of tickets.filter((x) => x.camera_id === tile.id)) li.append(ticketBox(tk));
    const clk = latestClock(tile.clock);
    li.append(h("div", { class: "row hint" },
      t("health.availability_24h"), " ", data("span", pct(tile.availability_24h), { class: "avail" }),
      " ", t("health.sep"), " ", t("health.clock_offset"), " ",
      clk ? [data("span", secs(clk[1].offset_ms), { class: "offset" }), " ",
        h("span", { class: "src" }, source(clk[0]))]
        : t("health.no_reading")));
    return li;
  }

  function ticketBox(tk) {
    const overdue = tk.overdue || (!tk.repaired_by && Date.parse(tk.repair_due) < Date.now());
    const box = h("div", { class: `ticket ${overdue ? "overdue" : ""}`, "data-ticket": tk.id,
      "data-state": tk.status, id: `health-ticket-${tk.id}` },
    h("div", {}, t("health.ticket"), " ", data("span", `#${tk.id}`), " ", kind(tk.kind), " ",
      h("span", { class: "badge", id: `health-ticket-state-${tk.id}` },
        TICKET_STATES.includes(tk.status) ? t(`health.ticket.${tk.status}`) : data("span", tk.status))),
    h("div", { class: overdue ? "due overdue" : "due" }, t("health.repair_due"), " ",
      data("span", when(tk.repair_due)), overdue ? [" ", t("health.overdue")] : null));
    if (overdue && !tk.emergency_measure) {
      box.append(h("div", { class: "emergency-required", id: `health-emergency-required-${tk.id}` },
        t("health.emergency_required")));
    }
    if (tk.emergency_measure) {
      box.append(h("div", { class: "hint" }, t("health.emergency_on_record"), " ",
        data("span", tk.emergency_measure)));
    }
    if (canWork) box.append(actions(tk));
    return box;
  }

  function actions(tk) {
    const note = h("input", { type: "text", maxlength: 2000, id: `health-note-${tk.id}`,
      placeholder: t("health.note_placeholder"), "aria-label": t("health.note_placeholder") });
    const status = h("span", { class: "error", role: "alert" });
    const act = async (path, body) => {
      clear(status);
      try {
        await api(`/api/health/tickets/${tk.id}/${path}`, { method: "POST", body });
        note.value = "";
        note.blur();
        await load();
      } catch (e) {
        status.append(t("health.action_refused"), " ", data("span", e.message));
      }
    };
    const needText = (path, field) => () => {
      const v = note.value.trim();
      if (!v) { clear(status).append(t("health.note_required")); note.focus(); return; }
      act(path, { [field]: v });
    };
    return h("div", { class: "row actions" },
      tk.status === "open" ? h("button", { type: "button", id: `health-ack-${tk.id}`,
        onclick: () => act("ack") }, t("health.action.ack")) : null,
      note,
      h("button", { type: "button", id: `health-repair-${tk.id}`, onclick: needText("repair", "note") },
        t("health.action.repair")),
      h("button", { type: "button", id: `health-emergency-${tk.id}`,
        onclick: needText("emergency", "measure") }, t("health.action.emergency")),
      status);
  }

  async function showHistory(id) {
    openHistory = id;
    panel.hidden = false;
    clear(panel).append(h("p", { class: "hint" }, t("common.loading")));
    let hist;
    try {
      hist = await api(`/api/health/cameras/${id}/history?days=30`);
    } catch (e) {
      clear(panel).append(h("p", { class: "error" }, t("health.load_failed"), " ", data("span", e.message)));
      return;
    }
    if (openHistory !== id || stopped) return;
    const bars = h("div", { class: "bars", id: "health-bars" }, ...hist.daily.map((d) =>
      h("div", { class: "bar", "data-user-content": "", "data-day": d.day, "data-availability": d.availability ?? "",
        title: `${d.day} ${pct(d.availability)}` },
      h("div", { class: "fill", style: `height:${d.availability > 0 ? `max(2px, ${(d.availability * 100).toFixed(1)}%)` : "0"}` }))));
    const faults = hist.faults.length
      ? h("table", { class: "faults", id: "health-history-faults" },
        h("thead", {}, h("tr", {}, h("th", {}, t("health.history.kind")), h("th", {}, t("health.history.opened")),
          h("th", {}, t("health.history.cleared")))),
        h("tbody", {}, ...hist.faults.slice().reverse().map((f) => h("tr", { "data-kind": f.kind },
          h("td", {}, kind(f.kind)), h("td", {}, data("span", when(f.opened))),
          h("td", {}, f.cleared ? data("span", when(f.cleared)) : t("health.history.still_open"))))))
      : h("p", { class: "hint" }, t("health.history.no_faults"));
    const readings = hist.clock.slice(-20).reverse();
    const clock = readings.length
      ? h("table", { class: "clock", id: "health-history-clock" },
        h("thead", {}, h("tr", {}, h("th", {}, t("health.history.at")), h("th", {}, t("health.history.source")),
          h("th", {}, t("health.history.offset")))),
        h("tbody", {}, ...readings.map((r) => h("tr", {},
          h("td", {}, data("span", when(r.at))), h("td", {}, source(r.source)),
          h("td", {}, data("span", secs(r.offset_ms)), r.epoch_reset ? [" ", t("health.history.epoch_reset")] : null)))))
      : h("p", { class: "hint" }, t("health.history.no_clock"));
    clear(panel).append(
      h("div", { class: "row" }, h("h3", {}, t("health.history.title"), " ", data("span", hist.name)),
        h("span", { class: "spacer" }),
        h("button", { type: "button", id: "health-history-close",
          onclick: () => { openHistory = null; panel.hidden = true; } }, t("common.close"))),
      h("p", {}, t("health.history.availability", { days: hist.days }), " ",
        data("span", pct(hist.availability), { id: "health-history-availability" })),
      h("h4", {}, t("health.history.daily")), bars,
      h("h4", {}, t("health.history.faults")), faults,
      h("h4", {}, t("health.history.clock")), clock);
  }

  filter.addEventListener("change", draw);
  await load();
  const tick = async () => {
    if (stopped) return;
    await load();
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  };
  timer = setTimeout(tick, REFRESH_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
