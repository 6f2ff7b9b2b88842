// Camera administration: the cameras by site with status (recording, offline, fault,
// disabled), thumbnails and search; add, edit, disable; "test connection" (codec, picture
// size, frame rate from POST /api/cameras/probe); retention (a refusal below the legal minimum
// shows the articles of the API error, Q19.7, N17.1); security level (Q5.1, Q13.1); location
// type from the rule packs (a forbidden place's refusal shows its article, Q9.1, N8.1); the
// signage photo (Q17.1, N13.1). Privacy masks are edited on their own page (masks.js).

import { h, clear } from "../dom.js";
import { data } from "../i18n.js";
import { useStyles } from "./pages_css.js";

const SIGNAGE_MAX_PX = 1600;

function statusOf(cam, faulty) {
  if (cam.enabled === false) return "disabled";
  if (faulty.has(cam.id)) return "fault";
  const st = cam.status && cam.status.state;
  return st === "recording" ? "recording" : "offline";
}

/** A JPEG of at most SIGNAGE_MAX_PX on its long side (phone photos are many megabytes). */
async function shrink(file) {
  const bmp = await createImageBitmap(file);
  const k = Math.min(1, SIGNAGE_MAX_PX / Math.max(bmp.width, bmp.height));
  const c = document.createElement("canvas");
  c.width = Math.round(bmp.width * k);
  c.height = Math.round(bmp.height * k);
  c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
  return new Promise((res) => c.toBlob(res, "image/jpeg", 0.85));
}

/** The API error as translated text plus its data (message, cited articles). */
function refusal(t, e, key = "cameras.refused") {
  const out = [t(key), " ", data("span", e.message)];
  const arts = e.body && e.body.articles;
  if (arts && arts.length) out.push(" ", t("cameras.articles"), " ", data("span", arts.join(", "), { class: "articles" }));
  return out;
}

