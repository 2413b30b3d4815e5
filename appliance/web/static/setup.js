// The first-boot wizard: one step at a time, each saved through its area's own API.
"use strict";

const STEPS = ["admin", "time", "network", "disks", "cameras", "retention", "summary"];
const $ = vigil.$;

function say(text, isError = false) { vigil.status(text, isError); }

let refresh = null;  // the cameras step shows each camera's state as it changes

function show(step) {
  clearInterval(refresh);
  if (step === "cameras") {
    refresh = setInterval(() => loadCameras().catch(() => {}), 3000);
  }
  for (const name of STEPS) $(`step-${name}`).hidden = name !== step;
  const at = STEPS.indexOf(step);
  for (const li of $("steps").children) {
    const i = STEPS.indexOf(li.dataset.step);
    li.classList.toggle("done", i < at);
    li.classList.toggle("current", i === at);
  }
  say("");
  const load = LOADERS[step];
  if (load) load().catch((err) => say(vigil.explain(err), true));
}

async function done(step) {
  if (step !== "admin") await vigil.send("POST", "/api/v1/setup/wizard", { step });
  show(STEPS[STEPS.indexOf(step) + 1]);
}

/** Run an async form action with its button disabled; errors shown in words. */
function guarded(button, action) {
  return async (event) => {
    event?.preventDefault();
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      say(vigil.explain(err), true);
    } finally {
      button.disabled = false;
    }
  };
}

const words = (text) => text.split(/[\s,]+/).filter(Boolean);

// --- 1. admin ---------------------------------------------------------------------------
$("admin-form").addEventListener("submit", guarded($("admin-next"), async () => {
  if ($("admin-pass").value !== $("admin-pass2").value) {
    throw new Error("The two passwords are not the same.");
  }
  const resp = await fetch("/api/v1/setup", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("admin-user").value, password: $("admin-pass").value }),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(answer.error || `${resp.status}`);
  vigil._csrf = answer.csrf;
  await done("admin");
}));

// --- 2. time ----------------------------------------------------------------------------
async function loadTime() {
  const [system, zones] = await Promise.all([vigil.getJSON("/api/v1/system"),
                                             vigil.getJSON("/api/v1/system/timezones")]);
  const time = system.settings.time;
  const select = $("tz");
  select.replaceChildren(...zones.timezones.map((z) => vigil.el("option", z, { value: z })));
  select.value = time.timezone;
  $("ntp").checked = time.ntp;
  $("ntp-servers").value = (time.ntp_servers || []).join(" ");
}
$("time-form").addEventListener("submit", guarded($("time-next"), async () => {
  await vigil.send("PUT", "/api/v1/system/time", {
    timezone: $("tz").value, ntp: $("ntp").checked, ntp_servers: words($("ntp-servers").value),
  });
  await done("time");
}));

// --- 3. network -------------------------------------------------------------------------
async function loadNetwork() {
  const net = (await vigil.getJSON("/api/v1/system")).settings.network;
  $(net.mode === "static" ? "net-static" : "net-dhcp").checked = true;
  $("net-address").value = net.address || "";
  $("net-gateway").value = net.gateway || "";
  $("net-dns").value = (net.dns || []).join(" ");
  $("static-fields").disabled = net.mode !== "static";
}
for (const radio of document.querySelectorAll("input[name=mode]")) {
  radio.addEventListener("change", () => { $("static-fields").disabled = !$("net-static").checked; });
}
$("network-form").addEventListener("submit", guarded($("network-next"), async () => {
  const body = $("net-static").checked
    ? { mode: "static", address: $("net-address").value.trim(),
        gateway: $("net-gateway").value.trim(), dns: words($("net-dns").value) }
    : { mode: "dhcp" };
  await vigil.send("PUT", "/api/v1/system/network", body);
  await done("network");
}));

// --- 4. disks ---------------------------------------------------------------------------
let diskPlan = null;

