// facespace web page: plain DOM, no framework, nothing fetched but this server's /api.
"use strict";

const $ = (id) => document.getElementById(id);
let INFO = null;
let browseOffset = 0;
const PAGE = 40;

// ---- small DOM helpers (text always through textContent: nothing from the server is parsed as HTML)
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function face(src, caption, cls = "") {
  return el("figure", { class: cls }, el("img", { class: "px", src, alt: caption || "face" }),
    caption != null ? el("figcaption", { text: caption }) : null);
}

function fmt(x, digits = 3) {
  if (x == null) return "–";
  const text = Number(x).toFixed(digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text;  // no "-0.000"
}

// ---- requests: a spinner while working, a readable message when it fails
function setStatus(id, text, kind = "") {
  const s = $(id);
  s.className = "status " + kind;
  s.textContent = text || "";
}

function errorText(body, status) {
  if (!body) return `the server answered ${status}`;
  const d = body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`).join("; ");
  return `the server answered ${status}`;
}

async function call(statusId, url, options = {}, buttons = []) {
  setStatus(statusId, "working…", "busy");
  buttons.forEach((b) => (b.disabled = true));
  try {
    const response = await fetch(url, options);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) throw new Error(errorText(body, response.status));
    if (body && body.status === "no_face") setStatus(statusId, body.message, "note");
    else setStatus(statusId, body && body.message ? body.message : "", body && body.message ? "note" : "");
    return body;
  } catch (e) {
    const text = e instanceof TypeError ? "cannot reach the server; is `facespace serve` still running?" : e.message;
    setStatus(statusId, text, "error");
    return null;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function detectOn() { return $("detect").checked; }

function addFace(form, fileInput, idInput, fileField, idField) {
  const file = fileInput.files[0];
  if (file) form.append(fileField, file);
  else if (idInput.value !== "") form.append(idField, idInput.value);
}

// whole photos: the boxed photo, and buttons to choose a face when there are several
function showDetection(target, detection, rerun) {
  target.replaceChildren();
  if (!detection) return;
  const photo = el("img", { class: "photo", src: detection.photo, alt: "photo with face boxes" });
  const box = el("div", { class: "row" }, photo);
  if (detection.faces.length > 1 && rerun) {
    const chooser = el("div", { class: "chooser" }, el("div", { text: `${detection.faces.length} faces found; using face ${detection.chosen}:` }));
    detection.faces.forEach((f) => chooser.append(el("button", {
      type: "button", text: `face ${f.face}`, onclick: () => rerun(f.face) })));
    box.append(chooser);
  }
  target.append(box);
}

// ---- info and the index browser
async function loadInfo() {
  const info = await call("browse-status", "/api/info");
  if (!info) { $("info").textContent = "the server did not answer /api/info"; return; }
  INFO = info;
  const shape = info.image_shape.join("×");
  $("info").textContent = `${info.model_kind} model, ${shape} → ${info.code_size} numbers · index of ${info.index_size} faces (${info.metric})` +
    (info.verify_threshold != null ? ` · threshold ${fmt(info.verify_threshold)}` : "");
  if (!info.features.decode) ["morph-go", "decode-go"].forEach((id) => ($(id).disabled = true));
  if (!info.features.explain) { $("explain-go").disabled = true; $("explain-go").title = "needs facespace.explain"; }
  if (!info.features.gallery) {
    ["identify-go", "enroll-go"].forEach((id) => ($(id).disabled = true));
    setStatus("people-status", "started without --gallery: identify and enrol are off", "note");
  } else loadPeople();
  browse(0);
}

function indexTile(item, caption) {
  const fig = face(item.image_url, caption != null ? caption : (item.name || item.label));
  fig.title = `id ${item.id}${item.name ? " · " + item.name : ""} · ${item.label}`;
  fig.dataset.id = item.id;
  fig.addEventListener("click", () => { $("search-file").value = ""; $("search-id").value = item.id; search(); });
  for (const slot of ["a", "b"]) {
    fig.append(el("span", { class: `slot ${slot}`, text: slot.toUpperCase(), onclick: (ev) => {
      ev.stopPropagation(); $(`${slot}-file`).value = ""; $(`${slot}-id`).value = item.id; } }));
  }
  return fig;
}

async function browse(offset) {
  const page = await call("browse-status", `/api/index?offset=${offset}&limit=${PAGE}`);
  if (!page) return;
  browseOffset = offset;
  $("browse-page").textContent = `${offset + 1}–${offset + page.items.length} of ${page.total}`;
  $("browse-prev").disabled = offset === 0;
  $("browse-next").disabled = offset + PAGE >= page.total;
  $("browse-tiles").replaceChildren(...page.items.map((it) => indexTile(it)));
}

// ---- search
async function search(faceNumber = 0) {
  const form = new FormData();
  addFace(form, $("search-file"), $("search-id"), "file", "id");
  form.append("k", $("search-k").value || "8");
  form.append("detect", detectOn());
  form.append("face", faceNumber);
  const body = await call("search-status", "/api/search", { method: "POST", body: form }, [$("search-go")]);
  showDetection($("search-detection"), body && body.detection, search);
  const out = $("search-result");
  out.replaceChildren();
  if (!body || body.status !== "ok") return;
  const row = el("div", { class: "hits" }, face(body.query, "query", "query"));
  if (body.reconstruction) row.append(face(body.reconstruction, "reconstruction", "query"));
  const hits = el("div", { class: "tiles", id: "neighbours" });
  body.neighbours.forEach((h) => hits.append(indexTile(h, `${h.rank}. ${fmt(h.distance)}` + (h.name ? `\n${h.name.replace(/_/g, " ")}` : ""))));
  row.append(el("div", { class: "sep" }), hits);
  out.append(row);
}

// ---- two faces
function pairForm(extra = {}) {
  const form = new FormData();
  addFace(form, $("a-file"), $("a-id"), "a", "id_a");
  addFace(form, $("b-file"), $("b-id"), "b", "id_b");
  form.append("detect", detectOn());
  for (const [k, v] of Object.entries(extra)) if (v !== "" && v != null) form.append(k, v);
  return form;
}

const pairButtons = () => [$("verify-go"), $("explain-go"), $("morph-go")];

async function verify() {
  const body = await call("pair-status", "/api/verify", { method: "POST", body: pairForm({ threshold: $("threshold").value }) }, pairButtons());
  const out = $("verify-result");
  out.replaceChildren();
  if (!body || body.status !== "ok") return;
  const verdict = body.same == null ? "no verdict" : body.same ? "same person" : "different people";
  out.append(face(body.faces[0], "A"), face(body.faces[1], "B"),
    el("div", {}, el("div", { class: "verdict " + (body.same == null ? "" : body.same ? "same" : "different"), text: verdict }),
      el("div", { class: "muted", text: `${body.metric} distance ${fmt(body.distance)} · threshold ${fmt(body.threshold)}` })));
}

async function explain() {
  const body = await call("pair-status", "/api/explain", { method: "POST", body: pairForm() }, pairButtons());
  const out = $("explain-result");
  out.replaceChildren();
  if (!body || body.status !== "ok") return;
  const verdict = body.same == null ? "" : body.same ? " · same person" : " · different people";
  out.append(el("img", { class: "picture", src: body.picture, alt: "faces, reconstructions and difference heatmap" }),
    el("div", { class: "muted", text: `distance ${fmt(body.distance)} · threshold ${fmt(body.threshold)}${verdict}` }));
}

let morphFrames = [];
function showFrame(i) {
  $("morph-frame").src = morphFrames[i];
  $("morph-label").textContent = `frame ${i + 1} of ${morphFrames.length}`;
  [...$("morph-strip").children].forEach((img, j) => img.classList.toggle("current", j === i));
}

async function morph() {
  const body = await call("pair-status", "/api/morph", { method: "POST", body: pairForm({ steps: $("morph-steps").value }) }, pairButtons());
  if (!body || body.status !== "ok") return;
  morphFrames = body.frames;
  const slider = $("morph-slider");
  slider.max = morphFrames.length - 1;
  slider.value = 0;
  $("morph-strip").replaceChildren(...morphFrames.map((src, i) => el("img", { class: "px", src, alt: `frame ${i + 1}`,
    onclick: () => { slider.value = i; showFrame(i); } })));
  $("morph-result").hidden = false;
  showFrame(0);
}

// ---- people
async function identify() {
  const form = new FormData();
  addFace(form, $("identify-file"), $("identify-id"), "file", "id");
  form.append("detect", detectOn());
  const body = await call("people-status", "/api/identify", { method: "POST", body: form }, [$("identify-go")]);
  const out = $("identify-result");
  out.replaceChildren();
  if (!body) return;
  if (body.detection) out.append(el("img", { class: "photo", src: body.detection.photo, alt: "photo with face boxes" }));
  if (body.status !== "ok") return;
  const rows = body.results.map((r) => el("tr", {},
    el("td", {}, el("img", { class: "px", src: r.crop, alt: `face ${r.face}` })),
    el("td", {}, el("span", { class: r.name ? "known" : "unknown", text: r.name || "unknown" })),
    el("td", { text: fmt(r.distance) }),
    el("td", { text: r.quality ? `${fmt(r.quality.score, 2)}${r.quality.ok ? "" : " (" + r.quality.reasons.join(", ") + ")"}` : "–" }),
    el("td", { class: "muted", text: r.candidates.map((c) => `${c.name} ${fmt(c.distance)}`).join(", ") })));
  out.append(el("table", {}, el("tr", {}, ...["face", "who", "distance", "quality", "candidates"].map((h) => el("th", { text: h }))), ...rows),
    el("div", { class: "muted", text: `threshold ${fmt(body.threshold)}` }));
}

async function enroll() {
  const files = $("enroll-files").files;
  if (!$("enroll-name").value.trim() || !files.length) { setStatus("people-status", "give a name and choose one or more images", "error"); return; }
  const form = new FormData();
  form.append("name", $("enroll-name").value.trim());
  for (const f of files) form.append("files", f);
  form.append("detect", detectOn());
  form.append("force", $("enroll-force").checked);
  const body = await call("people-status", "/api/enroll", { method: "POST", body: form }, [$("enroll-go")]);
  if (!body) return;
  $("enroll-files").value = "";  // the next person starts from an empty choice
  setStatus("people-status", `enrolled ${body.added} image(s) of ${body.name} (${body.images} in all)` +
    (body.no_face.length ? `; no face found in ${body.no_face.join(", ")}` : ""), "");
  loadPeople();
}

async function loadPeople() {
  const response = await fetch("/api/people");
  if (!response.ok) return;
  const body = await response.json();
  const list = $("people-list");
  list.replaceChildren(el("div", { class: "muted", text: body.people.length
    ? `enrolled: ${body.people.map((p) => `${p.name} (${p.images})`).join(", ")} · stranger threshold ${fmt(body.threshold)}`
    : "nobody enrolled yet" }));
}

// ---- decode
async function decode() {
  const id = $("decode-id").value || "0";
  const body = await call("decode-status", `/api/codes/${encodeURIComponent(id)}`, {}, [$("decode-go")]);
  const out = $("decode-result");
  out.replaceChildren();
  if (!body) return;
  out.append(face(`/api/images/${body.id}`, `face ${body.id}`));
  if (body.decoded_url) out.append(face(body.decoded_url, "decoded code"));
  out.append(el("div", { class: "muted", text: `code: [${body.code.slice(0, 8).map((v) => fmt(v, 2)).join(", ")}${body.code.length > 8 ? ", …" : ""}] (${body.code.length} numbers)` }));
}

// ---- clusters
async function clusters() {
  const q = new URLSearchParams({ method: $("clusters-method").value, min_cluster_size: $("clusters-min").value || "3", members: "40" });
  const body = await call("clusters-status", `/api/clusters?${q}`, {}, [$("clusters-go")]);
  const out = $("clusters-result");
  out.replaceChildren();
  if (!body) return;
  out.append(el("div", { class: "muted", text: `${body.n_clusters} groups · ${body.noise} faces in none` }));
  body.clusters.forEach((c) => {
    const tiles = el("div", { class: "tiles" }, ...c.members.map((m) => indexTile(m, "")));
    out.append(el("div", { class: "cluster" }, el("h3", { text: `group ${c.cluster} · ${c.size} faces` + (c.size > c.members.length ? ` (first ${c.members.length})` : "") }), tiles));
  });
}

// ---- duplicates: the threshold is learned from the index itself (the first call takes seconds)
async function duplicates() {
  const q = new URLSearchParams({ level: $("duplicates-level").value });
  const body = await call("duplicates-status", `/api/duplicates?${q}`, {}, [$("duplicates-go")]);
  const out = $("duplicates-result");
  out.replaceChildren();
  if (!body) return;
  const fmt = (v) => Number(v).toPrecision(2);
  out.append(el("div", { class: "muted", text: `${body.groups.length} groups within ${fmt(body.max_distance)} (${body.how}; ` +
    `planted copies reach ${fmt(body.copy_quantiles[3] ?? 0)} at 95 %, distinct faces start at ${fmt(body.distinct_quantiles[0] ?? 0)})` }));
  if (body.confirm_note) out.append(el("div", { class: "muted", text: body.confirmed
    ? `${body.confirm_note}; kept within ${fmt(body.pixel_max_distance)} in 32x32 pixels` : body.confirm_note }));
  body.notes.forEach((n) => out.append(el("div", { class: "muted", text: n })));
  body.groups.forEach((g, k) => {
    const tiles = el("div", { class: "tiles" }, ...g.items.map((m) => indexTile(m, "")));
    out.append(el("div", { class: "cluster" }, el("h3", { text: `group ${k} · ${g.items.length} faces` }), tiles));
  });
}

// ---- wiring
function onSubmit(id, fn) { $(id).addEventListener("submit", (ev) => { ev.preventDefault(); fn(); }); }
onSubmit("search-form", () => search(0));
onSubmit("identify-form", identify);
onSubmit("enroll-form", enroll);
onSubmit("decode-form", decode);
onSubmit("clusters-form", clusters);
onSubmit("duplicates-form", duplicates);
$("verify-go").addEventListener("click", verify);
$("explain-go").addEventListener("click", explain);
$("morph-go").addEventListener("click", morph);
$("morph-slider").addEventListener("input", (ev) => showFrame(Number(ev.target.value)));
$("browse-prev").addEventListener("click", () => browse(Math.max(0, browseOffset - PAGE)));
$("browse-next").addEventListener("click", () => browse(browseOffset + PAGE));
$("search-file").addEventListener("change", () => { if ($("search-file").files.length) $("search-id").value = ""; });
loadInfo();
