// GB/T 28181 interconnection (issue 7 item 4, diagnostics; Q13.2 the police integrate systems
// from below, Q13.1 connected level by level and shared by security level and permission).
// Devices and lower platforms below us: registration state, online/offline, address and
// transport, last keepalive (Asia/Shanghai), last error, the plain-language cause translated
// by its stable code (cause_code from viis/interconnect/gb28181/cause_codes.py), channel
// count; a detail panel with the channels, "refresh catalog", the per-peer SIP trace switch and
// the trace itself (monospace, newest last), PTZ for users who may. A lookup by device ID shows
// the diagnosis of a device that never got as far as the list (e.g. a wrong password).
// Upper platforms (cascade): registration state, last register and keepalive, cause; add and
// edit (the password is write-only: the API never returns it and the form never shows it);
// the share list (camera -> channel ID, PTZ allowed; cameras above the platform's grade are
// refused by the API, Q13.1, and the refusal is shown translated).
// Controls are drawn only for roles that may use them (mirrors viis/access/policy.py gb.*);
// the API enforces it again.
// Data: GET /api/gb28181/devices[/{id}], POST …/{id}/catalog, GET/PUT …/{id}/trace,
// POST …/{id}/channels/{ch}/ptz; GET/POST/PATCH /api/gb28181/uppers[/{id}],
// GET/PUT …/uppers/{id}/shares; GET /api/cameras.

import { h, clear } from "../dom.js";
import { data } from "../i18n.js";

const REFRESH_MS = 5000;
const TRACE_MS = 2000;
// viis/access/policy.py ADMIN_POLICY, the gb.* actions
const MAY = {
  read: ["operator_on_duty", "unit_admin", "maintainer", "auditor", "platform_admin"],
  write: ["maintainer", "unit_admin", "platform_admin"],
  trace: ["maintainer", "unit_admin", "platform_admin"],
  ptz: ["operator_on_duty", "maintainer"],
  cascadeRead: ["unit_admin", "auditor", "platform_admin"],
  cascadeWrite: ["unit_admin", "platform_admin"],
};
const UPPER_STATES = ["idle", "registering", "registered", "backoff", "lost", "stopped",
  "unregistered", "disabled", "not_running"];
const PTZ_TYPES = [1, 2, 5]; // dome, half-dome, remote-controlled: the ones that move
const PTZ_PAD = ["up_left", "up", "up_right", "left", "stop", "right", "down_left", "down", "down_right"];
const FIELDS = ["name", "server_id", "domain", "host", "port", "transport", "password", "charset",
  "keepalive_s", "keepalive_misses", "register_expires", "local_id", "max_security_level",
  "enabled", "camera_id", "channel_id", "shares"];

// Times are shown in Asia/Shanghai (architecture invariant 5), whatever the browser's zone.
const FMT = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric",
  month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  hour12: false });
const TFMT = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", hour: "2-digit",
  minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false });
const whenMs = (ms) => (ms == null ? "—" : FMT.format(new Date(ms)));
const whenS = (s) => (s == null ? "—" : FMT.format(new Date(s * 1000)));
const dash = () => data("span", "—");