export default async function render(root, ctx) {
  const { t, api } = ctx;
  useStyles();
  const roles = (ctx.user && ctx.user.roles) || [];
  const admin = roles.includes("platform_admin") || roles.includes("unit_admin");
  const wrap = h("div", { class: "cams" });
  root.append(wrap);
  const search = h("input", { type: "search", id: "cams-search", placeholder: t("cameras.search"),
    "aria-label": t("cameras.search") });
  const addBtn = h("button", { type: "button", id: "cams-add", class: "primary", hidden: !admin }, t("cameras.add"));
  const count = h("span", { class: "hint", id: "cams-count" });
  const tree = h("div", { class: "cams-tree", id: "cams-tree" });
  const formBox = h("div", { class: "cam-form", id: "cam-form", hidden: true });
  const message = h("p", { class: "error", role: "alert" });
  wrap.append(h("div", { class: "cams-tools" }, search, count, h("span", { class: "spacer" }), addBtn),
    message, h("div", { class: "cams-body" }, tree, formBox));

  let cams = [];
  let faulty = new Set();
  let types = [];
  const thumbs = new Map(); // camera id -> object URL of its latest frame
  let stopped = false;

  async function load() {
    try {
      cams = (await api("/api/cameras")) || [];
    } catch (e) {
      clear(message).append(...refusal(t, e, "cameras.load_failed"));
      return;
    }
    try {
      faulty = new Set(((await api("/api/faults")) || []).map((f) => f.camera_id));
    } catch { faulty = new Set(); /* not every role reads faults */ }
    draw();
    loadThumbs();
  }

  async function loadThumbs() {
    const now = Date.now();
    for (const c of cams.slice(0, 64)) {
      if (stopped || c.enabled === false) continue;
      try {
        const r = await api(`/api/cameras/${c.id}/timeline?start=${now - 3_600_000}&end=${now + 60_000}&resolution_ms=60000`);
        const last = r.ranges[r.ranges.length - 1];
        if (!last) continue;
        const resp = await fetch(`/api/cameras/${c.id}/snapshot.jpg?at=${last.end_ms - 1000}`, { credentials: "same-origin" });
        if (!resp.ok) continue;
        const old = thumbs.get(c.id);
        thumbs.set(c.id, URL.createObjectURL(await resp.blob()));
        if (old) URL.revokeObjectURL(old);
        const box = tree.querySelector(`.cam-card[data-camera="${c.id}"] .thumb`);
        if (box) clear(box).append(h("img", { src: thumbs.get(c.id), alt: "" }));
      } catch { /* no thumbnail for this user or camera: the placeholder stays */ }
    }
  }

  function draw() {
    clear(tree);
    const q = search.value.trim().toLowerCase();
    const shown = cams.filter((c) => !q || [c.name, c.site, c.location_type, c.main_url]
      .some((v) => String(v || "").toLowerCase().includes(q)));
    clear(count).append(t("cameras.count", { n: shown.length, total: cams.length }));
    const sites = new Map();
    for (const c of shown) {
      const k = c.site || "";
      if (!sites.has(k)) sites.set(k, []);
      sites.get(k).push(c);
    }
    for (const [site, list] of [...sites.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      tree.append(h("h3", {}, site ? data("span", site) : t("cameras.no_site"), " ",
        h("span", { class: "hint" }, t("cameras.site_count", { n: list.length }))));
      tree.append(h("ul", { class: "cams-list" }, ...list.map(card)));
    }
    if (!shown.length) tree.append(h("p", { class: "notice" }, t(cams.length ? "cameras.no_match" : "cameras.none")));
  }

  function card(c) {
    const st = statusOf(c, faulty);
    const thumb = h("div", { class: "thumb" });
    if (thumbs.has(c.id)) thumb.append(h("img", { src: thumbs.get(c.id), alt: "" }));
    else thumb.append(t("cameras.no_thumbnail"));
    const actions = h("div", { class: "row" },
      h("a", { href: `#/cameras/${c.id}/masks`, class: "button", id: `cam-masks-${c.id}` }, t("cameras.masks")));
    if (admin) {
      actions.append(
        h("button", { type: "button", id: `cam-edit-${c.id}`, onclick: () => edit(c) }, t("cameras.edit")),
        h("button", { type: "button", id: `cam-toggle-${c.id}`, onclick: () => toggle(c) },
          t(c.enabled === false ? "cameras.enable" : "cameras.disable")));
    }
    return h("li", { class: "cam-card", "data-camera": c.id, "data-status": st },
      thumb,
      h("div", { class: "row" }, data("span", c.name, { class: "name" }),
        h("span", { class: `badge ${st}`, id: `cam-status-${c.id}` }, t(`cameras.status.${st}`))),
      h("div", { class: "row hint" },
        t("cameras.level", { n: c.security_level }), " ", t("cameras.sep"), " ",
        t("cameras.retention_days", { n: c.retention_days }), " ", t("cameras.sep"), " ",
        data("span", c.location_type)),
      actions);
  }

  async function toggle(c) {
    try {
      await api(`/api/cameras/${c.id}`, { method: "PATCH", body: { enabled: c.enabled === false } });
      clear(message);
      await load();
    } catch (e) {
      clear(message).append(...refusal(t, e));
    }
  }

  async function edit(c) {
    if (!types.length) {
      try { types = (await api("/api/cameras/location-types")) || []; } catch { types = []; }
    }
    const isNew = !c;
    if (!isNew) {
      try { c = await api(`/api/cameras/${c.id}`); } catch { /* show what the list had */ }
    }
    c = c || { name: "", main_url: "", sub_url: "", site: "", location_type: "public_area",
      security_level: 1, retention_days: null, priority: 50, enabled: true };
    clear(formBox);
    formBox.hidden = false;
    const inp = (id, attrs = {}) => h("input", { id, ...attrs });
    const f = {
      name: inp("cf-name", { value: c.name, required: true, maxlength: 200 }),
      main_url: inp("cf-main-url", { value: c.main_url, required: true, maxlength: 2000, placeholder: t("cameras.form.url_placeholder") }),
      sub_url: inp("cf-sub-url", { value: c.sub_url || "", maxlength: 2000,
        placeholder: t("cameras.form.url_placeholder") }),
      username: inp("cf-username", { autocomplete: "off", maxlength: 200 }),
      password: inp("cf-password", { type: "password", autocomplete: "new-password", maxlength: 200,
        placeholder: isNew ? "" : t("cameras.form.keep_password") }),
      site: inp("cf-site", { value: c.site || "", maxlength: 200 }),
      location_type: h("select", { id: "cf-location", "data-user-content": "" },
        ...(types.length ? types : [{ id: c.location_type, title: "" }]).map((x) =>
          h("option", { value: x.id, selected: x.id === c.location_type },
            `${x.id}${x.title ? ` — ${x.title}` : ""}${x.forbidden ? " ⚠" : ""}`))),
      security_level: h("select", { id: "cf-level" }, ...[1, 2, 3, 4, 5].map((n) =>
        h("option", { value: n, selected: n === c.security_level }, t("cameras.level", { n })))),
      retention_days: inp("cf-retention", { type: "number", min: 1, max: 3650,
        value: c.retention_days ?? "", placeholder: t("cameras.form.retention_default") }),
      priority: inp("cf-priority", { type: "number", min: 0, max: 100, value: c.priority }),
      enabled: inp("cf-enabled", { type: "checkbox", checked: c.enabled !== false }),
    };
    const label = (id, key, el) => h("label", { for: id }, h("span", {}, t(key)), el);
    const probeOut = h("div", { class: "probe", id: "cf-probe" });
    const status = h("p", { class: "error", role: "alert", id: "cf-status" });
    const probeBtn = h("button", { type: "button", id: "cf-test" }, t("cameras.form.test"));
    probeBtn.addEventListener("click", async () => {
      clear(probeOut).append(h("span", { class: "hint" }, t("cameras.form.testing")));
      probeBtn.disabled = true;
      try {
        const r = await api("/api/cameras/probe", { method: "POST", body: {
          url: f.main_url.value.trim(), username: f.username.value || null,
          password: f.password.value || null } });
        clear(probeOut);
        if (r.ok) {
          probeOut.append(h("span", { class: "ok" }, t("cameras.form.test_ok")), " ",
            t("cameras.form.codec"), " ", data("span", (r.codec || "?").toUpperCase(), { id: "cf-probe-codec" }), " ", t("cameras.sep"), " ",
            t("cameras.form.resolution"), " ", data("span", r.width && r.height ? `${r.width}×${r.height}` : "?", { id: "cf-probe-size" }), " ", t("cameras.sep"), " ",
            t("cameras.form.fps"), " ", data("span", r.fps ?? "?", { id: "cf-probe-fps" }));
          if (r.browser_playable === false) probeOut.append(h("br"), h("span", { class: "hint" }, t("cameras.form.not_browser")));
        } else {
          probeOut.append(h("span", { class: "error" }, t(`cameras.form.test_failed.${r.step || "other"}`)), " ",
            data("span", r.error || ""));
        }
      } catch (e) {
        clear(probeOut).append(...refusal(t, e));
      } finally {
        probeBtn.disabled = false;
      }
    });
    const form = h("form", { id: "cf-form", autocomplete: "off" },
      h("h3", {}, isNew ? t("cameras.form.add_title") : t("cameras.form.edit_title")),
      label("cf-name", "cameras.form.name", f.name),
      label("cf-main-url", "cameras.form.main_url", f.main_url),
      label("cf-sub-url", "cameras.form.sub_url", f.sub_url),
      label("cf-username", "cameras.form.username", f.username),
      label("cf-password", "cameras.form.password", f.password),
      h("div", { class: "actions probe" }, probeBtn), probeOut,
      label("cf-site", "cameras.form.site", f.site),
      label("cf-location", "cameras.form.location", f.location_type),
      label("cf-level", "cameras.form.level", f.security_level),
      label("cf-retention", "cameras.form.retention", f.retention_days),
      label("cf-priority", "cameras.form.priority", f.priority),
      label("cf-enabled", "cameras.form.enabled", f.enabled),
      status,
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", id: "cf-save" }, t("common.save")),
        h("button", { type: "button", id: "cf-cancel", onclick: () => { formBox.hidden = true; } }, t("common.cancel"))));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clear(status);
      const body = {
        name: f.name.value.trim(), main_url: f.main_url.value.trim(),
        sub_url: f.sub_url.value.trim() || null, site: f.site.value.trim(),
        location_type: f.location_type.value, security_level: Number(f.security_level.value),
        priority: Number(f.priority.value || 50), enabled: f.enabled.checked,
      };
      if (f.retention_days.value !== "") body.retention_days = Number(f.retention_days.value);
      if (f.username.value) body.username = f.username.value;
      if (f.password.value) body.password = f.password.value;
      try {
        const saved = isNew ? await api("/api/cameras", { method: "POST", body })
          : await api(`/api/cameras/${c.id}`, { method: "PATCH", body });
        status.className = "ok";
        status.append(t("cameras.form.saved"));
        await load();
        if (isNew) edit(cams.find((x) => x.id === saved.id) || saved);
      } catch (err) {
        status.className = "error";
        const field = err.body && err.body.field;
        const key = field === "retention_days" ? "cameras.form.retention_refused"
          : field === "location_type" ? "cameras.form.location_refused" : "cameras.refused";
        status.append(...refusal(t, err, key));
        status.dataset.field = field || "";
      }
    });
    formBox.append(form);
    if (!isNew) formBox.append(signage(c));
    f.name.focus();
  }

  function signage(c) {
    const box = h("section", { class: "signage", id: "cf-signage" });
    const file = h("input", { type: "file", id: "cf-signage-file", accept: "image/jpeg,image/png",
      "aria-label": t("cameras.signage.choose") });
    const status = h("p", { class: "error", role: "alert", id: "cf-signage-status" });
    const current = h("div", { id: "cf-signage-current" });
    const show = (info) => {
      clear(current);
      if (!info) { current.append(h("span", { class: "hint" }, t("cameras.signage.none"))); return; }
      current.append(h("img", { class: "signage-img", alt: t("cameras.signage.alt"),
        src: `/api/cameras/${c.id}/signage?v=${info.sha256}` }),
      h("span", { class: "hint" }, t("cameras.signage.sha"), " ", data("code", info.sha256.slice(0, 16))));
    };
    show(c.signage);
    file.addEventListener("change", async () => {
      clear(status);
      const chosen = file.files && file.files[0];
      if (!chosen) return;
      try {
        let body = chosen;
        if (chosen.size > 900_000) body = await shrink(chosen);
        const r = await fetch(`/api/cameras/${c.id}/signage`, { method: "PUT", body, credentials: "same-origin",
          headers: { "Content-Type": "application/octet-stream" } });
        const j = await r.json().catch(() => ({}));
        if (!r.ok) {
          status.className = "error";
          status.append(t("cameras.signage.refused"), " ", data("span", j.error || `HTTP ${r.status}`));
          return;
        }
        status.className = "ok";
        status.append(t("cameras.signage.saved"));
        show(j);
      } catch (e) {
        status.append(t("cameras.signage.refused"), " ", data("span", e.message));
      }
    });
    box.append(h("h3", {}, t("cameras.signage.title")), h("p", { class: "hint" }, t("cameras.signage.why")),
      current, h("label", { for: "cf-signage-file" }, h("span", {}, t("cameras.signage.choose")), file), status);
    return box;
  }

  search.addEventListener("input", draw);
  addBtn.addEventListener("click", () => edit(null));
  await load();
  const timer = setInterval(() => { if (formBox.hidden) load(); }, 15_000);
  return () => {
    stopped = true;
    clearInterval(timer);
    for (const u of thumbs.values()) URL.revokeObjectURL(u);
  };
}
