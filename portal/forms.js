// The search forms: a cone search on a catalog, and an image/spectrum search on
// ivoa.obscore (what SIA 2.0 and SSA answer from). Each turns its fields into the equivalent
// ADQL, which the page puts in the editor and runs, so that the form teaches the query.
// A position is typed in degrees or sexagesimal, or named: the server's resolver
// (portal/api/resolve) knows the NGC/IC/Messier objects and common names (OpenNGC) and the
// identifiers of the served catalogs (HIP 32349, Gaia DR3 …).

// "56.75 24.1", "56.75, +24.1", "03 47 24 +24 07 00", "03:47:24.0 -24:07:00",
// "3h47m24s +24d07m00s": {ra, dec} in degrees; null when the text is not a position (a name).
// Throws on a position out of range.
export function parsePosition(text) {
  const t = text.trim();
  if (!/^[+-]?\d/.test(t) || !/^[\d\s:+\-.,hdms°'"]+$/i.test(t)) return null;
  const parts = t.replace(/[hdms°'",:]/gi, " ").trim().split(/\s+/);
  if (parts.some((p) => !/^[+-]?\d+(\.\d*)?$|^[+-]?\.\d+$/.test(p))) return null;
  let ra, dec;
  if (parts.length === 2) {
    [ra, dec] = parts.map(Number);
  } else if (parts.length === 4 || parts.length === 6) {
    const half = parts.length / 2;
    const sexa = (p) => p.reduce((acc, v, i) => acc + Math.abs(Number(v)) / 60 ** i, 0);
    ra = sexa(parts.slice(0, half)) * 15;
    dec = sexa(parts.slice(half)) * (parts[half].startsWith("-") ? -1 : 1);
  } else return null;
  if (!(ra >= 0 && ra < 360)) throw new Error(`RA ${ra} is outside [0, 360)`);
  if (!(dec >= -90 && dec <= 90)) throw new Error(`Dec ${dec} is outside [-90, 90]`);
  return { ra, dec };
}

// A position from what the user typed: {ra, dec, label, source, credit}.
export async function locate(text) {
  const pos = parsePosition(text);
  if (pos) return { ...pos, label: text.trim(), source: null, credit: null };
  const r = await fetch(`portal/api/resolve?name=${encodeURIComponent(text.trim())}`);
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : {};
  if (!r.ok) throw new Error(body.error || `the name resolver answered ${r.status}`);
  // Where the position comes from: short (for the ADQL comment) and in full (for the form).
  const source = body.source === "OpenNGC" ? `${body.object}, OpenNGC` : `${body.source}.${body.column} = ${body.object}`;
  const credit = body.source === "OpenNGC" ? `${body.object} in ${body.credit}` : source;
  return { ra: body.ra, dec: body.dec, label: text.trim(), source, credit };
}

const UNIT = { deg: 1, arcmin: 1 / 60, arcsec: 1 / 3600 };

// A radius in degrees from a value and its unit; throws on a bad one.
export function radiusDeg(value, unit) {
  const v = Number(value);
  if (!(v > 0) || !(unit in UNIT)) throw new Error("the radius must be a positive number");
  const deg = v * UNIT[unit];
  if (deg > 180) throw new Error("the radius is at most 180°");
  return deg;
}

const num = (x) => String(Math.round(x * 1e7) / 1e7);

function where(at) {
  return `${at.label}${at.source ? ` (${at.source})` : ""}: RA ${num(at.ra)}°, Dec ${num(at.dec)}°`;
}

// The ADQL of a cone search on a catalog, nearest first.
export function coneAdql({ table, columns, ra, dec, at, r, radiusText }) {
  const centre = `POINT('ICRS', ${num(at.ra)}, ${num(at.dec)})`;
  return [
    `-- Cone search: ${radiusText} around ${where(at)}`,
    `SELECT ${columns.join(", ")},`,
    `       DISTANCE(POINT('ICRS', ${ra}, ${dec}), ${centre}) AS dist`,
    `FROM ${table}`,
    `WHERE 1 = CONTAINS(POINT('ICRS', ${ra}, ${dec}), CIRCLE('ICRS', ${num(at.ra)}, ${num(at.dec)}, ${num(r)}))`,
    "ORDER BY dist",
  ].join("\n");
}

// Wavelength ranges (metres) of the bands the image/spectrum form offers.
export const BANDS = {
  radio: [1e-3, 1e4],
  millimetre: [1e-4, 1e-2],
  infrared: [7e-7, 1e-3],
  optical: [3.8e-7, 7.5e-7],
  ultraviolet: [1e-8, 3.8e-7],
  "x-ray": [1e-11, 1e-8],
  "gamma-ray": [1e-20, 1e-11],
};

// A date (YYYY-MM-DD, UTC) as a Modified Julian Date.
export function mjd(date) {
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (Number.isNaN(ms)) throw new Error(`${date} is not a date`);
  return ms / 86400000 + 40587;
}

// The ADQL of an image/spectrum search on ivoa.obscore: footprints (s_region) that meet the
// circle and whole-sky maps, as SIA 2.0's POS finds them, or, for spectra (no s_region),
// centres inside it.
export function obsAdql({ at, r, radiusText, kind, band, from, to }) {
  const circle = `CIRCLE('ICRS', ${num(at.ra)}, ${num(at.dec)}, ${num(r)})`;
  const conds = [
    `(1 = INTERSECTS(s_region, ${circle})\n` +
    "       OR (s_region IS NULL AND s_fov >= 359)  -- whole-sky maps meet every circle\n" +
    `       OR (s_region IS NULL AND 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), ${circle})))`,
  ];
  if (kind === "image") conds.push("dataproduct_type IN ('image', 'cube')");
  else if (kind === "spectrum") conds.push("dataproduct_type = 'spectrum'");
  if (band) {
    const [lo, hi] = BANDS[band];
    conds.push(`em_min <= ${hi} AND em_max >= ${lo}  -- ${band}: ${lo} to ${hi} m`);
  }
  if (from) conds.push(`t_max >= ${num(mjd(from))}  -- ${from}`);
  if (to) conds.push(`t_min <= ${num(mjd(to) + 1)}  -- ${to}`);
  return [
    `-- Images and spectra: ${radiusText} around ${where(at)}`,
    "SELECT obs_publisher_did, dataproduct_type, obs_collection, facility_name, instrument_name,",
    "       target_name, s_ra, s_dec, s_fov, em_min, em_max, t_min, t_max, access_url, s_region",
    "FROM ivoa.obscore",
    `WHERE ${conds.join("\n  AND ")}`,
    "ORDER BY dataproduct_type, obs_collection",
  ].join("\n");
}
