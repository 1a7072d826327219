//! ADQL 2.1: text → validated sqlparser AST → DataFusion logical plan.
//!
//! In the query path this crate sits between the protocol fronts (which hand it ADQL text)
//! and DataFusion (which executes the plan). Parsing uses sqlparser with an ADQL dialect;
//! what is SQL but not ADQL (`LIMIT`, `::`, backticks, …) is refused with its position; the
//! AST is then rewritten into what DataFusion plans (`TOP` → limit, ADQL function names →
//! DataFusion's) and planned by DataFusion against the registered catalogs. User text never
//! becomes SQL text that is parsed again.
//!
//! Geometry (POINT, CIRCLE, CONTAINS, …) lives in [`geom`] as DataFusion UDFs over exact
//! spherical geometry; [`geom::spatial_filters`] recognises spatial predicates so that table
//! providers can prune with HEALPix.

pub mod geom;
pub mod ivo;
mod messages;
mod names;
mod rewrite;
mod rules;
mod sql92;
pub mod units;
pub mod validate;
pub mod xmatch;

use std::fmt;

pub use messages::humanise_in;

use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Query, Statement};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// The ADQL dialect for sqlparser: regular identifiers are letters, digits and `_` starting
/// with a letter; delimited identifiers use double quotes only.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdqlDialect;

impl Dialect for AdqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic()
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"'
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        false
    }
}

/// An ADQL error a user can act on: what is wrong, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdqlError {
    /// The kind of problem.
    pub kind: ErrorKind,
    /// What is wrong, in words.
    pub message: String,
    /// Line of the problem, when known.
    pub line: Option<u64>,
    /// Column of the problem, when known.
    pub column: Option<u64>,
}

/// Kinds of ADQL errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not ADQL.
    Syntax,
    /// The text is ADQL but refers to unknown things or misuses them.
    Semantic,
}

impl AdqlError {
    fn syntax(message: impl Into<String>, line: Option<u64>, column: Option<u64>) -> Self {
        AdqlError {
            kind: ErrorKind::Syntax,
            message: message.into(),
            line,
            column,
        }
    }

    fn at(kind: ErrorKind, message: impl Into<String>, tok: &TokenWithSpan) -> Self {
        let loc = tok.span.start;
        AdqlError {
            kind,
            message: message.into(),
            line: Some(loc.line),
            column: Some(loc.column),
        }
    }
}

impl fmt::Display for AdqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{} (line {l}, column {c})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AdqlError {}

/// Registers the ADQL functions (geometry and the ADQL names DataFusion lacks) with a context.
pub fn register(ctx: &SessionContext) {
    for udf in geom::udfs() {
        ctx.register_udf(udf);
    }
    for udf in ivo::scalar_udfs() {
        ctx.register_udf(udf);
    }
    for udaf in ivo::aggregate_udfs(Some(ctx.runtime_env().memory_pool.clone())) {
        ctx.register_udaf(udaf);
    }
    ctx.register_udf(units::in_unit_udf());
    ctx.register_udf(sql92::named_cast_udf());
    xmatch::register(ctx);
    rules::register(ctx);
}

/// The user-defined functions vostok registers (lower case), beyond the ADQL built-ins.
pub const UDF_NAMES: &[&str] = &[
    "ivo_hasword",
    "ivo_nocasematch",
    "ivo_healpix_index",
    "ivo_healpix_center",
    "ivo_epoch_prop",
    "ivo_epoch_prop_pos",
    "ivo_histogram",
    "gavo_histogram",
    "ivo_string_agg",
];

/// Settings of the ADQL front end.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names of further user-defined functions to accept (lower or mixed case), beyond the
    /// ones vostok registers.
    pub extra_functions: Vec<String>,
    /// Read a call of an undeclared function whose name has a prefix (`ivo_foo(…)`,
    /// `ESO_INTERSECTION(…)`) as a user-defined function of some service: a check of the
    /// grammar alone, without a service's declarations (`vostok adql check`). Planning still
    /// refuses a function the service does not define.
    pub accept_undeclared_udfs: bool,
    /// Most tokens a query text may have, counted before it is read: every word, number,
    /// symbol, space and line break (sqlparser keeps each space as a token of ~70 bytes, so a
    /// text of 15 MiB of spaces took gigabytes). Above it the query is refused at once.
    pub max_tokens: usize,
}

