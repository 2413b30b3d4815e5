// System page, HTTPS certificate card: what the box serves (with the SHA-256 fingerprint
// the owner compares with the browser's), installing the owner's certificate and key
// (PEM files), and going back to the box's own. API: /api/v1/system/certificate (admin).
"use strict";

(() => {
  const { $ } = vigil;
  const PEM_LIMIT = 64 * 1024;   // a chain of a few certificates; anything larger is a wrong file
  const SOURCES = { generated: "The box's own (self-signed)", owner: "Yours (installed)" };
  // What the card knows, for the browser tests.
  const state = window.vigilCertificate = { loaded: false, certificate: null, error: null };

  function formStatus(form, text, isError = false) {
    const el = form.querySelector(".form-status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  function show(cert) {
    state.certificate = cert;
    $("cert-source").textContent = SOURCES[cert.source] || cert.source;
    $("cert-subject").textContent = cert.self_signed ? cert.subject
      : `${cert.subject}, issued by ${cert.issuer}`;
    $("cert-names").textContent = [...cert.dns_names, ...cert.ip_addresses].join(", ") || "none";
    $("cert-fingerprint").textContent = cert.fingerprint_sha256;
    $("cert-until").textContent =
      `${cert.not_after.slice(0, 10)} (${cert.days_left} days left)`;
    const warnings = [];
    if (cert.days_left < 30) warnings.push(`It expires in ${cert.days_left} days.`);
    if (cert.missing_names.length) {
      warnings.push(`It does not cover ${cert.missing_names.join(", ")}: a browser that ` +
                    "opens the box by that name warns.");
    }
    $("cert-warning").textContent = warnings.join(" ");
    $("cert-warning").hidden = warnings.length === 0;
    $("cert-revert-form").hidden = cert.source !== "owner";
  }

  async function load() {
    try {
      show(await vigil.getJSON("/api/v1/system/certificate"));
      state.loaded = true;
    } catch (err) {
      state.error = vigil.explain(err);
      $("cert-source").textContent = state.error;
      $("cert-form").hidden = true;
    }
  }

  async function pemText(input, what) {
    const file = input.files[0];
    if (!file) throw new Error(`Choose the ${what} file first.`);
    if (file.size > PEM_LIMIT) throw new Error(`This is too large for a ${what} (PEM text).`);
    return file.text();
  }

  $("cert-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const body = { certificate: await pemText($("cert-file"), "certificate chain"),
                     key: await pemText($("cert-key-file"), "private key") };
      if ($("cert-passphrase").value) body.passphrase = $("cert-passphrase").value;
      formStatus(form, "Checking and installing…");
      show(await vigil.send("POST", "/api/v1/system/certificate", body));
      form.reset();
      formStatus(form, "Installed: new connections use it now. Reload the page to see it " +
                       "in the browser.");
    } catch (err) {
      formStatus(form, vigil.explain(err), true);
    }
  });

  $("cert-revert-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    formStatus(form, "Going back…");
    try {
      show(await vigil.send("DELETE", "/api/v1/system/certificate", {}));
      formStatus($("cert-form"), "The box's own certificate is served again (the same " +
                                 "fingerprint as before yours).");
      formStatus(form, "");
    } catch (err) {
      formStatus(form, vigil.explain(err), true);
    }
  });

  load();
})();
