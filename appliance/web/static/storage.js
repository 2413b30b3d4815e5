// The storage page: data volume space, RAID with resync progress, disks with SMART, the
// forecast per camera, retention settings, the deletion audit, and initialising a disk
// (plan -> confirmation token -> a job whose progress bar polls the API).
"use strict";

const state = window.vigilStorage = { loaded: false, data: null, plan: null, job: null,
                                      error: "", admin: false };
const REFRESH_MS = 10000;
const JOB_POLL_MS = 1000;

const GB = 1e9;
function size(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  return bytes >= 1e12 ? `${(bytes / 1e12).toFixed(2)} TB` : `${(bytes / GB).toFixed(1)} GB`;
}
function days(value) {
  return value === null || value === undefined ? "no limit" : `${value.toFixed(1)} days`;
}
function cell(text, cls = "") {
  return vigil.el("td", text === null || text === undefined ? "–" : String(text),
                  cls ? { class: cls } : {});
}
function badge(text) {
  return vigil.el("span", text, { class: `badge ${text}` });
}
function meter(percent, label) {
  const box = vigil.el("div", "", { class: "meter" });
  const bar = vigil.el("progress", "", { max: "100", value: String(Math.round(percent)) });
  box.append(bar, vigil.el("span", label));
  return box;
}

// --- volumes, RAID, disks ------------------------------------------------------------------
function showVolumes(data) {
  const box = vigil.$("volumes");
  const parts = [];
  for (const vol of data.volumes || []) {
    const div = vigil.el("div", "", { class: "volume" });
    div.append(vigil.el("p", `${vol.mountpoint} (filesystem ${vol.uuid}) `));
    div.firstChild.append(badge(vol.state));
    if (vol.total_bytes) {
      const used = 100 * vol.used_bytes / vol.total_bytes;
      div.append(meter(used, `${size(vol.used_bytes)} used, ${size(vol.free_bytes)} free of ${size(vol.total_bytes)}`));
    } else {
      div.append(vigil.el("p", vol.detail, { class: "error" }));
    }
    parts.push(div);
  }
  if (!parts.length) {
    parts.push(vigil.el("p", data.volumes ? "No data disk is initialised yet: initialise one below."
      : "Disk details are not available right now.", { class: "muted" }));
  }
  const rec = data.data;
  const line = rec.total_bytes
    ? `Recordings (${rec.path}): ${size(rec.total_bytes - rec.free_bytes)} used, ${size(rec.free_bytes)} free (${rec.free_percent.toFixed(1)} %); at ${rec.low_water_percent} % free: ${rec.full_disk_action}.`
    : `Recordings (${rec.path}): ${rec.volume}`;
  parts.push(vigil.el("p", line, { class: rec.volume_ok ? "muted" : "error" }));
  box.replaceChildren(...parts);
  const err = vigil.$("devices-error");
  err.hidden = !data.devices_error;
  err.textContent = data.devices_error ? `Disks, RAID and SMART: ${data.devices_error}` : "";
}

function showRaid(data) {
  const arrays = Object.entries(data.raid || {});
  if (!arrays.length) {
    vigil.$("raid").replaceChildren(vigil.el("p", "No RAID array.", { class: "muted" }));
    return;
  }
  vigil.$("raid").replaceChildren(...arrays.map(([name, a]) => {
    const div = vigil.el("div", "", { class: "array" });
    const head = vigil.el("p", `${name} ${a.level || ""} `);
    head.append(badge(a.state));
    div.append(head, vigil.el("p", a.detail || "", { class: "muted" }));
    if (a.progress_percent !== null && a.progress_percent !== undefined) {
      const eta = a.eta_seconds ? `, about ${Math.ceil(a.eta_seconds / 60)} min left` : "";
      div.append(meter(a.progress_percent, `${a.sync_action || "sync"} ${a.progress_percent.toFixed(1)} %${eta}`));
    }
    const members = (a.members || []).map((m) => `${m.device}${m.flags.length ? " (" + m.flags.join(", ") + ")" : ""}`);
    if (members.length) div.append(vigil.el("p", `Members: ${members.join("; ")}`, { class: "muted" }));
    return div;
  }));
}

const ROLE_WORDS = { boot: "system disk", data: "data disk", array_member: "RAID member",
                     in_use: "in use", free: "free" };