// The API's validation messages (viis/interconnect/gb28181/cascade_store.py, pydantic) as
// [pattern, key, names of the captured values]; a message no pattern knows is shown as
// data behind a translated "refused" (so nothing English is passed off as translated).
const REFUSALS = [
  [/^name: 1 to 100 printable characters$/, "name"],
  [/^(server_id|local_id): a 20-digit GB\/T 28181 ID$/, "id20", ["field"]],
  [/^local_id: our platform ID must be of type 200/, "local_type"],
  [/^local_id: must differ from the upper's server_id$/, "local_same"],
  [/^domain: /, "domain"],
  [/^host: /, "host"],
  [/^port: 1 to 65535$/, "port"],
  [/^transport: one of/, "transport"],
  [/^charset: one of/, "charset"],
  [/^password: 1 to 200 printable characters/, "password"],
  [/^(\w+): an integer from (-?\d+) to (-?\d+)$/, "range", ["field", "lo", "hi"]],
  [/^keepalive_s x keepalive_misses must be shorter than register_expires$/, "keepalive"],
  [/^server_id: upper platform (\d+) is already configured$/, "duplicate", ["id"]],
  [/^channel_id: a 20-digit GB\/T 28181 ID$/, "channel_id"],
  [/^channel_id: digits 11-13 must be 131 \(camera\) or 132 \(IP camera\), not (\S+)$/, "channel_type", ["got"]],
  [/^shares\[(\d+)\]\.channel_id: must differ from the platform IDs$/, "channel_platform", ["row"]],
  [/^shares\[(\d+)\]\.camera_id: no camera (\d+)$/, "no_camera", ["row", "camera"]],
  [/^camera ['"](.*)['"] has security level (\d+), above this platform's grade (\d+): it cannot be shared with (.*) \(Q13\.1\)$/s,
    "above_grade", ["camera", "level", "grade", "upper"]],
  [/^shares\[(\d+)\]: camera or channel ID listed twice$/, "twice", ["row"]],
  [/^at most (\d+) shares per upper platform$/, "too_many", ["n"]],
  [/^([\w.]+): String should have at least (\d+) characters?$/, "too_short", ["field", "n"]],
  [/^([\w.]+): String should have at most (\d+) characters?$/, "too_long", ["field", "n"]],
  [/^([\w.]+): /, "field", ["field"]],
];

const roleSet = (user) => new Set((user && user.roles) || []);
const may = (roles, what) => MAY[what].some((r) => roles.has(r));

function useGbStyles() {
  if (document.getElementById("gb-css")) return;
  document.head.append(Object.assign(document.createElement("link"), {
    id: "gb-css", rel: "stylesheet", href: "/static/pages/gb28181.css",
  }));
}

export default async function render(root, ctx) {
  const { t, api } = ctx;
  useGbStyles();
  const roles = roleSet(ctx.user);
  const can = {
    read: may(roles, "read"), write: may(roles, "write"), trace: may(roles, "trace"),
    ptz: may(roles, "ptz"), cascadeRead: may(roles, "cascadeRead"),
    cascadeWrite: may(roles, "cascadeWrite"),
  };

  // ---- translation helpers --------------------------------------------------------------
  const fieldLabel = (f) => {
    const base = String(f || "").replace(/^shares\.\d+\./, "");
    return FIELDS.includes(base) ? t(`gb28181.field.${base}`) : base;
  };

  /** The translated cause for a {code, args} pair (a code the catalogue lacks: "other"). */
  function cause(code, args = {}) {
    if (!code || code === "none") return [];
    if (code === "other") return [t("gb28181.cause.other"), " ", data("span", args.text, { class: "raw" })];
    if (code === "online-note" && args.note_code) {
      return [t("gb28181.cause.online-note"), " ", ...cause(args.note_code.code, args.note_code.args)];
    }
    const key = `gb28181.cause.${code}`;
    const text = t(key, args);
    return text === key ? [t("gb28181.cause.other"), " ", data("span", code)] : [text];
  }

  function refusal(e) {
    const body = e && e.body;
    const msg = (body && typeof body === "object" && body.error) || (e && e.message) || "";
    const out = [];
    if (e && e.status === 403) out.push(t("gb28181.refused.forbidden"));
    else if (e && e.status === 503) out.push(t("gb28181.refused.not_running"));
    else if (e && e.status === 502) out.push(t("gb28181.refused.device"), " ", data("span", msg));
    else if (e && e.status === 0) out.push(t("common.error.network"));
    else {
      let done = false;
      for (const [rx, key, names = []] of REFUSALS) {
        const m = msg.match(rx);
        if (!m) continue;
        const vars = {};
        names.forEach((n, i) => { vars[n] = m[i + 1]; });
        if (vars.field) vars.field = fieldLabel(vars.field);
        if (vars.row !== undefined) vars.row = Number(vars.row) + 1;
        out.push(t(`gb28181.v.${key}`, vars));
        done = true;
        break;
      }
      if (!done) out.push(t("gb28181.refused.other"), " ", data("span", msg));
    }
    const arts = body && body.articles;
    if (arts && arts.length) out.push(" ", t("gb28181.articles"), " ", data("span", arts.join(", "), { class: "articles" }));
    return out;
  }

  // ---- skeleton ------------------------------------------------------------------------
  const message = h("p", { class: "error", role: "alert", id: "gb-message" });
  const updated = h("span", { class: "hint", id: "gb-updated" });
  const wrap = h("div", { class: "gb" },
    h("div", { class: "gb-tools" }, h("h2", {}, t("gb28181.title")), h("span", { class: "spacer" }), updated),
    message);
  root.append(wrap);
  if (!can.read && !can.cascadeRead) {
    wrap.append(h("p", { class: "notice", id: "gb-not-allowed" }, t("gb28181.not_allowed")));
    return () => {};
  }

  let stopped = false;
  let timer = null;
  let traceTimer = null;
  let devices = [];
  let openDevice = null; // device id of the detail panel
  let uppers = [];
  let openShares = null; // upper id of the share editor

  // ---- devices below us ---------------------------------------------------------------
  const devBody = h("tbody", { id: "gb-devices-body" });
  const devState = h("p", { class: "hint", id: "gb-devices-state" });
  const lookup = h("input", { type: "text", id: "gb-lookup", maxlength: 32, inputmode: "numeric",
    placeholder: t("gb28181.lookup.placeholder"), "aria-label": t("gb28181.lookup.placeholder") });
  const lookupBtn = h("button", { type: "button", id: "gb-lookup-go" }, t("gb28181.lookup.go"));
  const lookupOut = h("span", { class: "error", role: "alert", id: "gb-lookup-message" });
  const detail = h("section", { class: "gb-detail", id: "gb-detail", hidden: true });
  const devSection = h("section", { class: "gb-section", id: "gb-devices" },
    h("h3", {}, t("gb28181.devices.title")),
    h("p", { class: "hint" }, t("gb28181.devices.hint")),
    devState,
    h("div", { class: "gb-scroll" }, h("table", { class: "gb-table", id: "gb-devices-table" },
      h("thead", {}, h("tr", {}, ...["device", "registration", "status", "address", "keepalive",
        "last_error", "cause", "channels"].map((c) => h("th", {}, t(`gb28181.devices.col.${c}`))))),
      devBody)),
    h("div", { class: "gb-row" }, h("label", { for: "gb-lookup" }, t("gb28181.lookup.label")), lookup,
      lookupBtn, lookupOut),
    detail);
  if (can.read) wrap.append(devSection);

  function regBadge(v) {
    return h("span", { class: `badge ${v.registered ? "ok" : "off"}`, "data-registered": v.registered ? "1" : "0" },
      t(v.registered ? "gb28181.reg.registered" : "gb28181.reg.unregistered"));
  }
  function onlineBadge(v) {
    return h("span", { class: `badge ${v.online ? "ok" : "bad"}`, "data-online": v.online ? "1" : "0" },
      t(v.online ? "gb28181.status.online" : "gb28181.status.offline"));
  }

  function drawDevices(body) {
    clear(devBody);
    clear(devState);
    if (!body.enabled) devState.append(t("gb28181.devices.not_running"));
    devices = body.devices || [];
    for (const v of devices) {
      devBody.append(h("tr", { id: `gb-dev-${v.device_id}`, "data-device": v.device_id,
        "data-cause": v.cause_code || "", class: openDevice === v.device_id ? "selected" : null },
      h("td", {}, h("button", { type: "button", class: "link", id: `gb-open-${v.device_id}`,
        title: t("gb28181.devices.open"), onclick: () => showDevice(v.device_id) },
      data("span", v.device_id, { class: "mono" })), v.name ? [h("br"), data("span", v.name)] : null),
      h("td", {}, regBadge(v)),
      h("td", {}, onlineBadge(v)),
      h("td", {}, data("span", v.address || "—", { class: "mono" }), " ", data("span", v.transport || "")),
      h("td", {}, data("span", whenMs(v.last_keepalive_ms), { class: "ka" })),
      h("td", {}, data("span", v.last_error || "—", { class: "mono small" })),
      h("td", { class: "cause" }, ...cause(v.cause_code, v.cause_args)),
      h("td", {}, data("span", v.channel_count ?? "—"))));
    }
    if (!devices.length) {
      devBody.append(h("tr", {}, h("td", { colspan: 8, class: "notice" }, t("gb28181.devices.none"))));
    }
  }

  async function loadDevices() {
    if (!can.read) return;
    try {
      drawDevices(await api("/api/gb28181/devices"));
    } catch (e) {
      clear(devState).append(t("gb28181.load_failed"), " ", ...refusal(e));
    }
  }

  lookupBtn.addEventListener("click", async () => {
    clear(lookupOut);
    const id = lookup.value.trim();
    if (!/^[0-9A-Za-z]{1,32}$/.test(id)) { lookupOut.append(t("gb28181.lookup.bad_id")); return; }
    try {
      await api(`/api/gb28181/devices/${id}`);
      await showDevice(id);
    } catch (e) {
      lookupOut.append(...(e.status === 404 ? [t("gb28181.lookup.never")] : refusal(e)));
    }
  });
  lookup.addEventListener("keydown", (ev) => { if (ev.key === "Enter") lookupBtn.click(); });

  // the detail panel of one device
  const traceBox = h("div", { class: "gb-trace", id: "gb-trace" });
  let traceOn = false;

  async function showDevice(id) {
    openDevice = id;
    detail.hidden = false;
    for (const tr of devBody.querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.device === id);
    clear(detail).append(h("p", { class: "hint" }, t("common.loading")));
    let v;
    try {
      v = await api(`/api/gb28181/devices/${id}`);
    } catch (e) {
      clear(detail).append(h("p", { class: "error" }, t("gb28181.load_failed"), " ", ...refusal(e)));
      return;
    }
    if (openDevice !== id || stopped) return;
    traceOn = !!v.trace;
    const actionOut = h("span", { class: "hint", id: "gb-action-message", role: "status" });
    const head = h("div", { class: "gb-row" },
      h("h3", {}, t("gb28181.detail.title"), " ", data("span", v.device_id, { class: "mono", id: "gb-detail-id" })),
      v.name ? data("span", v.name) : null, regBadge(v), onlineBadge(v),
      h("span", { class: "spacer" }),
      h("button", { type: "button", id: "gb-detail-close", onclick: closeDevice }, t("common.close")));
    const facts = h("dl", { class: "gb-facts" },
      h("dt", {}, t("gb28181.devices.col.address")), h("dd", {}, data("span", v.address || "—", { class: "mono" }), " ", data("span", v.transport || "")),
      h("dt", {}, t("gb28181.devices.col.keepalive")), h("dd", {}, data("span", whenMs(v.last_keepalive_ms))),
      h("dt", {}, t("gb28181.detail.expires")), h("dd", {}, data("span", whenMs(v.expires_ms))),
      h("dt", {}, t("gb28181.devices.col.last_error")), h("dd", {}, data("span", v.last_error || "—", { class: "mono" })),
      h("dt", {}, t("gb28181.devices.col.cause")), h("dd", { id: "gb-detail-cause", "data-cause": v.cause_code || "" }, ...cause(v.cause_code, v.cause_args)),
      h("dt", {}, t("gb28181.detail.charset")), h("dd", {}, data("span", v.charset || "—")),
      h("dt", {}, t("gb28181.detail.device_info")), h("dd", {}, data("span", [v.manufacturer, v.model, v.firmware].filter(Boolean).join(" / ") || "—")));
    const notes = (v.warning_codes || []).length
      ? h("ul", { class: "gb-notes", id: "gb-detail-notes" }, ...v.warning_codes.map((w) =>
        h("li", { "data-code": w.code }, ...cause(w.code, w.args))))
      : null;
    const tools = h("div", { class: "gb-row" },
      can.write ? h("button", { type: "button", id: "gb-refresh-catalog", onclick: () => refreshCatalog(id, actionOut) },
        t("gb28181.detail.refresh_catalog")) : null,
      can.trace ? h("button", { type: "button", id: "gb-trace-toggle", "aria-pressed": traceOn ? "true" : "false",
        onclick: () => switchTrace(id, actionOut) }, t(traceOn ? "gb28181.trace.off" : "gb28181.trace.on")) : null,
      actionOut);
    const chans = v.channels || [];
    const chanTable = h("table", { class: "gb-table", id: "gb-channels" },
      h("thead", {}, h("tr", {}, ...["channel", "name", "status", "camera", "ptz"].map((c) =>
        h("th", {}, t(`gb28181.channels.col.${c}`))))),
      h("tbody", {}, ...chans.map((c) => h("tr", { "data-channel": c.channel_id, class: c.removed ? "removed" : null },
        h("td", {}, data("span", c.channel_id, { class: "mono" })),
        h("td", {}, data("span", c.name || "—")),
        h("td", {}, c.removed ? t("gb28181.channels.removed")
          : ["ON", "OFF"].includes(String(c.status).toUpperCase()) ? t(`gb28181.channels.status.${String(c.status).toUpperCase()}`)
            : data("span", c.status || "—")),
        h("td", {}, c.camera_id ? h("a", { href: "#/cameras", title: t("gb28181.channels.camera_link") }, data("span", `#${c.camera_id}`)) : dash()),
        h("td", {}, ptzPad(id, c, actionOut))))),
      chans.length ? null : h("tbody", {}, h("tr", {}, h("td", { colspan: 5, class: "notice" }, t("gb28181.channels.none")))));
    clear(detail).append(head, facts, ...(notes ? [h("h4", {}, t("gb28181.detail.notes")), notes] : []), tools,
      h("h4", {}, t("gb28181.channels.title"), " ", data("span", `(${chans.length})`, { id: "gb-channel-count" })), chanTable);
    if (can.trace) {
      detail.append(h("h4", {}, t("gb28181.trace.title")), h("p", { class: "hint" }, t("gb28181.trace.hint")), traceBox);
      await loadTrace(id);
    }
  }

  function closeDevice() {
    openDevice = null;
    detail.hidden = true;
    clearTimeout(traceTimer);
    for (const tr of devBody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
  }

  function ptzPad(deviceId, c, out) {
    if (!can.ptz || c.removed || !c.camera_id || !PTZ_TYPES.includes(c.ptz_type)) return dash();
    // one command after the other: a quick press must not let "stop" overtake the move it
    // stops (two concurrent requests may reach the device in either order)
    let queue = Promise.resolve();
    const send = (action) => {
      queue = queue.then(async () => {
        try {
          await api(`/api/gb28181/devices/${deviceId}/channels/${c.channel_id}/ptz`, { method: "POST", body: { action, speed: 128 } });
        } catch (e) {
          clear(out).append(...refusal(e));
        }
      });
      return queue;
    };
    // the arrows are drawn by the style sheet (button[data-action]::after): no text to translate
    const pad = h("div", { class: "gb-ptz", id: `gb-ptz-${c.channel_id}` }, ...PTZ_PAD.map((action) => {
      const b = h("button", { type: "button", "data-action": action, title: t(`gb28181.ptz.${action}`),
        "aria-label": t(`gb28181.ptz.${action}`) });
      if (action === "stop") b.addEventListener("click", () => send("stop"));
      else {
        // moves while pressed, stops on release (as a joystick)
        b.addEventListener("pointerdown", () => send(action));
        b.addEventListener("pointerup", () => send("stop"));
      }
      return b;
    }));
    const zoom = h("div", { class: "gb-zoom" }, ...["zoom_in", "zoom_out"].map((action) => {
      const b = h("button", { type: "button", "data-action": action, title: t(`gb28181.ptz.${action}`),
        "aria-label": t(`gb28181.ptz.${action}`) });
      b.addEventListener("pointerdown", () => send(action));
      b.addEventListener("pointerup", () => send("stop"));
      return b;
    }));
    return h("div", { class: "gb-row" }, pad, zoom);
  }

  async function refreshCatalog(id, out) {
    clear(out).append(t("gb28181.detail.refreshing"));
    try {
      const r = await api(`/api/gb28181/devices/${id}/catalog`, { method: "POST" });
      const text = t("gb28181.detail.refreshed", { channels: r.channels, added: r.cameras_added.length,
        updated: r.cameras_updated.length });
      await loadDevices();
      if (openDevice === id) {
        await showDevice(id); // the channels as now stored; the message in the new panel
        const o = document.getElementById("gb-action-message");
        if (o) clear(o).append(text);
      }
    } catch (e) {
      clear(out).append(...refusal(e));
    }
  }

  async function switchTrace(id, out) {
    clear(out);
    try {
      const r = await api(`/api/gb28181/devices/${id}/trace`, { method: "PUT", body: { enabled: !traceOn } });
      traceOn = !!r.enabled;
      const b = document.getElementById("gb-trace-toggle");
      if (b) {
        b.textContent = t(traceOn ? "gb28181.trace.off" : "gb28181.trace.on");
        b.setAttribute("aria-pressed", traceOn ? "true" : "false");
      }
      await loadTrace(id);
    } catch (e) {
      out.append(...refusal(e));
    }
  }

  async function loadTrace(id) {
    clearTimeout(traceTimer);
    if (stopped || openDevice !== id) return;
    let r;
    try {
      r = await api(`/api/gb28181/devices/${id}/trace`);
    } catch (e) {
      clear(traceBox).append(h("p", { class: "error" }, ...refusal(e)));
      return;
    }
    if (stopped || openDevice !== id) return;
    drawTrace(traceBox, r);
    if (traceOn) traceTimer = setTimeout(() => loadTrace(id), TRACE_MS);
  }

  /** A SIP trace (viis/interconnect/gb28181/trace.py entries) into ``traceBox``: oldest
   *  first, newest last; opened messages stay open and the view follows the end. */
  function drawTrace(traceBox, r) {
    const msgs = r.messages || [];
    traceBox.dataset.enabled = r.enabled ? "1" : "0";
    const open = new Set([...traceBox.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    const atEnd = traceBox.scrollTop + traceBox.clientHeight >= traceBox.scrollHeight - 4;
    clear(traceBox);
    if (!msgs.length) {
      traceBox.append(h("p", { class: "hint" }, t(r.enabled ? "gb28181.trace.empty_on" : "gb28181.trace.empty_off")));
      return;
    }
    for (const m of msgs) { // oldest first, newest last
      const key = `${m.t}|${m.direction}|${m.first_line}`;
      traceBox.append(h("details", { class: `gb-msg ${m.direction}`, "data-key": key, open: open.has(key) },
        h("summary", {},
          data("span", TFMT.format(new Date(m.t * 1000)).replace(",", "."), { class: "at" }), " ",
          h("span", { class: `dir ${m.direction === "in" ? "in" : "out"}`,
            title: t(m.direction === "in" ? "gb28181.trace.in" : "gb28181.trace.out") }), " ",
          data("span", `${m.addr} ${m.transport}`, { class: "peer" }), " ",
          data("span", m.first_line, { class: "first-line" })),
        data("pre", m.text)));
    }
    if (atEnd) traceBox.scrollTop = traceBox.scrollHeight;
  }

  // ---- upper platforms (cascade) --------------------------------------------------------
  const upBody = h("tbody", { id: "gb-uppers-body" });
  const upMessage = h("p", { class: "error", role: "alert", id: "gb-uppers-message" });
  const upForm = h("div", { class: "gb-form", id: "gb-upper-form", hidden: true });
  const sharesBox = h("div", { class: "gb-shares", id: "gb-shares", hidden: true });
  const upTracePanel = h("div", { class: "gb-detail", id: "gb-upper-trace-panel", hidden: true });
  const upTraceBox = h("div", { class: "gb-trace", id: "gb-upper-trace" });
  let upTraceOpen = null; // upper id of the trace panel
  let upTraceOn = false;
  let upTraceTimer = null;
  const addUpper = can.cascadeWrite
    ? h("button", { type: "button", class: "primary", id: "gb-upper-add", onclick: () => editUpper(null) }, t("gb28181.uppers.add"))
    : null;
  const upSection = h("section", { class: "gb-section", id: "gb-uppers" },
    h("div", { class: "gb-row" }, h("h3", {}, t("gb28181.uppers.title")), h("span", { class: "spacer" }), addUpper),
    h("p", { class: "hint" }, t("gb28181.uppers.hint")),
    upMessage,
    h("div", { class: "gb-scroll" }, h("table", { class: "gb-table", id: "gb-uppers-table" },
      h("thead", {}, h("tr", {}, ...["name", "server", "address", "state", "registered", "keepalive",
        "cause", "grade", "actions"].map((c) => h("th", {}, t(`gb28181.uppers.col.${c}`))))),
      upBody)),
    upForm, sharesBox, upTracePanel);
  if (can.cascadeRead) wrap.append(upSection);

  const stateKey = (s) => {
    const k = String(s || "").replace(/\s+/g, "_");
    return UPPER_STATES.includes(k) ? k : null;
  };

  function drawUppers() {
    clear(upBody);
    for (const u of uppers) {
      const st = u.status || {};
      const sk = stateKey(st.state);
      upBody.append(h("tr", { id: `gb-upper-${u.id}`, "data-upper": u.id, "data-state": st.state || "",
        "data-cause": st.cause_code || "" },
      h("td", {}, data("span", u.name), u.enabled ? null : [" ", h("span", { class: "badge off" }, t("gb28181.uppers.disabled"))]),
      h("td", {}, data("span", u.server_id, { class: "mono" })),
      h("td", {}, data("span", `${u.host}:${u.port}`, { class: "mono" }), " ", data("span", u.transport)),
      h("td", {}, h("span", { class: `badge ${st.registered ? "ok" : "off"}`, id: `gb-upper-state-${u.id}` },
        sk ? t(`gb28181.upper_state.${sk}`) : data("span", st.state || "—"))),
      h("td", {}, data("span", whenS(st.registered_at))),
      h("td", {}, data("span", whenS(st.last_keepalive_ok))),
      h("td", { class: "cause" }, ...cause(st.cause_code, st.cause_args)),
      h("td", {}, t("gb28181.level", { n: u.max_security_level })),
      h("td", {}, h("div", { class: "gb-row" },
        can.cascadeWrite ? h("button", { type: "button", id: `gb-upper-edit-${u.id}`, onclick: () => editUpper(u) }, t("gb28181.uppers.edit")) : null,
        h("button", { type: "button", id: `gb-upper-shares-${u.id}`, onclick: () => showShares(u.id) },
          t(can.cascadeWrite ? "gb28181.uppers.shares_edit" : "gb28181.uppers.shares_view")),
        can.trace ? h("button", { type: "button", id: `gb-upper-trace-${u.id}`, onclick: () => showUpperTrace(u.id) },
          t("gb28181.trace.title")) : null))));
    }
    if (!uppers.length) upBody.append(h("tr", {}, h("td", { colspan: 9, class: "notice" }, t("gb28181.uppers.none"))));
  }

  async function loadUppers() {
    if (!can.cascadeRead) return;
    try {
      uppers = (await api("/api/gb28181/uppers")) || [];
      clear(upMessage);
      drawUppers();
    } catch (e) {
      clear(upMessage).append(t("gb28181.load_failed"), " ", ...refusal(e));
    }
  }

  function editUpper(u) {
    const isNew = !u;
    const v = u || { name: "", server_id: "", domain: "", host: "", port: 5060, transport: "UDP",
      charset: "GB2312", keepalive_s: 60, keepalive_misses: 3, register_expires: 3600, local_id: "",
      max_security_level: 1, enabled: true, has_password: false };
    const out = h("p", { class: "error", role: "alert", id: "gb-upper-form-message" });
    const inp = (id, attrs) => h("input", { id, ...attrs });
    const f = {
      name: inp("gb-uf-name", { value: v.name, maxlength: 100, required: true }),
      server_id: inp("gb-uf-server-id", { value: v.server_id, maxlength: 20, inputmode: "numeric", class: "mono" }),
      domain: inp("gb-uf-domain", { value: v.domain || "", maxlength: 20, placeholder: t("gb28181.form.domain_default") }),
      host: inp("gb-uf-host", { value: v.host, maxlength: 255 }),
      port: inp("gb-uf-port", { type: "number", min: 1, max: 65535, value: v.port }),
      transport: h("select", { id: "gb-uf-transport" }, ...["UDP", "TCP"].map((x) =>
        h("option", { value: x, selected: x === v.transport }, t(`gb28181.transport.${x}`)))),
      // write-only: never filled from the API (which never returns it)
      password: inp("gb-uf-password", { type: "password", autocomplete: "new-password", maxlength: 200,
        placeholder: isNew ? "" : t(v.has_password ? "gb28181.form.password_keep" : "gb28181.form.password_none") }),
      charset: h("select", { id: "gb-uf-charset" }, ...["GB2312", "GBK", "GB18030", "UTF-8"].map((x) =>
        h("option", { value: x, selected: x === v.charset }, t(`gb28181.charset.${x}`)))),
      keepalive_s: inp("gb-uf-keepalive", { type: "number", min: 1, max: 3600, value: v.keepalive_s }),
      keepalive_misses: inp("gb-uf-misses", { type: "number", min: 1, max: 10, value: v.keepalive_misses }),
      register_expires: inp("gb-uf-expires", { type: "number", min: 30, max: 86400, value: v.register_expires }),
      local_id: inp("gb-uf-local-id", { value: v.local_id, maxlength: 20, inputmode: "numeric", class: "mono" }),
      max_security_level: h("select", { id: "gb-uf-level" }, ...[0, 1, 2, 3, 4, 5].map((n) =>
        h("option", { value: n, selected: n === v.max_security_level }, t("gb28181.level", { n })))),
      enabled: inp("gb-uf-enabled", { type: "checkbox", checked: v.enabled }),
    };
    const row = (key) => h("label", { for: f[key].id }, h("span", {}, t(`gb28181.field.${key}`)), f[key]);
    const numeric = ["port", "keepalive_s", "keepalive_misses", "register_expires", "max_security_level"];
    const values = () => {
      const o = {};
      for (const [k, el] of Object.entries(f)) {
        if (k === "enabled") o[k] = el.checked;
        else if (numeric.includes(k)) o[k] = el.value === "" ? null : Number(el.value);
        else o[k] = el.value.trim();
      }
      if (!o.domain) o.domain = null;
      return o;
    };
    const save = h("button", { type: "submit", class: "primary", id: "gb-uf-save" }, t("common.save"));
    const form = h("form", { id: "gb-uf-form", autocomplete: "off" },
      h("h3", {}, t(isNew ? "gb28181.form.add_title" : "gb28181.form.edit_title")),
      ...Object.keys(f).map(row),
      h("p", { class: "hint" }, t("gb28181.form.password_hint")),
      h("div", { class: "actions" }, save,
        h("button", { type: "button", id: "gb-uf-cancel", onclick: () => { upForm.hidden = true; clear(upForm); } }, t("common.cancel"))),
      out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clear(out);
      const o = values();
      let body = o;
      if (!isNew) { // only what changed; an empty password field keeps the stored one
        body = {};
        for (const [k, x] of Object.entries(o)) {
          if (k === "password") { if (x) body.password = x; continue; }
          const was = k === "domain" ? (v.domain || null) : v[k];
          if (x !== was) body[k] = x;
        }
      }
      save.disabled = true;
      try {
        await api(isNew ? "/api/gb28181/uppers" : `/api/gb28181/uppers/${u.id}`,
          { method: isNew ? "POST" : "PATCH", body });
        f.password.value = "";
        upForm.hidden = true;
        clear(upForm);
        await loadUppers();
      } catch (e) {
        out.append(...refusal(e));
        if (e.body && e.body.field && f[e.body.field]) f[e.body.field].focus();
      } finally {
        save.disabled = false;
      }
    });
    clear(upForm).append(form);
    upForm.hidden = false;
    sharesBox.hidden = true;
    upTracePanel.hidden = true;
    f.name.focus();
  }

  async function showShares(upperId) {
    openShares = upperId;
    upForm.hidden = true;
    upTracePanel.hidden = true;
    sharesBox.hidden = false;
    clear(sharesBox).append(h("p", { class: "hint" }, t("common.loading")));
    const u = uppers.find((x) => x.id === upperId);
    let shares;
    let cams = [];
    try {
      [shares, cams] = await Promise.all([api(`/api/gb28181/uppers/${upperId}/shares`),
        can.cascadeWrite ? api("/api/cameras").catch(() => []) : Promise.resolve([])]);
    } catch (e) {
      clear(sharesBox).append(h("p", { class: "error" }, t("gb28181.load_failed"), " ", ...refusal(e)));
      return;
    }
    if (openShares !== upperId || stopped) return;
    const out = h("p", { class: "error", role: "alert", id: "gb-shares-message" });
    const done = h("p", { class: "ok", role: "status", id: "gb-shares-saved" });
    const tbody = h("tbody", { id: "gb-shares-body" });
    const camOptions = (sel) => cams.map((c) => h("option", { value: c.id, selected: c.id === sel },
      `${c.name} · ${t("gb28181.level", { n: c.security_level })}`));
    const addRow = (s) => {
      if (!can.cascadeWrite) {
        tbody.append(h("tr", { "data-camera": s.camera_id },
          h("td", {}, data("span", s.camera)), h("td", {}, data("span", s.channel_id, { class: "mono" })),
          h("td", {}, t(s.ptz_allowed ? "gb28181.yes" : "gb28181.no")),
          h("td", {}, t("gb28181.level", { n: s.security_level })),
          h("td", {}, t(s.visible ? "gb28181.shares.visible" : "gb28181.shares.hidden"))));
        return;
      }
      const camSel = h("select", { class: "cam", "aria-label": t("gb28181.field.camera_id") }, ...camOptions(s.camera_id));
      camSel.setAttribute("data-user-content", ""); // camera names are data
      const ch = h("input", { class: "channel mono", value: s.channel_id || "", maxlength: 20, inputmode: "numeric",
        "aria-label": t("gb28181.field.channel_id") });
      const ptz = h("input", { type: "checkbox", class: "ptz", checked: !!s.ptz_allowed, "aria-label": t("gb28181.shares.ptz") });
      const tr = h("tr", { "data-camera": s.camera_id ?? "" },
        h("td", {}, camSel), h("td", {}, ch), h("td", {}, ptz),
        h("td", {}, s.security_level != null ? t("gb28181.level", { n: s.security_level }) : dash()),
        h("td", {}, s.visible === false ? t("gb28181.shares.hidden") : s.camera_id ? t("gb28181.shares.visible") : dash()),
        h("td", {}, h("button", { type: "button", class: "remove", onclick: () => tr.remove() }, t("gb28181.shares.remove"))));
      tbody.append(tr);
    };
    for (const s of shares) addRow(s);
    const head = ["camera", "channel", "ptz", "level", "visible"].concat(can.cascadeWrite ? ["remove"] : []);
    const box = [
      h("div", { class: "gb-row" }, h("h4", {}, t("gb28181.shares.title"), " ", data("span", u ? u.name : upperId)),
        h("span", { class: "spacer" }),
        h("button", { type: "button", id: "gb-shares-close", onclick: () => { openShares = null; sharesBox.hidden = true; } }, t("common.close"))),
      h("p", { class: "hint" }, t("gb28181.shares.hint", { n: u ? u.max_security_level : "?" })),
      h("table", { class: "gb-table", id: "gb-shares-table" },
        h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, t(`gb28181.shares.col.${c}`))))), tbody),
    ];
    if (!shares.length && !can.cascadeWrite) box.push(h("p", { class: "notice" }, t("gb28181.shares.none")));
    if (can.cascadeWrite) {
      const save = h("button", { type: "button", class: "primary", id: "gb-shares-save" }, t("common.save"));
      save.addEventListener("click", async () => {
        clear(out);
        clear(done);
        const list = [...tbody.querySelectorAll("tr")].map((tr) => ({
          camera_id: Number(tr.querySelector("select.cam").value),
          channel_id: tr.querySelector("input.channel").value.trim(),
          ptz_allowed: tr.querySelector("input.ptz").checked,
        }));
        save.disabled = true;
        try {
          await api(`/api/gb28181/uppers/${upperId}/shares`, { method: "PUT", body: { shares: list } });
          await showShares(upperId);
          const ok = document.getElementById("gb-shares-saved");
          if (ok) ok.append(t("gb28181.shares.saved"));
        } catch (e) {
          out.append(...refusal(e));
        } finally {
          save.disabled = false;
        }
      });
      box.push(h("div", { class: "actions" },
        h("button", { type: "button", id: "gb-shares-add", disabled: !cams.length,
          onclick: () => addRow({ camera_id: cams[0] && cams[0].id, channel_id: "", ptz_allowed: false }) }, t("gb28181.shares.add")),
        save), out, done);
    }
    clear(sharesBox).append(...box);
  }

  // the SIP trace of one upper platform (maintainers and administrators: gb.trace)
  async function showUpperTrace(upperId) {
    upTraceOpen = upperId;
    upForm.hidden = true;
    sharesBox.hidden = true;
    upTracePanel.hidden = false;
    const u = uppers.find((x) => x.id === upperId);
    const out = h("span", { class: "error", role: "alert", id: "gb-upper-trace-message" });
    const toggle = h("button", { type: "button", id: "gb-upper-trace-toggle", "aria-pressed": "false" }, t("gb28181.trace.on"));
    toggle.addEventListener("click", async () => {
      clear(out);
      try {
        const r = await api(`/api/gb28181/uppers/${upperId}/trace`, { method: "PUT", body: { enabled: !upTraceOn } });
        upTraceOn = !!r.enabled;
        await loadUpperTrace(upperId);
      } catch (e) {
        out.append(...refusal(e));
      }
    });
    clear(upTracePanel).append(
      h("div", { class: "gb-row" }, h("h4", {}, t("gb28181.trace.title"), " ", data("span", u ? u.name : upperId)),
        toggle, out, h("span", { class: "spacer" }),
        h("button", { type: "button", id: "gb-upper-trace-close", onclick: closeUpperTrace }, t("common.close"))),
      h("p", { class: "hint" }, t("gb28181.trace.hint_upper")), upTraceBox);
    await loadUpperTrace(upperId);
  }

  function closeUpperTrace() {
    upTraceOpen = null;
    upTracePanel.hidden = true;
    clearTimeout(upTraceTimer);
  }

  async function loadUpperTrace(upperId) {
    clearTimeout(upTraceTimer);
    if (stopped || upTraceOpen !== upperId) return;
    let r;
    try {
      r = await api(`/api/gb28181/uppers/${upperId}/trace`);
    } catch (e) {
      clear(upTraceBox).append(h("p", { class: "error" }, ...refusal(e)));
      return;
    }
    if (stopped || upTraceOpen !== upperId) return;
    upTraceOn = !!r.enabled;
    const toggle = document.getElementById("gb-upper-trace-toggle");
    if (toggle) {
      toggle.textContent = t(upTraceOn ? "gb28181.trace.off" : "gb28181.trace.on");
      toggle.setAttribute("aria-pressed", upTraceOn ? "true" : "false");
    }
    drawTrace(upTraceBox, r);
    if (upTraceOn) upTraceTimer = setTimeout(() => loadUpperTrace(upperId), TRACE_MS);
  }

  // ---- refresh ---------------------------------------------------------------------------
  async function load() {
    await Promise.all([loadDevices(), loadUppers()]);
    clear(updated).append(t("gb28181.updated"), " ", data("span", whenMs(Date.now())));
  }
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
    clearTimeout(traceTimer);
    clearTimeout(upTraceTimer);
  };
}
