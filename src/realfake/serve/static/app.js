// The page: every chosen, dropped or example picture goes to POST /predict, then POST /explain
// for Grad-CAM. Plain JavaScript, served by the app itself. Text from files and answers goes in
// with textContent, never as HTML.
"use strict";

const state = { meta: null, urls: [], generation: 0 };

// What a person reads for each verdict; a class other than FAKE/REAL is named as it is.
const HEADLINES = { FAKE: "Likely AI-generated", REAL: "Likely a real photo", UNSURE: "Not sure" };
const NAMES = { FAKE: "AI-generated", REAL: "real photo" };
const LOOKS = { FAKE: "AI-generated", REAL: "like a real photo" };
// A score this close to the decision line is called a weak lean in the page's words (the
// service's UNSURE band, where a run has one, is what decides; this only phrases).
const WEAK = 0.1;

function headline(verdict) {
  return HEADLINES[verdict] || `Likely ${verdict}`;
}

function nice(name) {
  return NAMES[name] ? `${NAMES[name]} (${name})` : name;
}

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

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
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

// --- the model: header line and model card ---------------------------------------------------

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
  loadCard();
}

function definitions(pairs) {
  const list = el("dl", "card-list");
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    list.append(el("dt", null, term), el("dd", null, value));
  }
  return list;
}

function bullets(items) {
  const list = el("ul");
  for (const item of items) list.append(el("li", null, item));
  return list;
}

function sourceTable(rows) {
  const table = el("table", "per-source");
  const head = el("tr");
  for (const title of ["source", "test images", "accuracy", "ROC-AUC"]) {
    head.append(el("th", null, title));
  }
  table.append(head);
  for (const row of rows) {
    const tr = el("tr");
    tr.dataset.source = row.source;
    tr.append(
      el("td", null, row.source),
      el("td", "n", String(row.images)),
      el("td", "n", row.accuracy === null ? "–" : percent(row.accuracy)),
      el("td", "n", row.roc_auc === null ? "–" : row.roc_auc.toFixed(3)),
    );
    table.append(tr);
  }
  return table;
}

async function loadCard() {
  const body = document.getElementById("card-body");
  const response = await fetch("/model-card", { headers: headers() });
  if (!response.ok) {
    body.replaceChildren(el("p", "error", `model card: ${await errorText(response)}`));
    return;
  }
  const card = await response.json();
  const m = card.model;
  const parts = [];
  const size = m.parameters === null ? null : `${(m.parameters / 1e6).toFixed(2)} million weights`;
  parts.push(el("h3", null, "The model"), definitions([
    ["network", `${m.name}${size ? `, ${size}` : ""}`],
    ["run", card.run],
    ["weights", `${m.file}${m.file_mb === null ? "" : ` (${m.file_mb} MB, ${m.backend})`}`],
    ["what it sees", m.input],
    ["answers", m.classes.map(nice).join(" or ")],
  ]));
  if (card.training_data) {
    const d = card.training_data;
    const counts = d.images
      ? Object.entries(d.images).map(([k, v]) => `${v} ${k}`).join(", ") + " images"
      : null;
    parts.push(el("h3", null, "What it learnt from"), definitions([
      ["trained on", d.train.join(", ")],
      ["tested on", d.test.join(", ")],
      ["images", counts],
    ]));
  }
  const e = card.evaluation;
  if (e) {
    const ci = e.accuracy_ci
      ? ` (${Math.round(100 * e.ci_level)}% interval ${percent(e.accuracy_ci[0])}–${percent(e.accuracy_ci[1])})`
      : "";
    parts.push(el("h3", null, "How well it did on its test images"), definitions([
      ["images", e.images === null ? null : `${e.images}: ${e.data}`],
      ["accuracy", e.accuracy === null ? null : `${percent(e.accuracy)}${ci}`],
      ["ROC-AUC", e.roc_auc === null ? null : e.roc_auc.toFixed(3)],
      ["answered (not UNSURE)", e.coverage === null ? null : percent(e.coverage)],
      ["accuracy of the answers", e.selective_accuracy === null ? null : percent(e.selective_accuracy)],
      ["decided by", e.decided_by],
      ["same weights as served", e.same_weights ? "yes" : "no: these figures belong to other weights"],
    ]));
    if (e.per_source && e.per_source.length) {
      parts.push(el("h4", null, "Per source of its test images"), sourceTable(e.per_source));
    }
  }
  parts.push(el("h3", null, "How it decides"), definitions([
    ["rule", card.rule_in_words],
    ["exactly", card.decision_rule.text],
    ["Not sure, near the line", card.unsure.band],
    ["Not sure, unfamiliar picture", card.unsure.feature_distance],
    ["Not sure, unusual size", card.unsure.size],
  ]));
  parts.push(el("h3", null, "Limits"), bullets(card.limits));
  parts.push(el("h3", null, "Meant for"), bullets(card.intended_use));
  parts.push(el("h3", null, "Not meant for"), bullets(card.not_for));
  if (card.missing.length) {
    parts.push(el("h3", null, "Not on this card"), bullets(card.missing));
  }
  body.replaceChildren(...parts);
}

