// The result's positions on an Aladin Lite sky view. Aladin Lite (GPL-3, CDS) is served by
// this server, unmodified (portal/vendor/); it is told to fetch nothing from elsewhere: no
// background survey (vostok has no HiPS of its own yet), no usage log, no survey list. The
// points are drawn over a coordinate grid, over the coverage (MOC, from this server's
// /moc/{table}) of the tables the query reads.

const ALADIN = "./vendor/aladin-lite-3.8.2/aladin.js";
const MAX_POINTS = 100000;

let A = null;
let aladin = null;
let catalog = null;
let marker = null;
let shapes = null;

// Loads Aladin Lite once and makes its view in `host`. Throws when the browser cannot
// (no WebGL2).
async function view(host) {
  if (aladin) return aladin;
  A = (await import(ALADIN)).default;
  await A.init;
  aladin = A.aladin(host, {
    survey: [],
    hipsList: [],
    log: false,
    samp: false,
    cooFrame: "ICRS",
    projection: "AIT",
    fov: 180,
    target: "0 +0",
    showReticle: false,
    showLayersControl: false,
    showSimbadPointerControl: false,
    showShareControl: false,
    showSettingsControl: false,
    showProjectionControl: false,
    showFullscreenControl: true,
    showCooGrid: true,
    showCooGridControl: true,
    gridOptions: { enabled: true, showLabels: true, color: "rgb(120, 160, 220)" },
    backgroundColor: "rgb(20, 24, 32)",
  });
  return aladin;
}

// The index of the RA and Dec columns among `columns`, by UCD first, then by name.
export function positionColumns(columns) {
  const find = (ucds, names) => {
    for (const u of ucds) {
      const i = columns.findIndex((c) => (c.ucd || "").toLowerCase().split(";").includes(u));
      if (i >= 0) return i;
    }
    for (const n of names) {
      const i = columns.findIndex((c) => c.name.toLowerCase() === n);
      if (i >= 0) return i;
    }
    return -1;
  };
  const ra = find(["pos.eq.ra"], ["ra", "s_ra", "raj2000", "ra_icrs"]);
  const dec = find(["pos.eq.dec"], ["dec", "s_dec", "dej2000", "de_icrs", "decj2000"]);
  return ra >= 0 && dec >= 0 ? { ra, dec } : null;
}

// The sky polygon of an ObsCore s_region ("Polygon ICRS ra dec ra dec …", STC-S, or a DALI
// polygon: the numbers alone) as [[ra, dec], …]; null for anything else (a NULL region, a
// circle, a union).
export function polygonOf(region) {
  if (typeof region !== "string") return null;
  const t = region.trim();
  const m = /^polygon\s+(?:(?:icrs|fk5|j2000|unknownframe)\s+)?(?:(?:barycenter|geocenter|topocenter|unknownrefpos)\s+)?([-+\d.eE\s]+)$/i.exec(t)
    || /^([-+\d.eE\s]+)$/.exec(t);
  if (!m) return null;
  const v = m[1].trim().split(/\s+/).map(Number);
  if (v.length < 6 || v.length % 2 || v.some((x) => !isFinite(x))) return null;
  const out = [];
  for (let i = 0; i < v.length; i += 2) out.push([v[i], v[i + 1]]);
  return out;
}

const MAX_FOOTPRINTS = 2000;

