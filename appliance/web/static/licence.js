// Licence page: what is in force (channels, edition, expiry, this box's serial) and
// installing a new licence file (sent as base64 JSON; the box checks it and keeps the
// old one when the new one is refused).
"use strict";

(() => {
  const { $ } = vigil;

  function row(term, value) {
    return [vigil.el("dt", term), vigil.el("dd", value === null || value === undefined ? "-" : String(value))];
  }

  async function load() {
    const [status, cams] = await Promise.all([
      vigil.getJSON("/api/v1/licence"),
      vigil.getJSON("/api/v1/cameras").catch(() => ({})),
    ]);
    const lic = status.licence || {};
    const used = cams.licence ? cams.licence.used : null;
    $("licence").replaceChildren(
      ...row("Box serial number", status.serial),
      ...row("Channels", used === null ? status.channels : `${used} of ${status.channels} in use`),
      ...row("Source", status.source === "licence" ? `licence ${lic.licence_id || ""}` : "board default (no licence installed)"),
      ...row("Edition", lic.edition),
      ...row("Issued", lic.issued),
      ...row("Expires", lic.expires || (status.source === "licence" ? "never" : null)),
    );
    if (status.problem) vigil.status(status.problem, true);
  }

  function base64Of(buffer) {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text);
  }

  $("install").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("file").files[0];
    if (!file) return;
    $("install-button").disabled = true;
    try {
      if (file.size > 64 * 1024) throw new Error("This is not a licence file (too large).");
      const answer = await vigil.send("POST", "/api/v1/licence",
                                      { licence_base64: base64Of(await file.arrayBuffer()) });
      vigil.status(`Licence ${answer.licence_id} installed: ${answer.channels} channels.`);
      $("install").reset();
      await load();
    } catch (err) {
      vigil.status(`Not installed: ${vigil.explain(err)} The licence in force stays.`, true);
    } finally {
      $("install-button").disabled = false;
    }
  });

  load().catch((err) => vigil.status(vigil.explain(err), true));
})();