// --- examples --------------------------------------------------------------------------------

async function loadExamples() {
  const box = document.getElementById("examples");
  const response = await fetch("/examples");
  if (!response.ok) {
    document.getElementById("examples-box").hidden = true;
    return;
  }
  const examples = await response.json();
  for (const example of examples) {
    const button = el("button", "example");
    button.type = "button";
    button.dataset.name = example.name;
    button.title = `try ${example.name}`;
    const img = el("img");
    img.src = example.url;
    img.alt = example.name;
    button.append(img, el("span", null, example.name));
    button.addEventListener("click", () => tryExample(example));
    box.append(button);
  }
  if (examples.length) {
    document.getElementById("examples-credit").textContent = `From the ${examples[0].credit}.`;
  }
}

async function tryExample(example) {
  const response = await fetch(example.url);
  if (!response.ok) return;
  const blob = await response.blob();
  handle(new File([blob], example.name, { type: blob.type || "image/jpeg" }), example);
}

// --- one picture's answer --------------------------------------------------------------------

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

// Why the verdict, in plain words. The rule names and reason prefixes are the service's
// (realfake.provenance.RULES, realfake.inference.verdict).
function plainWhy(result, rule) {
  const v = result.verdict;
  switch (result.provenance) {
    case "signed-generated":
      return "The file carries signed Content Credentials (C2PA) saying an AI made it. " +
        "That decides, whatever the pixels look like.";
    case "declared-generated":
      return "The file's own metadata says an AI generator made it. That decides, whatever " +
        "the pixels look like; the note is unsigned, so anyone could have added or removed it.";
    case "trusted-capture":
    case "signed-capture":
      if (v === "REAL") {
        return "The pixels look like a real photo, and the file carries a signed claim that " +
          "a camera took it.";
      }
      return "The file carries a signed claim that a camera took it, but that does not settle " +
        "it: the pixels look AI-generated, or the signer is not one this service can verify " +
        "(a photo of a screen can carry a genuine camera claim).";
    default:
      break;
  }
  if (v === "UNSURE") {
    if ((result.reason || "").includes("is far from their size")) {
      return "This picture's size is far from the pictures the model learnt from: brought to " +
        "the size it takes, it is not what the model learnt from, so its scores say little " +
        "about it: the bars below are not to be trusted here.";
    }
    if ((result.reason || "").startsWith("unlike the images")) {
      return "This picture is unlike the pictures the model learnt from, so its scores say " +
        "little about it: the bars below are not to be trusted here.";
    }
    return "The model's score is too close to its decision line to call: on its validation " +
      "pictures, answers this close were wrong too often.";
  }
  const looks = LOOKS[result.label] || `like ${result.label}`;
  const p = result.probabilities[result.label];
  const score = `its score for ${nice(result.label)} is ${percent(p)}`;
  let line = "the higher of its scores";
  if (rule.rule === "threshold") {
    const positive = result.probabilities[rule.positive_class];
    line = Math.abs(positive - rule.threshold) < WEAK ? "only just past its decision line"
      : "past its decision line";
  } else if (p - 1 / Object.keys(result.probabilities).length < WEAK) {
    line = "only just the highest of its scores";
  }
  return `The pixels look ${looks} to the model: ${score}, ${line}.`;
}

// The pixels' own answer, as a heading over the bars: never contradicting them.
function pixelsHeading(result) {
  let text = `What the pixels say: ${nice(result.label)}`;
  if (result.pixel_verdict === "UNSURE") {
    text += (result.reason || "").includes("unlike the images it was trained on")
      ? ", but the picture is unlike the training pictures"
      : ", but too close to the line to call";
  } else if (result.verdict !== result.label) {
    text += "; the verdict above comes from the file's metadata";
  }
  return text;
}

function showProbabilities(section, result, rule) {
  const bars = el("div", "bars");
  if (result.pixel_verdict === "UNSURE") bars.classList.add("muted");
  const marks = decisionMarks(rule, Object.keys(result.probabilities));
  for (const [name, p] of Object.entries(result.probabilities)) {
    const row = el("div", "bar-row");
    row.dataset.class = name;
    if (name === result.label) row.classList.add("chosen");
    row.append(el("span", "class-name", nice(name)));
    const bar = el("div", "bar");
    const fill = el("span");
    fill.style.width = percent(p);
    bar.append(fill);
    if (name in marks) {
      const mark = el("i", "mark");
      mark.style.left = percent(marks[name]);
      mark.title = `decision line: ${percent(marks[name])}`;
      bar.append(mark);
    }
    row.append(bar, el("span", "value", percent(p)));
    bars.append(row);
  }
  section.append(bars);
  if (rule.rule === "threshold") {
    section.append(el("p", "note", "The dark line on each bar is the decision line: the " +
      "class whose bar passes its line is the pixels' answer."));
  } else {
    section.append(el("p", "note", "The pixels' answer is the class with the longer bar."));
  }
  section.append(el("p", "note rule", `decided by ${rule.text}`));
}

