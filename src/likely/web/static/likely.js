// The dashboard's behaviour: charts from the page's embedded data (its /api twin), runs with
// progress, dialogs, live checks. User text only ever goes into the page as text, never as HTML.
"use strict";

const DATA = JSON.parse(document.getElementById("page-data").textContent || "null");
const PAGE = document.body.dataset.page;
const COLOURS = {
  conversion: { High: "#009E73", Medium: "#F0E442", Low: "#56B4E9" },
  churn: { High: "#D55E00", Medium: "#F0E442", Low: "#56B4E9" },
  clv: { High: "#CC79A7", Medium: "#F0E442", Low: "#56B4E9" },
};
const PLOT = { displayModeBar: false, responsive: true };
const FONT = { family: "system-ui, sans-serif", size: 13 };
const fmt = (n, d = 0) => n === null || n === undefined ? "–" :
  Number(n).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method, headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = { error: response.statusText }; }
  if (!response.ok) throw Object.assign(new Error(payload.error || response.statusText), { payload });
  return payload;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function plot(id, traces, layout = {}) {
  const node = typeof id === "string" ? document.getElementById(id) : id;
  if (!node || !window.Plotly) return;
  Plotly.react(node, traces, Object.assign({
    margin: { l: 50, r: 16, t: 10, b: 40 }, font: FONT, paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)", legend: { orientation: "h", y: -0.2 },
  }, layout), PLOT);
}

// -- runs: start, then follow the stages without hammering the server ----------------------------

function describeJob(job) {
  if (!job || job.state === "idle") return "";
  if (job.state === "running") {
    const part = job.total > 1 ? ` (${fmt(job.done)} of ${fmt(job.total)})` : "";
    return `Running for ${Math.round(job.elapsed_s)} s: ${job.stage}${part}…`;
  }
  if (job.state === "success") return `Run finished in ${Math.round(job.elapsed_s)} s.`;
  return `Run failed: ${job.error}`;
}

function follow(instance, box, delay = 1000) {
  fetch(`/api/instances/${encodeURIComponent(instance)}/job`, { credentials: "same-origin" })
    .then((r) => r.json()).then((job) => {
      box.textContent = describeJob(job);
      if (job.state === "running") {
        setTimeout(() => follow(instance, box, Math.min(delay * 1.5, 5000)), delay);
      } else if (job.state === "success" && box.dataset.started) {
        box.append(" ", el("a", { href: location.pathname }, "Show the new results"));
      }
    }).catch(() => { box.textContent = "Lost contact with the server; reload the page."; });
}

function setUpRuns() {
  for (const box of document.querySelectorAll(".job[data-instance]")) {
    follow(box.dataset.instance, box);  // one request; it keeps following only a running job
  }
  for (const button of document.querySelectorAll("[data-run]")) {
    button.addEventListener("click", async () => {
      const name = button.dataset.run;
      const box = document.querySelector(`.job[data-instance="${CSS.escape(name)}"]`);
      button.disabled = true;
      try {
        await api("POST", `/api/instances/${encodeURIComponent(name)}/runs`, {});
        box.dataset.started = "1";
        box.textContent = "Starting…";
        follow(name, box);
      } catch (e) { box.textContent = e.message; }
      finally { setTimeout(() => { button.disabled = false; }, 1500); }
    });
  }
}

// -- instances list: clone and delete with confirmation ------------------------------------------

function setUpInstances() {
  const cloneDialog = document.getElementById("clone-dialog");
  const deleteDialog = document.getElementById("delete-dialog");
  let current = null;
  for (const d of [cloneDialog, deleteDialog]) {
    d.querySelector("[data-close]").addEventListener("click", () => d.close());
  }
  for (const b of document.querySelectorAll("[data-clone]")) {
    b.addEventListener("click", () => {
      current = b.dataset.clone;
      document.getElementById("clone-name").value = `${current}-copy`;
      document.getElementById("clone-error").textContent = "";
      cloneDialog.showModal();
    });
  }
  for (const b of document.querySelectorAll("[data-delete]")) {
    b.addEventListener("click", () => {
      current = b.dataset.delete;
      document.getElementById("delete-what").textContent =
        `"${current}", its runs, scores and explanations will be deleted. This cannot be undone.`;
      document.getElementById("delete-error").textContent = "";
      deleteDialog.showModal();
    });
  }
  document.getElementById("clone-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("clone-name").value.trim();
    try {
      await api("POST", `/api/instances/${encodeURIComponent(current)}/clone`, { new_name: name });
      location.reload();
    } catch (e) { document.getElementById("clone-error").textContent = e.message; }
  });
  document.getElementById("delete-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", `/api/instances/${encodeURIComponent(current)}/delete`);
      location.reload();
    } catch (e) { document.getElementById("delete-error").textContent = e.message; }
  });
}

