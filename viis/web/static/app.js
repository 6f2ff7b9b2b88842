// The console shell: hash router, top bar, session check, and the ctx handed to each page.
// A page is static/pages/<name>.js exporting `default async function render(root, ctx)`
// that may return a cleanup function (called when leaving the page).
// ctx = {api, t, lang, user, navigate, params, setLanguage, refreshUser}.

import { h, clear } from "./dom.js";
import { LANGS, chooseLang, data, lang, remember, setLang, t } from "./i18n.js";

const ROUTES = [
  [/^\/login$/, "login"],
  [/^\/wall$/, "wall"],
  [/^\/playback$/, "playback"],
  [/^\/cameras$/, "cameras"],
  [/^\/cameras\/(\d+)\/masks$/, "masks"],
  [/^\/health$/, "health"],
  [/^\/gb28181$/, "gb28181"],
];
const NAV = [["wall", "#/wall"], ["playback", "#/playback"], ["cameras", "#/cameras"],
  ["health", "#/health"], ["gb28181", "#/gb28181"]];
const HOME = "#/wall";

const state = { user: null, known: false, cleanup: null, generation: 0, settings: {} };

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** fetch JSON from the API; errors are thrown as ApiError(message) with .status. A 401 on
 *  any call means the session ended: back to the sign-in page. */
export async function api(path, opts = {}) {
  const init = { credentials: "same-origin", ...opts, headers: { ...(opts.headers || {}) } };
  if (opts.body !== undefined && !(opts.body instanceof FormData) && typeof opts.body !== "string") {
    init.body = JSON.stringify(opts.body);
    init.headers["Content-Type"] = "application/json";
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(t("common.error.network"), 0, null);
  }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!r.ok) {
    if (r.status === 401 && !path.startsWith("/api/session")) {
      state.user = null;
      state.known = true;
      if (!location.hash.startsWith("#/login")) navigate("#/login");
    }
    const msg = body && typeof body === "object" && body.error ? body.error : `HTTP ${r.status}`;
    throw new ApiError(msg, r.status, body);
  }
  return body;
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function loadUser() {
  try {
    state.user = await api("/api/me");
  } catch (e) {
    state.user = null;
  }
  state.known = true;
  state.settings = {};
  if (state.user && !state.user.must_change_password) {
    try { state.settings = (await api("/api/me/settings")) || {}; } catch { /* none yet */ }
  }
  return state.user;
}

async function setLanguage(l, save = true) {
  await setLang(l);
  remember(lang());
  if (save && state.user && !state.user.must_change_password) {
    api("/api/me/settings", { method: "PUT", body: { lang: lang() } }).catch(() => {});
  }
  await route();
}

function match(hash) {
  const path = (hash || "").replace(/^#/, "") || "/";
  for (const [re, name] of ROUTES) {
    const m = path.match(re);
    if (m) return { name, params: m.slice(1) };
  }
  return null;
}

function langSwitch() {
  const sel = h("select", { id: "lang-switch", "aria-label": t("common.language") },
    ...LANGS.map((l) => h("option", { value: l, selected: l === lang() },
      t(`common.lang.${l}`))));
  sel.addEventListener("change", () => setLanguage(sel.value));
  return sel;
}

async function signOut() {
  try { await api("/api/session", { method: "DELETE" }); } catch { /* already gone */ }
  state.user = null;
  navigate("#/login");
}

function topbar(active) {
  const bar = document.getElementById("topbar");
  clear(bar);
  if (active === "login" || !state.user) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  const name = state.user.display_name || state.user.login;
  bar.append(
    h("span", { class: "brand" }, t("common.brand")),
    h("nav", {}, ...NAV.map(([page, href]) =>
      h("a", { href, class: page === active ? "active" : null, id: `nav-${page}` },
        t(`common.nav.${page}`)))),
    h("span", { class: "spacer" }),
    h("span", { class: "user" }, t("common.signed_in_as"), " ", data("span", name, { id: "user-name" })),
    langSwitch(),
    h("button", { id: "sign-out", type: "button", onclick: signOut }, t("common.sign_out")),
  );
}

async function route() {
  const gen = ++state.generation;
  let m = match(location.hash);
  if (!m) {
    navigate(HOME);
    return;
  }
  if (!state.known) await loadUser();
  if (gen !== state.generation) return;
  const mustChange = state.user && state.user.must_change_password;
  if (m.name !== "login" && (!state.user || mustChange)) {
    navigate("#/login");
    return;
  }
  if (m.name === "login" && state.user && !mustChange) {
    navigate(HOME);
    return;
  }
  if (state.cleanup) {
    try { state.cleanup(); } catch (e) { console.error(e); }
    state.cleanup = null;
  }
  const root = clear(document.getElementById("page"));
  delete root.dataset.ready;
  root.dataset.page = m.name;
  topbar(m.name);
  const ctx = {
    api, t, lang: lang(), user: state.user, navigate, params: m.params,
    settings: state.settings, setLanguage, langSwitch,
    refreshUser: async () => { state.known = false; return loadUser(); },
  };
  let mod;
  try {
    mod = await import(`./pages/${m.name}.js`);
  } catch (e) {
    console.error(e);
    root.append(h("p", { class: "notice" }, t("common.page_unavailable")));
    return;
  }
  if (gen !== state.generation) return;
  try {
    const cleanup = await mod.default(root, ctx);
    if (gen !== state.generation) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    state.cleanup = typeof cleanup === "function" ? cleanup : null;
  } catch (e) {
    console.error(e);
    root.append(h("p", { class: "error", role: "alert" }, t("common.error.page"), " ",
      data("span", e.message)));
  }
  root.dataset.ready = "1";
}

async function start() {
  await loadUser();
  await setLang(chooseLang(state.settings.lang));
  window.addEventListener("hashchange", route);
  await route();
}

start();
