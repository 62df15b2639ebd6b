// The console's device login page: the person, logged into the console, approves the code `ember login` printed.
"use strict";
const $ = (id) => document.getElementById(id);
const code = new URLSearchParams(location.search).get("code");
if (code && /^[A-Za-z-]{8,9}$/.test(code)) $("code").value = code;

fetch("/ui/api/session", { credentials: "same-origin" }).then((r) => r.json()).then((s) => {
  $("who").textContent = s.user ? `You are logged into the console as ${s.user}.` : "Not logged in.";
}).catch(() => { $("who").textContent = "Could not ask the server."; });

$("approve").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("error").hidden = true;
  const r = await fetch("/ui/api/device", {
    method: "POST", credentials: "same-origin", headers: { "content-type": "application/json", "x-ember-console": "1" },
    body: JSON.stringify({ code: $("code").value }),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) { $("error").hidden = false; $("error").textContent = j.detail || j.error || `HTTP ${r.status}`; return; }
  $("done").hidden = false;
  $("done").textContent = `Device ${j.device} is logged in as ${j.user}. You can close this page.`;
});