// -- create an instance: checked live against the dataset's columns ------------------------------

function instanceConfig(form) {
  const value = (field) => form.querySelector(`[data-field="${field}"]`).value.trim();
  const config = {
    name: value("name"), description: value("description"), type: value("type"),
    datasets: { events: value("datasets.events") },
    goal: { conditions: value("goal.conditions") ? [value("goal.conditions")] : [],
            occurs: value("goal.occurs") === "true",
            window_days: Number(value("goal.window_days")) },
    population: { conditions: value("population.conditions") ? [value("population.conditions")] : [],
                  lookback_days: Number(value("population.lookback_days")) },
  };
  if (value("datasets.profiles")) config.datasets.profiles = value("datasets.profiles");
  if (config.type === "clv") {  // the window is the horizon; spend is what is predicted
    config.horizon_days = config.goal.window_days;
    config.value_column = value("value_column") || "value";
    config.goal = { conditions: config.goal.conditions, window_days: config.horizon_days };
  }
  return config;
}

// The form for a lifetime-value instance: the goal reads as purchases, the window as the horizon.
function showTypeFields(form) {
  const clv = form.querySelector('[data-field="type"]').value === "clv";
  for (const node of form.querySelectorAll(".clv-only")) node.hidden = !clv;
  for (const node of form.querySelectorAll(".not-clv")) node.hidden = clv;
  for (const label of form.querySelectorAll("label[data-label-clv]")) {
    label.dataset.labelOther = label.dataset.labelOther || label.textContent;
    label.textContent = clv ? label.dataset.labelClv : label.dataset.labelOther;
  }
}

function showErrors(form, errors) {
  for (const p of form.querySelectorAll("[data-error-for]")) p.textContent = "";
  for (const e of errors) {
    const field = e.field.replace(/\[\d+\]$/, "").replace(/\.\d+$/, "");
    const target = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) ||
      form.querySelector(`[data-error-for="${CSS.escape(field.split(".")[0])}"]`) ||
      form.querySelector('[data-error-for="datasets"]');
    const message = e.message.replace(/^[A-Za-z_][\w.[\]]*: /, "");  // the field says where
    target.textContent = target.textContent ? `${target.textContent} ${message}` : message;
  }
}