/// The default of [`Options::max_tokens`]: a polygon of 100,000 vertices (~0.8 million) fits.
pub const MAX_TOKENS: usize = 2_000_000;

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_functions: Vec::new(),
            accept_undeclared_udfs: false,
            max_tokens: MAX_TOKENS,
        }
    }
}

/// An upper bound of the number of tokens sqlparser makes of `text`, counted without
/// allocating: each whitespace character and each ASCII punctuation character counts one (a
/// token takes at least one character), each run of other characters one. String literals,
/// quoted names and comments are counted as if they were not, so they count more than they
/// take.
fn token_bound(text: &str) -> usize {
    let mut n = 0usize;
    let mut in_run = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_ascii_punctuation() {
            n += 1;
            in_run = false;
        } else if !in_run {
            n += 1;
            in_run = true;
        }
    }
    n
}

/// Parses and validates ADQL text into a query AST ready for DataFusion.
pub fn parse(text: &str) -> Result<Query, AdqlError> {
    parse_with(text, &Options::default())
}

/// [`parse`] with settings.
pub fn parse_with(text: &str, opts: &Options) -> Result<Query, AdqlError> {
    let dialect = AdqlDialect;
    let bound = token_bound(text);
    if bound > opts.max_tokens {
        return Err(AdqlError::syntax(
            format!(
                "the query text is too large: up to {bound} tokens (words, numbers, symbols, \
                 and every space and line break), more than the {} allowed ([limits] \
                 query_tokens); shorten it, or upload long lists of values as a table \
                 (TAP_UPLOAD)",
                opts.max_tokens
            ),
            None,
            None,
        ));
    }
    // Sized once: the token list never reallocates (no moment with two copies of it).
    let mut tokens = Vec::with_capacity(bound.saturating_add(1));
    Tokenizer::new(&dialect, text)
        .tokenize_with_location_into_buf(&mut tokens)
        .map_err(|e| {
            messages::tokenizer_error(AdqlError::syntax(
                strip_location(&e.message),
                Some(e.location.line),
                Some(e.location.column),
            ))
        })?;
    check_tokens(&tokens)?;
    let tokens = normalise_tokens(tokens)?;
    check_nesting(&tokens)?;
    let tokens_copy = tokens.clone();
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let query = match parser.parse_query() {
        Ok(q) => q,
        Err(e) => {
            let mut err = parser_error(e, text);
            if err.line.is_none() {
                // sqlparser did not say where: find the token it names as found, among the
                // ones around where it stopped.
                let found = err
                    .message
                    .rsplit("found: ")
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let here = parser.get_current_index().min(tokens_copy.len());
                let at = tokens_copy[..here.saturating_add(2).min(tokens_copy.len())]
                    .iter()
                    .rev()
                    .find(|t| t.token.to_string().to_ascii_lowercase() == found)
                    .map(|t| t.span.start)
                    .unwrap_or(parser.get_current_token().span.start);
                if at.line > 0 {
                    err.line = Some(at.line);
                    err.column = Some(at.column);
                }
            }
            return Err(messages::parser_error(err, &tokens_copy, text));
        }
    };
    // Nothing may follow the query but one optional ';'.
    let mut next = parser.next_token();
    if next.token == Token::SemiColon {
        next = parser.next_token();
    }
    if next.token != Token::EOF {
        return Err(messages::trailing(&tokens_copy, &next, text));
    }
    let mut query = *query;
    rewrite::check_and_rewrite(&mut query, opts)?;
    Ok(query)
}

/// Parses, validates and plans ADQL text against the tables known to `state`.
pub async fn plan(state: &SessionState, text: &str) -> Result<LogicalPlan, AdqlError> {
    plan_with(state, text, &Options::default()).await
}

/// [`plan`] with settings.
pub async fn plan_with(
    state: &SessionState,
    text: &str,
    opts: &Options,
) -> Result<LogicalPlan, AdqlError> {
    let mut query = parse_with(text, opts)?;
    rewrite::expand_regions(&mut query)?;
    let tables = names::resolve(&mut query, state).await;
    let renamed = sql92::rewrite(&mut query, &tables);
    let stmt = DfStatement::Statement(Box::new(Statement::Query(Box::new(query))));
    // Source spans locate planning errors: without them, an error is planned again with them.
    let again = (!state.config().options().sql_parser.collect_spans).then(|| stmt.clone());
    match state
        .statement_to_plan(stmt)
        .await
        .and_then(|plan| sql92::rename_outputs(plan, &renamed))
    {
        Ok(plan) => Ok(plan),
        Err(e) => Err(messages::planning_error(text, opts, state, again, e).await),
    }
}

