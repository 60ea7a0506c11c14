// The try-on page: inputs, one try-on with its stages, an A/B comparison of two versions and the running experiment.
// Plain browser JavaScript, no build step; every URL is relative so the page works under any route prefix.
"use strict";

// The inputs of a try-on in form order: the API's field, the files its drop box offers, its title and its hint.
const INPUTS = [
  { field: "person", accept: "image/*", title: "Person photo", hint: "JPEG, PNG or WebP" },
  { field: "garment", accept: "image/*", title: "Garment photo", hint: "flat product shot, plain background" },
  { field: "pose", accept: ".json,application/json", title: "Pose", hint: "OpenPose BODY_25 JSON of the person" },
  { field: "parse", accept: "image/png", title: "Parse", hint: "CIHP label PNG of the person" },
];
const FIELDS = INPUTS.map((input) => input.field);

// The intermediate images of a `stages=true` answer, in pipeline order, with the stage whose time they show.
const STAGES = [
  { key: "person", title: "Person", stage: "preprocess", note: "3:4, working resolution" },
  { key: "garment", title: "Garment", stage: "preprocess", note: "padded to 3:4" },
  { key: "cloth_mask", title: "Garment mask", stage: "preprocess", note: "white = garment" },
  { key: "pose_skeleton", title: "Pose skeleton", stage: "preprocess", note: "10-node pose graph" },
  { key: "parse", title: "Person parse", stage: "preprocess", note: "CIHP labels, sent or computed" },
  { key: "garment_contour", title: "Garment keypoints", stage: "keypoints", note: "predicted on the person" },
  { key: "target_parse", title: "Target parse", stage: "parse_warp", note: "person wearing the garment" },
  { key: "warped_garment", title: "Warped garment", stage: "parse_warp", note: "five-segment TPS" },
  { key: "recomposed", title: "Recomposed", stage: "parse_warp", note: "what the inpainter completes" },
  { key: "keep_mask", title: "Keep mask", stage: "parse_warp", note: "white = kept, black = inpainted" },
];
const TIMING_LABELS = { preprocess: "Preprocess", keypoints: "Keypoints", parse_warp: "Parse + warp", inpaint: "Inpaint" };
const COMPARE_STAGES = ["target_parse", "warped_garment", "keep_mask"];

// Readable titles and advice for the API's error codes (the API's own message is always shown too).
const ERROR_TITLES = {
  missing_input: "Some inputs are missing",
  invalid_image: "An upload is not an image the service can read",
  invalid_pose: "The pose file cannot be used",
  invalid_garment: "The garment photo cannot be used",
  invalid_input: "The service refused an input",
  unknown_field: "The service refused an input",
  payload_too_large: "A file is too large",
  unknown_version: "That model version is not served",
  overloaded: "The service is busy",
  unavailable: "The service is not ready",
  internal: "The service failed",
};
const ERROR_ADVICE = {
  missing_input: "The service cannot compute an input from the photos (the message names it and says why), so " +
    "the request has to bring it: add it, or start from an example.",
  invalid_image: "Replace the input marked in red with a photo (JPEG, PNG or WebP).",
  overloaded: "Many requests are running; try again in a few seconds.",
  unavailable: "A stage is starting or restarting; try again in a few seconds.",
};

const state = { files: {}, models: [], busy: false };

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

const seconds = (value) => `${value < 10 ? value.toFixed(2) : value.toFixed(1)} s`;
const fileSize = (bytes) => (bytes < 1024 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(0)} KB`);
const pngData = (base64) => `data:image/png;base64,${base64}`;

/** An error the service answered with: HTTP status plus the body's {code, message} when it had one. */
class ServiceError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new ServiceError(response.status, null, `${url} answered HTTP ${response.status}`);
  return response.json();
}

// ------------------------------------------------------------------ inputs

function setFile(field, file) {
  state.files[field] = file;
  const drop = $(`.drop[data-field="${field}"]`);
  drop.classList.add("filled");
  drop.classList.remove("flagged");
  $(".drop-name", drop).textContent = `${file.name} \u00b7 ${fileSize(file.size)}`;
  const preview = $(".drop-preview", drop);
  preview.replaceChildren();
  if (file.type.startsWith("image/")) {
    const image = el("img", { alt: "" });
    image.onerror = () => preview.replaceChildren(el("span", { class: "file-icon", text: "?" }));
    image.src = URL.createObjectURL(file);
    preview.append(image);
  } else {
    preview.append(el("span", { class: "file-icon", text: file.name.endsWith(".json") ? "{ }" : "file" }));
  }
}

/** One drop box per input in `#drops`: a file dropped on it, or chosen by clicking it, is that input. */
function buildDropZones() {
  for (const { field, accept, title, hint } of INPUTS) {
    const input = el("input", { type: "file", name: field, accept });
    const drop = el("label", { class: "drop", "data-field": field }, [
      input,
      el("span", { class: "drop-preview" }),
      el("span", { class: "drop-text" }, [el("b", { text: title }), el("small", { class: "drop-name", text: hint })]),
      el("span", { class: "badge" }),
    ]);
    $("#drops").append(drop);
    input.addEventListener("change", () => {
      if (input.files.length) setFile(field, input.files[0]);
      input.value = "";  // the file is kept in `state`; choosing the same file again still counts as a change
    });
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      if (event.dataTransfer.files.length) setFile(field, event.dataTransfer.files[0]);
    });
  }
}