function setUpNewInstance() {
  const form = document.getElementById("instance-form");
  if (!form) return;
  const columns = {};
  for (const d of DATA.datasets) columns[d.name] = d.columns.map((c) => c.name);
  const hint = () => {
    const events = form.querySelector('[data-field="datasets.events"]').value;
    document.getElementById("columns-hint").textContent = (columns[events] || []).join(", ");
  };
  hint();
  showTypeFields(form);
  form.querySelector('[data-field="type"]').addEventListener("change", () => showTypeFields(form));
  const check = debounce(async () => {
    const result = await api("POST", "/api/instances/check", instanceConfig(form));
    const touched = result.errors.filter((e) => {
      const input = form.querySelector(`[data-field="${CSS.escape(e.field.replace(/\[\d+\]$/, "").replace(/\.\d+$/, ""))}"]`);
      return !input || input.value !== "" || form.dataset.submitted;
    });
    showErrors(form, touched);
  }, 350);
  form.addEventListener("input", () => { hint(); check(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.dataset.submitted = "1";
    const config = instanceConfig(form);
    const result = await api("POST", "/api/instances/check", config);
    if (!result.ok) { showErrors(form, result.errors); return; }
    try {
      const created = await api("POST", "/api/instances", config);
      location.href = `/instances/${encodeURIComponent(created.name)}`;
    } catch (e) { showErrors(form, [{ field: "datasets", message: e.message }]); }
  });
}

// -- latest scores: ring, distribution, targeting, factor breakdowns, create segment -------------

function setUpScores() {
  if (!DATA || DATA.empty) return;
  const colours = COLOURS[DATA.type] || COLOURS.conversion;
  const buckets = DATA.buckets;
  plot("ring", [{
    type: "pie", hole: 0.55, sort: false, direction: "clockwise",
    labels: buckets.map((b) => b.bucket), values: buckets.map((b) => b.profiles),
    marker: { colors: buckets.map((b) => colours[b.bucket]), line: { color: "#fff", width: 2 } },
    texttemplate: "%{label}<br>%{value:,} (%{percent})", textposition: "outside",
    hovertemplate: "%{label}: %{value:,} profiles (%{percent})<extra></extra>",
  }], { showlegend: false, margin: { l: 30, r: 30, t: 40, b: 30 },
        annotations: [{ text: `${fmt(DATA.scored_profiles)}<br>scored`, showarrow: false,
                        font: { size: 16 } }] });
  const edges = DATA.histogram.edges;
  const mids = edges.slice(0, -1).map((e, i) => (e + edges[i + 1]) / 2);
  plot("histogram", ["Low", "Medium", "High"].map((b) => ({
    type: "bar", name: b, x: mids, y: DATA.histogram.counts[b], width: edges[1] - edges[0],
    marker: { color: colours[b], line: { color: "rgba(0,0,0,.35)", width: 0.5 } },
    hovertemplate: `${b}: %{y:,} profiles with score ≈ %{x}<extra></extra>`,
  })), { barmode: "stack", xaxis: { title: "score", range: [0, 100] },
         yaxis: { title: "profiles" } });
  setUpTargeting();
  if (DATA.type === "clv") setUpLifetimeValue(colours);
  setUpFactors(colours);
  setUpCreateSegment();
}

// A clv instance's Lifetime value card: its tables are in the page; the distribution is drawn here.
function setUpLifetimeValue(colours) {
  const lv = DATA.lifetime_value;
  if (!lv || !lv.distribution.labels.length) return;
  const d = lv.distribution;
  const words = Object.fromEntries(lv.buckets.map((b) => [b.bucket, b.value_bucket || b.bucket]));
  plot("value-distribution", ["Low", "Medium", "High"].map((b) => ({
    type: "bar", name: `${words[b]} (${b})`, x: d.labels, y: d.counts[b] || [],
    marker: { color: colours[b], line: { color: "rgba(0,0,0,.35)", width: 0.5 } },
    hovertemplate: `${words[b]}: %{y:,} profiles predicted %{x}<extra></extra>`,
  })), { barmode: "stack", bargap: 0.05, margin: { l: 50, r: 16, t: 10, b: 70 },
         xaxis: { type: "category", title: `predicted value over ${lv.horizon_days} days`,
                  tickangle: -45, automargin: true, nticks: 12 },
         yaxis: { title: "profiles" }, legend: { orientation: "h", y: -0.45 } });
}

function setUpTargeting() {
  const curve = DATA.targeting;
  const value = DATA.type === "clv";  // a clv run's "expected" figures are predicted value
  const measure = value ? "predicted value" : "expected goal profiles";
  const slider = document.getElementById("target-slider");
  const number = document.getElementById("target-value");
  const label = document.getElementById("target-label");
  let mode = "size";
  const total = curve.total_expected;
  const gains = (marker) => plot("gains", [
    { type: "scatter", mode: "lines", name: measure, x: curve.profiles,
      y: curve.expected, line: { color: "#0072B2", width: 2 },
      hovertemplate: `top %{x:,}: %{y:,.0f} ${value ? "predicted" : "expected"}<extra></extra>` },
    { type: "scatter", mode: "lines", name: "random audience", x: [0, DATA.scored_profiles],
      y: [0, total], line: { color: "#888", dash: "dot" }, hoverinfo: "skip" },
    { type: "scatter", mode: "markers", name: "your audience", x: [marker.profiles],
      y: [marker.expected_goal_profiles], marker: { size: 11, color: "#E69F00",
      line: { color: "#000", width: 1 } }, hoverinfo: "skip" },
  ], { xaxis: { title: "audience size (top scores first)" },
       yaxis: { title: measure } });
  const show = (t) => {
    document.getElementById("t-profiles").textContent = `${fmt(t.profiles)} (${fmt(t.share_of_scored_pct, 1)}%)`;
    document.getElementById("t-expected").textContent = fmt(t.expected_goal_profiles);
    document.getElementById("t-precision").textContent = t.expected_precision === null ? "–"
      : value ? fmt(t.expected_precision, 2) : `${fmt(100 * t.expected_precision, 1)}%`;
    document.getElementById("t-captured").textContent =
      t.captured_pct === null ? "–" : `${fmt(t.captured_pct, 1)}%`;
    document.getElementById("t-lowest").textContent = t.lowest_score === null ? "–" : fmt(t.lowest_score, 1);
    gains(t);
  };
  const ask = debounce(async () => {
    const q = mode === "size" ? `size=${Math.round(slider.value)}` : `threshold=${slider.value}`;
    try { show(await api("GET", `/api/instances/${encodeURIComponent(DATA.instance)}/targeting?${q}`)); }
    catch (e) { document.getElementById("t-profiles").textContent = e.message; }
  }, 120);
  slider.addEventListener("input", () => { number.value = slider.value; ask(); });
  number.addEventListener("input", () => { slider.value = number.value; ask(); });
  for (const radio of document.querySelectorAll('input[name="target-mode"]')) {
    radio.addEventListener("change", () => {
      mode = radio.value;
      const bySize = mode === "size";
      label.textContent = bySize ? "Audience size" : "Score threshold (everyone at or above it)";
      for (const input of [slider, number]) {
        input.max = bySize ? DATA.scored_profiles : 100;
        input.step = bySize ? 1 : 0.5;
      }
      slider.value = number.value = bySize ? Math.max(1, Math.round(DATA.scored_profiles / 10))
        : DATA.bucket_cutoffs[1];
      ask();
    });
  }
  ask();
}

function setUpFactors(colours) {
  const show = (button) => {
    const dist = DATA.distributions[button.dataset.factor];
    const bucket = button.dataset.bucket;
    const box = document.getElementById(`breakdown-${bucket}`);
    for (const b of box.closest(".card").querySelectorAll("button.factor")) b.classList.remove("active");
    button.classList.add("active");
    box.replaceChildren();
    if (!dist) { box.append(el("p", { class: "muted" }, "No value breakdown for this factor.")); return; }
    box.append(el("p", {}, el("strong", {}, dist.name)));
    if (dist.headline) box.append(el("p", { class: "headline" }, dist.headline));
    const known = ["High", "Medium", "Low"].filter((b) => dist.buckets[b])
      .map((b) => `${fmt(dist.buckets[b].coverage_pct, 0)}% of ${b}`).join(", ");
    box.append(el("p", { class: "muted small" }, `Known for ${known}.`));
    const chart = el("div", { class: "chart", role: "img",
      "aria-label": `Values of ${dist.name} in ${bucket} against the other buckets` });
    box.append(chart);
    const order = ["High", "Medium", "Low"].filter((b) => dist.shares_pct[b]);
    const categories = dist.type === "categorical"
      ? [...new Set(order.flatMap((b) => Object.keys(dist.shares_pct[b])))].sort() : dist.labels;
    plot(chart, order.map((b) => ({
      type: "bar", name: b, x: categories,
      y: dist.type === "categorical" ? categories.map((c) => dist.shares_pct[b][c] || 0)
        : dist.shares_pct[b],
      marker: { color: colours[b], opacity: b === bucket ? 1 : 0.45,
                line: { color: "rgba(0,0,0,.4)", width: b === bucket ? 1.5 : 0.5 } },
      hovertemplate: `${b}: %{y:.1f}% at %{x}<extra></extra>`,
    })), { barmode: "group", margin: { l: 44, r: 28, t: 4, b: 56 },
           yaxis: { title: "% of bucket", ticksuffix: "%" },
           xaxis: { type: "category", tickangle: -35, automargin: true },
           legend: { orientation: "h", y: -0.35 } });
  };
  for (const button of document.querySelectorAll("button.factor")) {
    button.addEventListener("mouseenter", () => show(button));
    button.addEventListener("focus", () => show(button));
    button.addEventListener("click", () => show(button));
  }
}

function setUpCreateSegment() {
  const dialog = document.getElementById("segment-dialog");
  const form = document.getElementById("segment-form");
  const error = document.getElementById("segment-error");
  let bucket = null;
  for (const button of document.querySelectorAll("button.create-segment")) {
    button.addEventListener("click", () => {
      bucket = button.dataset.bucket;
      const info = DATA.buckets.find((b) => b.bucket === bucket);
      document.getElementById("segment-what").textContent =
        `Profiles in the ${bucket} bucket of ${DATA.instance} (${fmt(info.profiles)} in the scores of ${DATA.score_date}), kept up to date with its newest scores.`;
      document.getElementById("segment-name").value = `${DATA.instance} ${bucket}`;
      error.textContent = "";
      dialog.showModal();
    });
  }
  document.getElementById("segment-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: document.getElementById("segment-name").value.trim(),
                   description: document.getElementById("segment-description").value.trim(),
                   instance: DATA.instance, bucket };
    try {
      const saved = await api("POST", "/api/segments", body);
      dialog.close();
      const notice = document.getElementById("segment-saved");
      notice.replaceChildren("Saved segment ",
        el("a", { href: `/segments/${encodeURIComponent(saved.id)}` }, saved.name),
        ` with ${fmt(saved.size.profiles)} profiles.`);
      notice.hidden = false;
      notice.scrollIntoView({ block: "nearest" });
    } catch (e) { error.textContent = e.message; }
  });
}

