// System page: name, time, network, configuration backup and restore, factory reset.
// Everything comes from /api/v1/system (admin); each form saves one part with PUT, and
// the answer (the settings as the box stored them) is shown again.
"use strict";

(() => {
  const { $ } = vigil;
  // What the page knows, for people (the forms) and for the browser tests.
  const state = window.vigilSystem = { loaded: false, settings: null, saved: null, error: null };
  let clockOffset = 0;  // box time minus this browser's time, in ms
  let zone = "UTC";

  function formStatus(form, text, isError = false) {
    const el = form.querySelector(".form-status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  function words(list) {
    return list.split(/[\s,]+/).filter(Boolean);
  }

  function duration(seconds) {
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    const m = Math.floor(seconds % 3600 / 60);
    return (d ? `${d} d ` : "") + (d || h ? `${h} h ` : "") + `${m} min`;
  }

  function showClock() {
    const now = new Date(Date.now() + clockOffset);
    let text;
    try {
      text = new Intl.DateTimeFormat(undefined, { timeZone: zone, dateStyle: "medium",
                                                  timeStyle: "medium" }).format(now);
    } catch (err) {
      text = now.toISOString().replace("T", " ").slice(0, 19) + " UTC";
    }
    $("about-time").textContent = `${text} (${zone})`;
  }

  function fill(settings) {
    state.settings = settings;
    zone = settings.time.timezone;
    $("about-hostname").textContent = settings.hostname;
    $("hostname").value = settings.hostname;
    $("reset-name").textContent = settings.hostname;
    $("timezone").value = settings.time.timezone;
    $("ntp").checked = settings.time.ntp;
    $("ntp-servers").value = settings.time.ntp_servers.join(" ");
    $("mode-" + settings.network.mode).checked = true;
    $("address").value = settings.network.address;
    $("gateway").value = settings.network.gateway;
    $("dns").value = settings.network.dns.join(" ");
    syncEnabled();
    showClock();
  }

  function syncEnabled() {
    const manual = !$("ntp").checked;
    $("manual-time").disabled = !manual;
    $("ntp-servers").disabled = manual;
    const fixed = $("mode-static").checked;
    for (const input of $("static-fields").querySelectorAll("input")) input.disabled = !fixed;
  }

  async function loadZones() {
    const { timezones } = await vigil.getJSON("/api/v1/system/timezones");
    const select = $("timezone");
    select.replaceChildren(...timezones.map((name) => vigil.el("option", name, { value: name })));
  }

  async function load() {
    try {
      if (!$("timezone").options.length) await loadZones();
      const info = await vigil.getJSON("/api/v1/system");
      clockOffset = info.time * 1000 - Date.now();
      $("about-uptime").textContent = duration(info.uptime);
      $("about-version").textContent = info.version;
      $("restart-note").hidden = !info.restart_needed;
      fill(info.settings);
      vigil.status(info.problem || "", Boolean(info.problem));
      state.loaded = true;
    } catch (err) {
      state.error = vigil.explain(err);
      vigil.status(state.error, true);
    }
  }

  async function save(form, path, body, done) {
    formStatus(form, "Saving…");
    try {
      const answer = await vigil.send("PUT", path, body);
      fill(answer.settings);
      state.saved = { path, settings: answer.settings };
      const problems = answer.problems || [];
      formStatus(form, problems.length ? `Saved, but: ${problems.join("; ")}` : (done || "Saved."),
                 problems.length > 0);
      return answer;
    } catch (err) {
      formStatus(form, vigil.explain(err), true);
      return null;
    }
  }

  $("hostname-form").addEventListener("submit", (event) => {
    event.preventDefault();
    save(event.target, "/api/v1/system/hostname", { hostname: $("hostname").value });
  });

  $("ntp").addEventListener("change", syncEnabled);
  $("time-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { timezone: $("timezone").value, ntp: $("ntp").checked };
    if ($("ntp").checked) body.ntp_servers = words($("ntp-servers").value);
    if (!$("ntp").checked && $("manual-time").value) body.set_time = $("manual-time").value;
    const answer = await save(event.target, "/api/v1/system/time", body);
    if (answer && answer.clock) {
      clockOffset = answer.clock.time * 1000 - Date.now();
      $("manual-time").value = "";
      showClock();
    }
  });

  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", syncEnabled);
  }
  $("network-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = $("mode-static").checked
      ? { mode: "static", address: $("address").value.trim(), gateway: $("gateway").value.trim(),
          dns: words($("dns").value), confirm_other_subnet: $("other-subnet").checked }
      : { mode: "dhcp" };
    save(event.target, "/api/v1/system/network", body,
         "Saved. If the address changed, open the box at its new address.");
  });

  // --- backup and restore -------------------------------------------------------------------
  $("backup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    formStatus(form, "Preparing the file…");
    try {
      if (!vigil._csrf) vigil._csrf = (await vigil.getJSON("/api/v1/me")).csrf;
      const resp = await fetch("/api/v1/system/backup", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": vigil._csrf },
        body: JSON.stringify({ passphrase: $("backup-passphrase").value }),
      });
      if (!resp.ok) {
        const answer = await resp.json().catch(() => ({}));
        const err = new Error(answer.error || `${resp.status} ${resp.statusText}`);
        err.status = resp.status;
        throw err;
      }
      const name = (/filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "")
                    || [])[1] || "vigil-config.tar.gz";
      const url = URL.createObjectURL(await resp.blob());
      const link = vigil.el("a", "", { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      $("backup-passphrase").value = "";
      formStatus(form, `Downloaded ${name}.`);
    } catch (err) {
      formStatus(form, vigil.explain(err), true);
    }
  });

  function base64(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  $("restore-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const file = $("restore-file").files[0];
    if (!file) { formStatus(form, "Choose the backup file first.", true); return; }
    if (file.size > 1024 * 1024) {
      formStatus(form, "This file is far too large to be a Vigil configuration backup.", true);
      return;
    }
    formStatus(form, "Checking and restoring…");
    try {
      const answer = await vigil.send("POST", "/api/v1/system/restore", {
        file: base64(await file.arrayBuffer()), passphrase: $("restore-passphrase").value });
      const s = answer.summary;
      formStatus(form, `Restored the backup of ${s.hostname} (${s.created}). Accounts: ` +
                 `${answer.accounts}. ${answer.next}`);
      $("restart-note").hidden = false;
    } catch (err) {
      formStatus(form, vigil.explain(err), true);
    }
  });

  $("restart").addEventListener("click", async () => {
    try {
      await vigil.send("POST", "/api/v1/system/reboot", {});
      vigil.status("The box is restarting; this page works again in a minute or two.");
    } catch (err) {
      vigil.status(vigil.explain(err), true);
    }
  });

  // --- factory reset ------------------------------------------------------------------------
  const dialog = $("reset-dialog");
  function confirmed() {
    const typed = $("reset-confirm").value;
    return typed === "ERASE" || (state.settings && typed === state.settings.hostname);
  }
  function syncReset() {
    $("reset-go").disabled = !(confirmed() && $("reset-password").value);
  }
  $("reset-open").addEventListener("click", () => {
    $("reset-form").reset();
    formStatus($("reset-form"), "");
    syncReset();
    dialog.showModal();
  });
  $("reset-cancel").addEventListener("click", () => dialog.close());
  $("reset-confirm").addEventListener("input", syncReset);
  $("reset-password").addEventListener("input", syncReset);
  $("reset-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    if (!confirmed()) return;
    formStatus(form, "Erasing…");
    $("reset-go").disabled = true;
    try {
      const answer = await vigil.send("POST", "/api/v1/system/factory-reset", {
        confirm: $("reset-confirm").value, password: $("reset-password").value,
        erase_recordings: $("reset-recordings").checked });
      dialog.close();
      vigil.status(`Erased: ${answer.erased.join(", ")}. ${answer.next}`);
      setTimeout(() => location.assign("/setup"), 8000);
    } catch (err) {
      formStatus(form, vigil.explain(err), true);
      syncReset();
    }
  });

  load();
  setInterval(showClock, 1000);
})();
