//! DataFusion's planning and execution errors in ADQL's words, located in the query text.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::common::{Column, Diagnostic, SchemaError, Span};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Query, TableFactor, Visit, Visitor};

use super::{distance, nearest, tolerance};
use crate::{humanise, locate_word, AdqlError, ErrorKind, Options};

/// The error of a query DataFusion could not plan. `again` is the statement to plan once more
/// with source spans when `state` was not collecting them (so that the error is located).
pub(crate) async fn planning_error(
    text: &str,
    opts: &Options,
    state: &SessionState,
    again: Option<DfStatement>,
    e: DataFusionError,
) -> AdqlError {
    let e = match again {
        Some(stmt) => {
            let mut spans = state.clone();
            spans.config_mut().options_mut().sql_parser.collect_spans = true;
            spans.statement_to_plan(stmt).await.err().unwrap_or(e)
        }
        None => e,
    };
    let query = crate::parse_with(text, opts).ok();
    let scope = Scope::of(query.as_ref(), state);
    explain(text, &scope, &e).unwrap_or_else(|| crate::semantic_error(text, e))
}

/// What the query names and what exists: the tables of its FROM clauses (with their
/// aliases) and the tables the service has.
struct Scope {
    /// (alias or name as written, the table it names when it is a table), lower case keys.
    relations: Vec<(String, Option<String>)>,
    /// Every `schema.table` of the service, and the WITH names of the query.
    tables: Vec<String>,
}

