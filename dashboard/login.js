// The console's login page: certificate login (the browser presents an admin certificate) or password.
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const next = /^\/ui(\/[a-z0-9/-]*)?$/.test(params.get("next") || "") ? params.get("next") : "/ui/";
const REASONS = {
  no_session: "Please log in.", expired: "Your session expired: log in again.", bad_signature: "Your session cookie was not issued by this server (forged or tampered): log in again.",
  malformed: "Your session cookie is unreadable: log in again.", logged_out: "You logged out.", unbound: "Your session belongs to a certificate this browser no longer presents.",
  unknown_key: "Your session cookie was signed by another key (forged, or from before the server's key changed): log in again.",
  wrong_type: "That cookie is not a console session: log in again.", wrong_audience: "That cookie is not a console session: log in again.",
};
const reason = params.get("reason");
if (reason) { $("reason").hidden = false; $("reason").textContent = REASONS[reason] || `Session refused (${reason}): log in again.`; }

function fail(text) { $("error").hidden = false; $("error").textContent = text; }

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json", "x-ember-console": "1" }, body: JSON.stringify(body || {}), credentials: "same-origin" });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || j.error || `HTTP ${r.status}`);
  return j;
}

fetch("/ui/api/login-options", { credentials: "same-origin" }).then((r) => r.json()).then((o) => {
  if (o.certificate && o.certificate.admin) {
    $("cert-state").textContent = `This browser presents the admin certificate of ${o.certificate.name}.`;
    $("cert-login").disabled = false;
  } else {
    $("cert-state").textContent = o.certificate && o.certificate.reason === "malformed" ? "This browser presents no client certificate." : `Certificate not usable: ${o.certificate ? o.certificate.detail : "unknown"}`;
  }
}).catch(() => { $("cert-state").textContent = "Could not ask the server."; });

$("cert-login").addEventListener("click", async () => {
  try { await post("/ui/api/login/cert"); location.assign(next); } catch (e) { fail(e.message); }
});

$("password-login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { await post("/ui/api/login", { username: $("username").value, password: $("password").value }); location.assign(next); } catch (e) { fail(e.message); }
});
