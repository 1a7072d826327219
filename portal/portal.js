// The vostok portal: Find (tables, columns, examples), Ask (ADQL with highlighting,
// completion and a live check by the server), Look (a virtualised table, the sky), Send (SAMP).
// Search forms (cone; images and spectra) write ADQL into the editor; a query runs
// synchronously or as an asynchronous job (jobs.js). Logged in with a token (auth.js), the
// queries and jobs are the user's own, a result can be saved into their VOSpace, and Keep
// browses that space (space.js). Plot draws a histogram or a scatter (plot.js).
// Every state worth sharing is in the URL: ?query=…&maxrec=…&view=table|sky&run=1 (and
// &cone=ra,dec,radius after a form search), or ?job=<job URL> for a job's result.

import { highlight, offsetOf, complete } from "./adql.js";
import { Grid } from "./grid.js";
import * as sky from "./sky.js";
import * as send from "./send.js";
import * as forms from "./forms.js";
import * as jobs from "./jobs.js";
import * as auth from "./auth.js";
import * as space from "./space.js";
import * as plot from "./plot.js";

const $ = (id) => document.getElementById(id);
const state = {
  tables: null, result: null, selectedRow: -1, checkSeq: 0, view: "table", errorAt: null,
  // The cone of the last form search ({ra, dec, r} in degrees), drawn on the sky.
  cone: null,
  // The job whose result is shown (its URL), if any.
  job: null,
  // The folder the VOSpace browser shows (a node path: "alice/results"), when logged in.
  spacePath: null,
  // What the last plot drew ({kind, points, bins, skipped}).
  plot: null,
};
// For tests and the browser console: the page's state (read it, do not change it).
window.vostokPortal = state;

// ---------------------------------------------------------------- Find
async function loadTables() {
  const r = await fetch("portal/api/tables");
  state.tables = await r.json();
  renderTables();
  fillConeTables();
}

function renderTables() {
  const q = $("filter").value.trim().toLowerCase();
  const list = $("tables");
  list.replaceChildren();
  let shown = 0;
  for (const s of state.tables.schemas) {
    for (const t of s.tables) {
      const hay = [t.name, t.title, t.description, ...t.columns.flatMap((c) => [c.name, c.description, c.ucd, c.unit])]
        .filter(Boolean).join(" ").toLowerCase();
      if (q && !q.split(/\s+/).every((w) => hay.includes(w))) continue;
      shown++;
      list.append(tableItem(t));
    }
  }
  $("table-count").textContent = `${shown} table${shown === 1 ? "" : "s"}${q ? ` match “${q}”` : ""}`;
}

function tableItem(t) {
  const li = document.createElement("li");
  li.dataset.table = t.name;
  const d = document.createElement("details");
  const sum = document.createElement("summary");
  const name = document.createElement("span");
  name.className = "tname";
  name.textContent = t.name;
  const rows = document.createElement("span");
  rows.className = "rows";
  rows.textContent = t.rows != null ? ` ${Number(t.rows).toLocaleString("en")} rows` : "";
  sum.append(name, rows);
  d.append(sum);
  const desc = document.createElement("p");
  desc.className = "desc";
  desc.textContent = t.title && t.description && t.title !== t.description ? `${t.title}. ${t.description}` : (t.description || t.title || "");
  const svc = document.createElement("p");
  svc.className = "svc";
  svc.append("Served by ");
  for (const s of t.services) {
    const a = document.createElement("a");
    a.href = s.kind === "SCS" ? `${s.url}?RA=0&DEC=0&SR=1` : s.kind === "TAP" ? "tap/tables" : s.url;
    const span = document.createElement("span");
    span.textContent = s.kind;
    a.append(span);
    svc.append(a);
  }
  const use = document.createElement("button");
  use.type = "button";
  use.textContent = "Query this table";
  use.addEventListener("click", () => {
    const cols = t.columns.filter((c) => c.principal).map((c) => c.name);
    const list = (cols.length ? cols : t.columns.slice(0, 8).map((c) => c.name)).join(", ");
    setQuery(`SELECT TOP 1000 ${list}\nFROM ${t.name}`);
    $("editor").focus();
  });
  const table = document.createElement("table");
  table.className = "cols";
  table.innerHTML = "<caption class=\"muted\">Columns</caption><thead><tr><th scope=\"col\">name [unit]</th><th scope=\"col\">description (UCD)</th></tr></thead>";
  const tb = document.createElement("tbody");
  for (const c of t.columns) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = c.name;
    if (c.unit) {
      const u = document.createElement("span");
      u.className = "unit";
      u.textContent = ` [${c.unit}]`;
      name.append(u);
    }
    const desc = document.createElement("td");
    desc.textContent = c.description || "";
    if (c.ucd) {
      const u = document.createElement("span");
      u.className = "ucd";
      u.textContent = ` (${c.ucd})`;
      desc.append(u);
    }
    tr.append(name, desc);
    tb.append(tr);
  }
  table.append(tb);
  d.append(desc, svc, use, table);
  li.append(d);
  return li;
}

async function loadExamples() {
  const list = $("examples");
  try {
    const r = await fetch("tap/examples");
    const doc = new DOMParser().parseFromString(await r.text(), "application/xhtml+xml");
    for (const ex of doc.querySelectorAll('[typeof="example"]')) {
      const name = ex.querySelector('[property="name"]')?.textContent.trim();
      const query = ex.querySelector('[property="query"]')?.textContent;
      if (!name || !query) continue;
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = name;
      b.title = ex.querySelector("p")?.textContent.trim() || "";
      b.addEventListener("click", () => {
        setQuery(query.trim());
        run();
      });
      li.append(b);
      list.append(li);
    }
  } catch (e) {
    list.textContent = `The examples could not be read: ${e.message}`;
  }
}

// ---------------------------------------------------------------- Ask
const editor = () => $("editor");

function setQuery(text) {
  editor().value = text;
  onEdit();
}

let checkTimer = null;
let urlTimer = null;
function onEdit() {
  state.errorAt = null;
  paint();
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, 250);
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => saveUrl(false), 400);
}