function showEvidence(card, result) {
  const section = el("section", "evidence");
  section.append(el("h3", null, "Evidence in the file"));
  if (result.evidence === null) {
    section.append(el("p", "note", "Not read: this model's classes are not FAKE and REAL."));
  } else {
    section.append(bullets(result.evidence));
  }
  section.append(el("p", "note absence", "Metadata can help, but no metadata proves nothing: " +
    "most pictures carry none, and it is easily removed. An unsigned note can also be forged."));
  card.append(section);
}

async function explain(card, file, result) {
  const section = el("section", "gradcam");
  section.append(el("h3", null, "Where the model looked"));
  card.append(section);
  if (!state.meta || !state.meta.explain) {
    section.append(el("p", "note no-cam", "No heat-map for this model: " +
      `${(state.meta && state.meta.explain_unavailable) || "Grad-CAM is not available here"}.`));
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await fetch("/explain", { method: "POST", body: form, headers: headers() });
  if (!response.ok) {
    section.append(el("p", "error", `Grad-CAM: ${await errorText(response)}`));
    return;
  }
  const target = response.headers.get("X-Explained-Class") || result.label;
  const figure = el("figure");
  const row = el("div", "cam-row");
  const img = el("img", "cam");
  img.alt = `Grad-CAM of ${file.name}`;
  img.src = objectUrl(await response.blob());
  await new Promise((done) => { img.onload = done; img.onerror = done; });
  const legend = el("div", "legend");
  legend.setAttribute("role", "img");
  legend.setAttribute("aria-label", "colour scale: blue low, red high");
  legend.append(el("span", "legend-high", "high"), el("div", "legend-scale"),
    el("span", "legend-low", "low"));
  row.append(img, legend);
  const size = state.meta.image_size;
  figure.append(row, el("figcaption", null,
    `Left: the picture as the model sees it (${size}×${size} pixels, enlarged). Right: the ` +
    `same with the Grad-CAM map of its evidence for ${nice(target)}, from blue (low) to red ` +
    "(high). It shows where the model looked, not proof."));
  section.append(figure);
}

async function handle(file, example) {
  const generation = state.generation;
  const card = el("article", "result");
  card.dataset.file = file.name;
  card.dataset.state = "pending";
  const head = el("header");
  if (file.type.startsWith("image/")) {
    const thumb = el("img", "thumb");
    thumb.alt = file.name;
    thumb.src = objectUrl(file);
    head.append(thumb);
  }
  const title = el("div");
  title.append(el("div", "name", file.name));
  const verdict = el("div", "verdict", "…");
  title.append(verdict);
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
    if (generation !== state.generation) return; // the page was cleared meanwhile
    verdict.textContent = headline(result.verdict);
    verdict.classList.add(`is-${result.verdict}`);
    card.dataset.verdict = result.verdict;
    card.dataset.label = result.label;
    card.dataset.provenance = result.provenance || "";
    card.dataset.rule = body.rule.rule;
    card.append(el("p", "why", plainWhy(result, body.rule)));
    if (example) {
      card.append(el("p", "truth", `The data set says this example is ${nice(example.label)}.`));
    }
    const pixels = el("section", "pixels");
    pixels.append(el("h3", null, pixelsHeading(result)));
    showProbabilities(pixels, result, body.rule);
    card.append(pixels);
    showEvidence(card, result);
    const details = el("details", "technical");
    details.append(el("summary", null, "Technical details"),
      el("p", "reason", `verdict ${result.verdict}: ${result.reason}`),
      el("p", null, `pixels: ${result.pixel_verdict}; provenance rule: ${result.provenance}`));
    card.append(details);
    await explain(card, file, result);
    card.dataset.state = "done";
  } catch (error) {
    verdict.textContent = "error";
    card.append(el("p", "error", error.message));
    card.dataset.state = "error";
  }
}

function handleAll(files) {
  for (const file of files) handle(file);
}

function clearPage() {
  state.generation += 1;
  document.getElementById("results").replaceChildren();
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = [];
  input.value = "";
  window.scrollTo(0, 0);
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
document.getElementById("clear").addEventListener("click", clearPage);
document.getElementById("api-key").addEventListener("change", loadMetadata);
loadMetadata();
loadExamples();
