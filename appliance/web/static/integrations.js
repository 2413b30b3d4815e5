// Integrations page: the MQTT broker (with a connection test), who may scrape the
// Prometheus metrics (the scrape token, the allowed networks), and the RTSP restream's
// switch with its URLs. Everything comes from and goes to the admin API; the passwords
// typed here are sent once and never come back.
"use strict";

(() => {
  const { $ } = vigil;
  // What the page knows, for people (the forms) and for the browser tests.
  const state = window.vigilIntegrations = { loaded: false, mqtt: null, restream: null,
                                             test: null, error: null };
  const page = { busy: 0 };
  const CA_LIMIT = 64 * 1024;   // as the API's (appliance/mqtt/broker_ca.py)

  function formStatus(el, text, isError = false) {
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  // --- MQTT ------------------------------------------------------------------------------
  const mqttStatus = () => $("mqtt-form").querySelector(".form-status");

  function fillMqtt(view) {
    state.mqtt = view;
    const s = view.settings;
    $("mqtt-enabled").checked = s.enabled;
    $("mqtt-host").value = s.host;
    $("mqtt-port").value = s.port ? String(s.port) : "";
    $("mqtt-port").placeholder = String(view.port_in_force);
    $("mqtt-tls").checked = s.tls;
    $("mqtt-ca-upload").value = "";
    $("mqtt-ca-public").checked = false;
    $("mqtt-ca-state").textContent = caWords(view.ca, s.ca_file);
    $("mqtt-topic-prefix").value = s.topic_prefix;
    $("mqtt-topic-prefix").placeholder = view.topic_prefix_in_force;
    $("mqtt-discovery").checked = s.discovery;
    $("mqtt-discovery-prefix").value = s.discovery_prefix;
    $("mqtt-username").value = view.username || "";
    $("mqtt-password").value = "";
    $("mqtt-password").placeholder = view.password_set ? "unchanged" : "";
    $("mqtt-clear-login").checked = false;
    $("mqtt-login-state").textContent = view.password_set
      ? `Stored: user ${view.username}. Type a password only to replace the login.`
      : "No login stored: the box connects without one.";
    syncMqtt();
  }

  /** Which CA the broker's certificate is checked against, in words. */
  function caWords(ca, file) {
    const what = ca.subjects ? `${ca.subjects.join("; ")}, valid until ${ca.not_after}` : "";
    switch (ca.source) {
      case "uploaded": return `Your CA: ${what}.`;
      case "file": return ca.readable ? `The CA file ${file} on the box: ${what}.`
        : `The CA file ${file} on the box, which cannot be read: choose your CA's file.`;
      case "system": return "The usual public CAs (as a browser).";
      default: return "Nothing: TLS is off.";
    }
  }

  function syncMqtt() {
    const tls = $("mqtt-tls").checked;
    $("mqtt-ca-public").disabled = !tls;
    $("mqtt-ca-upload").disabled = !tls || $("mqtt-ca-public").checked;
    $("mqtt-discovery-prefix").disabled = !$("mqtt-discovery").checked;
    const clear = $("mqtt-clear-login").checked;
    $("mqtt-username").disabled = $("mqtt-password").disabled = clear;
  }

  /** The broker CA part of the body: a chosen file's PEM text, back to the public CAs
   *  (also when TLS is off), or nothing (kept). */
  async function caBody() {
    const file = $("mqtt-ca-upload").files[0];
    if (!$("mqtt-tls").checked || $("mqtt-ca-public").checked) return { ca_file: "" };
    if (!file) return {};
    if (file.size > CA_LIMIT) throw new Error("This file is too large for a CA certificate.");
    return { ca_certificate: await file.text() };
  }

  /** The form as an API body; throws an Error with words when the login is half-typed. */
  async function mqttBody() {
    const port = $("mqtt-port").value.trim();
    const body = {
      enabled: $("mqtt-enabled").checked, host: $("mqtt-host").value.trim(),
      port: port ? Number(port) : 0, tls: $("mqtt-tls").checked, ...(await caBody()),
      topic_prefix: $("mqtt-topic-prefix").value.trim(), discovery: $("mqtt-discovery").checked,
      discovery_prefix: $("mqtt-discovery-prefix").value.trim() || "homeassistant",
    };
    const username = $("mqtt-username").value, password = $("mqtt-password").value;
    if ($("mqtt-clear-login").checked) {
      body.password_action = "clear";
    } else if (password) {
      Object.assign(body, { password_action: "set", username, password });
    } else if (username !== ((state.mqtt && state.mqtt.username) || "")) {
      throw new Error("Type the password too: a new user name needs its password.");
    } else {
      body.password_action = "unchanged";
    }
    return body;
  }

  async function loadMqtt() {
    const view = await vigil.getJSON("/api/v1/mqtt/settings");
    fillMqtt(view);
    return view.problem;
  }

  for (const id of ["mqtt-tls", "mqtt-discovery", "mqtt-clear-login", "mqtt-ca-public"]) {
    $(id).addEventListener("change", syncMqtt);
  }

  $("mqtt-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("mqtt-test-result").hidden = true;
    formStatus(mqttStatus(), "Saving…");
    try {
      const view = await vigil.send("PUT", "/api/v1/mqtt/settings", await mqttBody());
      fillMqtt(view);
      formStatus(mqttStatus(), view.settings.enabled
        ? "Saved. The box connects within seconds." : "Saved. MQTT is off.");
    } catch (err) {
      formStatus(mqttStatus(), vigil.explain(err), true);
    }
  });

  $("mqtt-test").addEventListener("click", async () => {
    const result = $("mqtt-test-result");
    result.hidden = true;
    formStatus(mqttStatus(), "Testing the connection…");
    $("mqtt-test").disabled = true;
    try {
      const form = await mqttBody();
      const body = {};
      for (const key of ["host", "port", "tls", "ca_file", "ca_certificate", "password_action",
                         "username", "password"]) {
        if (key in form) body[key] = form[key];
      }
      const answer = state.test = await vigil.send("POST", "/api/v1/mqtt/test", body);
      formStatus(mqttStatus(), "");
      const who = answer.username ? ` as ${answer.username}` : " without a login";
      result.textContent = answer.ok
        ? `Connected to ${answer.broker}${answer.tls ? " over TLS" : ""}${who}: ${answer.message}.`
        : `Not connected (${answer.step}): ${answer.message}.`;
      result.className = answer.ok ? "banner" : "banner bad";
      result.hidden = false;
    } catch (err) {
      formStatus(mqttStatus(), vigil.explain(err), true);
    } finally {
      $("mqtt-test").disabled = false;
    }
  });

  // --- metrics ---------------------------------------------------------------------------
  const metricsStatus = () => $("metrics-form").querySelector(".form-status");

  function showToken(answer, note) {
    $("metrics-token").textContent = `${answer.token}\n\n${answer.header}`;
    $("metrics-token-note").textContent = note;
    $("metrics-token-box").hidden = false;
  }

  async function loadMetrics() {
    $("metrics-url").textContent = `${location.origin}/metrics`;
    const settings = await vigil.getJSON("/api/v1/metrics/settings");
    $("metrics-networks").value = settings.allowed_networks.join(" ");
  }

  $("metrics-show-token").addEventListener("click", async () => {
    try {
      showToken(await vigil.getJSON("/api/v1/metrics/token"),
                "The scrape token (Prometheus: authorization with type Bearer):");
    } catch (err) {
      formStatus(metricsStatus(), vigil.explain(err), true);
    }
  });

  $("metrics-new-token").addEventListener("click", () => {
    vigil.confirmIn($("metrics-token-actions"),
      "Make a new token? Prometheus servers with the old one are refused from now on.",
      "New token", async () => {
        try {
          showToken(await vigil.send("POST", "/api/v1/metrics/token", {}),
                    "The new token: put it into Prometheus' scrape configuration now.");
        } catch (err) {
          formStatus(metricsStatus(), vigil.explain(err), true);
        }
      }, page);
  });

  $("metrics-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    formStatus(metricsStatus(), "Saving…");
    try {
      const networks = $("metrics-networks").value.split(/[\s,]+/).filter(Boolean);
      const answer = await vigil.send("PUT", "/api/v1/metrics/settings",
                                      { allowed_networks: networks });
      $("metrics-networks").value = answer.allowed_networks.join(" ");
      formStatus(metricsStatus(), "Saved. It applies at the next scrape.");
    } catch (err) {
      formStatus(metricsStatus(), vigil.explain(err), true);
    }
  });

  // --- the restream ----------------------------------------------------------------------
  // How the relay is doing (systemd's view through vigil-hwd; null without systemd).
  function restreamWords(view) {
    if (!view.enabled) {
      if (view.service === "stopping") return "Off: the restream is stopping…";
      if (["running", "starting", "restarting"].includes(view.service)) {
        return "Off, but the restream is still running.";
      }
      return `Off: nothing listens on port ${view.port}.`;
    }
    if (view.service === "starting") return "On: the restream is starting…";
    if (view.service === "running" || view.service === null) {
      return `On: the box serves the cameras on port ${view.port}.`;
    }
    return "On, but the restream is not running.";
  }

  // While the relay starts or stops, ask again every 2 s (at most 2 minutes).
  const restreamPoll = { timer: null, left: 0 };
  function followRestream(view) {
    clearTimeout(restreamPoll.timer);
    if (!["starting", "stopping"].includes(view.service) || restreamPoll.left <= 0) return;
    restreamPoll.left -= 1;
    restreamPoll.timer = setTimeout(async () => {
      try {
        const next = await vigil.getJSON("/api/v1/restream");
        fillRestream(next);
        formStatus($("restream-status"), next.problem || "", Boolean(next.problem));
      } catch (err) {
        formStatus($("restream-status"), vigil.explain(err), true);
      }
    }, 2000);
  }

  function fillRestream(view) {
    state.restream = view;
    $("restream-state").textContent = restreamWords(view);
    followRestream(view);
    const button = $("restream-switch");
    button.textContent = view.enabled ? "Switch off" : "Switch on…";
    button.className = view.enabled ? "danger" : "";
    button.disabled = false;
    $("restream-on").hidden = !view.enabled;
    $("restream-user").textContent = view.user || "";
    $("restream-password").textContent = "hidden";
    const items = [];
    for (const row of view.cameras) {
      for (const stream of ["main", "sub"]) {
        const item = vigil.el("li");
        item.append(vigil.el("strong", `${row.camera} ${stream}: `));
        if (row[stream]) {
          item.append(vigil.el("span", row[stream], { class: "token" }));
        } else if (row.skipped[stream]) {
          item.append(vigil.el("span", `not served (${row.skipped[stream]})`, { class: "muted" }));
        } else {
          continue;
        }
        items.push(item);
      }
    }
    if (view.enabled && !items.length) items.push(vigil.el("li", "No cameras yet."));
    $("restream-urls").replaceChildren(...items);
  }

  async function loadRestream() {
    const view = await vigil.getJSON("/api/v1/restream");
    restreamPoll.left = 60;
    fillRestream(view);
    return view.problem;
  }

  async function switchRestream(enabled) {
    formStatus($("restream-status"), enabled ? "Switching on…" : "Switching off…");
    $("restream-switch").disabled = true;
    try {
      const view = await vigil.send("PUT", "/api/v1/restream", { enabled });
      restreamPoll.left = 60;
      fillRestream(view);
      const problems = [...(view.problems || []), view.problem].filter(Boolean);
      formStatus($("restream-status"), problems.join("; "), problems.length > 0);
    } catch (err) {
      $("restream-switch").disabled = false;
      formStatus($("restream-status"), vigil.explain(err), true);
    }
  }

  $("restream-password-show").addEventListener("click", async () => {
    try {
      const login = await vigil.getJSON("/api/v1/restream/login");
      $("restream-password").textContent = login.password;
    } catch (err) {
      formStatus($("restream-status"), vigil.explain(err), true);
    }
  });

  $("restream-switch").addEventListener("click", () => {
    if (state.restream.enabled) {
      switchRestream(false);
      return;
    }
    vigil.confirmIn($("restream-switch"),
      "Switch on? Anyone on your network with the restream login can watch every camera.",
      "Switch on", () => switchRestream(true), page);
  });

  async function load() {
    const problems = [];
    try {
      for (const part of [loadMqtt, loadMetrics, loadRestream]) {
        const problem = await part();
        if (problem) problems.push(problem);
      }
      vigil.status(problems.join("; "), problems.length > 0);
      state.loaded = true;
    } catch (err) {
      state.error = vigil.explain(err);
      vigil.status(state.error, true);
    }
  }

  load();
})();