// -- evaluation, performance, profile ------------------------------------------------------------

function setUpEvaluation() {
  if (!DATA || DATA.empty || !DATA.holdout.lift) return;  // a clv run's page is all tables
  const lift = DATA.holdout.lift;
  plot("lift", [
    { type: "bar", name: "lift", x: lift.map((d) => d.decile), y: lift.map((d) => d.lift),
      marker: { color: "#0072B2" }, hovertemplate: "decile %{x}: lift %{y:.2f}×<extra></extra>" },
    { type: "scatter", mode: "lines+markers", name: "cumulative gain", yaxis: "y2",
      x: lift.map((d) => d.decile), y: lift.map((d) => 100 * d.cumulative_gain),
      line: { color: "#E69F00" }, hovertemplate: "top %{x}0%: %{y:.0f}% of goal profiles<extra></extra>" },
  ], { xaxis: { title: "decile (1 = top 10% by score)", dtick: 1 }, yaxis: { title: "lift" },
       yaxis2: { title: "cumulative gain", overlaying: "y", side: "right", range: [0, 100],
                 tickvals: [0, 25, 50, 75, 100], ticksuffix: "%", showgrid: false }, margin: { l: 50, r: 50, t: 10, b: 40 } });
  const cal = DATA.holdout.calibration;
  const top = Math.max(...cal.map((c) => Math.max(c.mean_predicted, c.observed_rate)), 0.05);
  plot("calibration", [
    { type: "scatter", mode: "lines", name: "perfect", x: [0, top], y: [0, top],
      line: { color: "#888", dash: "dot" }, hoverinfo: "skip" },
    { type: "scatter", mode: "lines+markers", name: "this model",
      x: cal.map((c) => c.mean_predicted), y: cal.map((c) => c.observed_rate),
      marker: { color: "#0072B2" },
      hovertemplate: "predicted %{x:.1%}, observed %{y:.1%}<extra></extra>" },
  ], { xaxis: { title: "predicted", tickformat: ".0%" }, yaxis: { title: "observed", tickformat: ".0%" } });
}

