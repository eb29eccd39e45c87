// The page's behaviour: it calls the service's own HTTP API (POST /matte; /jobs for video),
// like any other client. No framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, photoUrl: null, resultUrl: null, people: [], keep: null,
                busy: false, pending: false, health: {} };

// ---------------------------------------------------------------- API key, kept per tab
function apiKey() { return sessionStorage.getItem("apiKey"); }
function authHeaders() { const key = apiKey(); return key ? { Authorization: "Bearer " + key } : {}; }
function askForKey(message) {
  $("key-form").hidden = false;
  if (message) showError(message);
  $("key").focus();
}
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("apiKey", $("key").value.trim());
  $("key-form").hidden = true;
  hideError();
  if (state.photo) run();
});

// ---------------------------------------------------------------- messages in plain words
function showError(text) { const e = $("error"); e.textContent = text; e.hidden = false; }
function hideError() { $("error").hidden = true; $("error").textContent = ""; }
function say(text) { $("status").textContent = text; }

async function explain(response) {
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  const retry = response.headers.get("Retry-After");
  switch (body.code) {
    case "invalid_image": return "That file is not a photo this service can read (try a JPEG, PNG or WebP).";
    case "no_person": return "Nobody was found in this photo.";
    case "busy": return `The service is busy: try again in ${retry || "a few"} s.`;
    case "too_many_requests": return `Too many requests: try again in ${retry || "a few"} s.`;
    case "request_too_large": return body.error;
    case "unauthorized": sessionStorage.removeItem("apiKey"); askForKey(); return "Please give a valid API key.";
    default:
      if (response.status === 503) return `The service is not available right now: try again in ${retry || "a few"} s.`;
      return body.error ? `Something went wrong: ${body.error}` : `Something went wrong (HTTP ${response.status}).`;
  }
}

// ---------------------------------------------------------------- choosing a photo
function takePhoto(file) {
  if (!file) return;
  state.photo = file;
  state.keep = null;  // a new photo: everyone, until switched off
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  $("before").src = state.photoUrl;
  run();
}
$("photo").addEventListener("change", (e) => takePhoto(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  takePhoto(e.dataTransfer.files[0]);
});
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
  if (item) takePhoto(item.getAsFile());
});

// ---------------------------------------------------------------- settings
function backgroundChoice() { return document.querySelector("input[name=background]:checked").value; }
function transparentOutput() { return $("output").value === "cutout" || backgroundChoice() === "transparent"; }
function syncFormats() {
  const jpeg = $("format").querySelector("option[value=jpeg]");
  jpeg.disabled = transparentOutput();  // JPEG has no transparency
  if (jpeg.disabled && $("format").value === "jpeg") $("format").value = "png";
}
for (const control of document.querySelectorAll("input[name=background], #colour, #background-file, #fit, #output, #format")) {
  control.addEventListener("change", () => {
    if (control.id === "colour") document.querySelector("input[value=colour]").checked = true;
    if (control.id === "background-file") document.querySelector("input[value=image]").checked = true;
    syncFormats();
    if (state.photo) run();
  });
}
$("slider").addEventListener("input", (e) => {
  $("after").style.clipPath = `inset(0 0 0 ${e.target.value}%)`;
});

// ---------------------------------------------------------------- people toggles
function showPeople(people) {
  state.people = people;
  const list = $("people-list");
  list.textContent = "";
  people.forEach((person, index) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = person.selected;
    box.dataset.index = String(index);
    box.addEventListener("change", () => {
      const keep = [...list.querySelectorAll("input:checked")].map((b) => Number(b.dataset.index));
      if (keep.length === 0) { box.checked = true; say("Keep at least one person."); return; }
      state.keep = keep.length === people.length ? null : keep;
      run();
    });
    label.append(box, ` Person ${index + 1}${index === 0 ? " (largest)" : ""}`);
    list.append(label);
  });
  $("people").hidden = people.length < 2 && state.keep === null;
}

// ---------------------------------------------------------------- one request to /matte
function addBackground(form) {
  form.append("fit", $("fit").value);
  const choice = backgroundChoice();
  if (choice === "image" && $("background-file").files[0]) form.append("background", $("background-file").files[0]);
  else if (choice === "colour") form.append("background", $("colour").value);
  else if (choice === "green") form.append("background", "#00ff00");
  else if (choice === "blur") form.append("background", "blur");
  else if (choice === "transparent") form.append("background", "transparent");
}

