// The login page: POST /api/v1/login, then back to the page that sent us here (?next=),
// but only to a path on this box: one leading "/", never "//host" or "/\host".
"use strict";

/** The page to go to after logging in: a same-site path, else the home page. */
function safeNext(raw) {
  if (typeof raw !== "string" || !raw.startsWith("/") || raw.startsWith("//") ||
      /[\\\u0000-\u001f\u007f]/.test(raw)) {
    return "/";
  }
  const url = new URL(raw, location.origin);
  if (url.origin !== location.origin || url.pathname === "/login") return "/";
  return url.pathname + url.search + url.hash;
}

const state = window.vigilLogin = {
  next: safeNext(new URLSearchParams(location.search).get("next")),
  done: false, error: "",
};

async function login(event) {
  event.preventDefault();
  const username = vigil.$("username").value.trim();
  const password = vigil.$("password").value;
  if (!username || !password) {
    vigil.status("Enter your user name and password.", true);
    return;
  }
  vigil.$("submit").disabled = true;
  vigil.status("Logging in…");
  try {
    const resp = await fetch("/api/v1/login", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const answer = await resp.json().catch(() => ({}));
    if (resp.status === 503 && /setup/.test(answer.error || "")) {
      location.assign("/setup");
      return;
    }
    if (!resp.ok) {
      state.error = resp.status === 401 ? "Wrong user name or password." :
        (answer.error || `${resp.status} ${resp.statusText}`);
      vigil.status(state.error, true);
      vigil.$("password").value = "";
      vigil.$("password").focus();
      return;
    }
    state.done = true;
    location.replace(state.next);
  } catch (err) {
    state.error = `The box did not answer (${err.message}).`;
    vigil.status(state.error, true);
  } finally {
    vigil.$("submit").disabled = false;
  }
}

async function start() {
  vigil.$("login").addEventListener("submit", login);
  try {
    const setup = await vigil.getJSON("/api/v1/setup");
    if (setup.needed) {
      location.assign("/setup");
      return;
    }
  } catch (err) {
    vigil.status(vigil.explain(err), true);
  }
  vigil.$("username").focus();
}

start();
