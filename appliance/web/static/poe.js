// The PoE page: a card per port (state, class, power, the camera on it), the power
// budget, refreshed every 3 s; operators power-cycle a port (confirmed first), admins
// also switch a port off and on. Names are set with textContent only.
"use strict";

(() => {
  const REFRESH_MS = 3000;
  const STATE_WORDS = {
    powered: "Powered", searching: "Nothing connected", detected: "Device found",
    classified: "Waiting for power", fault: "Fault", disabled: "Off",
  };
  const page = { loaded: false, error: "", role: "", snapshot: null, busy: 0, refreshes: 0 };
  window.vigilPoe = page;
  const cards = new Map();   // port number -> card (built once, updated in place)
  let loadError = "";
  const $ = vigil.$;

  function say(text, isError = false) {
    vigil.status(text, isError);
  }

  const confirmIn = (actions, question, yesText, onYes) =>
    vigil.confirmIn(actions, question, yesText, onYes, page);

  function cameraText(port) {
    return port.camera ? `${port.camera.label} (${port.camera.id})` : null;
  }

  function buildCard(port) {
    const li = vigil.el("li", "", { class: "card", "data-port": String(port.port) });
    const head = vigil.el("div", "", { class: "card-head" });
    const title = vigil.el("h3");
    const badge = vigil.el("span", "", { class: "badge" });
    head.append(title, badge);
    const dl = vigil.el("dl");
    const rows = {};
    for (const [key, text] of [["camera", "Camera"], ["class", "Class"], ["power", "Power"],
      ["detail", "Detail"], ["cycles", "Power cycles (1 h)"]]) {
      const dt = vigil.el("dt", text);
      const dd = vigil.el("dd");
      dl.append(dt, dd);
      rows[key] = dd;
    }
    const actions = vigil.el("div", "", { class: "actions" });
    li.append(head, dl, actions);
    const card = { li, title, badge, rows, actions, port };
    if (page.role === "operator" || page.role === "admin") {
      card.cycle = vigil.el("button", "Power-cycle", { type: "button", class: "cycle" });
      card.cycle.addEventListener("click", () => {
        const who = cameraText(card.port) || "The device on it";
        confirmIn(actions, `Power-cycle ${card.port.label}? ${who} loses power for a few ` +
          "seconds and restarts; recording pauses meanwhile.", "Yes, power-cycle",
        () => powerCycle(card));
      });
      actions.append(card.cycle);
    }
    if (page.role === "admin") {
      card.toggle = vigil.el("button", "", { type: "button", class: "toggle" });
      card.toggle.addEventListener("click", () => {
        if (!card.port.enabled) { setEnabled(card, true); return; }
        const who = cameraText(card.port) || "Whatever is plugged in";
        confirmIn(actions, `Switch ${card.port.label} off? ${who} stays without power until ` +
          "you switch it on again.", "Yes, switch off", () => setEnabled(card, false));
      });
      actions.append(card.toggle);
    }
    return card;
  }

  function updateCard(card, port) {
    card.port = port;
    card.title.textContent = port.label;
    let word = STATE_WORDS[port.state] || port.state;
    if (port.state === "classified" && port.denied) word = "Denied: budget";
    card.badge.textContent = port.stale ? `${word} (not answering)` : word;
    card.badge.className = "badge " + (port.state === "powered" ? "good"
      : port.state === "fault" || port.denied || port.stale ? "bad"
        : port.state === "disabled" || port.state === "searching" ? "off" : "busy");
    card.rows.camera.textContent = cameraText(port) || "—";
    card.rows.class.textContent = port.class === null || port.class === undefined
      ? "—" : String(port.class);
    const volts = port.voltage_v ? ` at ${port.voltage_v.toFixed(1)} V` : "";
    card.rows.power.textContent = `${(port.power_w || 0).toFixed(1)} W${volts}` +
      (port.allocated_w ? ` (${port.allocated_w.toFixed(1)} W allocated)` : "");
    card.rows.detail.textContent = [port.detail, ...(port.faults || [])].filter(Boolean)
      .join("; ") || "—";
    card.rows.cycles.textContent = String(port.cycles_last_hour ?? 0);
    if (card.cycle) {
      card.cycle.disabled = !(port.enabled && port.state === "powered");
      card.cycle.title = card.cycle.disabled ? "only a port that powers a device" : "";
    }
    if (card.toggle) card.toggle.textContent = port.enabled ? "Switch off" : "Switch on";
  }

  function render(snap) {
    const list = $("ports");
    for (const port of snap.ports) {
      let card = cards.get(port.port);
      if (!card) {
        card = buildCard(port);
        cards.set(port.port, card);
        list.append(card.li);
      }
      updateCard(card, port);
    }
    const share = snap.budget_w ? snap.allocated_w / snap.budget_w : 0;
    const parts = [`${snap.allocated_w.toFixed(1)} of ${snap.budget_w.toFixed(0)} W of the ` +
      `power budget allocated`, `${snap.measured_w.toFixed(1)} W drawn`];
    if (snap.input_voltage_v) parts.push(`supply ${snap.input_voltage_v.toFixed(1)} V`);
    if (snap.age_s !== null && snap.age_s > 10) parts.push(`as of ${Math.round(snap.age_s)} s ago`);
    $("budget-text").textContent = parts.join(" · ");
    $("budget-meter").value = Math.min(1, share);
    $("budget").hidden = false;
  }

  async function load() {
    try {
      const snap = await vigil.getJSON("/api/v1/poe");
      page.snapshot = snap;
      render(snap);
      page.error = "";
      page.refreshes += 1;
      if (loadError) { say(""); loadError = ""; }
    } catch (err) {
      page.error = loadError = vigil.explain(err);
      say(loadError, true);
    }
    page.loaded = true;
  }

  async function refreshLoop() {
    if (!document.hidden && page.busy === 0) await load();
    setTimeout(refreshLoop, REFRESH_MS);
  }

  async function powerCycle(card) {
    const label = card.port.label;
    try {
      const answer = await vigil.send("POST",
        `/api/v1/poe/ports/${encodeURIComponent(card.port.port)}/power-cycle`, {});
      say(`${label} is off for ${Math.round(answer.off_seconds)} s, then on again; the ` +
        "camera needs a minute or two to start recording again.");
    } catch (err) {
      say(`${label}: ${vigil.explain(err)}`, true);
    }
    await load();
  }

  async function setEnabled(card, enabled) {
    const label = card.port.label;
    try {
      await vigil.send("POST", `/api/v1/poe/ports/${encodeURIComponent(card.port.port)}/enabled`,
        { enabled });
      say(`${label} switched ${enabled ? "on" : "off"} (until the box restarts; the ` +
        "settings file keeps it for good)");
    } catch (err) {
      say(`${label}: ${vigil.explain(err)}`, true);
    }
    await load();
  }

  async function start() {
    try {
      page.role = (await vigil.getJSON("/api/v1/me")).role;
    } catch (err) {
      page.error = vigil.explain(err);
      say(page.error, true);
      page.loaded = true;
      return;
    }
    if (page.role === "viewer") {
      page.error = "PoE ports are for operators and admins.";
      say(page.error, true);
      page.loaded = true;
      return;
    }
    await refreshLoop();
  }

  start();
})();