function paint() {
  const text = editor().value;
  $("highlight").innerHTML = highlight(text, state.errorAt);
  $("highlight").scrollTop = editor().scrollTop;
}

// The server's check of the text (never run): the error with its line and column.
async function check() {
  const text = editor().value;
  const seq = ++state.checkSeq;
  const out = $("check");
  if (!text.trim()) {
    out.textContent = "";
    out.className = "check";
    return;
  }
  let answer;
  try {
    const r = await fetch("portal/api/check", { method: "POST", body: text, headers: { "Content-Type": "text/plain" } });
    answer = r.headers.get("content-type")?.includes("json") ? await r.json() : { ok: false, message: `${r.status} ${await r.text()}` };
  } catch (e) {
    answer = { ok: false, message: `cannot check: ${e.message}` };
  }
  if (seq !== state.checkSeq) return; // a newer edit is being checked
  if (answer.ok) {
    out.textContent = "✓ The query is valid ADQL for these tables.";
    out.className = "check good";
    state.errorAt = null;
  } else {
    const where = answer.line != null ? `line ${answer.line}, column ${answer.column}: ` : "";
    out.textContent = `✗ ${answer.kind ? answer.kind + " error " : ""}${where ? "at " + where : ": "}${answer.message}`;
    out.className = "check bad";
    out.dataset.line = answer.line ?? "";
    out.dataset.column = answer.column ?? "";
    state.errorAt = answer.line != null ? offsetOf(text, answer.line, answer.column) : null;
  }
  paint();
}

// Completion: Ctrl+Space, or typing a "." after a name.
let comp = null;
function openCompletion() {
  const ta = editor();
  const { from, items } = complete(ta.value, ta.selectionStart, state.tables);
  const list = $("completions");
  if (!items.length) return closeCompletion();
  comp = { from, items, active: 0 };
  list.replaceChildren(...items.map((it, i) => {
    const li = document.createElement("li");
    li.id = `comp-${i}`;
    li.setAttribute("role", "option");
    li.textContent = it.label;
    const k = document.createElement("span");
    k.className = "kind";
    k.textContent = it.kind;
    li.append(k);
    li.title = it.detail;
    li.addEventListener("mousedown", (e) => { e.preventDefault(); accept(i); });
    return li;
  }));
  const caret = caretXY(ta);
  list.style.left = `${caret.x}px`;
  list.style.top = `${caret.y}px`;
  list.hidden = false;
  activate(0);
}

function activate(i) {
  comp.active = (i + comp.items.length) % comp.items.length;
  const list = $("completions");
  for (const li of list.children) li.setAttribute("aria-selected", "false");
  const li = list.children[comp.active];
  li.setAttribute("aria-selected", "true");
  li.scrollIntoView({ block: "nearest" });
  editor().setAttribute("aria-activedescendant", li.id);
}

function accept(i) {
  const ta = editor();
  const it = comp.items[i];
  const end = ta.selectionStart;
  ta.setRangeText(it.insert, comp.from, end, "end");
  closeCompletion();
  onEdit();
}

function closeCompletion() {
  comp = null;
  $("completions").hidden = true;
  editor().removeAttribute("aria-activedescendant");
}

// The caret's position inside the editor box, from a mirror of the text before it.
function caretXY(ta) {
  const pre = $("highlight");
  const mirror = document.createElement("pre");
  mirror.className = "code";
  const cs = getComputedStyle(ta);
  Object.assign(mirror.style, { position: "absolute", visibility: "hidden", width: cs.width, left: "0", top: "0" });
  mirror.textContent = ta.value.slice(0, ta.selectionStart);
  const mark = document.createElement("span");
  mark.textContent = "\u200b";
  mirror.append(mark);
  pre.parentElement.append(mirror);
  const x = mark.offsetLeft;
  const y = mark.offsetTop + 20 - ta.scrollTop;
  mirror.remove();
  return { x: Math.min(x, ta.clientWidth - 200), y };
}

function onKey(e) {
  if (comp) {
    if (e.key === "ArrowDown") { e.preventDefault(); return activate(comp.active + 1); }
    if (e.key === "ArrowUp") { e.preventDefault(); return activate(comp.active - 1); }
    if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); return accept(comp.active); }
    if (e.key === "Escape") { e.preventDefault(); return closeCompletion(); }
  }
  if (e.key === " " && e.ctrlKey) { e.preventDefault(); return openCompletion(); }
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); state.cone = null; return run(); }
}

// ---------------------------------------------------------------- Run, Look
function syncUrl(format, absolute) {
  const p = new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", QUERY: editor().value });
  const maxrec = $("maxrec").value;
  if (maxrec) p.set("MAXREC", maxrec);
  if (format) p.set("RESPONSEFORMAT", format);
  const rel = `tap/sync?${p}`;
  return absolute ? new URL(rel, document.baseURI).href : rel;
}

// Runs the editor's query synchronously; true when a result is shown.
async function run() {
  closeCompletion();
  const text = editor().value;
  if (!text.trim()) return false;
  state.job = null;
  state.queryText = text;
  saveUrl(true);
  const status = $("run-status");
  status.textContent = "Running…";
  busy(true);
  const t0 = performance.now();
  try {
    const body = new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", QUERY: text, MAXREC: $("maxrec").value || "100000" });
    const r = await auth.authFetch("tap/sync", { method: "POST", body });
    const xml = await r.text();
    const table = parseVotable(xml);
    if (table.error) {
      status.textContent = `The service refused the query: ${table.error}`;
      return false;
    }
    await showResult(table, t0, null);
    status.textContent = "Done.";
    return true;
  } catch (e) {
    status.textContent = `The query failed: ${e.message}`;
    return false;
  } finally {
    busy(false);
  }
}

function busy(on) {
  for (const id of ["run", "run-async"]) $(id).disabled = on;
}