// Shows the rows' positions, the footprints of an `s_region` column and the search `cone`
// ({ra, dec, r}, degrees) when given; returns how many points and footprints were drawn.
// `onPick(row)` is called when a point is clicked.
export async function show(host, columns, rows, onPick, cone = null) {
  const pos = positionColumns(columns);
  if (!pos) return { drawn: 0, footprints: 0, reason: "the result has no RA/Dec columns" };
  const a = await view(host);
  if (!shapes) {
    shapes = A.graphicOverlay({ name: "footprints", color: "#4fd1c5", lineWidth: 2 });
    a.addOverlay(shapes);
  }
  shapes.removeAll();
  let footprints = 0;
  const region = columns.findIndex((c) => c.name.toLowerCase() === "s_region");
  if (region >= 0) {
    for (let i = 0; i < rows.length && footprints < MAX_FOOTPRINTS; i++) {
      const poly = polygonOf(rows[i][region]);
      if (!poly) continue;
      shapes.add(A.polygon(poly));
      footprints++;
    }
  }
  if (cone) shapes.add(A.circle(cone.ra, cone.dec, cone.r, { color: "#ff6b6b", lineWidth: 2 }));
  if (catalog) catalog.removeAll();
  else {
    catalog = A.catalog({ name: "result", sourceSize: 9, color: "#ffb000", shape: "circle" });
    a.addCatalog(catalog);
    a.on("objectClicked", (o) => {
      if (o && o.data && typeof o.data.row === "number") onPick(o.data.row);
    });
  }
  const sources = [];
  let sx = 0, sy = 0, sz = 0;
  for (let i = 0; i < rows.length && sources.length < MAX_POINTS; i++) {
    const ra = rows[i][pos.ra];
    const dec = rows[i][pos.dec];
    if (typeof ra !== "number" || typeof dec !== "number" || !isFinite(ra) || !isFinite(dec)) continue;
    sources.push(A.source(ra, dec, { row: i }));
    const r = (ra * Math.PI) / 180, d = (dec * Math.PI) / 180;
    sx += Math.cos(d) * Math.cos(r); sy += Math.cos(d) * Math.sin(r); sz += Math.sin(d);
  }
  catalog.addSources(sources);
  if (sources.length) {
    const n = Math.hypot(sx, sy, sz);
    const ra = ((Math.atan2(sy, sx) * 180) / Math.PI + 360) % 360;
    const dec = (Math.asin(Math.max(-1, Math.min(1, sz / (n || 1)))) * 180) / Math.PI;
    // Spread: the largest distance from the centre among the first points.
    let spread = 0;
    for (const s of sources.slice(0, 5000)) spread = Math.max(spread, sep(ra, dec, s.ra, s.dec));
    if (cone) showCone(a, host, cone);
    else {
      a.gotoRaDec(ra, dec);
      a.setFoV(Math.min(360, Math.max(0.05, spread * 2.4)));
    }
  } else if (cone) showCone(a, host, cone);
  return { drawn: sources.length, footprints, reason: null };
}

// Centres the view on the cone, the whole circle in view (the field of view is the width).
function showCone(a, host, cone) {
  const aspect = Math.max(1, (host.clientWidth || 1) / (host.clientHeight || 1));
  a.gotoRaDec(cone.ra, cone.dec);
  a.setFoV(Math.min(360, Math.max(0.01, cone.r * 2.3 * aspect)));
}

// Marks one position (the selected row).
export function mark(ra, dec) {
  if (!aladin || !A) return;
  if (!marker) {
    marker = A.catalog({ name: "selected", sourceSize: 18, color: "#ff3b3b", shape: "square" });
    aladin.addCatalog(marker);
  }
  marker.removeAll();
  marker.addSources([A.source(ra, dec, {})]);
}

function sep(ra1, dec1, ra2, dec2) {
  const r = Math.PI / 180;
  const c = Math.sin(dec1 * r) * Math.sin(dec2 * r) + Math.cos(dec1 * r) * Math.cos(dec2 * r) * Math.cos((ra1 - ra2) * r);
  return Math.acos(Math.max(-1, Math.min(1, c))) / r;
}

// The coverage layers shown: [{ name, layer }].
let mocs = [];
const MOC_COLORS = ["#5fa8ff", "#b197fc", "#69db7c", "#ffa94d"];

// Shows the coverage of each of `tables` (qualified names; the first four) as a MOC layer
// (Aladin Lite's A.MOCFromURL on /moc/{table}, a MOC FITS file), or none when `on` is false;
// the layers shown before are removed. `onReady(name)` is called as each one is drawn.
// Returns the names shown.
export async function coverage(host, tables, on, onReady = () => {}) {
  const a = await view(host);
  for (const m of mocs) a.removeLayer(m.layer);
  mocs = [];
  if (!on) return [];
  tables.slice(0, MOC_COLORS.length).forEach((name, i) => {
    const url = `moc/${encodeURIComponent(name)}`;
    const layer = A.MOCFromURL(url, {
      name: `coverage of ${name}`, color: MOC_COLORS[i], fillColor: MOC_COLORS[i],
      opacity: 0.35, lineWidth: 1, fill: true, perimeter: true,
    }, () => onReady(name));
    a.addMOC(layer);
    mocs.push({ name, layer });
  });
  return mocs.map((m) => m.name);
}

// The names of the served tables (`names`, qualified) that an ADQL text reads: each that
// appears as a whole name (any case).
export function tablesIn(text, names) {
  const t = String(text || "");
  return names.filter((n) => {
    const escaped = n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(^|[^\\w."])${escaped}($|[^\\w"])`, "i").test(t);
  });
}
