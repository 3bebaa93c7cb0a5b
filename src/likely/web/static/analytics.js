// The Analytics tab: each chart asks /api/instances/{name}/analytics/{kind} with the page's
// filter (segment, bucket, attribute condition) and its own choices (runs, attribute). Uses the
// helpers of likely.js (DATA, PAGE, COLOURS, plot, el, api, fmt), loaded before this file.
"use strict";

(() => {
  const ORDER = ["High", "Medium", "Low"];
  const NOT_SCORED = "Not scored";
  const GREY = "#9AA4B1";
  const KINDS = ["trend", "flow", "overlap", "distribution", "reasons", "cohorts", "outcomes"];
  const pct = (n, d = 1) => (n === null || n === undefined ? "–" : `${fmt(n, d)}%`);
  const shown = {};   // the last answer per kind (to redraw without asking again)
  const asked = {};   // a counter per kind: a late answer to an older question is dropped
  let colour = (state) => GREY;

  const $ = (id) => document.getElementById(id);
  const checked = (id) => [...$(id).querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);

  function currentFilter() {
    return { segment: $("f-segment").value, bucket: $("f-bucket").value, where: $("f-where").value.trim() };
  }

  const choices = {
    trend: () => ({}),
    flow: () => ($("flow-all").checked ? { runs: "all" } : { runs: `${$("flow-from").value},${$("flow-to").value}` }),
    overlap: () => ({ runs: checked("overlap-runs").join(",") }),
    distribution: () => ({ runs: checked("distribution-runs").join(",") }),
    reasons: () => ({ runs: $("reasons-run").value }),
    cohorts: () => ({ attribute: $("cohort-attribute").value }),
    outcomes: () => ({}),
  };

  function url(kind) {
    const params = new URLSearchParams();
    const own = choices[kind]();
    const all = kind === "outcomes" ? own : { ...currentFilter(), ...own };  // outcomes: everyone
    for (const [k, v] of Object.entries(all)) if (v !== "" && v !== null && v !== undefined) params.set(k, v);
    return `/api/instances/${encodeURIComponent(DATA.instance)}/analytics/${kind}?${params}`;
  }

  function problem(kind) {
    if (kind === "overlap" && checked("overlap-runs").length < 2) return "Choose two or more runs to compare.";
    if (kind === "distribution" && !checked("distribution-runs").length) return "Choose one or more runs.";
    if (kind === "flow" && !$("flow-all").checked && $("flow-from").value === $("flow-to").value) {
      return "Choose two different runs (or every run).";
    }
    if (kind === "flow" && DATA.runs.length < 2) return "A flow needs two runs: run the instance again at a later date.";
    if (kind === "cohorts" && !DATA.attributes.length) return "This instance reads no profiles dataset, so there are no attributes to group by.";
    return null;
  }

  function say(kind, message) {
    const panel = $(`p-${kind}`);
    Plotly.purge($(`c-${kind}`));
    $(`c-${kind}`).replaceChildren(el("p", { class: "muted" }, message));
    $(`n-${kind}`).replaceChildren();
    if (kind === "outcomes") { Plotly.purge($("c-calibration")); $("c-calibration").replaceChildren(); }
    panel.dataset.state = "message";
  }

  async function load(kind) {
    const panel = $(`p-${kind}`);
    const ticket = (asked[kind] = (asked[kind] || 0) + 1);
    const blocked = problem(kind);
    if (blocked) { say(kind, blocked); return; }
    panel.dataset.state = "loading";
    try {
      const data = await api("GET", url(kind));
      if (ticket !== asked[kind]) return;
      shown[kind] = data;
      const chart = $(`c-${kind}`);
      if (chart.firstElementChild && chart.firstElementChild.tagName === "P") chart.replaceChildren();
      RENDER[kind](data);
      panel.dataset.state = "ready";
    } catch (e) {
      if (ticket !== asked[kind]) return;
      say(kind, e.message);
      panel.dataset.state = "error";
      if (kind === "trend") $("filter-error").textContent = e.message;
    }
  }

  async function loadAll() {
    $("filter-error").textContent = "";
    $("filter-words").textContent = "";
    await Promise.all(KINDS.map(load));
  }

  function table(head, rows, numeric = () => true) {
    return el("div", { class: "scroll" }, el("table", { class: "compact" },
      el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", i && numeric(i) ? { class: "num" } : {}, h)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c, i) => el("td", i && numeric(i) ? { class: "num" } : {}, c)))))));
  }

  function details(summary, content) {
    return el("details", {}, el("summary", {}, summary), content);
  }

  // -- the charts ------------------------------------------------------------------------------

  const RENDER = {
    trend(d) {
      const x = d.dates.map((r) => r.score_date);
      const bars = [...ORDER].reverse().map((b) => ({
        type: "bar", name: b, x, y: d.dates.map((r) => r.buckets[b]), marker: { color: colour(b) },
        hovertemplate: `%{x}: %{y:,} ${b}<extra></extra>`,
      }));
      const line = { type: "scatter", mode: "lines+markers", name: "mean score", x, yaxis: "y2",
        y: d.dates.map((r) => r.mean_score), line: { color: "#1B2A3A", width: 2 },
        hovertemplate: "%{x}: mean score %{y:.1f}<extra></extra>" };
      plot("c-trend", [...bars, line], {
        barmode: "stack", xaxis: { type: "category", title: "score date" },
        yaxis: { title: "profiles", rangemode: "tozero" },
        yaxis2: { title: "mean score", overlaying: "y", side: "right", range: [0, 100], showgrid: false,
          tickmode: "array", tickvals: [0, 25, 50, 75, 100] },
        margin: { l: 60, r: 50, t: 10, b: 50 },
      });
      const last = d.dates[d.dates.length - 1];
      $("filter-words").textContent = `Showing ${d.filter.in_words}.`;
      $("n-trend").replaceChildren(
        el("p", { class: "summary" }, `${fmt(last.profiles)} profiles at ${last.score_date}: ` +
          ORDER.map((b) => `${fmt(last.buckets[b])} ${b}`).join(", ") + `; mean score ${fmt(last.mean_score, 1)}.`),
        details("Numbers per score date", table(["Score date", "Profiles", ...ORDER, "Mean score", "Mean probability"],
          d.dates.map((r) => [r.score_date, fmt(r.profiles), ...ORDER.map((b) => fmt(r.buckets[b])),
            fmt(r.mean_score, 1), fmt(r.mean_probability, 3)]))));
    },

    flow(d) {
      const dates = d.runs.map((r) => r.score_date);
      const stage = Object.fromEntries(dates.map((day, i) => [day, i]));
      const nodes = [];
      const index = {};
      const node = (day, state) => {
        const key = `${day}|${state}`;
        if (!(key in index)) {
          index[key] = nodes.length;
          const s = stage[day];
          nodes.push({ label: state, day, stage: s, order: d.states.indexOf(state), colour: colour(state),
            x: dates.length > 1 ? Math.min(0.999, Math.max(0.001, s / (dates.length - 1))) : 0.5,
            inflow: 0, outflow: 0 });
        }
        return index[key];
      };
      const links = { source: [], target: [], value: [], color: [], customdata: [] };
      for (const t of d.transitions) {
        const [from, to] = [node(t.from_date, t.from), node(t.to_date, t.to)];
        nodes[from].outflow += t.profiles;
        nodes[to].inflow += t.profiles;
        links.source.push(from);
        links.target.push(to);
        links.value.push(t.profiles);
        links.color.push(t.from === NOT_SCORED || t.to === NOT_SCORED ? "rgba(154,164,177,.35)" :
          t.from === t.to ? "rgba(90,98,112,.18)" : "rgba(0,114,178,.30)");
        links.customdata.push(`${t.from_date} ${t.from} → ${t.to_date} ${t.to}`);
      }
      if (!links.value.length) { say("flow", "Nobody to show: no profile passes the filter in these runs."); return; }
      // each column stacked High, Medium, Low, Not scored, every node centred on its own share
      for (let s = 0; s < dates.length; s += 1) {
        const column = nodes.filter((n) => n.stage === s).sort((a, b) => a.order - b.order);
        const size = (n) => Math.max(n.inflow, n.outflow);
        const total = column.reduce((sum, n) => sum + size(n), 0) || 1;
        const room = 0.96 - 0.04 * (column.length - 1);
        let top = 0.02;
        for (const n of column) {
          const height = room * size(n) / total;
          n.y = Math.min(0.999, Math.max(0.001, top + height / 2));
          top += height + 0.04;
        }
      }
      plot("c-flow", [{
        type: "sankey", arrangement: "snap", valueformat: ",",
        node: { label: nodes.map((n) => n.label), color: nodes.map((n) => n.colour), x: nodes.map((n) => n.x),
          y: nodes.map((n) => n.y), pad: 12, thickness: 14, line: { color: "rgba(0,0,0,.35)", width: 1 },
          customdata: nodes.map((n) => n.day), hovertemplate: "%{customdata} %{label}: %{value:,} profiles<extra></extra>" },
        link: { ...links, hovertemplate: "%{customdata}: %{value:,} profiles<extra></extra>" },
      }], {
        margin: { l: 10, r: 10, t: 26, b: 10 },
        annotations: dates.map((day, i) => ({ x: dates.length > 1 ? i / (dates.length - 1) : 0.5, y: 1.07,
          xref: "paper", yref: "paper", text: day, showarrow: false,
          xanchor: i === 0 ? "left" : i === dates.length - 1 ? "right" : "center" })),
      });
      const lines = d.pairs.map((p) => el("p", { class: "pair" },
        `${p.from.score_date} → ${p.to.score_date}: ${fmt(p.stayed)} stayed, ${fmt(p.up)} moved up, ` +
        `${fmt(p.down)} moved down, ${fmt(p.entered)} entered, ${fmt(p.left)} left.`));
      const last = d.pairs[d.pairs.length - 1];
      const cells = Object.fromEntries(d.transitions.filter((t) => t.from_date === last.from.score_date)
        .map((t) => [`${t.from}|${t.to}`, t.profiles]));
      $("n-flow").replaceChildren(...lines.slice(-4),
        details(`From ${last.from.score_date} (rows) to ${last.to.score_date} (columns)`,
          table(["", ...d.states], d.states.map((f) => [f, ...d.states.map((t) => fmt(cells[`${f}|${t}`] || 0))]))));
    },

    overlap(d) {
      const k = d.runs.length;
      const dates = d.runs.map((r) => r.score_date);
      const fill = colour(d.bucket);
      if (k <= 3) {
        const layouts = {
          2: { circles: [[-0.55, 0], [0.55, 0]], r: 1, labels: [[-0.75, 1.22], [0.75, 1.22]],
               regions: { 1: [-1.0, 0], 2: [1.0, 0], 3: [0, 0] } },
          3: { circles: [[-0.5, 0.3], [0.5, 0.3], [0, -0.55]], r: 0.9,
               labels: [[-1.05, 1.38], [1.05, 1.38], [0, -1.62]],
               regions: { 1: [-0.95, 0.55], 2: [0.95, 0.55], 4: [0, -1.05], 3: [0, 0.78],
                          5: [-0.6, -0.42], 6: [0.6, -0.42], 7: [0, 0.02] } },
        }[k];
        const shapes = layouts.circles.map(([cx, cy]) => ({ type: "circle", xref: "x", yref: "y",
          x0: cx - layouts.r, x1: cx + layouts.r, y0: cy - layouts.r, y1: cy + layouts.r,
          fillcolor: fill, opacity: 0.28, line: { color: "#1B2A3A", width: 1.5 } }));
        const annotations = d.regions.map((region) => {
          const mask = region.mask.reduce((m, on, i) => m + (on ? 2 ** i : 0), 0);
          const [x, y] = layouts.regions[mask];
          return { x, y, text: `<b>${fmt(region.profiles)}</b>`, showarrow: false, font: { size: 15 } };
        }).concat(dates.map((day, i) => ({ x: layouts.labels[i][0], y: layouts.labels[i][1],
          text: `${day}: ${fmt(d.sizes[i])}`, showarrow: false, font: { size: 13 } })));
        plot("c-overlap", [{ type: "scatter", x: [], y: [], hoverinfo: "skip" }], {
          shapes, annotations, showlegend: false, margin: { l: 10, r: 10, t: 10, b: 10 },
          xaxis: { range: [-2.1, 2.1], visible: false, fixedrange: true },
          yaxis: { range: [-1.85, 1.6], visible: false, scaleanchor: "x", fixedrange: true },
        });
      } else {
        const top = d.regions.slice(0, 20);
        plot("c-overlap", [{ type: "bar", x: top.map((r, i) => i), y: top.map((r) => r.profiles),
          marker: { color: fill }, customdata: top.map((r) => r.in.join(" + ")),
          hovertemplate: "in %{customdata} only: %{y:,}<extra></extra>" }], {
          xaxis: { tickvals: top.map((r, i) => i), ticktext: top.map((r) => `${r.in.length} run${r.in.length > 1 ? "s" : ""}`),
            title: `combinations of runs (largest ${top.length})` },
          yaxis: { title: `profiles in ${d.bucket}` }, showlegend: false,
        });
      }
      $("n-overlap").replaceChildren(
        el("p", { class: "summary" }, `${fmt(d.union)} profiles in ${d.bucket} at least once; ${fmt(d.in_all)} in all ${k} runs.`),
        details("Every region", table([...dates, "Profiles"],
          d.regions.map((r) => [...r.mask.map((on) => (on ? "●" : "")), fmt(r.profiles)]), (i) => i === k)));
    },

    distribution(d) {
      const n = d.histograms.length;
      const width = d.edges[1] - d.edges[0];
      const centres = d.edges.slice(0, -1).map((e) => e + width / 2);
      const gap = n > 1 ? 0.02 : 0;
      const traces = [];
      const layout = { barmode: "stack", bargap: 0.05, yaxis: { title: "profiles" }, annotations: [],
        margin: { l: 55, r: 10, t: 26, b: 40 } };
      d.histograms.forEach((h, i) => {
        const axis = i === 0 ? "x" : `x${i + 1}`;
        layout[i === 0 ? "xaxis" : `xaxis${i + 1}`] = { domain: [i / n + gap, (i + 1) / n - gap], anchor: "y",
          range: [0, 100], tickvals: [0, 50, 100], title: i === Math.floor((n - 1) / 2) ? "score" : undefined };
        layout.annotations.push({ x: (i + 0.5) / n, y: 1.06, xref: "paper", yref: "paper", showarrow: false,
          text: n > 3 ? h.score_date.slice(5) : h.score_date, font: { size: n > 6 ? 10 : 12 } });
        for (const b of [...ORDER].reverse()) {
          traces.push({ type: "bar", name: b, x: centres, y: h.by_bucket[b], width, xaxis: axis, yaxis: "y",
            marker: { color: colour(b) }, showlegend: i === 0, legendgroup: b,
            hovertemplate: `${h.score_date}, score %{x:.0f}±${width / 2}: %{y:,} ${b}<extra></extra>` });
        }
      });
      plot("c-distribution", traces, layout);
      $("n-distribution").replaceChildren(details("Profiles per score bin",
        table(["Score", ...d.histograms.map((h) => h.score_date)],
          centres.map((c, i) => [`${d.edges[i]}–${d.edges[i + 1]}`, ...d.histograms.map((h) => fmt(h.counts[i]))]))));
    },

    reasons(d) {
      const lines = [...d.reasons].reverse();
      plot("c-reasons", ORDER.map((b) => ({
        type: "bar", orientation: "h", name: `${b} (${fmt(d.buckets[b])})`, y: lines.map((r) => r.reason),
        x: lines.map((r) => r.by_bucket[b].share_pct), marker: { color: colour(b) },
        hovertemplate: `%{y}: %{x:.1f}% of ${b}<extra></extra>` })).reverse(), {
        barmode: "group", xaxis: { title: "share of the bucket's profiles (%)", rangemode: "tozero" },
        margin: { l: 130, r: 10, t: 10, b: 40 }, legend: { orientation: "h", y: -0.25, traceorder: "reversed" },
      });
      $("n-reasons").replaceChildren(
        el("p", { class: "summary" }, `${fmt(d.profiles)} profiles at ${d.run.score_date}; top reason: ${d.reasons.length ? d.reasons[0].reason : "–"}.`),
        details("Shares per bucket", table(["Top reason", "Profiles", ...ORDER],
          d.reasons.map((r) => [r.reason, fmt(r.profiles), ...ORDER.map((b) => pct(r.by_bucket[b].share_pct))]))));
    },

    cohorts(d) {
      const measure = $("cohort-measure").value;
      const value = (p) => (measure === "mean_probability" ? p.mean_probability : p.shares_pct[measure]);
      const palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
        "#000000", "#8C6D31", "#6B6ECF", "#B5CF6B", "#E7969C", "#7F7F7F", "#17BECF"];
      plot("c-cohorts", d.series.map((s, i) => ({
        type: "scatter", mode: "lines+markers", name: s.value, x: s.points.map((p) => p.score_date),
        y: s.points.map(value), line: { color: palette[i % palette.length] },
        hovertemplate: `${s.value}, %{x}: %{y:${measure === "mean_probability" ? ".3f" : ".1f"}}${measure === "mean_probability" ? "" : "%"}<extra></extra>`,
      })), {
        xaxis: { type: "category", title: "score date" },
        yaxis: { title: measure === "mean_probability" ? "mean probability" : `${measure} share (%)`, rangemode: "tozero" },
        legend: { orientation: "h", y: -0.3 }, margin: { l: 60, r: 10, t: 10, b: 60 },
      });
      const by = d.by === "month" ? `month of ${d.attribute}` : d.attribute;
      $("n-cohorts").replaceChildren(
        el("p", { class: "summary" }, `${d.series.length} cohorts by ${by}.`),
        details("Mean probability · High share per score date", table([by, ...d.runs.map((r) => r.score_date)],
          d.series.map((s) => [s.value, ...s.points.map((p) => (p.profiles ? `${fmt(p.mean_probability, 3)} · ${pct(p.shares_pct.High)}` : "–"))]))));
    },

    outcomes(d) {
      if (!d.measured.length) {
        const first = d.pending[0];
        say("outcomes", first ? `No run's outcome window has passed yet: the scores of ${first.score_date} can be checked after ${first.window_closes}.`
          : "No run to check yet.");
        return;
      }
      const x = d.measured.map((r) => r.score_date);
      const rate = (r, b, key) => { const found = r.buckets.find((q) => q.bucket === b); return found ? found[key] : null; };
      const traces = [];
      for (const b of ORDER) {
        traces.push({ type: "scatter", mode: "lines+markers", name: `${b} actual`, x, y: d.measured.map((r) => rate(r, b, "actual_rate")),
          line: { color: colour(b), width: 3 }, legendgroup: b, hovertemplate: `%{x} ${b}: actual %{y:.1%}<extra></extra>` });
        traces.push({ type: "scatter", mode: "lines", name: `${b} expected`, x, y: d.measured.map((r) => rate(r, b, "expected_rate")),
          line: { color: colour(b), dash: "dot", width: 2 }, legendgroup: b, hovertemplate: `%{x} ${b}: expected %{y:.1%}<extra></extra>` });
      }
      plot("c-outcomes", traces, { xaxis: { type: "category", title: "scores of" },
        yaxis: { title: "goal rate", tickformat: ".0%", rangemode: "tozero" }, legend: { orientation: "h", y: -0.3 },
        margin: { l: 60, r: 10, t: 10, b: 60 } });
      const newest = d.measured[d.measured.length - 1];
      const bins = newest.calibration || [];
      plot("c-calibration", [
        { type: "scatter", mode: "lines", x: [0, 1], y: [0, 1], name: "perfect", line: { color: GREY, dash: "dash" }, hoverinfo: "skip" },
        { type: "scatter", mode: "lines+markers", name: `scores of ${newest.score_date}`, x: bins.map((c) => c.mean_predicted),
          y: bins.map((c) => c.observed_rate), marker: { color: "#0072B2", size: 8 },
          hovertemplate: "predicted %{x:.1%}: observed %{y:.1%}<extra></extra>" },
      ], { xaxis: { title: "predicted", tickformat: ".0%", range: [0, 1] }, yaxis: { title: "observed", tickformat: ".0%", range: [0, 1] },
        legend: { orientation: "h", y: -0.3 }, margin: { l: 60, r: 10, t: 10, b: 60 } });
      const pending = d.pending.map((p) => `${p.score_date} (after ${p.window_closes})`).join(", ");
      $("n-outcomes").replaceChildren(
        table(["Scores of", "Profiles", "Expected", "Actual", "AUC", "ECE", ...ORDER.map((b) => `${b}: expected → actual`)],
          d.measured.map((r) => [r.score_date, fmt(r.profiles), pct(100 * r.expected_rate), pct(100 * r.actual_rate),
            fmt(r.auc, 3), fmt(r.ece, 3), ...ORDER.map((b) => { const e = rate(r, b, "expected_rate"); const a = rate(r, b, "actual_rate");
              return `${e === null ? "–" : pct(100 * e)} → ${a === null ? "–" : pct(100 * a)}`; })])),
        el("p", { class: "muted" }, `Calibration shown for the newest measured run (${newest.score_date}).` + (pending ? ` Still open: ${pending}.` : "")));
    },
  };

  // -- the page ------------------------------------------------------------------------------

  function keepInAddress() {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...currentFilter(), attribute: $("cohort-attribute").value })) {
      if (v) params.set(k, v);
    }
    history.replaceState(null, "", `${location.pathname}${params.toString() ? `?${params}` : ""}`);
  }

  function setUp() {
    if (PAGE !== "analytics" || !DATA || DATA.empty) return;
    const palette = COLOURS[DATA.type] || COLOURS.conversion;
    colour = (state) => palette[state] || GREY;
    $("analytics-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      keepInAddress();
      loadAll();
    });
    $("f-clear").addEventListener("click", () => {
      $("f-segment").value = ""; $("f-bucket").value = ""; $("f-where").value = "";
      keepInAddress();
      loadAll();
    });
    for (const id of ["flow-from", "flow-to", "flow-all"]) $(id).addEventListener("change", () => load("flow"));
    $("overlap-runs").addEventListener("change", () => load("overlap"));
    $("distribution-runs").addEventListener("change", () => load("distribution"));
    $("reasons-run").addEventListener("change", () => load("reasons"));
    $("cohort-attribute").addEventListener("change", () => { keepInAddress(); load("cohorts"); });
    $("cohort-measure").addEventListener("change", () => shown.cohorts && RENDER.cohorts(shown.cohorts));
    loadAll();
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