async function loadDisks() {
  const list = $("disk-list");
  let answer;
  try {
    answer = await vigil.getJSON("/api/v1/storage/disks");
  } catch (err) {
    list.replaceChildren(vigil.el("p", vigil.explain(err)));
    return;
  }
  const disks = answer.disks || [];
  if (answer.note) list.replaceChildren(vigil.el("p", answer.note));
  else list.replaceChildren();
  const free = disks.filter((d) => d.role === "free");
  if (!answer.note && !disks.some(canHoldRecordings)) {
    list.append(noDataDiskWarning(answer.min_size_bytes));
  }
  for (const disk of disks) {
    const row = vigil.el("label", "", { class: "check" });
    const box = vigil.el("input", "", { type: "checkbox", value: disk.device });
    box.disabled = disk.role !== "free";
    row.append(box, vigil.el("span", `${disk.device} ${disk.model || ""} ` +
      `${((disk.size_bytes || 0) / 1e9).toFixed(0)} GB: ${disk.role_detail || disk.role}`));
    list.append(row);
  }
  if (free.length) {
    const go = vigil.el("button", "Initialise the ticked disks", { type: "button", id: "disk-plan-button" });
    go.addEventListener("click", guarded(go, planDisks));
    list.append(go);
  }
}

/** A disk the box can record onto: its data disk, or a free one it may initialise (big
 *  enough, writable). The boot SD card or eMMC never is one. */
function canHoldRecordings(disk) {
  return disk.role === "data" || (disk.role === "free" && disk.can_initialise !== false);
}

/** Why nothing will be recorded, with a way to look again once a disk is plugged in. On the
 *  box the list is never empty (the boot disk is in it), so without this the owner would
 *  finish the wizard unaware that the box records nothing. */
function noDataDiskWarning(minSizeBytes) {
  const size = minSizeBytes ? ` (${Math.ceil(minSizeBytes / 1e9)} GB or more)` : "";
  const warning = vigil.el("p", "", { id: "no-data-disk", role: "alert" });
  const again = vigil.el("button", "Look for disks again", { type: "button" });
  again.addEventListener("click", guarded(again, loadDisks));
  warning.append(vigil.el("strong", "No data disk is connected, so nothing is recorded. "),
                 "The box records only onto a data disk, never onto its SD card or eMMC: " +
                 `connect a USB or SATA disk${size} and it appears here. `, again);
  return warning;
}

async function planDisks() {
  const chosen = [...$("disk-list").querySelectorAll("input:checked")].map((b) => b.value);
  if (!chosen.length) throw new Error("Tick the disk(s) to initialise.");
  const mode = chosen.length === 2 ? "raid1" : "single";
  diskPlan = { disks: chosen, mode };
  const plan = await vigil.send("POST", "/api/v1/storage/disks/initialise", diskPlan);
  diskPlan.token = plan.token;
  $("disk-plan-text").textContent = plan.summary ||
    `Everything on ${chosen.join(" and ")} will be erased (${mode}).`;
  $("disk-plan").hidden = false;
}

