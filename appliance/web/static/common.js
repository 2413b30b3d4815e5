// Shared helpers of the Vigil pages (no framework; the CSP allows only same-origin scripts).
"use strict";

const vigil = {
  $: (id) => document.getElementById(id),

  /** GET a JSON API path; throws an Error carrying the API's message and HTTP status. */
  async getJSON(path) {
    const resp = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      vigil.leaveIfLoggedOut(resp.status, body.error);
      const err = new Error(body.error || `${resp.status} ${resp.statusText}`);
      err.status = resp.status;
      throw err;
    }
    return body;
  },

  /** POST/PUT/DELETE a JSON body with the session's CSRF token; returns the JSON answer,
   *  throws like getJSON. */
  async send(method, path, body = {}) {
    if (!vigil._csrf) vigil._csrf = (await vigil.getJSON("/api/v1/me")).csrf;
    const resp = await fetch(path, {
      method, credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": vigil._csrf },
      body: JSON.stringify(body),
    });
    const answer = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      vigil.leaveIfLoggedOut(resp.status, answer.error);
      const err = new Error(answer.error || `${resp.status} ${resp.statusText}`);
      err.status = resp.status;
      throw err;
    }
    return answer;
  },

  /** An API answer 401 (no session, or it ended) takes the page to /login, and back here
   *  after logging in; 503 "setup required" takes it to the first-boot wizard. */
  leaveIfLoggedOut(status, message) {
    if (["/login", "/setup"].includes(location.pathname)) return;
    if (status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    } else if (status === 503 && /setup/.test(message || "")) {
      location.assign("/setup");
    }
  },

  /** An element with text (never innerHTML: names come from cameras and users). */
  el(tag, text = "", attrs = {}) {
    const node = document.createElement(tag);
    if (text !== "") node.textContent = text;
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  },

  /** Replace `actions` by a question with Yes/Cancel until answered (no dialogs: they
   *  are easy to click through on a phone and block the page). `page.busy` counts the
   *  open questions (a page does not redraw under one). */
  confirmIn(actions, question, yesText, onYes, page = { busy: 0 }) {
    const box = vigil.el("div", "", { class: "confirm", role: "group" });
    const yes = vigil.el("button", yesText, { type: "button", class: "danger" });
    const no = vigil.el("button", "Cancel", { type: "button" });
    box.append(vigil.el("p", question), yes, no);
    actions.hidden = true;
    actions.after(box);
    const close = () => { box.remove(); actions.hidden = false; page.busy -= 1; };
    page.busy += 1;
    no.addEventListener("click", close);
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try { await onYes(); } finally { close(); }
    });
    yes.focus();
  },

  /** Why a request failed, in words for the owner. */
  explain(err) {
    if (err.status === 401) return "Log in first (the API says: login required).";
    if (err.status === 503 && /setup/.test(err.message)) return "Finish the first-boot setup first.";
    return err.message || String(err);
  },

  status(text, isError = false) {
    const el = vigil.$("status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  },

  /** The camera to show: ?camera=, else the last one used, else cam1. */
  initialCamera() {
    const fromUrl = new URLSearchParams(location.search).get("camera");
    return fromUrl || localStorage.getItem("vigil.camera") || "cam1";
  },

  rememberCamera(name) {
    localStorage.setItem("vigil.camera", name);
    const url = new URL(location.href);
    url.searchParams.set("camera", name);
    history.replaceState(null, "", url);
  },
};

// The header's "Log out" button (every page but the login page has one).
vigil.$("logout")?.addEventListener("click", async () => {
  try {
    await vigil.send("POST", "/api/v1/logout", {});
  } catch (err) {
    // already logged out: the login page is where this ends either way
  }
  location.assign("/login");
});