impl Scope {
    fn of(query: Option<&Query>, state: &SessionState) -> Scope {
        struct Collect {
            relations: Vec<(String, Option<String>)>,
            ctes: Vec<String>,
        }
        impl Visitor for Collect {
            type Break = ();
            fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
                if let Some(with) = &q.with {
                    for cte in &with.cte_tables {
                        self.ctes.push(cte.alias.name.value.clone());
                    }
                }
                ControlFlow::Continue(())
            }
            fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
                match f {
                    TableFactor::Table { name, alias, .. } => {
                        let name = unquoted(&name.to_string());
                        match alias {
                            Some(a) => self.relations.push((a.name.value.clone(), Some(name))),
                            None => self.relations.push((name, None)),
                        }
                    }
                    TableFactor::Derived { alias: Some(a), .. } => {
                        self.relations.push((a.name.value.clone(), None))
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut c = Collect {
            relations: Vec::new(),
            ctes: Vec::new(),
        };
        if let Some(q) = query {
            let _ = q.visit(&mut c);
        }
        let mut tables = Vec::new();
        let options = state.config().options();
        if let Some(catalog) = state
            .catalog_list()
            .catalog(&options.catalog.default_catalog)
        {
            for s in catalog.schema_names() {
                if s == "information_schema" {
                    continue;
                }
                if let Some(schema) = catalog.schema(&s) {
                    for t in schema.table_names() {
                        tables.push(format!("{s}.{t}"));
                    }
                }
            }
        }
        tables.sort();
        tables.extend(c.ctes);
        Scope {
            relations: c.relations,
            tables,
        }
    }

    /// A FROM item as the query writes it: `hipparcos.hip2 AS a`, `hipparcos.hip2`, `d2`.
    fn describe(&self, relation: &str) -> String {
        let found = self
            .relations
            .iter()
            .find(|(r, _)| r.eq_ignore_ascii_case(relation));
        match found {
            Some((alias, Some(table))) if !alias.eq_ignore_ascii_case(table) => {
                format!("{table} AS {alias}")
            }
            _ => relation.to_string(),
        }
    }
}

/// `"Survey"."Sources"` → `Survey.Sources`.
fn unquoted(name: &str) -> String {
    name.replace('"', "")
}

/// The text of `span` in the query (columns count characters; the end is exclusive).
fn text_of(text: &str, span: &Span) -> Option<String> {
    let offset = |line: u64, column: u64| -> Option<usize> {
        let mut at = 0usize;
        for (n, l) in text.split('\n').enumerate() {
            if n as u64 + 1 == line {
                let col = column.checked_sub(1)? as usize;
                return Some(at + l.char_indices().nth(col).map_or(l.len(), |(i, _)| i));
            }
            at += l.len() + 1;
        }
        None
    };
    let a = offset(span.start.line, span.start.column)?;
    let b = offset(span.end.line, span.end.column)?;
    text.get(a..b)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn located(message: String, span: Option<(u64, u64)>) -> AdqlError {
    AdqlError {
        kind: ErrorKind::Semantic,
        message,
        line: span.map(|s| s.0),
        column: span.map(|s| s.1),
    }
}

/// Where a diagnostic points, else where `word` first occurs in the text.
fn position(text: &str, diag: Option<&Diagnostic>, word: &str) -> Option<(u64, u64)> {
    diag.and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| (s.start.line, s.start.column))
        .or_else(|| locate_word(text, word))
}

/// The ADQL message of the planning errors this module knows; `None` for the others.
fn explain(text: &str, scope: &Scope, e: &DataFusionError) -> Option<AdqlError> {
    let diag = e.diagnostic();
    match e.find_root() {
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => Some(unknown_column(text, scope, diag, field, valid_fields)),
            SchemaError::AmbiguousReference { field } => Some(ambiguous(text, diag, field)),
            _ => None,
        },
        DataFusionError::Plan(m) => plan_error(text, scope, diag, m),
        _ => None,
    }
}

/// `No field named x`.
fn unknown_column(
    text: &str,
    scope: &Scope,
    diag: Option<&Diagnostic>,
    field: &Column,
    valid: &[Column],
) -> AdqlError {
    let name = field.name.as_str();
    let qualifier = field.relation.as_ref().map(|r| unquoted(&r.to_string()));
    let at = position(text, diag, name);
    // The FROM items in scope, as DataFusion qualifies their columns.
    let mut relations: Vec<String> = Vec::new();
    for c in valid {
        if let Some(r) = &c.relation {
            let r = unquoted(&r.to_string());
            if !relations.contains(&r) {
                relations.push(r);
            }
        }
    }
    let same = |a: &str, b: &str| {
        a.eq_ignore_ascii_case(b)
            || a.rsplit('.')
                .next()
                .is_some_and(|x| x.eq_ignore_ascii_case(b))
            || b.rsplit('.')
                .next()
                .is_some_and(|x| x.eq_ignore_ascii_case(a))
    };
    if let Some(q) = &qualifier {
        if !relations.iter().any(|r| same(r, q)) {
            // The qualifier names nothing in FROM.
            let holders: Vec<&String> = relations
                .iter()
                .filter(|r| {
                    valid.iter().any(|c| {
                        c.name == name
                            && c.relation
                                .as_ref()
                                .is_some_and(|cr| unquoted(&cr.to_string()) == **r)
                    })
                })
                .collect();
            let guess = match holders.as_slice() {
                [one] => Some((*one).clone()),
                _ => nearest(q, relations.iter().map(String::as_str)).map(str::to_string),
            };
            let listed: Vec<String> = relations.iter().map(|r| scope.describe(r)).collect();
            let mut m = format!("'{q}' in {q}.{name} is not a table or alias of this FROM clause");
            if !listed.is_empty() {
                m.push_str(&format!(" ({})", listed.join(", ")));
            }
            if let Some(g) = guess {
                m.push_str(&format!(": did you mean {g}.{name}?"));
            }
            return located(m, position(text, diag, q));
        }
    }
    // The columns it could have meant.
    let mut candidates: Vec<(Option<String>, String)> = Vec::new();
    for c in valid {
        let r = c.relation.as_ref().map(|r| unquoted(&r.to_string()));
        if let (Some(q), Some(r)) = (&qualifier, &r) {
            if !same(r, q) {
                continue;
            }
        }
        let key = (r, c.name.clone());
        if !candidates.contains(&key) {
            candidates.push(key);
        }
    }
    let names: BTreeSet<&str> = candidates.iter().map(|(_, n)| n.as_str()).collect();
    let guess = nearest(name, names.iter().copied());
    let within: Vec<String> = match &qualifier {
        Some(q) => vec![scope.describe(q)],
        None => relations.iter().map(|r| scope.describe(r)).collect(),
    };
    let mut m = format!("unknown column '{name}'");
    if !within.is_empty() {
        m.push_str(&format!(" in {}", within.join(" or ")));
    }
    match guess {
        Some(g) => {
            // Qualify the suggestion when it was qualified or is not unique.
            let holders: Vec<&Option<String>> = candidates
                .iter()
                .filter(|(_, n)| n == g)
                .map(|(r, _)| r)
                .collect();
            let shown = match (&qualifier, holders.as_slice()) {
                (Some(q), _) => format!("{q}.{g}"),
                (None, [_]) => g.to_string(),
                (None, [Some(r), ..]) => format!("{r}.{g}"),
                _ => g.to_string(),
            };
            m.push_str(&format!(": did you mean {shown}?"));
        }
        None if !names.is_empty() && names.len() <= 12 => {
            let list: Vec<&str> = names.iter().copied().collect();
            m.push_str(&format!(" (its columns: {})", list.join(", ")));
        }
        None if !names.is_empty() => m.push_str(" (the columns are listed at /tap/tables)"),
        None => {}
    }
    located(m, at)
}

/// `Ambiguous reference to unqualified field x`.
fn ambiguous(text: &str, diag: Option<&Diagnostic>, field: &Column) -> AdqlError {
    let name = field.name.as_str();
    // DataFusion notes the candidates as `possible column a.x`.
    let mut options: Vec<String> = diag
        .map(|d| {
            d.notes
                .iter()
                .filter_map(|n| n.message.strip_prefix("possible column "))
                .filter(|c| c.rsplit('.').next() == Some(name))
                .map(unquoted)
                .collect()
        })
        .unwrap_or_default();
    options.dedup();
    let m = if options.len() >= 2 {
        format!(
            "ambiguous column '{name}': more than one table of FROM has it; write {}",
            options.join(" or ")
        )
    } else {
        format!(
            "ambiguous column '{name}': more than one table of FROM has it; qualify it with its table or alias (a.{name})"
        )
    };
    located(m, position(text, diag, name))
}

/// The planning errors DataFusion reports as plain text.
fn plan_error(text: &str, scope: &Scope, diag: Option<&Diagnostic>, m: &str) -> Option<AdqlError> {
    if let Some(rest) = m.strip_prefix("table '") {
        if let Some(name) = rest.strip_suffix("' not found") {
            return Some(unknown_table(text, scope, diag, name));
        }
    }
    if m.contains("must appear in the GROUP BY clause") {
        return Some(not_grouped(text, diag, m));
    }
    if m.starts_with("Too many columns! The subquery should only return one column") {
        let n = m.rsplit(": ").next().map_or(0, |l| l.split(", ").count());
        let at = diag
            .and_then(|d| d.span)
            .map(|s| (s.start.line, s.start.column));
        return Some(located(
            format!("a subquery used as a value must give one column, not {n}"),
            at,
        ));
    }
    if let Some(op) = m.strip_suffix(" queries have different number of columns") {
        let counts: Vec<String> = diag
            .map(|d| {
                d.notes
                    .iter()
                    .filter_map(|n| n.message.strip_prefix("this side has "))
                    .map(|s| s.trim_end_matches(" fields").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut message = format!(
            "the two queries of {op} must give the same number of columns",
            op = op.to_ascii_uppercase()
        );
        if counts.len() == 2 {
            message.push_str(&format!(", not {} and {}", counts[0], counts[1]));
        }
        let at = diag
            .and_then(|d| d.span)
            .map(|s| (s.start.line, s.start.column))
            .or_else(|| locate_word(text, op));
        return Some(located(message, at));
    }
    None
}

/// `table 'x' not found`: what the user wrote, and the table they may have meant.
fn unknown_table(text: &str, scope: &Scope, diag: Option<&Diagnostic>, name: &str) -> AdqlError {
    let span = diag.and_then(|d| d.span);
    // The name as written (DataFusion's carries the default catalog and schema).
    let written = span
        .and_then(|s| text_of(text, &s))
        .map(|w| unquoted(&w))
        .unwrap_or_else(|| {
            let n = unquoted(name);
            let n = n.strip_prefix("datafusion.").unwrap_or(&n).to_string();
            n.strip_prefix("public.").unwrap_or(&n).to_string()
        });
    let bare = written.rsplit('.').next().unwrap_or(&written);
    // The same table in another schema, else the nearest full name, else the nearest table.
    let guess = scope
        .tables
        .iter()
        .find(|t| {
            t.rsplit('.')
                .next()
                .is_some_and(|x| x.eq_ignore_ascii_case(bare))
        })
        .map(String::as_str)
        .or_else(|| nearest(&written, scope.tables.iter().map(String::as_str)))
        .or_else(|| {
            let limit = tolerance(bare);
            scope
                .tables
                .iter()
                .map(|t| (distance(bare, t.rsplit('.').next().unwrap_or(t)), t))
                .filter(|(d, _)| *d <= limit)
                .min_by_key(|(d, _)| *d)
                .map(|(_, t)| t.as_str())
        });
    let message = match guess {
        Some(g) => format!("unknown table '{written}': did you mean {g}?"),
        None => format!("unknown table '{written}' (the tables are listed at /tap/tables)"),
    };
    let at = span
        .map(|s| (s.start.line, s.start.column))
        .or_else(|| locate_word(text, bare));
    located(message, at)
}

/// A column neither grouped nor aggregated.
fn not_grouped(text: &str, diag: Option<&Diagnostic>, m: &str) -> AdqlError {
    let span = diag.and_then(|d| d.span);
    let written = span.and_then(|s| text_of(text, &s)).unwrap_or_else(|| {
        // `column "hipparcos.hip2.hip" must appear …`: the column's own name.
        m.split("column \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(|c| c.rsplit('.').next().unwrap_or(c).to_string())
            .unwrap_or_default()
    });
    let at = span
        .map(|s| (s.start.line, s.start.column))
        .or_else(|| locate_word(text, &written));
    located(
        format!(
            "{written} must be in GROUP BY or in an aggregate: add it to GROUP BY, or write e.g. MAX({written})"
        ),
        at,
    )
}

/// An error of a query that failed while it ran (DataFusion's message), in ADQL's words and
/// located in `text` when the message names something the text has.
pub fn humanise_in(text: &str, message: &str) -> String {
    let m = humanise(message);
    if m.contains("(line ") {
        return m;
    }
    // A string literal the message quotes: `the string 'x' is compared …`.
    let literal = m
        .split("the string '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .map(|v| format!("'{}'", v.replace('\'', "''")));
    let at = literal.and_then(|l| {
        let i = text.find(&l)?;
        let line = text[..i].matches('\n').count() as u64 + 1;
        let col = text[..i]
            .rsplit('\n')
            .next()
            .map_or(0, |p| p.chars().count()) as u64
            + 1;
        Some((line, col))
    });
    match at {
        Some((l, c)) => format!("{m} (line {l}, column {c})"),
        None => m,
    }
}