function setUpPerformance() {
  const select = document.getElementById("perf-run");
  if (!select) return;
  const draw = () => {
    const run = DATA.runs[Number(select.value)];
    if (run.measure === "value") { drawValueOutcome(run); return; }
    expectedAgainstActual(run.buckets, ["expected", "expected_rate"], ["actual", "actual_rate"],
      "%{y:.1%}", { title: "goal rate", tickformat: ".0%" });
    const rows = run.buckets.map((b) => el("tr", {}, el("td", {}, b.bucket),
      el("td", { class: "num" }, fmt(b.profiles)),
      el("td", { class: "num" }, b.expected_rate === null ? "–" : `${fmt(100 * b.expected_rate, 1)}%`),
      el("td", { class: "num" }, b.actual_rate === null ? "–" : `${fmt(100 * b.actual_rate, 1)}%`)));
    const table = el("table", { class: "compact" },
      el("thead", {}, el("tr", {}, el("th", {}, "Bucket"), el("th", { class: "num" }, "Profiles"),
        el("th", { class: "num" }, "Expected"), el("th", { class: "num" }, "Actual"))),
      el("tbody", {}, ...rows));
    const auc = run.auc === null ? "" : ` AUC on what happened: ${fmt(run.auc, 3)}.`;
    document.getElementById("perf-table").replaceChildren(table,
      el("p", { class: "muted" }, `Overall: expected ${fmt(100 * run.expected_rate, 1)}%, actual ${fmt(100 * run.actual_rate, 1)}%.${auc}`));
  };
  select.addEventListener("change", draw);
  draw();
}

// Dotted bars of what was expected next to solid bars of what happened, per bucket.
function expectedAgainstActual(buckets, [expectedName, expectedKey], [actualName, actualKey],
                               valueFormat, yaxis) {
  const names = buckets.map((b) => b.bucket);
  plot("perf-chart", [
    { type: "bar", name: expectedName, x: names, y: buckets.map((b) => b[expectedKey]),
      marker: { color: "rgba(0,114,178,.15)", line: { color: "#0072B2", width: 2 },
                pattern: { shape: ".", fgcolor: "#0072B2", size: 6 } },
      hovertemplate: `%{x}: ${expectedName} ${valueFormat}<extra></extra>` },
    { type: "bar", name: actualName, x: names, y: buckets.map((b) => b[actualKey]),
      marker: { color: "#0072B2" }, hovertemplate: `%{x}: ${actualName} ${valueFormat}<extra></extra>` },
  ], { barmode: "group", yaxis });
}