/** Mark each input required or optional as the service's OpenAPI schema of POST /v1/tryon says. */
async function loadRequiredInputs() {
  const schema = await getJson("openapi.json");
  const form = schema.paths["/v1/tryon"].post.requestBody.content["multipart/form-data"].schema;
  const required = new Set(form.required || []);
  for (const field of FIELDS) {
    const drop = $(`.drop[data-field="${field}"]`);
    const badge = $(".badge", drop);
    badge.textContent = required.has(field) ? "required" : "optional";
    badge.className = `badge ${required.has(field) ? "required" : "optional"}`;
    if (form.properties[field]) drop.title = form.properties[field].description;
  }
}

async function loadExamples() {
  const { examples } = await getJson("web/examples.json");
  const box = $("#examples");
  for (const example of examples) {
    const button = el("button", { type: "button", class: "example", "data-example": example.name, title: example.note },
      [el("b", { text: example.title }), el("small", { text: example.note })]);
    button.addEventListener("click", () => runExample(example));
    box.append(button);
  }
}

/** Load an example's files into the inputs, then run the current view's action: one click, one result. */
async function runExample(example) {
  if (state.busy) return;
  const view = $("#view-compare").hidden ? "single" : "compare";
  try {
    await Promise.all(Object.entries(example.files).map(async ([field, url]) => {
      const response = await fetch(url);
      if (!response.ok) throw new ServiceError(response.status, null, `${field}: the example's file did not load`);
      const blob = await response.blob();
      setFile(field, new File([blob], url.split("/").pop(), { type: blob.type }));
    }));
  } catch (error) {
    showError($(`#${view}-error`), error instanceof ServiceError ? error : new ServiceError(0, null, String(error)));
    return;
  }
  $(`#${view}-form`).requestSubmit();
}

// ------------------------------------------------------------------ models

async function loadModels() {
  const status = $("#service-status");
  try {
    state.models = (await getJson("v1/models")).versions;
  } catch (error) {
    status.textContent = "service unreachable";
    status.classList.add("down");
    return;
  }
  status.textContent = `${state.models.length} model version${state.models.length === 1 ? "" : "s"} \u00b7 ready`;
  status.classList.add("up");
  const resolution = (r) => (r.height === null ? "photo's size" : `${r.width}\u00d7${r.height}`);
  const label = (v) => `${v.name} \u00b7 ${v.default_steps} steps \u00b7 ${resolution(v.resolution)}`;
  for (const model of state.models) {
    const weight = ` \u00b7 ${Math.round(model.weight * 100)}% of traffic`;
    $("#version").append(el("option", { value: model.name, text: label(model) + weight }));
    $("#version-a").append(el("option", { value: model.name, text: label(model) }));
    $("#version-b").append(el("option", { value: model.name, text: label(model) }));
  }
  if (state.models.length > 1) $("#version-b").selectedIndex = 1;
  const showDefaultSteps = () => {
    const chosen = state.models.find((v) => v.name === $("#version").value);
    $("#steps").placeholder = chosen ? `default ${chosen.default_steps}` : "default";
  };
  $("#version").addEventListener("change", showDefaultSteps);
  showDefaultSteps();
}

// ------------------------------------------------------------------ requests

/** POST /v1/tryon with the inputs; resolves to the JSON answer or throws a ServiceError. */
async function tryOn({ version, steps, seed }) {
  const body = new FormData();
  for (const field of FIELDS) {
    if (state.files[field]) body.append(field, state.files[field], state.files[field].name);
  }
  if (version) body.append("version", version);
  if (steps) body.append("steps", steps);
  if (seed !== "" && seed !== undefined) body.append("seed", seed);
  body.append("response", "json");
  body.append("stages", "true");
  let response;
  try {
    response = await fetch("v1/tryon", { method: "POST", body });
  } catch (error) {
    throw new ServiceError(0, "unreachable", "The page could not reach the service. Is it still running?");
  }
  let answer = null;
  try { answer = await response.json(); } catch (error) { /* not JSON: a proxy's page; the status says it */ }
  if (!response.ok) {
    const detail = answer && answer.error;
    throw new ServiceError(response.status, detail ? detail.code : null,
      detail ? detail.message : `The service answered HTTP ${response.status} ${response.statusText}.`);
  }
  return answer;
}

