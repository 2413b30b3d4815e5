// Export on the recordings page: choose cameras and a time range (prefilled with what is
// recorded on the day shown, or dragged across the timeline), start a background export,
// follow its progress bar, cancel it, download the MP4 files and the signed manifest.
// Operators and admins only (a viewer does not see the panel; the API refuses them too).
"use strict";

(() => {
  const { $ } = vigil;
  const view = window.vigilTimeline;          // the day on screen (timeline.js)
  const POLL_MS = 1000;
  const DRAG_PX = 6;                           // less than this is a click (play)
  // What the panel did, for people (the status line) and for the browser tests.
  const state = window.vigilExport = {
    ready: false, role: null, jobs: [], cameras: [], fingerprint: null, error: null,
    seen: {},                                  // export id -> progress values shown
    started: null, dragged: null,
  };
  const rows = new Map();                      // export id -> its list item's parts
  let timer = null;

  function pad(n) { return String(n).padStart(2, "0"); }

  /** ms since the epoch -> the value of a datetime-local input (local time, seconds). */
  function localInput(ms) {
    const d = new Date(Math.round(ms / 1000) * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
           `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function say(text, isError = false) {
    const el = $("export-status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "";
    if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
    if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
    return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "?";
  }

  // --- the range and the cameras ------------------------------------------------------
  /** What is recorded on the day shown (the whole day when nothing is). */
  function fillFromView() {
    if (!view.dayStart) return;
    let [start, end] = [view.dayStart, view.dayEnd];
    if (view.spans.length) {
      start = Math.max(view.dayStart, view.spans[0].start);
      end = Math.min(view.dayEnd, view.spans[view.spans.length - 1].end);
    }
    $("export-start").value = localInput(Math.floor(start / 1000) * 1000);
    $("export-end").value = localInput(Math.ceil(end / 1000) * 1000);
    $("export-range").hidden = true;
  }

  function drawCameras() {
    const box = $("export-cameras");
    const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    if (!checked.size && view.camera) checked.add(view.camera);
    const names = [...new Set([...state.cameras, ...(view.camera ? [view.camera] : [])])].sort();
    box.replaceChildren(vigil.el("legend", "Cameras"));
    for (const name of names) {
      const input = vigil.el("input", "", { type: "checkbox", value: name, name: "camera" });
      input.checked = checked.has(name);
      const label = vigil.el("label", "", { class: "export-camera" });
      label.append(input, document.createTextNode(` ${name}`));
      box.append(label);
    }
    if (!names.length) box.append(vigil.el("span", "No camera has recordings yet."));
  }

  document.addEventListener("vigil:timeline", () => {
    fillFromView();
    drawCameras();
  });

  // --- choosing the range by dragging across the timeline -------------------------------
  const line = $("timeline");
  let drag = null;

  function timeAt(clientX) {
    const rect = $("bar").getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    return view.dayStart + frac * (view.dayEnd - view.dayStart);
  }

  function showRange(a, b) {
    const [start, end] = [Math.min(a, b), Math.max(a, b)];
    const span = view.dayEnd - view.dayStart;
    const el = $("export-range");
    el.style.left = `${(100 * (start - view.dayStart)) / span}%`;
    el.style.width = `${(100 * (end - start)) / span}%`;
    el.hidden = false;
    $("export-start").value = localInput(Math.floor(start / 1000) * 1000);
    $("export-end").value = localInput(Math.ceil(end / 1000) * 1000);
  }

  line.addEventListener("pointerdown", (event) => {
    if (!view.loaded || $("export").hidden || event.button !== 0) return;
    drag = { x: event.clientX, from: timeAt(event.clientX), moved: false, id: event.pointerId };
  });
  line.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    if (!drag.moved && Math.abs(event.clientX - drag.x) < DRAG_PX) return;
    if (!drag.moved) line.setPointerCapture(event.pointerId);
    drag.moved = true;
    showRange(drag.from, timeAt(event.clientX));
  });
  function endDrag(event) {
    if (!drag || event.pointerId !== drag.id) return;
    if (drag.moved) {
      showRange(drag.from, timeAt(event.clientX));
      state.dragged = { start: $("export-start").value, end: $("export-end").value };
      $("export").open = true;
      say("Range chosen on the timeline; press Export.");
      suppressClick = true;
    }
    drag = null;
  }
  line.addEventListener("pointerup", endDrag);
  line.addEventListener("pointercancel", (event) => { if (drag && event.pointerId === drag.id) drag = null; });
  // A drag is not a click: the timeline would start playing where the mouse let go.
  let suppressClick = false;
  window.addEventListener("click", (event) => {
    if (suppressClick && line.contains(event.target)) {
      event.stopPropagation();
      event.preventDefault();
    }
    suppressClick = false;
  }, true);

  // --- the jobs ---------------------------------------------------------------------------
  const WORDS = {
    running: (job) => `Exporting… ${job.progress} %`,
    done: (job) => `Ready: ${job.files.filter((f) => f.kind === "video").length} MP4 file(s), ` +
                   size(job.files.reduce((sum, f) => sum + (f.bytes || 0), 0)),
    failed: (job) => `Failed: ${job.error || "no reason given"}`,
    cancelled: () => "Cancelled; nothing of it was kept.",
  };

  function row(job) {
    let parts = rows.get(job.id);
    if (parts) return parts;
    const li = vigil.el("li", "", { class: "export-job", "data-id": job.id });
    const title = vigil.el("div", "", { class: "export-title" });
    title.append(vigil.el("strong", job.cameras.join(", ") || job.id),
                 vigil.el("span", job.start ? ` ${when(job.start)} – ${when(job.end)}` : ""));
    const bar = vigil.el("progress", "", { max: "100", value: "0",
                                           "aria-label": `export ${job.id} progress` });
    const words = vigil.el("div", "", { class: "export-words" });
    const actions = vigil.el("div", "", { class: "export-actions" });
    li.append(title, bar, words, actions);
    parts = { li, bar, words, actions, state: null };
    rows.set(job.id, parts);
    return parts;
  }

  function drawActions(job, parts) {
    const actions = parts.actions;
    actions.replaceChildren();
    if (job.state === "running") {
      const cancel = vigil.el("button", "Cancel", { type: "button", class: "export-cancel" });
      cancel.addEventListener("click", () => remove(job, cancel));
      actions.append(cancel);
      return;
    }
    if (job.state === "done") {
      const list = vigil.el("ul", "", { class: "export-files" });
      for (const file of job.files) {
        const link = vigil.el("a", file.kind === "video" ? file.name :
                              file.kind === "manifest" ? "manifest.json (what is in the export)" :
                              "manifest.sig (its signature)",
                              { href: file.url, download: file.name, class: `export-${file.kind}` });
        const item = vigil.el("li");
        item.append(link, vigil.el("span", file.bytes ? ` ${size(file.bytes)}` : ""));
        list.append(item);
      }
      actions.append(list);
      for (const note of job.notes || []) actions.append(vigil.el("p", note, { class: "export-note" }));
      if (job.fingerprint) {
        actions.append(vigil.el("p", `Signed by this box's device key ${job.fingerprint}. ` +
                                "Check a copy with `nvr verify-export`.", { class: "export-note" }));
      }
    }
    const label = job.state === "done" ? "Delete the files" : "Remove from the list";
    const del = vigil.el("button", label, { type: "button", class: "export-delete" });
    del.addEventListener("click", () => {
      if (job.state === "done" && !confirm("Delete the exported files from the box?")) return;
      remove(job, del);
    });
    actions.append(del);
  }

  function draw() {
    const list = $("export-jobs");
    const ids = new Set(state.jobs.map((j) => j.id));
    for (const [id, parts] of rows) {
      if (!ids.has(id)) { parts.li.remove(); rows.delete(id); }
    }
    state.jobs.forEach((job, i) => {
      const parts = row(job);
      parts.bar.value = job.progress;
      parts.bar.textContent = `${job.progress} %`;
      parts.words.textContent = WORDS[job.state] ? WORDS[job.state](job) : job.state;
      parts.words.classList.toggle("error", job.state === "failed");
      parts.li.dataset.state = job.state;
      if (parts.state !== job.state) {
        drawActions(job, parts);
        parts.state = job.state;
      }
      (state.seen[job.id] ||= []).push(job.progress);
      if (list.children[i] !== parts.li) list.insertBefore(parts.li, list.children[i] || null);
    });
  }

  async function refresh() {
    clearTimeout(timer);
    timer = null;
    try {
      const data = await vigil.getJSON("/api/v1/exports");
      Object.assign(state, { jobs: data.exports, cameras: data.cameras,
                             fingerprint: data.fingerprint, error: null });
      draw();
      drawCameras();
    } catch (err) {
      state.error = vigil.explain(err);
      say(state.error, true);
    }
    if (state.jobs.some((j) => j.state === "running")) timer = setTimeout(refresh, POLL_MS);
  }

  async function remove(job, button) {
    button.disabled = true;
    try {
      const answer = await vigil.send("DELETE", `/api/v1/exports/${encodeURIComponent(job.id)}`, {});
      say(answer.state === "cancelled" ? "Export cancelled; nothing of it was kept." :
          answer.note || (answer.deleted ? "Export deleted." : "Cancelling…"));
    } catch (err) {
      say(vigil.explain(err), true);
      button.disabled = false;
    }
    await refresh();
  }

  $("export-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const cameras = [...$("export-cameras").querySelectorAll("input:checked")].map((i) => i.value);
    if (!cameras.length) return say("Choose at least one camera.", true);
    const start = new Date($("export-start").value);
    const end = new Date($("export-end").value);
    if (isNaN(start) || isNaN(end)) return say("Give the start and the end of the range.", true);
    if (end <= start) return say("The end of the range must be after its start.", true);
    const go = $("export-go");
    go.disabled = true;
    say("Starting the export…");
    try {
      const job = await vigil.send("POST", "/api/v1/exports", {
        cameras, start: start.toISOString(), end: end.toISOString() });
      state.started = job.id;
      say(`Export started (${cameras.join(", ")}).`);
    } catch (err) {
      say(vigil.explain(err), true);
    } finally {
      go.disabled = false;
    }
    await refresh();
  });

  // --- start: only for operators and admins ---------------------------------------------
  (async () => {
    try {
      const me = await vigil.getJSON("/api/v1/me");
      state.role = me.role;
      if (me.role === "viewer") return;
      $("export").hidden = false;
      if (view.loaded) { fillFromView(); }
      drawCameras();
      await refresh();
      if (state.jobs.some((j) => j.state === "running")) $("export").open = true;
      state.ready = true;
    } catch (err) {
      state.error = vigil.explain(err);
    }
  })();
})();
