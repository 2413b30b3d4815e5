// The cameras page: each camera with its recording state (refreshed every 5 s); for
// admins, adding one (ONVIF address or RTSP URL), enable/disable, remove (confirmed) and
// WS-Discovery suggestions. Every name and message is set with textContent: a camera
// label such as <img onerror=...> shows as the text it is.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const STATE_WORDS = {
    recording: "Recording", starting: "Starting", connecting: "Connecting",
    waiting_keyframe: "Starting", stopped: "Stopped", retrying: "Retrying",
    unreachable: "Unreachable", auth_failed: "Login refused", not_licensed: "Not licensed",
    stopped_disk_full: "Disk full", disk_error: "Disk error", unsupported: "Unsupported",
    disabled: "Disabled", waiting: "Waiting",
  };
  const page = { loaded: false, error: "", role: "", cameras: [], found: [], busy: 0 };
  window.vigilCameras = page;
  const cards = new Map();   // camera id -> card (built once, updated in place)
  let loadError = "";

  const $ = vigil.$;

  function say(text, isError = false) {
    vigil.status(text, isError);
  }

  function streamText(s) {
    if (!s) return "none";
    const parts = [s.codec && s.codec.toUpperCase(), s.resolution, s.fps && `${s.fps} fps`,
      s.bitrate_kbps && `${(s.bitrate_kbps / 1000).toFixed(1)} Mb/s`].filter(Boolean);
    return parts.join(" · ") || "not reported";
  }

  function badgeClass(rec) {
    if (rec.stale) return "bad";
    if (rec.state === "recording") return "good";
    if (rec.state === "disabled") return "off";
    if (["starting", "connecting", "waiting_keyframe", "waiting"].includes(rec.state)) return "busy";
    return "bad";
  }

  const confirmIn = (actions, question, yesText, onYes) =>
    vigil.confirmIn(actions, question, yesText, onYes, page);

  function buildCard(cam) {
    const li = vigil.el("li", "", { class: "card", "data-camera": cam.id });
    const head = vigil.el("div", "", { class: "card-head" });
    const title = vigil.el("h3", "", { class: "camera-label" });
    const badge = vigil.el("span", "", { class: "badge" });
    head.append(title, badge);
    const idLine = vigil.el("p", "", { class: "muted" });
    const dl = vigil.el("dl");
    const rows = {};
    for (const [key, text] of [["status", "Status"], ["device", "Camera"], ["address", "Address"],
      ["poe", "PoE port"], ["main", "Main stream"], ["sub", "Sub stream"]]) {
      const dt = vigil.el("dt", text);
      const dd = vigil.el("dd");
      dl.append(dt, dd);
      rows[key] = { dt, dd };
    }
    const actions = vigil.el("div", "", { class: "actions" });
    li.append(head, idLine, dl, actions);
    const card = { li, title, badge, idLine, rows, actions, cam };
    if (page.role === "admin") {
      card.toggle = vigil.el("button", "", { type: "button", class: "toggle" });
      card.toggle.addEventListener("click", () => toggle(card));
      const remove = vigil.el("button", "Remove", { type: "button", class: "danger remove" });
      remove.addEventListener("click", () => confirmIn(actions,
        `Remove ${card.cam.label}? It stops recording and its login is deleted; its ` +
        "recordings stay until retention removes them.", "Yes, remove", () => removeCamera(card)));
      actions.append(card.toggle, remove);
    }
    return card;
  }

  function setRow(row, text) {
    row.dd.textContent = text;
    row.dt.hidden = row.dd.hidden = text === null;
  }

  function updateCard(card, cam) {
    card.cam = cam;
    const rec = cam.recording;
    card.title.textContent = cam.label;
    card.idLine.textContent = `name: ${cam.id}`;
    card.badge.textContent = rec.stale ? "No news" : (STATE_WORDS[rec.state] || rec.state);
    card.badge.className = `badge ${badgeClass(rec)}`;
    let status = rec.last_error || rec.detail || "";
    if (rec.stale) status = `the recorder has not reported for ${Math.round(rec.heartbeat_age_s)} s`;
    setRow(card.rows.status, status || "—");
    const device = [cam.maker, cam.model, cam.firmware && `firmware ${cam.firmware}`]
      .filter(Boolean).join(" ");
    setRow(card.rows.device, device || (cam.onvif ? "—" : "added by RTSP URL"));
    setRow(card.rows.address, cam.address === undefined ? null : (cam.address || "—"));
    setRow(card.rows.poe, cam.poe_port || "—");
    setRow(card.rows.main, streamText(cam.main));
    setRow(card.rows.sub, streamText(cam.sub));
    if (card.toggle) card.toggle.textContent = cam.enabled ? "Disable" : "Enable";
    card.li.classList.toggle("disabled", !cam.enabled);
  }

  function render(data) {
    const list = $("cameras");
    const seen = new Set();
    for (const cam of data.cameras) {
      seen.add(cam.id);
      let card = cards.get(cam.id);
      if (!card) {
        card = buildCard(cam);
        cards.set(cam.id, card);
      }
      updateCard(card, cam);
      list.append(card.li);   // keeps the API's order; moving a node keeps its state
    }
    for (const [id, card] of cards) {
      if (!seen.has(id)) { card.li.remove(); cards.delete(id); }
    }
    $("empty").hidden = data.cameras.length > 0;
    const usage = [];
    if (data.licence) {
      usage.push(`${data.licence.used} of ${data.licence.allowed ?? "?"} licensed cameras recording`);
    }
    if (data.bandwidth) {
      usage.push(`${(data.bandwidth.used_kbps / 1000).toFixed(1)} of ` +
        `${(data.bandwidth.budget_kbps / 1000).toFixed(0)} Mb/s incoming bandwidth`);
    }
    if (data.recorder && !data.recorder.ok) usage.push(data.recorder.problem);
    $("usage").textContent = usage.join(" · ");
  }

  async function load() {
    try {
      const data = await vigil.getJSON("/api/v1/cameras");
      page.cameras = data.cameras;
      render(data);
      page.error = "";
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

  // --- admin actions ---------------------------------------------------------------------

  async function toggle(card) {
    const enable = !card.cam.enabled;
    card.toggle.disabled = true;
    try {
      await vigil.send("PATCH", `/api/v1/cameras/${encodeURIComponent(card.cam.id)}`,
        { enabled: enable });
      say(`${card.cam.label}: ${enable ? "enabled; recording starts within a few seconds"
        : "disabled; not recorded"}`);
    } catch (err) {
      say(vigil.explain(err), true);
    } finally {
      card.toggle.disabled = false;
    }
    await load();
  }

  async function removeCamera(card) {
    try {
      const answer = await vigil.send("DELETE",
        `/api/v1/cameras/${encodeURIComponent(card.cam.id)}`, {});
      say(answer.note || `${card.cam.label} removed`);
    } catch (err) {
      say(vigil.explain(err), true);
    }
    await load();
  }

  function showKind() {
    const form = $("add");
    const kind = form.elements.kind.value;
    for (const label of form.querySelectorAll("[data-kind]")) {
      label.hidden = label.dataset.kind !== kind;
    }
  }

  async function addCamera(event) {
    event.preventDefault();
    const form = $("add");
    const f = form.elements;
    const body = { name: f.name.value.trim() };
    for (const key of ["label", "username", "password"]) {
      if (f[key].value !== "") body[key] = key === "password" ? f[key].value : f[key].value.trim();
    }
    if (f.kind.value === "onvif") {
      body.xaddr = f.xaddr.value.trim();
      if (f.rotate_password.checked) body.rotate_password = true;
      if (f.endpoint.value) body.endpoint = f.endpoint.value;
    } else {
      body.rtsp = f.rtsp.value.trim();
      if (f.sub.value.trim()) body.sub = f.sub.value.trim();
    }
    const button = $("add-button");
    button.disabled = true;
    say(f.kind.value === "onvif" ? "Asking the camera what it is (up to 20 s)…" : "Adding…");
    try {
      const answer = await vigil.send("POST", "/api/v1/cameras", body);
      say(`${answer.camera.label} added` + (answer.password_rotated
        ? "; its password was replaced by a generated one" : "") + `; ${answer.note}`);
      form.reset();
      showKind();
      await load();
    } catch (err) {
      say(vigil.explain(err), true);
    } finally {
      button.disabled = false;
      f.password.value = "";
    }
  }

  function suggestName(text) {
    const name = (text || "").replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^[-_]+|-+$/g, "")
      .slice(0, 32);
    return name || "camera";
  }

  function useSuggestion(dev) {
    const form = $("add");
    const f = form.elements;
    form.reset();
    f.kind.value = "onvif";
    showKind();
    f.xaddr.value = dev.usable_xaddrs[0];
    f.endpoint.value = dev.endpoint || "";
    f.label.value = (dev.name || "").slice(0, 64);
    f.name.value = suggestName(dev.name || dev.hardware);
    form.scrollIntoView({ block: "start" });
    f.username.focus();
    say("Check the name, give the camera's user name and password, then Add camera.");
  }

  function renderFound(devices) {
    const list = $("found");
    list.replaceChildren();
    for (const dev of devices) {
      const li = vigil.el("li", "", { class: "card" });
      li.append(vigil.el("h3", dev.name || "(no name)"));
      const dl = vigil.el("dl");
      const add = (dt, dd) => { dl.append(vigil.el("dt", dt), vigil.el("dd", dd)); };
      add("Model", dev.hardware || "—");
      add("Answered from", dev.sender);
      add("Address", dev.usable_xaddrs[0] ||
        (dev.xaddrs[0] ? `refused: ${dev.xaddrs[0].refused}` : "none given"));
      li.append(dl);
      const actions = vigil.el("div", "", { class: "actions" });
      if (dev.registered_as) {
        actions.append(vigil.el("p", `already added as ${dev.registered_as}`, { class: "muted" }));
      } else if (dev.usable_xaddrs.length) {
        const use = vigil.el("button", "Add this camera…", { type: "button" });
        use.addEventListener("click", () => useSuggestion(dev));
        actions.append(use);
      }
      li.append(actions);
      list.append(li);
    }
  }

  async function discover() {
    const button = $("discover");
    button.disabled = true;
    say("Searching the camera network…");
    try {
      const answer = await vigil.send("POST", "/api/v1/cameras/discover", {});
      page.found = answer.devices;
      renderFound(answer.devices);
      say(answer.devices.length ? `${answer.devices.length} found in ${answer.seconds} s`
        : `No ONVIF camera answered within ${answer.seconds} s`);
    } catch (err) {
      say(vigil.explain(err), true);
    } finally {
      button.disabled = false;
    }
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
    if (page.role === "admin") {
      $("manage").hidden = false;
      const form = $("add");
      for (const radio of form.elements.kind) radio.addEventListener("change", showKind);
      form.addEventListener("submit", addCamera);
      $("discover").addEventListener("click", discover);
      showKind();
    }
    await refreshLoop();
  }

  start();
})();