/// Refuses tokens that are SQL but not ADQL, pointing at them.
fn check_tokens(tokens: &[TokenWithSpan]) -> Result<(), AdqlError> {
    for t in tokens {
        let msg = match &t.token {
            Token::DoubleColon => Some("'::' casts are not ADQL; use CAST(x AS type)".to_string()),
            Token::DoubleEq => Some("'==' is not ADQL; compare with '='".into()),
            Token::Char('`') => {
                Some("backtick quotes are not ADQL; delimit identifiers with double quotes".into())
            }
            Token::Char('[') | Token::LBracket => Some("'[' is not ADQL".into()),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::LIMIT => {
                Some("LIMIT is not ADQL; use SELECT TOP n (and OFFSET m)".into())
            }
            Token::Placeholder(p) => Some(format!("'{p}' is not ADQL")),
            Token::DollarQuotedString(_) => Some("dollar-quoted strings are not ADQL".into()),
            Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_) => {
                Some("only plain '…' string literals are ADQL".into())
            }
            _ => None,
        };
        if let Some(m) = msg {
            return Err(AdqlError::at(ErrorKind::Syntax, m, t));
        }
    }
    Ok(())
}

/// ADQL's lexical rules sqlparser does not apply: a string literal continues across
/// whitespace and comments (`'abc' -- note` newline `'def'` is `'abcdef'`, as in SQL-92), and
/// `0x1F` is a hexadecimal integer literal (ADQL 2.1 §2.3.1); sqlparser's `X'1F'` is not ADQL.
/// A run of the same space, tab or line break becomes one token spanning the run (the parser
/// skips whitespace; the list it and its error messages keep is the shorter).
fn normalise_tokens(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>, AdqlError> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    // Index in `out` of the last string literal, while only whitespace has followed it.
    let mut open_string: Option<usize> = None;
    for t in tokens {
        match &t.token {
            Token::SingleQuotedString(s) => {
                if let Some(i) = open_string {
                    // Appended in place: many adjacent parts do not copy the text each time.
                    match &mut out[i].token {
                        Token::SingleQuotedString(prev) => prev.push_str(s),
                        other => *other = Token::SingleQuotedString(s.clone()),
                    }
                    out[i].span.end = t.span.end;
                    // Drop the whitespace kept between the two parts.
                    out.truncate(i + 1);
                    continue;
                }
                open_string = Some(out.len());
                out.push(t);
                continue;
            }
            Token::Whitespace(w) => {
                let repeat = matches!(w, Whitespace::Space | Whitespace::Tab | Whitespace::Newline)
                    && out.last().is_some_and(|l| l.token == t.token);
                match out.last_mut() {
                    Some(last) if repeat => last.span.end = t.span.end,
                    _ => out.push(t),
                }
                continue;
            }
            Token::HexStringLiteral(h) => {
                // `0x1F` spans two characters more than its digits, `X'1F'` three (told apart
                // by the span, not by finding the text again: that scan, once per literal,
                // made a text of many literals quadratic).
                let width = (t.span.start.line == t.span.end.line)
                    .then(|| t.span.end.column.saturating_sub(t.span.start.column));
                if width != Some(h.chars().count() as u64 + 2) {
                    return Err(AdqlError::at(
                        ErrorKind::Syntax,
                        "X'…' literals are not ADQL; write hexadecimal integers as 0x…",
                        &t,
                    ));
                }
                let value = i64::from_str_radix(h, 16).map_err(|_| {
                    AdqlError::at(
                        ErrorKind::Syntax,
                        format!("the hexadecimal literal 0x{h} does not fit a BIGINT"),
                        &t,
                    )
                })?;
                out.push(TokenWithSpan::new(
                    Token::Number(value.to_string(), false),
                    t.span,
                ));
            }
            _ => out.push(t),
        }
        open_string = None;
    }
    Ok(out)
}

/// Deepest expression nesting the token stream may imply (operators in a chain plus the
/// chains around it).
const MAX_NESTING: usize = 300;

/// Most parentheses opened right after `NOT` inside one another. sqlparser tries two readings
/// of `NOT (` where the deeper one fails, so its time doubles with each such level (36
/// levels: 1.5 s, 40: a minute, 45: twenty minutes on one core, found by hand); 20 stays
/// below a millisecond.
const MAX_NOT_NESTING: usize = 20;

