// Update page: the running release, both system slots, an update on trial and the last
// result (a rolled-back update in plain words); installing an update file. The file is
// sent as the raw request body with XMLHttpRequest (fetch reports no upload progress),
// then vigil-hwd's install job is polled until it ends in "Rebooting into …" or its error.
"use strict";

(() => {
  const { $ } = vigil;
  const JOB_POLL_MS = 1000;
  const RETURN_POLL_MS = 5000;
  const MAX_BUNDLE_BYTES = 1536 * 1024 * 1024;    // BINARY_UPLOADS in web/security.py
  const SLOT_STATES = { booted: "running now", active: "starts at the next boot",
                        inactive: "standby" };
  const BOOT_STATUS = { good: "good", bad: "bad (not started)" };
  const TOO_LARGE = "This file is larger than an update can be.";

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** vigil-hwd's messages start in lower case ("update to 0.2.0 failed …"). */
  function sentence(text) {
    return text ? text[0].toUpperCase() + text.slice(1) : "";
  }

  function withStop(text) {
    return /[.!?…]$/.test(text) ? text : `${text}.`;
  }

  /** A build is the commit's Unix time (SOURCE_DATE_EPOCH): a date, the same everywhere. */
  function buildDate(build) {
    const seconds = Number(build);
    if (!seconds) return "unknown";
    return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" })
      .format(new Date(seconds * 1000));
  }

  function localTime(value) {
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(date.getTime()) ? String(value || "-") : date.toLocaleString();
  }

  function showRunning(running, pending) {
    const onTrial = pending && running.slot && running.slot === pending.to_slot;
    $("running-version").textContent = running.version + (onTrial ? " (on trial)" : "");
    $("running-build").textContent = buildDate(running.build);
    $("running-slot").textContent = running.slot || "unknown";
  }

  /** An installed update waits for its restart, then has to show on its trial boot that
   *  the box records as before (update/gate.py); otherwise the box goes back. */
  function showTrial(pending, running) {
    const box = $("trial");
    box.hidden = !pending;
    if (!pending) return;
    if (running.slot !== pending.to_slot) {
      box.textContent = `Update to ${pending.to_version} is installed and starts at the next ` +
        "restart.";
    } else if (pending.failure) {
      box.textContent = `Update to ${pending.to_version} failed its trial (${pending.failure}): ` +
        `the box is going back to ${pending.from_version}.`;
    } else {
      box.textContent = `Update to ${pending.to_version} is on trial: the box keeps it once it ` +
        `records as before, and otherwise goes back to ${pending.from_version} by itself.`;
    }
  }

  /** The last result in vigil-hwd's words; a rollback or a failed install stands out. */
  function showLastResult(result) {
    const box = $("last-result");
    box.hidden = !result;
    if (!result) return;
    box.className = result.outcome === "committed" ? "banner" : "banner bad";
    box.replaceChildren(vigil.el("span", withStop(sentence(result.message))),
                        vigil.el("span", ` (${localTime(result.time)})`, { class: "muted" }));
  }

  function showSlots(slots) {
    $("slots").tBodies[0].replaceChildren(...slots.map((slot) => {
      const row = vigil.el("tr");
      row.append(vigil.el("td", slot.bootname || slot.name),
                 vigil.el("td", SLOT_STATES[slot.state] || slot.state || "-"),
                 vigil.el("td", BOOT_STATUS[slot.boot_status] || slot.boot_status || "-"),
                 vigil.el("td", slot.version ? `${slot.version} (built ${buildDate(slot.build)})`
                                             : "-"),
                 vigil.el("td", slot.installed ? localTime(slot.installed) : "-"));
      return row;
    }));
  }

  async function load() {
    try {
      const status = await vigil.getJSON("/api/v1/update");
      showRunning(status.running, status.pending);
      showTrial(status.pending, status.running);
      showLastResult(status.last_result);
      showSlots(status.slots);
      const engine = status.engine_error;
      vigil.status(engine ? `The update engine (RAUC) did not answer: ${engine}` : "",
                   Boolean(engine));
      return status;
    } catch (err) {
      vigil.status(vigil.explain(err), true);
      return null;
    }
  }

  // --- installing ---------------------------------------------------------------------------
  function lock(busy) {
    $("bundle").disabled = busy;
    $("install-button").disabled = busy;
  }

  function showOutcome(text, isError = false) {
    const box = $("outcome");
    box.hidden = !text;
    box.textContent = text;
    box.className = isError ? "banner bad" : "banner";
  }

  /** A refusal (the web API's or the install job's): nothing was written to the running
   *  system, which the owner wants to hear as much as the reason. */
  function notInstalled(reason) {
    return `Not installed: ${withStop(reason)} The running system is unchanged.`;
  }

  function showUpload(percent) {
    $("upload").hidden = false;
    $("upload-progress").value = percent;
    $("upload-percent").textContent = `${Math.floor(percent)} %`;
  }

  function showJob(job) {
    $("install").hidden = false;
    $("install-progress").value = job.percent;
    $("install-percent").textContent = `${job.percent} %`;
    $("install-phase").textContent = job.error ? `Stopped while ${job.phase}` : sentence(job.phase);
    $("install-phase").className = "";
  }

  /** Why a file cannot be an update, before sending hundreds of megabytes for nothing. */
  function problemWith(file) {
    if (!file) return "Choose the update file first.";
    if (!/\.raucb$/i.test(file.name)) {
      return "This is not an update file: an update's name ends in .raucb.";
    }
    if (file.size === 0) return "This file is empty.";
    if (file.size > MAX_BUNDLE_BYTES) return TOO_LARGE;
    return "";
  }

  /** POST the file as the body; resolves with vigil-hwd's job (202), rejects like vigil.send. */
  function sendBundle(file, csrf) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/update/bundle");
      xhr.responseType = "json";
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) showUpload(100 * event.loaded / event.total);
      });
      xhr.upload.addEventListener("load", () => {
        showUpload(100);
        $("upload-phase").textContent = "Sent: the box is storing the file";
      });
      xhr.addEventListener("load", () => {
        const answer = xhr.response || {};
        if (xhr.status === 202) {
          resolve(answer.job);
          return;
        }
        vigil.leaveIfLoggedOut(xhr.status, answer.error);
        const why = xhr.status === 413 ? TOO_LARGE : answer.error;
        const err = new Error(why || `${xhr.status} ${xhr.statusText}`);
        err.status = xhr.status;
        reject(err);
      });
      xhr.addEventListener("error", () => {
        reject(new Error("The connection to the box broke off during the upload."));
      });
      xhr.send(file);
    });
  }

  /** Poll the install until it ends; a failed poll is shown and retried (vigil-hwd may be
   *  busy), a lost job (vigil-hwd restarted) ends the wait. */
  async function followJob(job) {
    lock(true);
    let current = job;
    showJob(current);
    while (current && !current.done) {
      await pause(JOB_POLL_MS);
      try {
        current = (await vigil.getJSON("/api/v1/update/job")).job;
        if (current) showJob(current);
      } catch (err) {
        $("install-phase").textContent = `No progress from the box: ${vigil.explain(err)}`;
        $("install-phase").className = "error";
      }
    }
    if (current && !current.error) {
      showOutcome(`Rebooting into ${current.result.version}… This page reloads when the box ` +
                  "answers again, in a minute or two.");
      reloadWhenBack();
      return;
    }
    showOutcome(current ? notInstalled(current.error)
                        : "The box lost track of the install (its hardware service restarted): " +
                          "see the last result, and install again if it is not there.", true);
    lock(false);
    await load();
  }

  /** The box restarts a few seconds after the install: once it went away and answers
   *  again, reload to show the new release on its trial. */
  async function reloadWhenBack() {
    let away = false;
    for (;;) {
      await pause(RETURN_POLL_MS);
      try {
        await fetch("/api/v1/update", { credentials: "same-origin", cache: "no-store" });
        if (away) {
          location.reload();
          return;
        }
      } catch (err) {
        away = true;
      }
    }
  }

  $("install-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("bundle").files[0];
    const problem = problemWith(file);
    showOutcome(problem, true);          // or, with no problem, clears an earlier outcome
    if (problem) return;
    lock(true);
    $("install").hidden = true;
    $("upload-phase").textContent = "Sending the file to the box";
    showUpload(0);
    try {
      if (!vigil._csrf) vigil._csrf = (await vigil.getJSON("/api/v1/me")).csrf;
      await followJob(await sendBundle(file, vigil._csrf));
    } catch (err) {
      showOutcome(notInstalled(vigil.explain(err)), true);
      lock(false);
    }
  });

  load().then((status) => {
    if (status && status.job && !status.job.done) followJob(status.job);   // after a reload
  });
})();