function showDisks(data) {
  const rows = (data.disks || []).map((d) => {
    const tr = vigil.el("tr", "", { "data-device": d.device });
    const pick = vigil.el("td", "", { class: "admin-only" });
    pick.hidden = !state.admin;
    if (d.can_initialise) {
      const box = vigil.el("input", "", { type: "checkbox", class: "pick", value: d.device,
                                          "aria-label": `pick ${d.device}` });
      box.addEventListener("change", pickChanged);
      pick.append(box);
    } else {
      pick.title = d.refused.join("; ");
    }
    const smart = d.smart || {};
    const counters = Object.entries(smart.counters || {}).filter(([, v]) => v > 0)
      .map(([k, v]) => `${k.replace(/_/g, " ")}: ${v}`);
    const signs = [...(smart.reasons || []), ...counters].join("; ") || (d.smart ? "none" : "–");
    const name = vigil.el("td", `${d.device} ${d.model || ""} (serial ${d.serial || d.wwn || "none"})`);
    const use = vigil.el("td", ROLE_WORDS[d.role] || d.role);
    if (d.refused.length) use.title = d.refused.join("; ");
    const verdict = vigil.el("td", "");
    verdict.append(badge(smart.verdict || "unknown"));
    tr.append(pick, name, cell(d.size, "num"), use, verdict,
              cell(smart.temperature_c !== null && smart.temperature_c !== undefined ? `${smart.temperature_c} °C` : null, "num"),
              cell(smart.power_on_hours, "num"), cell(signs));
    return tr;
  });
  if (!rows.length) {
    const tr = vigil.el("tr");
    tr.append(vigil.el("td", data.disks ? "No disks found." : "Disk details are not available right now.", { colspan: "8" }));
    rows.push(tr);
  }
  vigil.$("disks").tBodies[0].replaceChildren(...rows);
}

function showForecast(data) {
  const rows = Object.entries(data.forecast || {}).map(([cam, f]) => {
    const tr = vigil.el("tr");
    tr.append(cell(cam), cell(size(f.bytes_held), "num"), cell(days(f.retained_days), "num"),
              cell(f.forecast_days === null ? "not measured yet" : days(f.forecast_days), "num"),
              cell({ max_age: "age limit", max_bytes: "size limit", disk: "disk size" }[f.limited_by] || "–"));
    return tr;
  });
  vigil.$("forecast").tBodies[0].replaceChildren(...rows);
  vigil.$("space").textContent = `Deletions in the last 24 hours: ${data.deletions_24h}.`;
}

// --- retention settings --------------------------------------------------------------------
function showRetention(retention) {
  const fields = Object.entries(retention.settings).map(([name, s]) => {
    const label = vigil.el("label", `${name.replace(/_/g, " ")} `);
    let input;
    if (s.choices.length) {
      input = vigil.el("select", "", { name });
      for (const c of s.choices) {
        const o = vigil.el("option", c, { value: c });
        o.selected = c === s.value;
        input.append(o);
      }
    } else {
      input = vigil.el("input", "", { name, type: "number", step: "any", inputmode: "decimal" });
      if (s.low !== null) input.min = s.low;
      if (s.high !== null) input.max = s.high;
      input.value = s.value;
    }
    input.dataset.setting = name;
    label.append(input, vigil.el("small", ` ${s.description}`, { class: "muted" }));
    return label;
  });
  vigil.$("retention-settings").replaceChildren(...fields);
  const rows = Object.entries(retention.cameras).map(([cam, c]) => {
    const tr = vigil.el("tr", "", { "data-camera": cam });
    const age = vigil.el("input", "", { type: "number", min: "0", step: "any", class: "max-age" });
    age.value = c.max_age_days;
    const gib = vigil.el("input", "", { type: "number", min: "0", step: "any", class: "max-gib" });
    gib.value = c.max_gib;
    const a = vigil.el("td"), b = vigil.el("td");
    a.append(age);
    b.append(gib);
    tr.append(cell(cam), a, b);
    return tr;
  });
  vigil.$("retention-cameras").tBodies[0].replaceChildren(...rows);
}

async function saveRetention(event) {
  event.preventDefault();
  const storage = {};
  for (const input of vigil.$("retention-settings").querySelectorAll("[data-setting]")) {
    storage[input.dataset.setting] = input.tagName === "SELECT" ? input.value : Number(input.value);
  }
  const cameras = {};
  for (const tr of vigil.$("retention-cameras").tBodies[0].rows) {
    cameras[tr.dataset.camera] = { max_age_days: Number(tr.querySelector(".max-age").value),
                                   max_gib: Number(tr.querySelector(".max-gib").value) };
  }
  const status = vigil.$("retention-status");
  try {
    const answer = await vigil.send("PUT", "/api/v1/storage/retention", { storage, cameras });
    status.textContent = answer.changed.length ? `Saved: ${answer.applies}.` : "Nothing changed.";
    status.className = "status";
    showRetention(answer);
  } catch (err) {
    status.textContent = vigil.explain(err);
    status.className = "status error";
  }
}