$("disk-confirm").addEventListener("click", guarded($("disk-confirm"), async () => {
  const answer = await vigil.send("POST", "/api/v1/storage/disks/initialise", diskPlan);
  $("disk-plan").hidden = true;
  const bar = $("disk-progress");
  bar.hidden = false;
  for (;;) {
    const job = await vigil.getJSON(`/api/v1/storage/jobs/${encodeURIComponent(answer.job.id)}`);
    bar.value = job.progress || 0;
    $("disk-phase").textContent = job.phase || "";
    if (job.error) throw new Error(job.error);
    if (job.done) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  await loadDisks();
}));
$("disks-next").addEventListener("click", guarded($("disks-next"), () => done("disks")));

// --- 5. cameras -------------------------------------------------------------------------
async function loadCameras() {
  const answer = await vigil.getJSON("/api/v1/cameras");
  $("camera-rows").replaceChildren(...answer.cameras.map((cam) => {
    const tr = vigil.el("tr");
    tr.append(vigil.el("td", cam.label || cam.id), vigil.el("td", cam.poe_port || "-"),
              vigil.el("td", cam.recording.state));
    return tr;
  }));
  if (answer.licence) {
    $("camera-licence").textContent =
      `${answer.licence.used} of ${answer.licence.allowed} licensed channels in use.`;
  }
}

$("discover").addEventListener("click", guarded($("discover"), async () => {
  say("Searching the camera network...");
  const answer = await vigil.send("POST", "/api/v1/cameras/discover", {});
  const found = answer.suggestions || answer.cameras || [];
  $("suggestions").replaceChildren(...found.map((s) => {
    const li = vigil.el("li", `${s.maker || s.manufacturer || ""} ${s.model || ""} ${s.xaddr || s.address || ""}`);
    const use = vigil.el("button", "Use", { type: "button" });
    use.addEventListener("click", () => { $("cam-address").value = s.xaddr || s.address || ""; });
    li.append(use);
    return li;
  }));
  say(found.length ? `${found.length} camera(s) answered.` : "No camera answered the search.");
}));

$("camera-form").addEventListener("submit", guarded($("cam-add"), async () => {
  const address = $("cam-address").value.trim();
  const body = { name: $("cam-name").value.trim() };
  body[/^rtsps?:/i.test(address) ? "rtsp" : "xaddr"] = address;
  if ($("cam-user").value) {
    body.username = $("cam-user").value;
    body.password = $("cam-pass").value;
  }
  await vigil.send("POST", "/api/v1/cameras", body);
  $("camera-form").reset();
  say(`Camera ${body.name} added; recording starts within a few seconds.`);
  await loadCameras();
}));
$("cameras-next").addEventListener("click", guarded($("cameras-next"), () => done("cameras")));

// --- 6. retention -----------------------------------------------------------------------
async function loadRetention() {
  const answer = await vigil.getJSON("/api/v1/storage/retention");
  const fields = $("retention-fields");
  fields.replaceChildren();
  for (const [name, s] of Object.entries(answer.settings)) {
    const label = vigil.el("label", s.description || name);
    let input;
    if (s.choices.length) {
      input = vigil.el("select");
      input.append(...s.choices.map((c) => vigil.el("option", c, { value: c })));
    } else if (typeof s.value === "boolean") {
      input = vigil.el("input", "", { type: "checkbox" });
      input.checked = s.value;
    } else {
      input = vigil.el("input", "", { type: "number", step: "any" });
      if (s.low !== null) input.min = s.low;
      if (s.high !== null) input.max = s.high;
    }
    if (input.type !== "checkbox") input.value = s.value;
    input.dataset.setting = name;
    input.dataset.kind = typeof s.value;
    label.append(input);
    fields.append(label);
  }
  const days = vigil.el("label", "Keep each camera's recordings at most this many days (0: until the disk is full)");
  const input = vigil.el("input", "", { type: "number", min: "0", step: "1", id: "ret-days" });
  const ages = Object.values(answer.cameras).map((c) => c.max_age_days);
  input.value = ages.length ? Math.max(...ages) : 0;
  days.append(input);
  fields.append(days);
  fields.dataset.cameras = JSON.stringify(Object.keys(answer.cameras));
}

$("retention-form").addEventListener("submit", guarded($("retention-next"), async () => {
  const storage = {};
  for (const input of $("retention-fields").querySelectorAll("[data-setting]")) {
    const kind = input.dataset.kind;
    storage[input.dataset.setting] = kind === "boolean" ? input.checked
      : kind === "number" ? Number(input.value) : input.value;
  }
  const days = Number($("ret-days").value || 0);
  const cameras = {};
  for (const name of JSON.parse($("retention-fields").dataset.cameras || "[]")) {
    cameras[name] = { max_age_days: days };
  }
  await vigil.send("PUT", "/api/v1/storage/retention", { storage, cameras });
  await done("retention");
}));

// --- 7. summary -------------------------------------------------------------------------
async function loadSummary() {
  const answer = await vigil.getJSON("/api/v1/setup/checklist");
  $("checklist").replaceChildren(...answer.items.map((item) => {
    const li = vigil.el("li", "", { class: item.ok === true ? "ok" : item.ok === false ? "act" : "" });
    li.append(vigil.el("strong", `${item.item}: `), vigil.el("span", item.detail));
    return li;
  }));
}
$("finish").addEventListener("click", guarded($("finish"), async () => {
  await vigil.send("POST", "/api/v1/setup/finish", {});
  location.assign("/live");
}));

const LOADERS = { time: loadTime, network: loadNetwork, disks: loadDisks, cameras: loadCameras,
                  retention: loadRetention, summary: loadSummary };

// --- where to start ---------------------------------------------------------------------
(async () => {
  try {
    if ((await vigil.getJSON("/api/v1/setup")).needed) return show("admin");
    const progress = await vigil.getJSON("/api/v1/setup/wizard");
    if (progress.finished) return location.assign("/live");
    const next = STEPS[Math.min(STEPS.indexOf(progress.step) + 1, STEPS.length - 1)];
    show(next);
  } catch (err) {
    if (err.status === 401) location.assign("/login?next=/setup");
    else say(vigil.explain(err), true);
  }
})();