/// Refuses queries whose expressions would nest deeper than [`MAX_NESTING`]: sqlparser builds
/// `1+1+…+1` as a left-deep tree without counting it against its recursion limit, and every
/// later pass over such a tree (validation, rewriting, dropping it) recurses once per level, so
/// a long enough chain overflowed the stack (found by cargo fuzz).
fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), AdqlError> {
    let mut outer: Vec<usize> = Vec::new();
    let mut sum_outer = 0usize;
    let mut current = 0usize;
    // Whether each open parenthesis came right after NOT, and how many of them are open.
    let mut after_not: Vec<bool> = Vec::new();
    let mut not_depth = 0usize;
    let mut previous_not = false;
    for t in tokens {
        if matches!(t.token, Token::Whitespace(_)) {
            continue;
        }
        let is_not = matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::NOT);
        match &t.token {
            Token::LParen => {
                outer.push(current);
                sum_outer += current;
                current = 0;
                after_not.push(previous_not);
                if previous_not {
                    not_depth += 1;
                    if not_depth > MAX_NOT_NESTING {
                        return Err(AdqlError::at(
                            ErrorKind::Syntax,
                            format!(
                                "the query is nested too deeply (more than {MAX_NOT_NESTING} \
                                 parenthesised NOT inside one another)"
                            ),
                            t,
                        ));
                    }
                }
            }
            Token::RParen => {
                current = outer.pop().unwrap_or(0);
                sum_outer = sum_outer.saturating_sub(current);
                if after_not.pop() == Some(true) {
                    not_depth = not_depth.saturating_sub(1);
                }
            }
            Token::Comma => current = 0,
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::Tilde => current += 1,
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT) =>
            {
                current += 1
            }
            // A clause or branch starts a new expression beside the previous one.
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(
                        w.keyword,
                        Keyword::SELECT
                            | Keyword::FROM
                            | Keyword::WHERE
                            | Keyword::GROUP
                            | Keyword::HAVING
                            | Keyword::ORDER
                            | Keyword::ON
                            | Keyword::JOIN
                            | Keyword::UNION
                            | Keyword::INTERSECT
                            | Keyword::EXCEPT
                            | Keyword::WHEN
                            | Keyword::THEN
                            | Keyword::ELSE
                    ) =>
            {
                current = 0
            }
            _ => {}
        }
        previous_not = is_not;
        if sum_outer + current > MAX_NESTING {
            return Err(AdqlError::at(
                ErrorKind::Syntax,
                format!(
                    "the query is nested too deeply (more than {MAX_NESTING} operators in one expression)"
                ),
                t,
            ));
        }
    }
    Ok(())
}

fn parser_error(e: ParserError, query: &str) -> AdqlError {
    let text = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => {
            return AdqlError::syntax("the query is nested too deeply", None, None);
        }
    };
    let (mut line, mut column) = find_location(&text);
    if line.is_none() && text.ends_with("found: EOF") {
        // The query ended too early: point just past its last character.
        let trimmed = query.trim_end();
        line = Some(trimmed.matches('\n').count() as u64 + 1);
        column = Some(trimmed.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1);
    }
    let message = strip_location(&text).replace("found: EOF", "found the end of the query");
    AdqlError::syntax(message, line, column)
}

