// The page: every chosen or dropped file goes to POST /predict, then POST /explain for Grad-CAM.
// Plain JavaScript, served by the app itself. Text from files and answers goes in with
// textContent, never as HTML.
"use strict";

const state = { meta: null };

function headers() {
  const key = document.getElementById("api-key").value;
  return key ? { "X-API-Key": key } : {};
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body.results && body.results.length && body.results[0].error) return body.results[0].error;
    if (typeof body.detail === "string") return body.detail;
    return JSON.stringify(body.detail);
  } catch (e) {
    return `HTTP ${response.status}`;
  }
}

async function loadMetadata() {
  const line = document.getElementById("model");
  const response = await fetch("/metadata", { headers: headers() });
  if (response.status === 401) {
    document.getElementById("key-row").hidden = false;
    line.textContent = "this service needs an API key";
    return;
  }
  if (!response.ok) {
    line.textContent = `model not ready: ${await errorText(response)}`;
    setTimeout(loadMetadata, 1000);
    return;
  }
  const m = await response.json();
  state.meta = m;
  line.textContent = `${m.model} · ${m.classes.join(" / ")} · ${m.image_size}px` +
    ` · decision: ${m.rule.text} · ${m.backend} · realfake ${m.version}`;
}

// Where the rule puts each class's bar over the line: P(positive) >= t for the positive class,
// P(other) > 1 - t for the other one (binary); none for the arg-max.
function decisionMarks(rule, classes) {
  if (rule.rule !== "threshold") return {};
  const marks = {};
  for (const name of classes) {
    marks[name] = name === rule.positive_class ? rule.threshold : 1 - rule.threshold;
  }
  return marks;
}

function showProbabilities(card, result, rule) {
  const bars = el("div", "bars");
  const marks = decisionMarks(rule, Object.keys(result.probabilities));
  for (const [name, p] of Object.entries(result.probabilities)) {
    const row = el("div", "bar-row");
    if (name === result.label) row.classList.add("chosen");
    row.append(el("span", null, name));
    const bar = el("div", "bar");
    const fill = el("span");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    bar.append(fill);
    if (name in marks) {
      const mark = el("i", "mark");
      mark.style.left = `${(100 * marks[name]).toFixed(1)}%`;
      mark.title = `decision line: ${(100 * marks[name]).toFixed(1)}%`;
      bar.append(mark);
    }
    row.append(bar, el("span", null, `${(100 * p).toFixed(1)}%`));
    bars.append(row);
  }
  card.append(bars);
  card.append(el("p", "note", `decided by ${rule.text}`));
}

async function explain(card, file) {
  if (!state.meta || !state.meta.explain) return;
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await fetch("/explain", { method: "POST", body: form, headers: headers() });
  if (!response.ok) {
    card.append(el("p", "error", `Grad-CAM: ${await errorText(response)}`));
    return;
  }
  const img = el("img", "cam");
  img.alt = `Grad-CAM of ${file.name}`;
  img.src = URL.createObjectURL(await response.blob());
  await new Promise((done) => { img.onload = done; img.onerror = done; });
  card.append(img);
}

async function handle(file) {
  const card = el("article", "result");
  card.dataset.file = file.name;
  card.dataset.state = "pending";
  const head = el("header");
  if (file.type.startsWith("image/")) {
    const thumb = el("img", "thumb");
    thumb.alt = file.name;
    thumb.src = URL.createObjectURL(file);
    head.append(thumb);
  }
  const title = el("div");
  title.append(el("div", "name", file.name));
  const label = el("div", "label", "…");
  title.append(label);
  head.append(title);
  card.append(head);
  document.getElementById("results").prepend(card);

  try {
    const form = new FormData();
    form.append("files", file, file.name);
    const response = await fetch("/predict", { method: "POST", body: form, headers: headers() });
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    const result = body.results[0];
    if (result.error) throw new Error(result.error);
    label.textContent = result.label;
    label.classList.add(result.label);
    card.dataset.label = result.label;
    card.dataset.rule = body.rule.rule;
    showProbabilities(card, result, body.rule);
    await explain(card, file);
    card.dataset.state = "done";
  } catch (error) {
    label.textContent = "error";
    card.append(el("p", "error", error.message));
    card.dataset.state = "error";
  }
}

function handleAll(files) {
  for (const file of files) handle(file);
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  handleAll(e.dataTransfer.files);
});
const input = document.getElementById("files");
input.addEventListener("change", () => { handleAll(input.files); input.value = ""; });
document.getElementById("api-key").addEventListener("change", loadMetadata);
loadMetadata();
