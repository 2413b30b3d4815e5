// The alerts page: the recorder's and vigil-hwd's alerts in one list, newest first;
// operators and admins acknowledge them (the API records who and when).
"use strict";

const state = window.vigilAlerts = { loaded: false, alerts: [], error: "" };
const REFRESH_MS = 15000;

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

function alertItem(alert) {
  const li = vigil.el("li", "", { class: `${alert.severity} ${alert.state}`, "data-id": alert.id });
  li.append(vigil.el("div", alert.text, { class: "text" }));
  const meta = vigil.el("div", "", { class: "meta" });
  meta.append(vigil.el("span", alert.severity, { class: `badge ${alert.severity}` }),
              vigil.el("span", when(alert.time)), vigil.el("span", alert.source),
              vigil.el("span", alert.state === "active" ? "active" : "cleared"));
  if (alert.acknowledged) {
    meta.append(vigil.el("span", `acknowledged by ${alert.acknowledged.by}`));
  } else if (alert.state === "active") {
    const button = vigil.el("button", "Acknowledge", { type: "button", class: "ack" });
    button.addEventListener("click", () => acknowledge(alert.id, button));
    meta.append(button);
  }
  li.append(meta);
  return li;
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    await vigil.send("POST", `/api/v1/alerts/${encodeURIComponent(id)}/acknowledge`, {});
    await load();
  } catch (err) {
    vigil.status(vigil.explain(err), true);
    button.disabled = false;
  }
}

async function load() {
  const params = new URLSearchParams({ severity: vigil.$("severity").value, limit: "200" });
  if (vigil.$("state").value) params.set("state", vigil.$("state").value);
  try {
    const answer = await vigil.getJSON(`/api/v1/alerts?${params}`);
    state.alerts = answer.alerts;
    const list = vigil.$("alerts");
    list.replaceChildren(...answer.alerts.map(alertItem));
    const summary = answer.alerts.length
      ? `${answer.active_unacknowledged} active, not acknowledged` : "No alerts.";
    // The recorder's own alerts live on the data disk: say so when they cannot be read.
    vigil.status(answer.recorder_error ? `${summary} ${answer.recorder_error}` : summary,
      Boolean(answer.recorder_error));
    state.error = "";
  } catch (err) {
    state.error = vigil.explain(err);
    vigil.status(state.error, true);
  }
  state.loaded = true;
}

vigil.$("severity").addEventListener("change", load);
vigil.$("state").addEventListener("change", load);
vigil.$("filters").addEventListener("submit", (e) => e.preventDefault());
load();
setInterval(load, REFRESH_MS);