function showError(box, error) {
  const title = ERROR_TITLES[error.code] || (error.status ? `Request failed (HTTP ${error.status})` : "Request failed");
  box.replaceChildren(el("strong", { text: title }), el("p", { class: "message", text: error.message }));
  if (ERROR_ADVICE[error.code]) box.append(el("p", { class: "advice", text: ERROR_ADVICE[error.code] }));
  box.hidden = false;
  // Point at the inputs concerned: the empty ones when some are missing, else the field the message starts with.
  const named = /^(\w+):/.exec(error.message);
  const flagged = error.code === "missing_input" ? FIELDS.filter((field) => !state.files[field])
    : FIELDS.filter((field) => named && named[1] === field);
  for (const field of flagged) $(`.drop[data-field="${field}"]`).classList.add("flagged");
}

/** Run `work` with the busy overlay on `output` (spinner and elapsed time) and errors shown in `errorBox`. */
async function withSpinner(output, errorBox, text, work) {
  if (state.busy) return;
  state.busy = true;
  errorBox.hidden = true;
  document.querySelectorAll(".drop.flagged").forEach((drop) => drop.classList.remove("flagged"));
  document.querySelectorAll("button.primary, button.example").forEach((button) => { button.disabled = true; });
  const clock = el("span", { class: "clock", text: "0.0 s" });
  const overlay = el("div", { class: "busy", role: "status" },
    [el("div", { class: "spinner" }), el("span", { text }), clock]);
  output.append(overlay);
  const start = performance.now();
  const timer = setInterval(() => { clock.textContent = seconds((performance.now() - start) / 1000); }, 100);
  try {
    await work();
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    showError(errorBox, error);
  } finally {
    clearInterval(timer);
    overlay.remove();
    document.querySelectorAll("button.primary, button.example").forEach((button) => { button.disabled = false; });
    state.busy = false;
  }
}

// ------------------------------------------------------------------ rendering

function timingBar(timings) {
  const stages = Object.keys(TIMING_LABELS).filter((stage) => stage in timings);
  const sum = stages.reduce((total, stage) => total + timings[stage], 0) || 1;
  const bar = el("div", { class: "timing-bar" }, stages.map((stage) =>
    el("span", { class: `seg seg-${stage}`, style: `flex-grow: ${timings[stage] / sum}`, title: `${TIMING_LABELS[stage]} ${seconds(timings[stage])}` })));
  const legend = el("ul", { class: "timing-legend" }, stages.map((stage) =>
    el("li", {}, [el("i", { class: `dot seg-${stage}` }), `${TIMING_LABELS[stage]} `, el("b", { text: seconds(timings[stage]) })])));
  return el("div", { class: "timings" }, [bar, legend]);
}

function stageTile(key, base64, title, caption) {
  return el("figure", { class: "tile", "data-stage": key }, [
    el("img", { src: pngData(base64), alt: title, loading: "eager" }),
    el("figcaption", {}, [el("b", { text: title }), el("small", { text: caption })]),
  ]);
}

function renderSingle(answer) {
  const { timings } = answer;
  const hero = el("figure", { class: "hero" }, [
    el("img", { id: "result-image", src: pngData(answer.image), alt: "Try-on result" }),
    el("figcaption", {}, [el("b", { text: "Try-on result" }), el("small", { text: `inpaint \u00b7 ${seconds(timings.inpaint)}` })]),
  ]);
  const download = el("a", { class: "download", href: pngData(answer.image), download: `tryon-${answer.version}-${answer.seed}.png`,
    text: "Download PNG" });
  const facts = el("dl", { class: "facts" }, [
    ["Version", answer.version], ["Seed", String(answer.seed)], ["Steps", String(answer.steps)],
    ["UNet evaluations", String(answer.unet_evaluations)], ["Batch size", String(answer.inpaint_batch_size)],
    ["Resolution", `${answer.size.width}\u00d7${answer.size.height}`],
    ["Working size", `${answer.working_size.width}\u00d7${answer.working_size.height}`],
    ["Total", seconds(timings.total)],
  ].flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]));
  const tiles = STAGES.filter((stage) => typeof (answer.stages || {})[stage.key] === "string").map((stage) =>
    stageTile(stage.key, answer.stages[stage.key], stage.title,
      `${stage.note} \u00b7 ${TIMING_LABELS[stage.stage].toLowerCase()} ${seconds(timings[stage.stage])}`));
  $("#single-output").replaceChildren(
    el("div", { class: "result-head" }, [hero, el("div", { class: "summary" }, [facts, timingBar(timings), download])]),
    el("h3", { text: "Pipeline stages" }),
    el("div", { class: "stage-grid" }, tiles));
}

