// Translation layer of the console: every user-visible string goes through t().
// Catalogues: /static/i18n/<lang>/<page>.json, flat {"<page>.<key>": "text"}; both
// languages complete (checked by tests/web/console/helpers.py assert_all_translated).
// Language: the user's choice (localStorage "viis.lang", and the server-side user setting
// when one exists) else the browser's navigator.languages (zh* -> zh-CN, else en).

export const LANGS = ["en", "zh-CN"];
export const PAGES = ["common", "login", "wall", "playback", "cameras", "masks", "health", "gb28181"];
const STORE_KEY = "viis.lang";

let current = "en";
let catalogue = {};
const missing = new Set();

export function browserLang(languages = navigator.languages || [navigator.language || "en"]) {
  for (const l of languages) {
    const low = String(l).toLowerCase();
    if (low.startsWith("zh")) return "zh-CN";
    if (low.startsWith("en")) return "en";
  }
  return "en";
}

/** The language to use: an explicit choice (argument, then localStorage), else the browser's. */
export function chooseLang(userSetting) {
  for (const cand of [userSetting, safeGet(STORE_KEY)]) {
    if (LANGS.includes(cand)) return cand;
  }
  return browserLang();
}

function safeGet(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

export function remember(lang) {
  try { localStorage.setItem(STORE_KEY, lang); } catch { /* private mode: session only */ }
}

/** Load every page's catalogue for ``lang`` (a page whose file is missing is skipped). */
export async function setLang(lang) {
  if (!LANGS.includes(lang)) lang = "en";
  const parts = await Promise.all(PAGES.map(async (page) => {
    try {
      const r = await fetch(`/static/i18n/${lang}/${page}.json`, { credentials: "same-origin" });
      return r.ok ? await r.json() : {};
    } catch {
      return {};
    }
  }));
  catalogue = Object.assign({}, ...parts);
  current = lang;
  document.documentElement.lang = lang;
  return lang;
}

export function lang() {
  return current;
}

/** The text for ``key`` with ``{name}`` replaced from ``vars``. A missing key shows the key
 *  itself (so the untranslated-string check finds it) and is reported once on the console. */
export function t(key, vars) {
  let text = catalogue[key];
  if (text === undefined) {
    if (!missing.has(key)) {
      missing.add(key);
      console.warn(`i18n: no ${current} text for ${key}`);
    }
    text = key;
  }
  if (vars) {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  }
  return text;
}

/** An element for a data value (camera name, time, number): skipped by the translation check. */
export function data(tag, value, attrs = {}) {
  const el = document.createElement(tag);
  el.setAttribute("data-user-content", "");
  el.textContent = value == null ? "" : String(value);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}