function drawValueOutcome(run) {
  // a clv run: predicted against actual spend per profile in each value bucket
  expectedAgainstActual(run.buckets, ["predicted", "expected_value"], ["actual", "actual_value"],
    "%{y:,.2f} per profile", { title: "spend per profile" });
  const money = (v) => (v === null ? "–" : fmt(v, 2));
  const rows = run.buckets.map((b) => el("tr", {}, el("td", {}, b.bucket),
    el("td", { class: "num" }, fmt(b.profiles)), el("td", { class: "num" }, fmt(b.buyers)),
    el("td", { class: "num" }, money(b.expected_value)), el("td", { class: "num" }, money(b.actual_value)),
    el("td", { class: "num" }, money(b.expected_total)), el("td", { class: "num" }, money(b.actual_total))));
  const head = ["Bucket", "Profiles", "Spent", "Predicted per profile", "Actual per profile",
    "Predicted total", "Actual total"];
  const table = el("table", { class: "compact" },
    el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", i ? { class: "num" } : {}, h)))),
    el("tbody", {}, ...rows));
  const gini = run.gini === null || run.gini === undefined ? ""
    : ` Normalised Gini on what was spent: ${fmt(run.gini, 3)}; decile MAPE ${fmt(100 * run.decile_mape, 1)}%.`;
  document.getElementById("perf-table").replaceChildren(table, el("p", { class: "muted" },
    `Overall: predicted ${money(run.expected_total)}, actual ${money(run.actual_total)}.${gini}`));
}

function setUpProfile() {
  if (!DATA || !DATA.history || !DATA.history.length) return;
  plot("history", [{ type: "scatter", mode: "lines+markers", x: DATA.history.map((h) => h.score_date),
    y: DATA.history.map((h) => h.score), text: DATA.history.map((h) => h.bucket),
    marker: { color: "#0072B2", size: 9 },
    hovertemplate: "%{x}: score %{y:.0f} (%{text})<extra></extra>" }],
    { yaxis: { title: "score", range: [-4, 104] }, xaxis: { type: "category" } });
}

// -- segments: the list, the builder (live preview), a segment's page (history, export, activate)

const segmentUrl = (id, action = "") => `/api/segments/${encodeURIComponent(id)}${action}`;

function cellText(v) {
  if (v === null || v === undefined) return "–";
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function membersTable(rows, caption) {
  if (!rows || !rows.length) return el("p", { class: "muted" }, "Nobody.");
  const keys = Object.keys(rows[0]);
  const numeric = (k) => typeof rows[0][k] === "number";
  return el("table", { class: "compact members" }, el("caption", {}, caption),
    el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", numeric(k) ? { class: "num" } : {}, k)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...keys.map((k) =>
      el("td", numeric(k) ? { class: "num" } : {}, cellText(r[k])))))));
}

function setUpHideButtons(errorBox) {
  for (const button of document.querySelectorAll("button[data-hide]")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("POST", segmentUrl(button.dataset.hide, "/hide"),
                  { hidden: button.dataset.hidden !== "true" });
        location.reload();
      } catch (e) { errorBox.textContent = e.message; button.disabled = false; }
    });
  }
}

function setUpSegments() {
  const toggle = document.getElementById("show-hidden");
  if (toggle) {
    const apply = () => {
      for (const row of document.querySelectorAll("tr.hidden-segment")) row.hidden = !toggle.checked;
    };
    toggle.addEventListener("change", apply);
    apply();  // a checkbox the browser restored on going back
  }
  setUpHideButtons(document.getElementById("segments-error"));
}