function formData() {
  const form = new FormData();
  form.append("image", state.photo, state.photo.name || "photo.png");
  form.append("output", $("output").value);
  form.append("format", $("format").value);
  addBackground(form);
  if (state.keep) form.append("people", "index:" + state.keep.join(","));
  return form;
}

async function run() {
  if (state.busy) { state.pending = true; return; }
  if (state.health.api_keys && !apiKey()) { askForKey(); return; }
  state.busy = true;
  hideError();
  say("Working…");
  document.body.dataset.state = "working";
  const started = performance.now();
  try {
    const response = await fetch("matte", { method: "POST", body: formData(), headers: authHeaders() });
    if (!response.ok) { showError(await explain(response)); say(""); document.body.dataset.state = "error"; return; }
    const blob = await response.blob();
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    await new Promise((resolve) => { $("after").onload = resolve; $("after").onerror = resolve; $("after").src = state.resultUrl; });
    $("compare").hidden = false;
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const found = response.headers.get("X-Person-Found") === "true";
    showPeople(JSON.parse(response.headers.get("X-People") || "[]"));
    say(found ? `Done in ${seconds} s.` : `Nobody was found in this photo (${seconds} s): it is shown unchanged.`);
    const link = $("download");
    const stem = (state.photo.name || "photo").replace(/\.[^.]*$/, "");
    link.href = state.resultUrl;
    link.download = `${stem}_${$("output").value}.${$("format").value === "jpeg" ? "jpg" : $("format").value}`;
    link.textContent = `Download (${$("format").value.toUpperCase()})`;
    link.hidden = false;
    document.body.dataset.state = "done";
  } catch (err) {
    showError("The service cannot be reached: is it running?");
    document.body.dataset.state = "error";
  } finally {
    state.busy = false;
    if (state.pending) { state.pending = false; run(); }
  }
}

// ---------------------------------------------------------------- video through /jobs
async function runVideo(file) {
  if (state.health.api_keys && !apiKey()) { askForKey(); return; }
  const form = new FormData();
  form.append("video", file, file.name);
  addBackground(form);
  if (backgroundChoice() === "transparent") { form.set("output", "transparent"); form.delete("background"); }
  $("video-status").textContent = "Uploading…";
  $("video-progress").value = 0;
  $("video-preview").hidden = true;
  $("video-download").hidden = true;
  const response = await fetch("jobs", { method: "POST", body: form, headers: authHeaders() });
  if (response.status !== 202) { $("video-status").textContent = await explain(response); return; }
  const job = await response.json();
  const url = response.headers.get("Location") || `jobs/${job.id}`;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const poll = await fetch(url, { headers: authHeaders() });
    if (!poll.ok) { $("video-status").textContent = await explain(poll); return; }
    const info = await poll.json();
    const total = info.frames_total || 0;
    $("video-progress").value = total ? Math.round(100 * (info.frames_done || 0) / total) : 0;
    const left = info.seconds_left != null ? `, about ${Math.ceil(info.seconds_left)} s left` : "";
    $("video-status").textContent = `${info.state}: ${info.frames_done || 0} of ${total || "?"} frames${left}`;
    if (info.state === "failed" || info.state === "cancelled") {
      $("video-status").textContent = `The video could not be made: ${info.error || info.state}`; return;
    }
    if (info.state === "done") break;
  }
  const result = await fetch(`${url}/result`, { headers: authHeaders() });
  const blob = await result.blob();
  const href = URL.createObjectURL(blob);
  $("video-preview").src = href;
  $("video-preview").hidden = false;
  $("video-download").href = href;
  const extension = (result.headers.get("Content-Type") || "").includes("webm") ? "webm" : "mp4";
  $("video-download").download = file.name.replace(/\.[^.]*$/, "") + "_people." + extension;
  $("video-download").hidden = false;
  $("video-progress").value = 100;
  $("video-status").textContent = "Done.";
}
$("video").addEventListener("change", (e) => {
  if (!e.target.files[0]) return;
  runVideo(e.target.files[0]).catch(() => {
    $("video-status").textContent = "The service cannot be reached: is it running?";
  });
});

// ---------------------------------------------------------------- start
fetch("health").then((r) => r.json()).then((health) => {
  state.health = health;
  if (health.api_keys && !apiKey()) askForKey();
  const jobs = health.jobs && health.jobs.queue === "reachable" && (health.jobs.workers || []).length > 0;
  $("video-on").hidden = !jobs;
  $("video-off").hidden = !!jobs;
}).catch(() => showError("The service cannot be reached: is it running?"));
syncFormats();