// Shows a parsed result: the table, its downloads, the sky. `jobUrl`: the job it comes from
// (its VOTable is the job's result; the other formats run the query again synchronously).
async function showResult(table, t0, jobUrl) {
  state.result = table;
  state.selectedRow = -1;
  grid.setData(table.columns, table.rows);
  const secs = ((performance.now() - t0) / 1000).toFixed(2);
  $("result-info").textContent = `${table.rows.length.toLocaleString("en")} rows, ${table.columns.length} columns` +
    (table.overflow ? ` — more rows match: raise “Rows at most” or download the whole result` : "") +
    (jobUrl ? ` — the result of job ${jobUrl.split("/").pop()}` : "") + ` (${secs} s)`;
  for (const [id, fmt] of [["dl-votable", "votable"], ["dl-csv", "csv"], ["dl-fits", "fits"]]) {
    const a = $(id);
    a.href = jobUrl && fmt === "votable" ? `${jobUrl}/results/result` : syncUrl(fmt, false);
    a.setAttribute("download", `result.${fmt === "votable" ? "vot" : fmt}`);
  }
  $("send-table").disabled = false;
  $("send-point").disabled = true;
  $("send-image").disabled = true;
  previewSeq++;
  $("preview").hidden = true;
  fillPlotColumns();
  state.plotStale = true;
  if (state.view === "plot") drawPlot();
  if (state.view === "sky") await drawSky();
  else state.skyStale = true;
}

// A logged-in user's job result is theirs only: the VOTable link is fetched with the token
// and handed to the browser as a file.
async function downloadJobResult(e) {
  if (!state.job || !auth.user()) return;
  e.preventDefault();
  const status = $("run-status");
  try {
    const r = await auth.authFetch(`${state.job}/results/result`);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = "result.vot";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    status.textContent = `The result could not be downloaded: ${err.message}`;
  }
}

// ---------------------------------------------------------------- Async jobs
async function runAsync(extra = {}) {
  closeCompletion();
  const text = editor().value;
  if (!text.trim()) return;
  state.queryText = text;
  const status = $("run-status");
  busy(true);
  let job;
  try {
    status.textContent = "Submitting the job…";
    job = await jobs.submit(text, $("maxrec").value || "", extra);
  } catch (e) {
    status.textContent = e.message;
    busy(false);
    return;
  }
  $("jobs-box").open = true;
  renderJobs();
  try {
    await openJob(job.url);
  } finally {
    busy(false);
  }
  return job;
}

// "Save to my VOSpace": the query as a job whose result the server writes at the path (DEST),
// in the format the name's extension says.
async function saveToSpace(e) {
  e.preventDefault();
  const me = auth.user();
  const out = $("save-status");
  if (!me) return;
  const rel = $("save-path").value.trim().replace(/^\/+/, "");
  if (!rel || rel.split("/").some((seg) => seg === "" || seg === "." || seg === "..")) {
    out.textContent = "Give a path in your space, such as results/bright.vot.";
    return;
  }
  const ext = (rel.match(/\.([a-z]+)$/i) || [])[1]?.toLowerCase();
  const format = ext === "csv" ? "csv" : ext === "fits" || ext === "fit" ? "fits" : "votable";
  const path = `${me.user}/${rel}`;
  const text = editor().value;
  if (!text.trim()) return;
  delete out.dataset.saved;
  out.textContent = `Saving to ${path}…`;
  $("save-run").disabled = true;
  try {
    const job = await jobs.submit(text, $("maxrec").value || "", { DEST: space.uriOf(path), RESPONSEFORMAT: format });
    out.dataset.job = job.url;
    renderJobs();
    const last = await jobs.follow(job.url, (p) => {
      renderJobs();
      out.textContent = `Saving to ${path}: job ${job.url.split("/").pop()} ${p}${jobs.FINAL.has(p) ? "" : "…"}`;
    });
    if (last === "COMPLETED") {
      out.textContent = `Saved to ${space.uriOf(path)}.`;
      out.dataset.saved = path;
      if (state.spacePath) openFolder(state.spacePath);
    } else if (last === "ERROR") {
      out.textContent = `Not saved: ${await jobs.error(job.url)}`;
    } else {
      out.textContent = `Not saved: the job ended ${last}.`;
    }
  } catch (err) {
    out.textContent = `Not saved: ${err.message}`;
  } finally {
    $("save-run").disabled = false;
  }
}

// Follows a job to its end and shows its result (or its error).
async function openJob(url) {
  const status = $("run-status");
  const id = url.split("/").pop();
  const t0 = performance.now();
  state.job = url;
  saveUrl(true);
  try {
    // Another job, or a synchronous query, shown meanwhile: this one is no longer followed.
    const elsewhere = () => state.job !== url;
    const last = await jobs.follow(url, (p) => {
      renderJobs();
      if (elsewhere()) return;
      status.textContent = `Job ${id}: ${p}${jobs.FINAL.has(p) ? "" : "…"}`;
      status.dataset.phase = p;
    }, { cancelled: elsewhere });
    if (last === null || elsewhere()) return;
    if (last === "COMPLETED") {
      const text = await jobs.result(url);
      if (elsewhere()) return;
      const table = text.trimStart().startsWith("<") ? parseVotable(text) : null;
      if (!table) status.textContent = `Job ${id}: COMPLETED; its result is not a VOTable (a job saving CSV or FITS into VOSpace), so it is not shown here.`;
      else if (table.error) status.textContent = `Job ${id} failed: ${table.error}`;
      else {
        const known = jobs.remembered().find((j) => j.url === url);
        if (known && known.query && editor().value !== known.query) setQuery(known.query);
        await showResult(table, t0, url);
        status.textContent = `Job ${id}: COMPLETED.`;
      }
    } else if (last === "ERROR") {
      status.textContent = `Job ${id}: ERROR — ${await jobs.error(url)}`;
    } else if (last === "GONE") {
      status.textContent = `Job ${id} is no longer on the server (destroyed).`;
    }
  } catch (e) {
    status.textContent = `Job ${id}: ${e.message}`;
  }
}