function setUpSegmentBuilder() {
  const form = document.getElementById("segment-builder");
  if (!form) return;
  const editing = DATA.segment;
  const $ = (id) => document.getElementById(id);
  const rule = $("b-rule"), name = $("b-name"), description = $("b-description");
  const published = $("b-published"), save = $("b-save");
  const ruleError = $("b-rule-error"), nameError = $("b-name-error"), formError = $("b-error");
  const preview = $("preview"), state = $("preview-state");
  let asked = 0;  // answers to older requests than the newest are dropped

  const showRuleError = (payload) => {
    ruleError.replaceChildren();
    if (!payload) { rule.removeAttribute("aria-invalid"); return; }
    rule.setAttribute("aria-invalid", "true");
    ruleError.append(el("p", {}, payload.error));
    const token = payload.detail && payload.detail.token;
    if (token && token.trim() !== rule.value.trim()) {
      ruleError.append(el("p", { class: "token" }, "The problem is at ", el("code", {}, token), "."));
    }
  };
  const showPreview = (result) => {
    $("preview-size").textContent = result ? fmt(result.profiles) : "–";
    $("preview-date").textContent = result ? result.score_date : "–";
    $("preview-words").textContent = result ? result.in_words : "";
    $("preview-sample").replaceChildren(...(result ? [membersTable(result.sample,
      result.profiles > result.sample.length
        ? `The first ${result.sample.length} of ${fmt(result.profiles)} by id` : "Everyone in it")] : []));
  };
  const check = async () => {
    const text = rule.value.trim();
    const mine = ++asked;
    if (!text) {
      showRuleError(null); showPreview(null);
      preview.dataset.state = "empty";
      state.textContent = "Type a rule to see who it selects.";
      return;
    }
    preview.dataset.state = "checking";
    state.textContent = "Checking…";
    try {
      const result = await api("POST", "/api/segments/preview", { rule: text, sample: 5 });
      if (mine !== asked) return;
      showRuleError(null);
      showPreview(result);
      preview.dataset.state = "ok";
      state.textContent = "Live: who the rule selects at the newest scores.";
    } catch (e) {
      if (mine !== asked) return;
      showRuleError(e.payload || { error: e.message });
      showPreview(null);
      preview.dataset.state = "error";
      state.textContent = "Fix the rule to see the preview.";
    }
  };
  const schedule = debounce(check, 300);
  rule.addEventListener("input", () => { preview.dataset.state = "typing"; schedule(); });

  let caret = false;  // insert at the end until the person has put the cursor somewhere
  rule.addEventListener("focus", () => { caret = true; });
  for (const button of document.querySelectorAll("button.insert")) {
    button.addEventListener("click", () => {
      const text = button.dataset.insert;
      const start = caret ? rule.selectionStart : rule.value.length;
      const end = caret ? rule.selectionEnd : rule.value.length;
      const before = rule.value.slice(0, start), after = rule.value.slice(end);
      const lead = before && !/[\s(]$/.test(before) ? " " : "";
      const trail = after && !/^[\s)]/.test(after) ? " " : "";
      rule.focus();
      rule.setRangeText(lead + text + trail, start, end, "end");
      preview.dataset.state = "typing";
      schedule();
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const box of [nameError, formError]) box.textContent = "";
    const body = { name: name.value.trim(), rule: rule.value.trim(),
                   description: description.value.trim(), published: published.checked };
    if (!body.name) { nameError.textContent = "Give the segment a name."; name.focus(); return; }
    if (!body.rule) { showRuleError({ error: "Write a rule: who should be in the segment?" }); rule.focus(); return; }
    save.disabled = true;
    try {
      let saved;
      if (editing) {
        const changes = {};
        if (body.name !== editing.name) changes.name = body.name;
        if (body.rule !== editing.rule) changes.rule = body.rule;
        if (body.description !== editing.description) changes.description = body.description;
        if (body.published !== editing.published) changes.published = body.published;
        saved = await api("POST", segmentUrl(editing.id, "/edit"), changes);
      } else {
        saved = await api("POST", "/api/segments", body);
      }
      location.href = `/segments/${encodeURIComponent(saved.id)}`;
    } catch (e) {
      const payload = e.payload || {};
      const detail = payload.detail || {};
      const field = detail.field || ((detail.errors || [])[0] || { loc: [] }).loc.slice(-1)[0];
      if ("token" in detail) showRuleError(payload);
      else if (field === "name") nameError.textContent = e.message;
      else formError.textContent = e.message;
      save.disabled = false;
    }
  });
  if (rule.value.trim()) check();
}

function activationLog(rows) {
  if (!rows.length) return el("p", { class: "muted" }, "Not activated yet.");
  const count = (n) => n === null || n === undefined ? "–" : fmt(n);
  return el("table", { class: "compact" },
    el("thead", {}, el("tr", {}, ...["When (UTC)", "Destination", "Mode", "Scores of"].map((h) => el("th", {}, h)),
      ...["Sent", "Entered", "Left"].map((h) => el("th", { class: "num" }, h)), el("th", {}, "Outcome"))),
    el("tbody", {}, ...rows.map((a) => el("tr", {},
      el("td", {}, a.started_at.slice(0, 19).replace("T", " ")), el("td", {}, a.destination),
      el("td", {}, a.mode), el("td", {}, a.score_date || ""),
      el("td", { class: "num" }, count(a.sent)), el("td", { class: "num" }, count(a.entered)),
      el("td", { class: "num" }, count(a.exited)),
      el("td", {}, el("span", { class: `status status-${a.status}` }, a.status),
        ...(a.error ? [" ", el("span", { class: "small" }, a.error)] : []))))));
}

function describeActivation(a) {
  const box = [el("p", {}, el("span", { class: `status status-${a.status}` }, a.status), " ",
    `Sent ${fmt(a.sent)} of ${fmt(a.profiles)} members to ${a.destination} (${a.mode}, scores of ${a.score_date || "–"}): ` +
    `${a.entered === null ? "–" : fmt(a.entered)} entered, ${a.exited === null ? "–" : fmt(a.exited)} left since the last activation there.`)];
  const d = a.detail || {};
  if (d.file) box.push(el("p", { class: "small" }, "Wrote ", el("code", {}, d.file), d.manifest ? " and its manifest." : "."));
  if (a.failed_batches) box.push(el("p", { class: "warning" }, `${fmt(a.failed_batches)} of ${fmt(a.batches)} batches failed; they are kept for replay.`));
  if (a.error) box.push(el("p", { class: "error" }, a.error));
  return box;
}

