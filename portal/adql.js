// ADQL in the editor: tokens for highlighting, and completion of table and column names
// from the server's metadata. The real check is the server's (/portal/api/check).

const KEYWORDS = new Set((
  "SELECT FROM WHERE AND OR NOT AS ON JOIN INNER LEFT RIGHT FULL OUTER CROSS NATURAL USING " +
  "GROUP BY ORDER HAVING ASC DESC TOP DISTINCT ALL UNION INTERSECT EXCEPT WITH OFFSET " +
  "IN BETWEEN LIKE ILIKE IS NULL EXISTS CASE WHEN THEN ELSE END CAST TRUE FALSE " +
  "CONTAINS INTERSECTS POINT CIRCLE BOX POLYGON REGION AREA COORD1 COORD2 COORDSYS " +
  "DISTANCE CENTROID COUNT SUM AVG MIN MAX ABS CEILING FLOOR ROUND SQRT POWER LOG LOG10 " +
  "EXP PI RAND TRUNCATE MOD SIN COS TAN ASIN ACOS ATAN ATAN2 DEGREES RADIANS LOWER UPPER " +
  "COALESCE"
).split(" "));

// One token: {type, text, start}. Types: kw, ident, str, num, cmt, op, ws.
export function tokenize(text) {
  const out = [];
  const re = /(--[^\n]*)|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\s+)|(.)/gs;
  let m;
  while ((m = re.exec(text)) !== null) {
    const t = m[0];
    let type = "op";
    if (m[1]) type = "cmt";
    else if (m[2]) type = "str";
    else if (m[3]) type = "ident";
    else if (m[4]) type = "num";
    else if (m[5]) type = KEYWORDS.has(t.toUpperCase()) ? "kw" : "ident";
    else if (m[6]) type = "ws";
    out.push({ type, text: t, start: m.index });
  }
  return out;
}

function escapeHtml(s) {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c]));
}

// The text as HTML with spans per token; `errorAt` (an offset, or null) marks the token there.
export function highlight(text, errorAt) {
  let html = "";
  for (const tok of tokenize(text)) {
    const cls = { kw: "kw", str: "str", num: "num", cmt: "cmt" }[tok.type];
    const err = errorAt !== null && errorAt >= tok.start && errorAt < tok.start + tok.text.length
      && tok.type !== "ws";
    let inner = escapeHtml(tok.text);
    if (cls || err) {
      inner = `<span class="${[cls, err ? "err" : ""].filter(Boolean).join(" ")}">${inner}</span>`;
    }
    html += inner;
  }
  // A trailing newline needs a character after it to take up its line.
  if (errorAt !== null && errorAt >= text.length) html += '<span class="err"> </span>';
  return html + "\n";
}

// The offset in `text` of 1-based `line` and `column` (columns count characters).
export function offsetOf(text, line, column) {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf("\n", off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(text.length, off + Math.max(0, column - 1));
}

// Completions at `caret`: {from, items: [{label, insert, kind, detail}]} where `from` is
// where the word being typed starts. `tables` is the /portal/api/tables answer.
export function complete(text, caret, tables) {
  const before = text.slice(0, caret);
  const m = /([A-Za-z_][A-Za-z0-9_]*\.)*([A-Za-z_][A-Za-z0-9_]*)?$/.exec(before);
  const word = m ? m[0] : "";
  const from = caret - word.length;
  const parts = word.split(".");
  const prefix = parts.pop().toLowerCase();
  const qualifier = parts.join(".").toLowerCase();
  const all = allTables(tables);
  const items = [];
  if (qualifier) {
    // schema. → tables of the schema; table. or alias. → its columns.
    for (const t of all) {
      const [schema] = t.name.split(".");
      if (schema.toLowerCase() === qualifier) {
        const short = t.name.slice(schema.length + 1);
        if (short.toLowerCase().startsWith(prefix)) {
          items.push({ label: t.name, insert: `${parts.join(".")}.${short}`, kind: "table", detail: t.title || t.description || "" });
        }
      }
    }
    const target = resolveQualifier(text, qualifier, all);
    if (target) {
      for (const c of target.columns) {
        if (c.name.toLowerCase().startsWith(prefix)) {
          items.push({ label: c.name, insert: `${parts.join(".")}.${c.name}`, kind: c.unit ? `column [${c.unit}]` : "column", detail: c.description || "" });
        }
      }
    }
  } else {
    const inQuery = tablesInQuery(text, all);
    for (const t of inQuery) {
      for (const c of t.columns) {
        if (c.name.toLowerCase().startsWith(prefix)) {
          items.push({ label: c.name, insert: c.name, kind: c.unit ? `column [${c.unit}]` : "column", detail: c.description || "" });
        }
      }
    }
    for (const t of all) {
      if (t.name.toLowerCase().startsWith(prefix) || t.name.split(".").pop().toLowerCase().startsWith(prefix)) {
        items.push({ label: t.name, insert: t.name, kind: "table", detail: t.title || t.description || "" });
      }
    }
    if (prefix) {
      for (const k of KEYWORDS) {
        if (k.toLowerCase().startsWith(prefix) && k.length > prefix.length) {
          items.push({ label: k, insert: k, kind: "keyword", detail: "" });
        }
      }
    }
  }
  const seen = new Set();
  const unique = items.filter((i) => !seen.has(i.insert) && seen.add(i.insert));
  return { from, items: unique.slice(0, 200) };
}

export function allTables(tables) {
  return tables ? tables.schemas.flatMap((s) => s.tables) : [];
}

// The tables named in the query's FROM and JOIN clauses.
function tablesInQuery(text, all) {
  const names = new Set();
  const re = /\b(?:FROM|JOIN)\s+([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)/gi;
  let m;
  while ((m = re.exec(text)) !== null) names.add(m[1].toLowerCase());
  return all.filter((t) => names.has(t.name.toLowerCase()));
}

// The table a qualifier stands for: a table name, its short name, or an alias given with AS
// (or without) after the table's name.
function resolveQualifier(text, qualifier, all) {
  const byName = all.find((t) => t.name.toLowerCase() === qualifier
    || t.name.split(".").pop().toLowerCase() === qualifier);
  if (byName) return byName;
  const re = /\b(?:FROM|JOIN)\s+([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s+(?:AS\s+)?([A-Za-z_]\w*)/gi;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m[2].toLowerCase() === qualifier) {
      const t = all.find((x) => x.name.toLowerCase() === m[1].toLowerCase());
      if (t) return t;
    }
  }
  return null;
}