function renderJobs() {
  const list = $("jobs");
  const all = jobs.remembered();
  $("jobs-count").textContent = `(${all.length})`;
  list.replaceChildren(...all.map((j) => {
    const li = document.createElement("li");
    li.dataset.url = j.url;
    const phase = document.createElement("span");
    phase.className = `phase phase-${(j.phase || "").toLowerCase()}`;
    phase.textContent = j.phase || "?";
    const q = document.createElement("code");
    q.textContent = (j.query || "").replace(/^--.*$/gm, "").replace(/\s+/g, " ").trim().slice(0, 90);
    q.title = j.query || "";
    if (j.dest) q.title += `\n→ ${j.dest}`;
    const when = document.createElement("span");
    when.className = "muted small";
    when.textContent = j.created ? new Date(j.created).toLocaleString("sv-SE") : "";
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = j.phase === "COMPLETED" ? "Show result" : j.phase === "ERROR" ? "Show error" : "Follow";
    open.disabled = j.phase === "GONE";
    open.addEventListener("click", () => {
      if (j.query) setQuery(j.query);
      openJob(j.url);
    });
    const items = [phase, q, when, open];
    if (!jobs.FINAL.has(j.phase)) {
      const ab = document.createElement("button");
      ab.type = "button";
      ab.textContent = "Abort";
      ab.addEventListener("click", async () => {
        try {
          await jobs.abort(j.url);
          jobs.note(j.url, { phase: await jobs.phase(j.url) });
          renderJobs();
        } catch (e) {
          $("run-status").textContent = e.message;
        }
      });
      items.push(ab);
    }
    const del = document.createElement("button");
    del.type = "button";
    del.className = "quiet";
    const verb = auth.user() ? "Delete" : "Forget";
    del.textContent = verb;
    del.setAttribute("aria-label", `${verb} job ${j.url.split("/").pop()}`);
    del.addEventListener("click", async () => {
      try {
        await jobs.forget(j.url);
      } catch (e) {
        $("run-status").textContent = e.message;
      }
      renderJobs();
    });
    items.push(del);
    li.append(...items);
    return li;
  }));
}

// The phases of the remembered jobs, read again (after a reload); logged in, the user's job
// list from the server.
async function refreshJobs() {
  $("jobs-help").textContent = auth.user()
    ? `The jobs of ${auth.user().user}, as the server lists them.`
    : "The jobs this browser submitted (their addresses are kept in this browser only).";
  try {
    await jobs.loadMine();
  } catch (e) {
    $("run-status").textContent = e.message;
  }
  renderJobs();
  for (const j of jobs.remembered()) {
    if (jobs.FINAL.has(j.phase) && j.phase !== "COMPLETED") continue;
    try {
      jobs.note(j.url, { phase: await jobs.phase(j.url) });
    } catch {
      // Unreachable now: keep what was known.
    }
  }
  renderJobs();
}

// ---------------------------------------------------------------- Search forms
function fillConeTables() {
  const sel = $("cone-table");
  const keep = sel.value;
  sel.replaceChildren();
  for (const s of state.tables.schemas) {
    for (const t of s.tables) {
      if (!t.position) continue;
      const o = document.createElement("option");
      o.value = t.name;
      o.textContent = t.rows != null ? `${t.name} (${Number(t.rows).toLocaleString("en")} rows)` : t.name;
      sel.append(o);
    }
  }
  if (keep) sel.value = keep;
  else if ([...sel.options].some((o) => o.value === "gaia.dr3_bright")) sel.value = "gaia.dr3_bright";
}

function tableInfo(name) {
  for (const s of state.tables?.schemas || []) for (const t of s.tables) if (t.name === name) return t;
  return null;
}

// Common to both forms: where, then the ADQL, then the run on the sky view.
async function formSearch(prefix, adqlOf) {
  const out = $(`${prefix}-status`);
  out.className = "form-status";
  let at, r, radiusText;
  try {
    r = forms.radiusDeg($(`${prefix}-radius`).value, $(`${prefix}-unit`).value);
    radiusText = `${$(`${prefix}-radius`).value} ${$(`${prefix}-unit`).value}`;
    out.textContent = "Looking up the position…";
    at = await forms.locate($(`${prefix}-where`).value);
  } catch (e) {
    out.textContent = e.message;
    out.className = "form-status bad";
    return;
  }
  out.textContent = `${at.label}: RA ${at.ra.toFixed(6)}°, Dec ${at.dec.toFixed(6)}°${at.credit ? ` — ${at.credit}` : ""}`;
  out.dataset.ra = String(at.ra);
  out.dataset.dec = String(at.dec);
  let text;
  try {
    text = adqlOf(at, r, radiusText);
  } catch (e) {
    out.textContent = e.message;
    out.className = "form-status bad";
    return;
  }
  setQuery(text);
  state.cone = { ra: at.ra, dec: at.dec, r };
  if (await run()) {
    selectView("sky");
    $("look").scrollIntoView({ block: "nearest" });
  }
}

function coneSearch(e) {
  e.preventDefault();
  formSearch("cone", (at, r, radiusText) => {
    const t = tableInfo($("cone-table").value);
    if (!t || !t.position) throw new Error("choose a table with positions");
    const principal = t.columns.filter((c) => c.principal).map((c) => c.name);
    const columns = principal.length ? principal : t.columns.slice(0, 8).map((c) => c.name);
    return forms.coneAdql({ table: t.name, columns, ra: t.position.ra, dec: t.position.dec, at, r, radiusText });
  });
}

function obsSearch(e) {
  e.preventDefault();
  formSearch("obs", (at, r, radiusText) => forms.obsAdql({
    at, r, radiusText,
    kind: $("obs-kind").value,
    band: $("obs-band").value,
    from: $("obs-from").value,
    to: $("obs-to").value,
  }));
}