function setUpActivation() {
  const form = document.getElementById("activate-form");
  if (!form) return;
  const destination = document.getElementById("a-destination");
  const mode = document.getElementById("a-mode");
  const button = document.getElementById("activate-button");
  const outcome = document.getElementById("activation-outcome");
  const modes = () => {
    const option = destination.selectedOptions[0];
    const allowed = (option && DATA.modes[option.dataset.kind]) || [];
    mode.replaceChildren(el("option", { value: "" }, allowed.length ? `the destination's default` : "–"),
      ...allowed.map((m) => el("option", { value: m }, m)));
  };
  destination.addEventListener("change", modes);
  modes();
  const refreshLog = async () => {
    const rows = await api("GET", segmentUrl(DATA.id, "/activations?limit=20"));
    document.getElementById("activation-log").replaceChildren(activationLog(rows));
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!destination.value) return;
    button.disabled = true;
    outcome.dataset.state = "sending";
    outcome.replaceChildren(el("p", { class: "muted" }, `Sending to ${destination.value}…`));
    try {
      const done = await api("POST", segmentUrl(DATA.id, "/activate"),
                             { destination: destination.value, mode: mode.value || null });
      outcome.replaceChildren(...describeActivation(done));
      outcome.dataset.state = done.status;
    } catch (e) {
      outcome.replaceChildren(el("p", {}, el("span", { class: "status status-failed" }, "failed"), " ", e.message));
      outcome.dataset.state = "failed";
    } finally { button.disabled = false; }
    try { await refreshLog(); } catch (e) { /* the outcome above already says what happened */ }
  });

  const added = document.getElementById("destination-form");
  const error = document.getElementById("destination-error");
  added.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const value = (id) => document.getElementById(id).value.trim();
    try {
      const made = await api("POST", "/api/destinations", { name: value("d-name"), kind: "folder",
        config: { path: value("d-path"), format: value("d-format") } });
      if (!destination.querySelector("option[data-kind]")) destination.replaceChildren();
      destination.append(el("option", { value: made.name, "data-kind": made.kind }, `${made.name} (${made.kind})`));
      destination.value = made.name;
      destination.disabled = false;
      button.disabled = false;
      modes();
      document.getElementById("d-name").value = "";
      document.getElementById("d-path").value = "";
      outcome.replaceChildren(el("p", { class: "notice" }, `Added folder destination ${made.name}: it writes into ${made.config.path}.`));
      outcome.dataset.state = "added";
    } catch (e) { error.textContent = e.message; }
  });
}

function setUpSegment() {
  const errorBox = document.getElementById("segment-error");
  const button = document.querySelector("[data-delete-segment]");
  if (button) {
    button.addEventListener("click", async () => {
      if (!confirm(`Delete segment "${button.dataset.segmentName}"?`)) return;
      try {
        await api("POST", segmentUrl(button.dataset.deleteSegment, "/delete"));
        location.href = "/segments";
      } catch (e) { errorBox.textContent = e.message; }
    });
  }
  const publish = document.getElementById("publish-segment");
  if (publish) {
    publish.addEventListener("click", async () => {
      publish.disabled = true;
      try { await api("POST", segmentUrl(publish.dataset.segment, "/publish")); location.reload(); }
      catch (e) { errorBox.textContent = e.message; publish.disabled = false; }
    });
  }
  setUpHideButtons(errorBox);
  if (DATA && DATA.history && DATA.history.length) {
    const h = DATA.history;
    const x = h.map((r) => r.score_date);
    plot("segment-history", [
      { type: "bar", name: "profiles", x, y: h.map((r) => r.profiles), marker: { color: "#0072B2" },
        hovertemplate: "%{x}: %{y:,} profiles<extra></extra>" },
      { type: "bar", name: "entered", x, y: h.map((r) => r.entered), marker: { color: "#009E73" },
        hovertemplate: "%{x}: %{y:,} entered<extra></extra>" },
      { type: "bar", name: "left", x, y: h.map((r) => r.left), marker: { color: "#D55E00" },
        hovertemplate: "%{x}: %{y:,} left<extra></extra>" },
    ], { barmode: "group", xaxis: { type: "category", title: "scores of" }, yaxis: { title: "profiles" } });
  }
  setUpActivation();
}

document.addEventListener("DOMContentLoaded", () => {
  setUpRuns();
  ({ instances: () => document.getElementById("clone-dialog") && setUpInstances(),
     "instance-new": setUpNewInstance, scores: setUpScores, evaluation: setUpEvaluation,
     performance: setUpPerformance, profile: setUpProfile, segments: setUpSegments,
     "segment-builder": setUpSegmentBuilder, segment: setUpSegment }[PAGE] || (() => {}))();
});