// --- deletion audit --------------------------------------------------------------------
async function loadDeletions() {
  const answer = await vigil.getJSON("/api/v1/storage/deletions?limit=200");
  const rows = answer.deletions.map((d) => {
    const tr = vigil.el("tr");
    tr.append(cell(new Date(d.time_us / 1000).toLocaleString()), cell(d.camera),
              cell(new Date(d.start_us / 1000).toLocaleString()), cell(size(d.bytes), "num"),
              cell(d.rule), cell(d.state), cell(d.detail));
    return tr;
  });
  if (!rows.length) {
    const tr = vigil.el("tr");
    tr.append(vigil.el("td", "Nothing deleted yet.", { colspan: "7" }));
    rows.push(tr);
  }
  vigil.$("deletions").tBodies[0].replaceChildren(...rows);
}

// --- initialise: plan, token, job ----------------------------------------------------------
function picked() {
  return [...document.querySelectorAll("#disks input.pick:checked")].map((b) => b.value);
}

function pickChanged() {
  const n = picked().length;
  vigil.$("plan-button").disabled = !(n === 1 || n === 2) || Boolean(state.job && !state.job.done);
  vigil.$("plan-button").textContent = n === 2 ? "Show what will be erased (RAID1 mirror)"
    : "Show what will be erased";
  vigil.$("plan").hidden = true;
}

async function showPlan() {
  const disks = picked();
  try {
    const answer = await vigil.send("POST", "/api/v1/storage/disks/initialise",
                                    { disks, mode: disks.length === 2 ? "raid1" : "single" });
    state.plan = { disks, mode: disks.length === 2 ? "raid1" : "single", token: answer.token };
    vigil.$("plan-text").textContent = answer.description;
    vigil.$("plan-token").textContent = answer.token;
    vigil.$("confirm-token").value = "";
    vigil.$("plan").hidden = false;
  } catch (err) {
    vigil.status(vigil.explain(err), true);
  }
}

async function startJob() {
  const token = vigil.$("confirm-token").value.trim();
  if (!state.plan || !token) {
    vigil.status("Type the confirmation token shown above first.", true);
    return;
  }
  try {
    const answer = await vigil.send("POST", "/api/v1/storage/disks/initialise",
                                    { disks: state.plan.disks, mode: state.plan.mode, token });
    vigil.$("plan").hidden = true;
    followJob(answer.job);
  } catch (err) {
    vigil.status(vigil.explain(err), true);
  }
}

function showJob(job) {
  state.job = job;
  vigil.$("job").hidden = false;
  vigil.$("job-progress").value = job.percent;
  vigil.$("job-percent").textContent = `${Math.round(job.percent)} %`;
  vigil.$("job-phase").textContent = job.done
    ? (job.error ? `Initialising failed: ${job.error}` : `Done: the data disk is ready at ${job.result.mountpoint}.`)
    : `Step ${job.step || 1} of ${job.steps}: ${job.phase}`;
  vigil.$("job-phase").className = job.error ? "error" : "";
}

async function followJob(job) {
  showJob(job);
  while (!state.job.done) {
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    try {
      showJob(await vigil.getJSON(`/api/v1/storage/jobs/${encodeURIComponent(job.id)}`));
    } catch (err) {
      vigil.status(vigil.explain(err), true);
      return;
    }
  }
  await load();
}

// --- loading -------------------------------------------------------------------------------
async function load() {
  try {
    const data = await vigil.getJSON("/api/v1/storage");
    state.data = data;
    state.admin = data.can_change;
    for (const el of document.querySelectorAll(".admin-only")) el.hidden = !state.admin;
    showVolumes(data);
    showRaid(data);
    showDisks(data);
    showForecast(data);
    if (state.admin) {
      if (!vigil.$("retention").contains(document.activeElement)) {
        showRetention(await vigil.getJSON("/api/v1/storage/retention"));
      }
      await loadDeletions();
      const running = (data.jobs || [])[0];
      if (running && !state.job) followJob(running);
    }
    vigil.status(`Updated ${new Date().toLocaleTimeString()}`);
    state.error = "";
  } catch (err) {
    state.error = vigil.explain(err);
    vigil.status(state.error, true);
  }
  state.loaded = true;
}

vigil.$("plan-button").addEventListener("click", showPlan);
vigil.$("start-button").addEventListener("click", startJob);
vigil.$("cancel-button").addEventListener("click", () => { vigil.$("plan").hidden = true; });
vigil.$("retention").addEventListener("submit", saveRetention);
load();
setInterval(() => { if (!picked().length && vigil.$("plan").hidden) load(); }, REFRESH_MS);
