// Cameras page, "Recording modes": each camera's mode and pre/post-event seconds
// (GET/PUT /api/v1/recording; admins only: for others the section stays hidden).
"use strict";

(() => {
  const { $ } = vigil;
  const LABELS = { continuous: "Continuous", events: "Events only",
                   continuous_events: "Continuous, events marked", off: "Off" };

  function row(name, label, cam, modes) {
    const tr = vigil.el("li", "", { "data-mode-camera": name });
    const select = vigil.el("select", "", { "aria-label": `Recording mode of ${label}` });
    for (const mode of modes) select.append(vigil.el("option", LABELS[mode] || mode, { value: mode }));
    if (cam.schedule) select.append(vigil.el("option", "Weekly schedule", { value: "schedule" }));
    select.value = cam.schedule ? "schedule" : (cam.mode || "continuous");
    const pre = vigil.el("input", "", { type: "number", min: "0", max: "300", step: "1" });
    const post = vigil.el("input", "", { type: "number", min: "0", max: "3600", step: "1" });
    pre.value = cam.pre_event_s;
    post.value = cam.post_event_s;
    const save = vigil.el("button", "Save", { type: "button" });
    save.addEventListener("click", async () => {
      save.disabled = true;
      const change = { pre_event_s: Number(pre.value), post_event_s: Number(post.value) };
      if (select.value !== "schedule") change.mode = select.value;
      try {
        await vigil.send("PUT", "/api/v1/recording", { cameras: { [name]: change } });
        vigil.status(`${label}: ${LABELS[select.value] || "schedule"} saved; the recorder applies it within a second.`);
      } catch (err) {
        vigil.status(`${label}: not saved: ${vigil.explain(err)}`, true);
      } finally {
        save.disabled = false;
      }
    });
    const labelled = (text, input) => { const l = vigil.el("label", text); l.append(input); return l; };
    tr.append(vigil.el("strong", label), labelled("Mode ", select),
              labelled("Before event (s) ", pre), labelled("After event (s) ", post), save);
    return tr;
  }

  async function load() {
    let settings;
    try {
      settings = await vigil.getJSON("/api/v1/recording");
    } catch (err) {
      return;  // not an admin (403), or no settings file on this server: no section
    }
    const cams = (await vigil.getJSON("/api/v1/cameras")).cameras;
    const defaults = settings.defaults;
    $("modes").replaceChildren(...cams.map((c) => row(
      c.id, c.label || c.id, settings.cameras[c.id] || defaults, settings.modes)));
  }

  load().catch((err) => vigil.status(vigil.explain(err), true));
})();