// A VOTable TABLEDATA document as {columns, rows, overflow} or {error}.
export function parseVotable(xml) {
  const status = /<INFO\b[^>]*name="QUERY_STATUS"[^>]*value="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/INFO>)/g;
  let m;
  let overflow = false;
  while ((m = status.exec(xml)) !== null) {
    if (m[1] === "ERROR") return { error: decode((m[2] || "").trim()) || "unknown error" };
    if (m[1] === "OVERFLOW") overflow = true;
  }
  const columns = [];
  const field = /<FIELD\b([^>]*?)(?:\/>|>([\s\S]*?)<\/FIELD>)/g;
  while ((m = field.exec(xml)) !== null) {
    const attrs = {};
    for (const a of m[1].matchAll(/([\w:-]+)="([^"]*)"/g)) attrs[a[1]] = decode(a[2]);
    const desc = m[2] ? /<DESCRIPTION>([\s\S]*?)<\/DESCRIPTION>/.exec(m[2]) : null;
    columns.push({
      name: attrs.name || `col${columns.length + 1}`,
      unit: attrs.unit || "",
      ucd: attrs.ucd || "",
      datatype: attrs.datatype || "char",
      arraysize: attrs.arraysize || "",
      description: desc ? decode(desc[1].trim()) : "",
    });
  }
  const numeric = columns.map((c) => !c.arraysize && ["short", "int", "long", "float", "double", "unsignedByte"].includes(c.datatype));
  const longs = columns.map((c, i) => numeric[i] && c.datatype === "long");
  const rows = [];
  const start = xml.indexOf("<TABLEDATA>");
  const end = xml.indexOf("</TABLEDATA>");
  if (start >= 0 && end > start) {
    const data = xml.slice(start + 11, end);
    const tr = /<TR>([\s\S]*?)<\/TR>/g;
    const td = /<TD\/>|<TD>([\s\S]*?)<\/TD>/g;
    while ((m = tr.exec(data)) !== null) {
      const row = new Array(columns.length).fill(null);
      let i = 0;
      td.lastIndex = 0;
      let c;
      while ((c = td.exec(m[1])) !== null && i < columns.length) {
        const raw = c[1];
        if (raw === undefined || raw === "") row[i] = null;
        else if (longs[i]) {
          // 64-bit integers (Gaia source_id) do not fit a double: BigInt keeps every digit.
          try { row[i] = BigInt(raw.trim()); } catch { row[i] = raw; }
        } else if (numeric[i]) {
          const v = Number(raw);
          row[i] = raw === "NaN" || Number.isNaN(v) ? null : v;
        } else row[i] = raw.includes("&") ? decode(raw) : raw;
        i++;
      }
      rows.push(row);
    }
  }
  return { columns, rows, overflow };
}

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
function decode(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (all, e) => {
    if (e[0] === "#") return String.fromCodePoint(e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? all;
  });
}

const VIEWS = ["table", "sky", "plot"];

function selectView(view) {
  state.view = view;
  for (const v of VIEWS) {
    $(`tab-${v}`).setAttribute("aria-selected", String(v === view));
    $(`tab-${v}`).tabIndex = v === view ? 0 : -1;
    $(`view-${v}`).hidden = v !== view;
  }
  saveUrl(false);
  if (view === "sky" && state.result && state.skyStale !== false) drawSky();
  if (view === "plot" && state.result && state.plotStale !== false) drawPlot();
}

// ---------------------------------------------------------------- Plot
function fillPlotColumns() {
  const cols = state.result.columns;
  const numeric = cols.map((c, i) => ({ c, i })).filter(({ c }) =>
    !c.arraysize && ["short", "int", "long", "float", "double", "unsignedByte"].includes(c.datatype));
  const keep = { x: $("plot-x").value, y: $("plot-y").value };
  const opt = (value, text) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  };
  $("plot-x").replaceChildren(...numeric.map(({ c, i }) => opt(String(i), c.name)));
  $("plot-y").replaceChildren(opt("", "none: a histogram of X"), ...numeric.map(({ c, i }) => opt(String(i), c.name)));
  const has = (sel, v) => [...$(sel).options].some((o) => o.value === v);
  if (has("plot-x", keep.x)) $("plot-x").value = keep.x;
  if (has("plot-y", keep.y)) $("plot-y").value = keep.y;
}

function drawPlot() {
  const out = $("plot-status");
  state.plotStale = false;
  if (!state.result) return;
  if ($("plot-x").value === "") {
    $("plot").replaceChildren();
    out.textContent = "The result has no numeric column to plot.";
    return;
  }
  const x = Number($("plot-x").value);
  const y = $("plot-y").value === "" ? null : Number($("plot-y").value);
  const bins = Math.max(1, Math.min(1000, Math.round(Number($("plot-bins").value) || 30)));
  $("plot-bins").disabled = y != null; // bins are the histogram's
  try {
    state.plot = plot.draw($("plot"), state.result.columns, state.result.rows, x, y, bins);
    const p = state.plot;
    out.textContent = (p.kind === "histogram" ? `${p.points.toLocaleString("en")} values in ${p.bins} bins` :
      `${p.points.toLocaleString("en")} points`) + (p.skipped ? ` (${p.skipped.toLocaleString("en")} rows without a value left out)` : "") + ".";
  } catch (e) {
    state.plot = null;
    $("plot").replaceChildren();
    out.textContent = e.message;
  }
}

// The tables with a position the last query read (their coverage is drawn on the sky).
function queriedTables() {
  const names = [];
  for (const s of state.tables?.schemas || []) for (const t of s.tables) if (t.position) names.push(t.name);
  return sky.tablesIn(state.queryText ?? editor().value, names);
}

// Draws (or removes, when the box is unticked) the coverage of the queried tables.
async function drawCoverage() {
  const out = $("sky-moc-status");
  const host = $("aladin");
  const ready = new Set();
  host.dataset.mocsReady = "0";
  const shown = await sky.coverage(host, queriedTables(), $("sky-moc").checked, (name) => {
    ready.add(name);
    host.dataset.mocsReady = String(ready.size);
  });
  state.coverage = shown;
  host.dataset.mocs = shown.join(",");
  out.textContent = shown.length ? `Coverage of ${shown.join(", ")}.` :
    $("sky-moc").checked ? "No served table with a coverage in the query." : "";
}

async function drawSky() {
  const out = $("sky-status");
  state.skyStale = false;
  try {
    out.textContent = "Drawing…";
    await drawCoverage();
    const { drawn, footprints, reason } = await sky.show($("aladin"), state.result.columns, state.result.rows,
      (row) => pickRow(row), state.cone);
    out.textContent = reason ? `Nothing to draw: ${reason}.` : `${drawn.toLocaleString("en")} positions` +
      (footprints ? ` and ${footprints.toLocaleString("en")} footprints` : "") +
      (state.cone ? " and the search cone" : "") + " on the sky (Aladin Lite).";
    $("aladin").dataset.points = String(drawn);
    $("aladin").dataset.footprints = String(footprints || 0);
  } catch (e) {
    state.skyStale = true;
    out.textContent = `The sky view cannot be shown in this browser: ${e.message || e}`;
  }
}

