// Sign-in, and the forced password change of a new or reset account (the first-start
// administrator's password is in <data_dir>/initial-admin-password).

import { h } from "../dom.js";

function field(id, label, type, extra = {}) {
  return h("label", { for: id }, label,
    h("input", { id, name: id, type, required: true, ...extra }));
}

function errorText(t, e, context) {
  if (e.status === 401) return t(context === "change" ? "login.error.current_wrong" : "login.error.failed");
  if (e.status === 429) return t("login.error.locked");
  if (e.status === 422) return t("login.error.policy");
  if (e.status === 0) return t("common.error.network");
  return t("login.error.other");
}

export default async function render(root, ctx) {
  const { t } = ctx;
  const status = h("p", { id: "login-error", class: "error", role: "alert" });
  const card = h("section", { class: "login card" });
  root.append(h("div", { class: "login-wrap" }, card));

  const must = ctx.user && ctx.user.must_change_password;
  if (must) {
    const form = h("form", { id: "change-form", autocomplete: "off" },
      h("h1", {}, t("login.change.title")),
      h("p", { class: "hint" }, t("login.change.why")),
      field("current", t("login.change.current"), "password", { autocomplete: "current-password" }),
      field("new", t("login.change.new"), "password", { autocomplete: "new-password", minlength: 12 }),
      field("repeat", t("login.change.repeat"), "password", { autocomplete: "new-password" }),
      h("p", { class: "hint" }, t("login.change.rules")),
      status,
      h("div", { class: "actions" },
        h("button", { type: "submit", id: "change-submit", class: "primary" }, t("login.change.submit")),
        h("button", { type: "button", id: "change-cancel", onclick: async () => {
          try { await ctx.api("/api/session", { method: "DELETE" }); } catch { /* gone */ }
          await ctx.refreshUser();
          ctx.navigate("#/login");
        } }, t("common.sign_out"))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      status.textContent = "";
      const f = new FormData(form);
      if (f.get("new") !== f.get("repeat")) {
        status.textContent = t("login.error.mismatch");
        return;
      }
      try {
        await ctx.api("/api/me/password", { method: "POST",
          body: { current: f.get("current"), new: f.get("new") } });
      } catch (e) {
        status.textContent = errorText(t, e, "change");
        return;
      }
      await ctx.refreshUser();
      ctx.navigate("#/wall");
    });
    card.append(form);
  } else {
    const form = h("form", { id: "login-form" },
      h("h1", {}, t("login.title")),
      field("login", t("login.login"), "text", { autocomplete: "username", maxlength: 64 }),
      field("password", t("login.password"), "password", { autocomplete: "current-password" }),
      h("label", { for: "code" }, t("login.code"),
        h("input", { id: "code", name: "code", type: "text", inputmode: "numeric",
          autocomplete: "one-time-code", maxlength: 6, pattern: "[0-9]{6}" })),
      status,
      h("div", { class: "actions" },
        h("button", { type: "submit", id: "login-submit", class: "primary" }, t("login.submit"))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      status.textContent = "";
      const f = new FormData(form);
      const body = { login: f.get("login"), password: f.get("password") };
      if (f.get("code")) body.code = f.get("code");
      try {
        await ctx.api("/api/session", { method: "POST", body });
      } catch (e) {
        status.textContent = errorText(t, e, "sign-in");
        return;
      }
      const user = await ctx.refreshUser();
      ctx.navigate(user && user.must_change_password ? "#/login" : "#/wall");
    });
    card.append(form);
  }
  card.append(h("div", { class: "login-lang" }, ctx.langSwitch()));
}