/// Pulls `Line: L, Column: C` out of a sqlparser message.
fn find_location(s: &str) -> (Option<u64>, Option<u64>) {
    let num_after = |key: &str| {
        s.find(key).and_then(|i| {
            s[i + key.len()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .ok()
        })
    };
    (num_after("Line:"), num_after("Column:"))
}

fn strip_location(s: &str) -> String {
    let s = match s.find(" at Line:") {
        Some(i) => &s[..i],
        None => s,
    };
    s.replace("sql parser error: ", "")
}

/// Turns a DataFusion planning error into an ADQL semantic error, located when possible.
fn semantic_error(text: &str, e: datafusion::error::DataFusionError) -> AdqlError {
    let msg = humanise(&e.strip_backtrace());
    // Locate the name the message is about in the query text.
    let unknown_field = msg.strip_prefix("No field named ").map(|rest| {
        rest.split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .trim_end_matches('.')
            .trim_matches('"')
    });
    let located = unknown_field
        .or_else(|| msg.split('\'').nth(1))
        .or_else(|| msg.split('"').nth(1))
        .and_then(|name| {
            let bare = name.rsplit('.').next().unwrap_or(name);
            locate_word(text, bare)
        });
    let (line, column) = located.map_or((None, None), |(l, c)| (Some(l), Some(c)));
    AdqlError {
        kind: ErrorKind::Semantic,
        message: msg,
        line,
        column,
    }
}

/// A DataFusion error message in a user's words: no optimizer-rule or error-class
/// preambles, ADQL type names instead of Arrow's, and the usual mistakes said plainly.
pub fn humanise(message: &str) -> String {
    let mut m = message.trim().to_string();
    // Drop the wrapping "<rule>\ncaused by\n" layers: the cause is what the user needs.
    while let Some(i) = m.find("\ncaused by\n") {
        m = m[i + "\ncaused by\n".len()..].trim_start().to_string();
    }
    const NO_MATCH: &str = "No function matches the given name and argument types '";
    if let Some(i) = m.find(NO_MATCH) {
        let call = m[i + NO_MATCH.len()..].split('\'').next().unwrap_or("");
        let (name, args) = call.split_once('(').unwrap_or((call, ")"));
        return humanise(&format!(
            "type mismatch: {}({} does not exist; check the types of the arguments (CAST converts them)",
            name.to_ascii_uppercase(),
            args
        ));
    }
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Internal error: ",
        "Arrow error: ",
        "Compute error: ",
        "Execution error: ",
        "Cast error: ",
        "External error: ",
    ] {
        while let Some(rest) = m.strip_prefix(prefix) {
            m = rest.to_string();
        }
    }
    if m.starts_with("Divide by zero") {
        return "division by zero".into();
    }
    // An uncorrelated subquery's (DataFusion's ScalarSubqueryExec); the correlated ones say
    // the same in rules::scalar_subquery.
    if m.starts_with("Scalar subquery returned more than one row") {
        return "more than one row returned by a subquery used as a value: a subquery used \
                as a value must give at most one row (use an aggregate such as MAX, or a \
                condition that selects one row)"
            .into();
    }
    // The correlated subqueries rules::scalar_subquery leaves to DataFusion, which refuses them.
    if m.contains("logical expression ScalarSubquery")
        || m.starts_with("Correlated scalar subquery")
    {
        return "this correlated subquery used as a value cannot be answered: one reading \
                columns of a query two levels out, or correlated inside an outer join or a \
                nested query of its own, cannot; write it as a join, or with an aggregate \
                (MAX, MIN, …)"
            .into();
    }
    if let Some(rest) = m.strip_prefix("Cannot cast string '") {
        if let Some((value, _)) = rest.split_once('\'') {
            return format!(
                "type mismatch: the string '{value}' is compared with or used as a number; compare numbers with numbers (or CAST)"
            );
        }
    }
    if let Some(i) = m.find(" failed to match any signature") {
        let name = m[..i].trim_start_matches("Function ").trim_matches('\'');
        return format!(
            "type mismatch: {} does not accept arguments of these types",
            name.to_ascii_uppercase()
        );
    }
    if let (Some(rest), true) = (m.strip_prefix("table '"), m.ends_with("' not found")) {
        let name = rest.trim_end_matches("' not found");
        let name = name.strip_prefix("datafusion.").unwrap_or(name);
        return format!("table '{name}' not found (the tables are listed at /tap/tables)");
    }
    // Arrow type names → ADQL's.
    let mut out = String::with_capacity(m.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let adql = match word.as_str() {
            "Float64" => "DOUBLE",
            "Float32" => "REAL",
            "Int64" => "BIGINT",
            "Int32" => "INTEGER",
            "Int16" => "SMALLINT",
            "Int8" | "UInt8" => "TINYINT",
            "Utf8" | "Utf8View" | "LargeUtf8" => "VARCHAR",
            "Boolean" => "BOOLEAN",
            w => w,
        };
        out.push_str(adql);
        word.clear();
    };
    for c in m.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Line and column (1-based) of the first case-insensitive whole-word occurrence of `word`.
fn locate_word(text: &str, word: &str) -> Option<(u64, u64)> {
    if word.is_empty() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let w = word.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let is_part = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut from = 0;
    while let Some(i) = lower[from..].find(&w) {
        let start = from + i;
        let end = start + w.len();
        if (start == 0 || !is_part(bytes[start - 1]))
            && (end >= bytes.len() || !is_part(bytes[end]))
        {
            let line = text[..start].matches('\n').count() as u64 + 1;
            let col = start - text[..start].rfind('\n').map_or(0, |p| p + 1) + 1;
            return Some((line, col as u64));
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests;