// The URL of the FITS image of row `row` (its `access_url`, when its `access_format`, if any,
// says FITS), absolute; null for other rows.
function imageUrl(row) {
  const cols = state.result.columns.map((c) => c.name.toLowerCase());
  const u = cols.indexOf("access_url");
  const f = cols.indexOf("access_format");
  const r = state.result.rows[row];
  if (u < 0 || !r || !r[u]) return null;
  if (f >= 0 && r[f] && !/fits/i.test(String(r[f]))) return null;
  return new URL(String(r[u]), document.baseURI).href;
}

// The DataLink #preview of the selected row (a row with an obs_publisher_did), shown beside
// the table; null when the row has none.
let previewSeq = 0;
async function showPreview(row) {
  const seq = ++previewSeq;
  const cols = state.result.columns.map((c) => c.name.toLowerCase());
  const i = cols.indexOf("obs_publisher_did");
  const did = i >= 0 ? state.result.rows[row]?.[i] : null;
  const fig = $("preview");
  if (!did) {
    fig.hidden = true;
    return;
  }
  const links = `datalink/links?ID=${encodeURIComponent(did)}`;
  let found = null;
  try {
    const r = await auth.authFetch(links);
    const t = parseVotable(await r.text());
    const c = t.columns.map((x) => x.name);
    found = (t.rows || []).find((x) => x[c.indexOf("semantics")] === "#preview" &&
      /^image\//.test(x[c.indexOf("content_type")] || "") && x[c.indexOf("access_url")]);
    found = found && found[c.indexOf("access_url")];
  } catch {
    found = null;
  }
  if (seq !== previewSeq) return;
  if (!found) {
    fig.hidden = true;
    return;
  }
  // The server names itself after the request's Host: the same file as this page reaches it.
  const u = new URL(found, document.baseURI);
  const src = u.origin === location.origin ? u.href : new URL(`${u.pathname.replace(/^\//, "")}${u.search}`, document.baseURI).href;
  const img = $("preview-img");
  img.src = src;
  img.alt = `Preview of ${did}`;
  $("preview-cap").textContent = `Preview of ${did}`;
  $("preview-links").href = links;
  fig.dataset.did = did;
  fig.hidden = false;
}

function pickRow(row) {
  state.selectedRow = row;
  showPreview(row);
  const pos = state.result && sky.positionColumns(state.result.columns);
  $("send-point").disabled = !pos;
  $("send-image").disabled = !(state.result && imageUrl(row));
  if (pos) {
    const r = state.result.rows[row];
    sky.mark(r[pos.ra], r[pos.dec]);
  }
}

// ---------------------------------------------------------------- URL state
function saveUrl(push) {
  const p = new URLSearchParams();
  const q = editor().value;
  if (q) p.set("query", q);
  if ($("maxrec").value && $("maxrec").value !== "100000") p.set("maxrec", $("maxrec").value);
  if (state.view !== "table") p.set("view", state.view);
  if (state.cone) p.set("cone", [state.cone.ra, state.cone.dec, state.cone.r].join(","));
  if (state.job) p.set("job", state.job);
  else if (state.result || push) p.set("run", "1");
  const url = `${location.pathname}${p.toString() ? "?" + p : ""}`;
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function loadUrl() {
  const p = new URLSearchParams(location.search);
  editor().value = p.get("query") || "SELECT TOP 100 source_id, ra, dec, phot_g_mean_mag\nFROM gaia.dr3_bright\nORDER BY phot_g_mean_mag";
  if (p.get("maxrec")) $("maxrec").value = p.get("maxrec");
  // A job of this server only.
  let job = null;
  try {
    const u = new URL(p.get("job") || "", location.href);
    if (p.get("job") && u.origin === location.origin && /\/tap\/async\/[^/]+$/.test(u.pathname)) job = u.href;
  } catch {
    job = null;
  }
  // The cone of a form search, drawn on the sky: "ra,dec,radius" in degrees.
  const c = (p.get("cone") || "").split(",").map(Number);
  state.cone = c.length === 3 && c.every(Number.isFinite) && c[2] > 0 ? { ra: c[0], dec: c[1], r: c[2] } : null;
  return { view: VIEWS.includes(p.get("view")) ? p.get("view") : "table", run: p.get("run") === "1", job };
}

// ---------------------------------------------------------------- Send
async function sampDo(what) {
  const out = $("samp-status");
  try {
    out.textContent = "Sending…";
    await what();
    out.textContent = "Sent (the hub may ask you to accept this page first).";
  } catch (e) {
    out.textContent = e.message || String(e);
  }
}

// ---------------------------------------------------------------- Login
// The page as the login (or its absence) makes it: the account bar, the save form, the jobs
// (the user's from the server, or this browser's), the VOSpace browser.
function showAccount() {
  const me = auth.user();
  const info = auth.serverInfo();
  $("login-form").hidden = !!me;
  $("login-issuer").hidden = !(info && info.oidc && info.oidc.client_id);
  if (info && info.oidc) $("login-issuer").textContent = `Log in at ${new URL(info.oidc.issuer).host}`;
  $("who").hidden = !me;
  $("who-name").textContent = me ? me.user : "";
  document.body.dataset.user = me ? me.user : "";
  document.body.dataset.account = "ready";
  if (me) space.setAuthority(me.authority);
  const hasSpace = !!(me && me.vospace && me.authority);
  $("save-form").hidden = !hasSpace;
  $("space-anon").hidden = hasSpace;
  $("space-body").hidden = !hasSpace;
  if (!me && info && !info.vospace) $("space-anon").textContent = "This server keeps no users' files.";
  else if (!me) $("space-anon").textContent = "Log in (at the top of the page) to see your files.";
  refreshJobs();
  if (hasSpace) openFolder(me.user);
  else {
    state.spacePath = null;
    $("space-list").tBodies[0].replaceChildren();
    $("space-crumbs").replaceChildren();
  }
}

async function onLogin(e) {
  e.preventDefault();
  const out = $("login-status");
  const input = $("login-token");
  out.textContent = "Checking the token…";
  try {
    const me = await auth.login(input.value);
    input.value = "";
    out.textContent = `Logged in as ${me.user}.`;
    showAccount();
    $("logout").focus();
  } catch (err) {
    out.textContent = `Not logged in: ${err.message}`;
  }
}

function onLogout() {
  auth.logout();
  $("login-status").textContent = "Logged out.";
  showAccount();
  $("login-token").focus();
}

// ---------------------------------------------------------------- Keep: the VOSpace browser
function spaceSay(text, bad = false) {
  const out = $("space-status");
  out.textContent = text;
  out.className = bad ? "bad" : "";
}

async function openFolder(path) {
  state.spacePath = path;
  let listing;
  try {
    listing = await space.list(path);
  } catch (e) {
    spaceSay(e.message, true);
    return;
  }
  if (state.spacePath !== path) return;
  renderCrumbs(path);
  const body = $("space-list").tBodies[0];
  body.replaceChildren(...listing.children.map(spaceRow));
  $("space-list").dataset.path = path;
  if (!listing.children.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 5;
    td.className = "muted";
    td.textContent = "This folder is empty.";
    tr.append(td);
    body.append(tr);
  }
}

function renderCrumbs(path) {
  const parts = path.split("/");
  const nav = $("space-crumbs");
  nav.replaceChildren();
  parts.forEach((name, i) => {
    const here = parts.slice(0, i + 1).join("/");
    if (i) nav.append(" / ");
    if (i === parts.length - 1) {
      const s = document.createElement("strong");
      s.textContent = name;
      s.setAttribute("aria-current", "location");
      nav.append(s);
    } else {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link";
      b.textContent = name;
      b.addEventListener("click", () => openFolder(here));
      nav.append(b);
    }
  });
}

function size(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function sharing(n) {
  const parts = [];
  if (n.ispublic) parts.push("public");
  if (n.groupread.length) parts.push(`read: ${n.groupread.map(space.groupName).join(", ")}`);
  if (n.groupwrite.length) parts.push(`write: ${n.groupwrite.map(space.groupName).join(", ")}`);
  return parts.join("; ") || "private";
}

// A labelled text field and a button in a small form; `act(value)` runs on submit.
function miniForm(labelText, value, buttonText, act, id) {
  const f = document.createElement("form");
  f.className = "inline";
  const l = document.createElement("label");
  l.textContent = labelText;
  l.htmlFor = id;
  const i = document.createElement("input");
  i.type = "text";
  i.id = id;
  i.value = value;
  i.spellcheck = false;
  i.autocomplete = "off";
  const b = document.createElement("button");
  b.type = "submit";
  b.textContent = buttonText;
  f.append(l, i, b);
  f.addEventListener("submit", (e) => { e.preventDefault(); act(i.value.trim()); });
  return f;
}

let rowSeq = 0;
function spaceRow(n) {
  const tr = document.createElement("tr");
  tr.dataset.name = n.name;
  tr.dataset.type = n.type;
  const name = document.createElement("td");
  if (n.type === "ContainerNode") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = `${n.name}/`;
    b.setAttribute("aria-label", `Open folder ${n.name}`);
    b.addEventListener("click", () => openFolder(n.path));
    name.append(b);
  } else {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = n.name;
    b.setAttribute("aria-label", `Download ${n.name}`);
    b.addEventListener("click", () => download(n));
    name.append(b);
  }
  const sz = document.createElement("td");
  sz.textContent = n.type === "ContainerNode" ? "" : size(n.length);
  sz.className = "num";
  const when = document.createElement("td");
  when.textContent = n.date ? n.date.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
  const shared = document.createElement("td");
  shared.className = "shared";
  shared.textContent = sharing(n);
  const manage = document.createElement("td");
  const d = document.createElement("details");
  const sum = document.createElement("summary");
  sum.textContent = "Manage";
  sum.setAttribute("aria-label", `Manage ${n.name}`);
  const k = ++rowSeq;
  const rel = n.path.split("/").slice(1).join("/");
  const home = n.path.split("/")[0];
  const del = document.createElement("button");
  del.type = "button";
  del.textContent = "Delete";
  del.setAttribute("aria-label", `Delete ${n.name}`);
  del.addEventListener("click", () => spaceDo(`Deleted ${n.name}.`, () => space.remove(n.path)));
  const pub = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = n.ispublic;
  box.addEventListener("change", () => spaceDo(box.checked ? `${n.name} is public.` : `${n.name} is no longer public.`,
    () => space.setProperties(n.path, n.type, { [space.PROP.ispublic]: box.checked ? "true" : null })));
  pub.append(box, " Public (anyone may read it)");
  const groups = (list) => list.map(space.groupName).join(" ");
  const share = (prop, v) => {
    const names = v.split(/[\s,]+/).filter(Boolean);
    return spaceDo(`Sharing of ${n.name} changed.`, () => space.setProperties(n.path, n.type,
      { [prop]: names.length ? names.map(space.groupUri).join(" ") : null }));
  };
  d.append(sum,
    miniForm("Move or rename to", rel, "Move", (to) => {
      const clean = to.replace(/^\/+|\/+$/g, "");
      if (!clean || clean.split("/").some((s) => s === "." || s === "..")) return spaceSay("Give a path in your space.", true);
      spaceDo(`Moved ${n.name} to ${clean}.`, () => space.move(n.path, `${home}/${clean}`));
    }, `mv-${k}`),
    miniForm("Groups that may read", groups(n.groupread), "Share", (v) => share(space.PROP.groupread, v), `gr-${k}`),
    miniForm("Groups that may write", groups(n.groupwrite), "Share", (v) => share(space.PROP.groupwrite, v), `gw-${k}`),
    pub, del);
  manage.append(d);
  tr.append(name, sz, when, shared, manage);
  return tr;
}

async function spaceDo(done, what) {
  spaceSay("Working…");
  try {
    await what();
    spaceSay(done);
  } catch (e) {
    spaceSay(e.message, true);
  }
  if (state.spacePath) await openFolder(state.spacePath);
}

async function download(n) {
  spaceSay(`Preparing ${n.name}…`);
  try {
    const url = await space.downloadUrl(n.path);
    const a = document.createElement("a");
    a.href = url;
    a.download = n.name;
    document.body.append(a);
    a.click();
    a.remove();
    spaceSay(`Downloading ${n.name}.`);
  } catch (e) {
    spaceSay(e.message, true);
  }
}

function onMkdir(e) {
  e.preventDefault();
  const name = $("mkdir-name").value.trim();
  if (!name || name.includes("/") || name === "." || name === "..") return spaceSay("A folder name has no “/”.", true);
  $("mkdir-name").value = "";
  spaceDo(`Created ${name}.`, () => space.mkdir(`${state.spacePath}/${name}`));
}

async function onUpload() {
  const input = $("space-file");
  const files = [...input.files];
  if (!files.length || !state.spacePath) return;
  const bar = $("space-progress");
  const total = files.reduce((n, f) => n + f.size, 0) || 1;
  let before = 0;
  let updates = 0;
  bar.hidden = false;
  bar.max = total;
  bar.value = 0;
  try {
    for (const f of files) {
      spaceSay(`Uploading ${f.name}…`);
      await space.upload(`${state.spacePath}/${f.name}`, f, (sent) => {
        bar.value = before + sent;
        bar.dataset.updates = String(++updates);
      });
      before += f.size;
    }
    spaceSay(`Uploaded ${files.map((f) => f.name).join(", ")}.`);
  } catch (err) {
    spaceSay(err.message, true);
  } finally {
    input.value = "";
    bar.value = bar.max;
  }
  await openFolder(state.spacePath);
}

// ---------------------------------------------------------------- start
const grid = new Grid($("grid"), { onSelect: (row) => pickRow(row) });

function start() {
  const ta = editor();
  ta.addEventListener("input", (e) => {
    state.cone = null; // the text is no longer the form's
    onEdit();
    if (e.data === "." && state.tables) openCompletion();
    else if (comp) openCompletion();
  });
  ta.addEventListener("keydown", onKey);
  ta.addEventListener("scroll", () => { $("highlight").scrollTop = ta.scrollTop; });
  ta.addEventListener("blur", () => setTimeout(closeCompletion, 150));
  $("run").addEventListener("click", () => { state.cone = null; run(); });
  $("run-async").addEventListener("click", () => { state.cone = null; runAsync(); });
  $("sky-moc").addEventListener("change", () => {
    if (state.view === "sky" && state.result && !state.skyStale) drawCoverage().catch(() => {});
  });
  $("cone-form").addEventListener("submit", coneSearch);
  $("obs-form").addEventListener("submit", obsSearch);
  $("maxrec").addEventListener("change", () => saveUrl(false));
  $("filter").addEventListener("input", () => state.tables && renderTables());
  $("tab-table").addEventListener("click", () => selectView("table"));
  $("tab-sky").addEventListener("click", () => selectView("sky"));
  $("tab-plot").addEventListener("click", () => selectView("plot"));
  for (const v of VIEWS) {
    $(`tab-${v}`).addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const i = VIEWS.indexOf(state.view) + (e.key === "ArrowRight" ? 1 : VIEWS.length - 1);
        const next = VIEWS[i % VIEWS.length];
        selectView(next);
        $(`tab-${next}`).focus();
      }
    });
  }
  for (const id of ["plot-x", "plot-y", "plot-bins"]) $(id).addEventListener("change", drawPlot);
  $("plot-form").addEventListener("submit", (e) => { e.preventDefault(); drawPlot(); });
  $("dl-votable").addEventListener("click", downloadJobResult);
  $("preview-close").addEventListener("click", () => { previewSeq++; $("preview").hidden = true; });
  $("save-form").addEventListener("submit", saveToSpace);
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("login-issuer").addEventListener("click", () => auth.startIssuerLogin().catch((e) => {
    $("login-status").textContent = `Not logged in: ${e.message}`;
  }));
  $("mkdir-form").addEventListener("submit", onMkdir);
  $("space-file").addEventListener("change", onUpload);
  $("space-refresh").addEventListener("click", () => state.spacePath && openFolder(state.spacePath));
  // The hub fetches the table itself, without the user's token: a logged-in user's job result
  // is sent as the query's synchronous URL instead.
  $("send-table").addEventListener("click", () => sampDo(() => {
    state.sentTable = state.job && !auth.user() ? `${state.job}/results/result` : syncUrl("votable", true);
    state.sentResult = state.result;
    return send.sendTable(state.sentTable, "vostok result");
  }));
  $("send-image").addEventListener("click", () => sampDo(() => {
    const url = imageUrl(state.selectedRow);
    return send.sendImage(url, decodeURIComponent(new URL(url).pathname.split("/").pop() || "image"));
  }));
  // A row highlighted in another tool (TOPCAT) of the table this page sent: selected here.
  send.onMessage("table.highlight.row", (params) => {
    const row = Number(params.row);
    const ours = state.sentTable && (params.url === state.sentTable || params["table-id"] === state.sentTable);
    if (!ours || state.result !== state.sentResult || !Number.isInteger(row) || row < 0 || row >= state.result.rows.length) return;
    selectView("table");
    grid.selectRow(row);
    state.highlighted = row;
    $("samp-status").textContent = `Row ${row + 1} highlighted by a SAMP client.`;
  });
  $("send-point").addEventListener("click", () => sampDo(() => {
    const pos = sky.positionColumns(state.result.columns);
    const r = state.result.rows[state.selectedRow];
    return send.pointAt(r[pos.ra], r[pos.dec]);
  }));
  window.addEventListener("popstate", () => {
    const s = loadUrl();
    onEdit();
    selectView(s.view);
  });
  const s = loadUrl();
  paint();
  check();
  selectView(s.view);
  loadTables().then(() => {
    if (s.job) openJob(s.job);
    else if (s.run) run();
  });
  loadExamples();
  auth.restore().catch((e) => {
    $("login-status").textContent = `Not logged in: ${e.message}`;
  }).then(() => {
    if (auth.returning) {
      // Back from the issuer: the page's state as it was when the login began.
      const back = loadUrl();
      onEdit();
      selectView(back.view);
    }
    showAccount();
  });
}

start();