function renderCompare(answers, seed) {
  const sides = answers.map((answer, index) => el("section", { class: "ab-side", "data-version": answer.version }, [
    el("header", {}, [el("span", { class: "ab-label", text: index === 0 ? "A" : "B" }), el("b", { text: answer.version }),
      el("small", { text: `${answer.steps} steps \u00b7 ${answer.unet_evaluations} UNet evaluations \u00b7 total ${seconds(answer.timings.total)}` })]),
    el("img", { class: "ab-result", src: pngData(answer.image), alt: `Result of ${answer.version}` }),
    timingBar(answer.timings),
    el("div", { class: "ab-stages" }, COMPARE_STAGES.filter((key) => answer.stages && answer.stages[key]).map((key) =>
      stageTile(key, answer.stages[key], STAGES.find((stage) => stage.key === key).title, ""))),
  ]));
  $("#compare-output").replaceChildren(
    el("p", { class: "ab-note", text: `Same inputs, seed ${seed}.` }),
    el("div", { class: "ab" }, sides));
}

// The running experiment (GET /v1/ab/report): traffic, outcome rates with 95% intervals, and each difference's tests.
async function loadExperiment() {
  const response = await fetch("v1/ab/report");
  if (!response.ok) return;
  const report = await response.json();
  const events = [...new Set(Object.values(report.versions).flatMap((entry) => Object.keys(entry.outcomes)))].sort();
  const percent = (value) => (value === null || value === undefined ? "\u2013" : `${(100 * value).toFixed(1)}%`);
  const rows = Object.entries(report.versions).map(([version, entry]) => {
    const routed = entry.routed || { requests: 0, errors: 0, latency_s: {} };
    return el("tr", { "data-version": version }, [
      el("td", { text: version }), el("td", { text: percent((report.weights || {})[version]) }),
      el("td", { text: String(routed.requests) }), el("td", { text: String(routed.errors) }),
      el("td", { text: routed.latency_s.p95 === null || routed.latency_s.p95 === undefined ? "\u2013" : seconds(routed.latency_s.p95) }),
      ...events.map((event) => {
        const outcome = entry.outcomes[event];
        return el("td", { text: `${percent(outcome.rate)} [${percent(outcome.interval[0])}, ${percent(outcome.interval[1])}]` });
      }),
    ]);
  });
  const verdicts = events.flatMap((event) => Object.entries(report.tests[event] || {}).map(([version, test]) =>
    el("p", { class: "verdict", text: `${event}: ${version} \u2212 ${report.baseline} = ${percent(test.msprt.difference)}; ` +
      `always-valid p = ${test.msprt.p_value.toFixed(3)}${test.msprt.significant ? " (significant)" : ""}, ` +
      `fixed-sample z-test p = ${test.ztest.p_value.toFixed(3)}` })));
  $("#experiment").replaceChildren(
    el("h3", { text: `Experiment ${report.experiment}` }),
    el("table", {}, [
      el("thead", {}, [el("tr", {}, ["Version", "Weight", "Routed", "Errors", "p95",
        ...events.map((event) => `${event} rate`)].map((title) => el("th", { text: title })))]),
      el("tbody", {}, rows)]),
    ...verdicts);
}

// ------------------------------------------------------------------ actions

function bindActions() {
  $("#single-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const request = { version: $("#version").value, steps: $("#steps").value, seed: $("#seed").value };
    const label = request.version ? `Running ${request.version}\u2026` : "Running\u2026";
    withSpinner($("#single-output"), $("#single-error"), label, async () => renderSingle(await tryOn(request)));
  });
  $("#compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const versions = [$("#version-a").value, $("#version-b").value];
    const seed = $("#compare-seed").value || String(Math.floor(Math.random() * 2 ** 31));
    const steps = $("#compare-steps").value;
    withSpinner($("#compare-output"), $("#compare-error"), `Running ${versions.join(" and ")}\u2026`, async () => {
      const answers = await Promise.all(versions.map((version) => tryOn({ version, steps, seed })));
      renderCompare(answers, seed);
      await loadExperiment();
    });
  });
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[role=tab]")) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        $(`#view-${other.dataset.view}`).hidden = !selected;
      }
      if (tab.dataset.view === "compare") loadExperiment().catch((error) => console.error(error));
    });
  }
}

async function init() {
  buildDropZones();
  bindActions();
  const loaded = await Promise.allSettled([loadModels(), loadRequiredInputs(), loadExamples()]);
  for (const result of loaded) if (result.status === "rejected") console.error(result.reason);
}

init();
