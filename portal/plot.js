// A quick plot of a result, drawn by the page as SVG: a histogram of one numeric column, or a
// scatter of two (all the points in one path, so that 100,000 rows stay one element).

const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 400, L = 64, R = 16, T = 16, B = 48;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

// The finite numbers of a column (BigInt values converted).
export function values(rows, i) {
  const out = [];
  for (const r of rows) {
    const v = typeof r[i] === "bigint" ? Number(r[i]) : r[i];
    if (typeof v === "number" && Number.isFinite(v)) out.push(v);
  }
  return out;
}

function range(vs) {
  let lo = Infinity, hi = -Infinity;
  for (const v of vs) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  return [lo, hi];
}

// `n` counts of `vs` in equal bins over [lo, hi] (the last bin holds hi).
export function histogram(vs, n) {
  const [lo, hi] = range(vs);
  const counts = new Array(n).fill(0);
  const w = (hi - lo) / n;
  for (const v of vs) counts[Math.min(n - 1, Math.floor((v - lo) / w))]++;
  return { lo, hi, counts };
}

function ticks(lo, hi, n = 5) {
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function axes(svg, xlo, xhi, ylo, yhi, xlabel, ylabel) {
  const sx = (v) => L + ((v - xlo) / (xhi - xlo)) * (W - L - R);
  const sy = (v) => H - B - ((v - ylo) / (yhi - ylo)) * (H - T - B);
  const g = el("g", { class: "axes" });
  g.append(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }), el("line", { x1: L, y1: T, x2: L, y2: H - B }));
  for (const v of ticks(xlo, xhi)) {
    g.append(el("line", { x1: sx(v), y1: H - B, x2: sx(v), y2: H - B + 5 }),
      el("text", { x: sx(v), y: H - B + 18, "text-anchor": "middle" }, String(v)));
  }
  for (const v of ticks(ylo, yhi)) {
    g.append(el("line", { x1: L - 5, y1: sy(v), x2: L, y2: sy(v) }),
      el("text", { x: L - 8, y: sy(v) + 4, "text-anchor": "end" }, String(v)));
  }
  g.append(el("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", class: "label" }, xlabel),
    el("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", class: "label", transform: `rotate(-90 14 ${(T + H - B) / 2})` }, ylabel));
  svg.append(g);
  return { sx, sy };
}

function label(c) {
  return c.unit ? `${c.name} [${c.unit}]` : c.name;
}

// Draws into `box` a histogram of column `x` (y null) or a scatter of x and y; returns what
// was drawn: {kind, points, bins, skipped}.
export function draw(box, columns, rows, x, y, bins) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot-svg" });
  const cx = columns[x];
  let out;
  if (y == null) {
    const vs = values(rows, x);
    if (!vs.length) throw new Error(`${cx.name} has no numbers to plot`);
    const h = histogram(vs, bins);
    const top = Math.max(...h.counts);
    const { sx, sy } = axes(svg, h.lo, h.hi, 0, top, label(cx), "rows");
    const g = el("g", { class: "bars" });
    const w = (h.hi - h.lo) / bins;
    h.counts.forEach((n, i) => {
      const x0 = sx(h.lo + i * w), x1 = sx(h.lo + (i + 1) * w);
      const r = el("rect", { x: x0, y: sy(n), width: Math.max(0.5, x1 - x0 - 1), height: sy(0) - sy(n), class: "bar" });
      r.append(el("title", {}, `${(h.lo + i * w).toPrecision(6)} – ${(h.lo + (i + 1) * w).toPrecision(6)}: ${n}`));
      g.append(r);
    });
    svg.append(g);
    svg.setAttribute("aria-label", `Histogram of ${cx.name}: ${vs.length} values in ${bins} bins from ${h.lo} to ${h.hi}`);
    out = { kind: "histogram", points: vs.length, bins, skipped: rows.length - vs.length, counts: h.counts };
  } else {
    const cy = columns[y];
    const pts = [];
    for (const r of rows) {
      const a = typeof r[x] === "bigint" ? Number(r[x]) : r[x];
      const b = typeof r[y] === "bigint" ? Number(r[y]) : r[y];
      if (typeof a === "number" && typeof b === "number" && Number.isFinite(a) && Number.isFinite(b)) pts.push([a, b]);
    }
    if (!pts.length) throw new Error(`no row has numbers in both ${cx.name} and ${cy.name}`);
    const [xlo, xhi] = range(pts.map((p) => p[0]));
    const [ylo, yhi] = range(pts.map((p) => p[1]));
    const { sx, sy } = axes(svg, xlo, xhi, ylo, yhi, label(cx), label(cy));
    let d = "";
    for (const [a, b] of pts) d += `M${sx(a).toFixed(1)} ${sy(b).toFixed(1)}h0`;
    svg.append(el("path", { d, class: "points" }));
    svg.setAttribute("aria-label", `Scatter plot of ${cy.name} against ${cx.name}: ${pts.length} points`);
    out = { kind: "scatter", points: pts.length, bins: 0, skipped: rows.length - pts.length };
  }
  box.replaceChildren(svg);
  box.dataset.kind = out.kind;
  box.dataset.points = String(out.points);
  box.dataset.bins = String(out.bins);
  return out;
}
