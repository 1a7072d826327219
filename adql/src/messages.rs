//! Error messages in ADQL's words: what is wrong, where (line and column), and what would be
//! right.
//!
//! sqlparser and DataFusion report problems in their own vocabulary ("Expected: SELECT, VALUES,
//! or a subquery", "No field named … Valid fields are …", "While expanding wildcard …",
//! `'public.hip2'`). This module rewords them: a misspelt keyword, table or column gets a
//! suggestion found by edit distance ("did you mean hipparcos.hip2?"), a column that must be
//! grouped says so, and every message points at the text the user wrote.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::{AdqlError, ErrorKind};

mod planning;

pub use planning::humanise_in;
pub(crate) use planning::planning_error;

/// Edit distance between `a` and `b`, ignoring ASCII case: insertions, deletions,
/// substitutions and transpositions of neighbours (`FORM` → `FROM`) each count one (the
/// optimal string alignment distance).
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rows of the dynamic-programming table: two back, one back, current.
    let mut two: Vec<usize> = vec![0; b.len() + 1];
    let mut one: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (one[j] + 1).min(cur[j - 1] + 1).min(one[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(two[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut two, &mut one);
        std::mem::swap(&mut one, &mut cur);
    }
    one[b.len()]
}

/// How many edits still make `word` a likely misspelling of something.
fn tolerance(word: &str) -> usize {
    match word.chars().count() {
        0..=5 => 1,
        6..=9 => 2,
        _ => 3,
    }
}

/// The candidate nearest to `word`, when it is near enough to be what was meant: the same
/// name in another case, or within a few edits. Ties go to the candidate sharing the longest
/// beginning with `word`, then to the first.
pub(crate) fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = tolerance(word);
    let common = |c: &str| {
        c.chars()
            .zip(word.chars())
            .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
            .count()
    };
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    let mut best: Option<(usize, usize, &'a str)> = None;
    for &c in &candidates {
        let d = distance(word, c);
        if d > limit || (d > 0 && c.chars().count() <= 1) {
            continue;
        }
        let better = match best {
            None => true,
            Some((bd, bc, _)) => d < bd || (d == bd && common(c) > bc),
        };
        if better {
            best = Some((d, common(c), c));
        }
    }
    best.map(|(_, _, c)| c)
        .or_else(|| by_parts(word, &candidates))
}

/// The one candidate whose `_`-separated parts include all of `word`'s, in order, when
/// `word` has two parts or more: `phot_g_mag` for `phot_g_mean_mag`.
fn by_parts<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let parts: Vec<String> = word.split('_').map(str::to_ascii_lowercase).collect();
    if parts.len() < 2 || parts.iter().any(String::is_empty) {
        return None;
    }
    let holds = |c: &str| {
        let mut theirs = c.split('_').map(str::to_ascii_lowercase);
        parts.iter().all(|p| theirs.any(|t| t == *p))
    };
    let mut found = candidates.iter().filter(|c| holds(c));
    match (found.next(), found.next()) {
        (Some(c), None) => Some(*c),
        _ => None,
    }
}

/// ADQL keywords a misspelt word is compared with (the ones of one or two letters, and
/// ASC/DESC, are left out: too many short column names are one edit away from them).
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "ORDER",
    "HAVING",
    "JOIN",
    "INNER",
    "OUTER",
    "LEFT",
    "RIGHT",
    "FULL",
    "NATURAL",
    "USING",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "DISTINCT",
    "ALL",
    "TOP",
    "OFFSET",
    "AND",
    "NOT",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "NULL",
    "EXISTS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "WITH",
    "CAST",
];

/// The tokens that are not whitespace or comments.
fn significant(tokens: &[TokenWithSpan]) -> Vec<&TokenWithSpan> {
    tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect()
}

/// Index in `toks` of the token that starts at (`line`, `column`), or of the first one after
/// it; `toks.len()` when none is (the end of the query).
fn index_at(toks: &[&TokenWithSpan], line: u64, column: u64) -> usize {
    toks.iter()
        .position(|t| (t.span.start.line, t.span.start.column) >= (line, column))
        .unwrap_or(toks.len())
}

/// How a token is named in a message.
fn shown(t: Option<&TokenWithSpan>) -> String {
    match t.map(|t| &t.token) {
        None | Some(Token::EOF) => "the end of the query".into(),
        Some(tok) => format!("'{tok}'"),
    }
}

/// An unquoted word that is not an ADQL keyword but a misspelling of one, among `toks[i]` and
/// the two words before it: the keyword, and the token.
fn misspelt_keyword<'t>(
    toks: &[&'t TokenWithSpan],
    i: usize,
) -> Option<(&'static str, &'t TokenWithSpan)> {
    let lo = i.saturating_sub(3);
    let hi = (i + 1).min(toks.len());
    for k in (lo..hi).rev() {
        let t = toks[k];
        let Token::Word(w) = &t.token else {
            continue;
        };
        if w.quote_style.is_some() || w.value.len() < 3 {
            continue;
        }
        // A name: qualified (`a.b`), called (`f(`), or a keyword as written.
        let next = toks.get(k + 1).map(|t| &t.token);
        let prev = k.checked_sub(1).map(|p| &toks[p].token);
        if matches!(next, Some(Token::Period) | Some(Token::LParen))
            || matches!(prev, Some(Token::Period))
        {
            continue;
        }
        let upper = w.value.to_ascii_uppercase();
        if KEYWORDS.contains(&upper.as_str()) || w.keyword == Keyword::AS {
            continue;
        }
        if let Some(kw) = nearest(&upper, KEYWORDS.iter().copied()) {
            // `d` and `t1` are names; a keyword misspelt keeps most of its letters.
            if distance(&upper, kw) < kw.len().saturating_sub(1) {
                return Some((kw, t));
            }
        }
    }
    None
}

fn at(message: String, t: &TokenWithSpan) -> AdqlError {
    AdqlError {
        kind: ErrorKind::Syntax,
        message,
        line: Some(t.span.start.line),
        column: Some(t.span.start.column),
    }
}

fn typo(kw: &str, t: &TokenWithSpan) -> AdqlError {
    let written = match &t.token {
        Token::Word(w) => w.value.clone(),
        other => other.to_string(),
    };
    let kw = match kw {
        "GROUP" | "ORDER" => format!("{kw} BY"),
        other => other.to_string(),
    };
    at(
        format!("'{written}' is not an ADQL keyword: did you mean {kw}?"),
        t,
    )
}

/// A name that starts with or holds a character a regular identifier cannot have (`_x`,
/// `grégory`), read from the query text around `t`: the name and the advice.
fn irregular_name(text: &str, t: &TokenWithSpan) -> Option<String> {
    let c = match &t.token {
        Token::Char(c) => *c,
        _ => return None,
    };
    if !(c == '_' || c.is_alphabetic()) {
        return None;
    }
    let line = text
        .split('\n')
        .nth(t.span.start.line.saturating_sub(1) as usize)?;
    let chars: Vec<char> = line.chars().collect();
    let here = (t.span.start.column as usize).checked_sub(1)?;
    let part = |c: &char| c.is_alphanumeric() || *c == '_';
    let mut start = here;
    while start > 0 && chars.get(start - 1).is_some_and(part) {
        start -= 1;
    }
    let mut end = here;
    while chars.get(end).is_some_and(part) {
        end += 1;
    }
    let name: String = chars.get(start..end)?.iter().collect();
    let why = if c == '_' && start == here {
        "a regular identifier starts with a letter"
    } else {
        "a regular identifier has only ASCII letters, digits and _"
    };
    Some(format!(
        "'{name}' is not a regular identifier ({why}): delimit it with double quotes, \"{name}\""
    ))
}

/// The '(' that is still open at `toks[i]`.
fn open_paren<'t>(toks: &[&'t TokenWithSpan], i: usize) -> Option<&'t TokenWithSpan> {
    let mut open = Vec::new();
    for t in &toks[..i.min(toks.len())] {
        match t.token {
            Token::LParen => open.push(*t),
            Token::RParen => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// A FROM at or before `toks[i]` that directly follows SELECT (or SELECT DISTINCT, ALL,
/// TOP n): a select list left empty.
fn empty_select<'t>(toks: &[&'t TokenWithSpan], i: usize) -> Option<&'t TokenWithSpan> {
    (1..=i.min(toks.len().saturating_sub(1))).find_map(|k| {
        let prev = toks.get(k - 1);
        let empty = is_word(prev, Keyword::SELECT)
            || is_word(prev, Keyword::DISTINCT)
            || is_word(prev, Keyword::ALL)
            || prev.is_some_and(|p| matches!(p.token, Token::Number(_, _)))
                && k >= 2
                && is_word(toks.get(k - 2), Keyword::TOP);
        (empty && is_word(toks.get(k), Keyword::FROM)).then(|| toks[k])
    })
}

fn is_word(t: Option<&&TokenWithSpan>, kw: Keyword) -> bool {
    matches!(t.map(|t| &t.token), Some(Token::Word(w)) if w.quote_style.is_none() && w.keyword == kw)
}

/// A sqlparser error ("Expected: …, found: …") in ADQL's words, pointing where it pointed.
pub(crate) fn parser_error(err: AdqlError, tokens: &[TokenWithSpan], text: &str) -> AdqlError {
    let (Some(line), Some(column)) = (err.line, err.column) else {
        return err;
    };
    let Some(rest) = err
        .message
        .strip_prefix("Expected: ")
        .or_else(|| err.message.strip_prefix("Expected "))
    else {
        return err;
    };
    let (expected, _) = rest
        .rsplit_once(", found")
        .unwrap_or((rest.trim_end_matches('.'), ""));
    let toks = significant(tokens);
    let eof = err.message.ends_with("found the end of the query");
    let i = if eof {
        toks.len()
    } else {
        index_at(&toks, line, column)
    };
    let found_tok = toks.get(i).copied();
    let found = shown(found_tok);
    let prev = i.checked_sub(1).and_then(|p| toks.get(p));
    let after = match prev {
        Some(p) => format!(" after '{}'", p.token),
        None => String::new(),
    };
    if let Some(t) = found_tok {
        if let Some(m) = irregular_name(text, t) {
            return at(m, t);
        }
    }
    if let Some((kw, t)) = misspelt_keyword(&toks, i) {
        return typo(kw, t);
    }
    if let Some(t) = empty_select(&toks, i) {
        return at(
            "SELECT needs a column, an expression or * before 'FROM'".to_string(),
            t,
        );
    }
    if let Some(k) = (1..=i.min(toks.len().saturating_sub(1)))
        .find(|&k| matches!(toks[k - 1].token, Token::Comma) && is_word(toks.get(k), Keyword::FROM))
    {
        return at(
            "a value is missing after ',' (before 'FROM')".to_string(),
            toks[k],
        );
    }
    let message = match expected {
        e if e.starts_with("SELECT, VALUES") => {
            if found_tok.is_none() {
                "the query is empty: an ADQL query starts with SELECT (or WITH)".to_string()
            } else {
                format!("an ADQL query starts with SELECT (or WITH), not {found}")
            }
        }
        "an expression" => {
            if matches!(prev.map(|p| &p.token), Some(Token::Comma)) {
                format!("a value is missing after ',' (before {found})")
            } else if is_word(prev, Keyword::SELECT)
                || is_word(prev, Keyword::DISTINCT)
                || is_word(prev, Keyword::ALL)
                || prev.is_some_and(|p| matches!(p.token, Token::Number(_, _)))
                    && i >= 2
                    && is_word(toks.get(i - 2), Keyword::TOP)
            {
                format!("SELECT needs a column, an expression or * before {found}")
            } else {
                format!(
                    "expected a value (a column, a number, a string, a function call or a subquery){after}, found {found}"
                )
            }
        }
        "identifier" => format!("expected a name{after}, found {found}"),
        "(" => {
            if is_word(prev, Keyword::EXISTS) {
                format!("EXISTS takes a subquery in parentheses, EXISTS (SELECT …), not {found}")
            } else if is_word(prev, Keyword::IN) {
                format!(
                    "IN takes a list or a subquery in parentheses, IN (1, 2) or IN (SELECT …), not {found}"
                )
            } else {
                format!("expected '('{after}, found {found}")
            }
        }
        ")" => match open_paren(&toks, i) {
            Some(p) => format!(
                "expected ')' to close the '(' at line {}, column {}, found {found}",
                p.span.start.line, p.span.start.column
            ),
            None => format!("expected ')'{after}, found {found}"),
        },
        "AND" => format!("BETWEEN needs AND (x BETWEEN low AND high), found {found}"),
        "literal int" => {
            if is_word(prev, Keyword::TOP) {
                format!("TOP takes an unsigned integer, not {found}")
            } else {
                format!("expected an unsigned integer{after}, found {found}")
            }
        }
        e if e.contains("NORMALIZED FROM after IS") => {
            format!("IS must be followed by NULL or NOT NULL, not {found}")
        }
        "APPLY" => "OUTER goes between LEFT, RIGHT or FULL and JOIN (LEFT OUTER JOIN …)".into(),
        "joined table" => format!("expected a table, a subquery or a join{after}, found {found}"),
        e if e.starts_with("an identifier or a '*' after '.'") => {
            format!("expected a name or * after '.', found {found}")
        }
        e => format!("expected {e}{after}, found {found}"),
    };
    AdqlError { message, ..err }
}

/// The error for a token left over after a complete query.
pub(crate) fn trailing(tokens: &[TokenWithSpan], next: &TokenWithSpan, text: &str) -> AdqlError {
    let toks = significant(tokens);
    let i = index_at(&toks, next.span.start.line, next.span.start.column);
    if let Some(m) = irregular_name(text, next) {
        return at(m, next);
    }
    if let Some((kw, t)) = misspelt_keyword(&toks, i) {
        return typo(kw, t);
    }
    let prev = i.checked_sub(1).and_then(|p| toks.get(p));
    if matches!(prev.map(|p| &p.token), Some(Token::SemiColon)) {
        return at(
            "only one query can be sent: nothing may follow ';'".to_string(),
            next,
        );
    }
    let after = match prev {
        Some(p) => format!(" after '{}'", p.token),
        None => String::new(),
    };
    let word = match &next.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    };
    let message = match (&next.token, word) {
        (Token::RParen, _) => "this ')' closes no '('".to_string(),
        (_, Some(Keyword::ON | Keyword::USING)) => format!(
            "unexpected {}{after}: ON and USING follow a JOIN (FROM a JOIN b ON …)",
            next.token.to_string().to_ascii_uppercase()
        ),
        (
            _,
            Some(
                Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::OFFSET
                | Keyword::JOIN
                | Keyword::TOP,
            ),
        ) => format!(
            "unexpected {}{after}: ADQL clauses come in the order SELECT [TOP n] … FROM … [WHERE …] \
             [GROUP BY …] [HAVING …] [ORDER BY …] [OFFSET n]",
            next.token.to_string().to_ascii_uppercase()
        ),
        _ => format!(
            "unexpected '{}'{after} (is a comma, an operator or a keyword missing?)",
            next.token
        ),
    };
    at(message, next)
}

/// A tokenizer error in ADQL's words.
pub(crate) fn tokenizer_error(err: AdqlError) -> AdqlError {
    let m = err.message.as_str();
    let message = if m.starts_with("Expected close delimiter '\"'") {
        "this double quote opens a delimited identifier that is never closed (it ends with \")"
            .to_string()
    } else if m.starts_with("Unterminated string literal") {
        "this quote opens a string that is never closed (it ends with '; write '' for a quote inside it)"
            .to_string()
    } else if m.starts_with("Unexpected EOF while in a multi-line comment") {
        "a /* comment is never closed (ADQL comments run from -- to the end of the line)"
            .to_string()
    } else if m.starts_with("Unexpected character '_'") {
        "a regular identifier starts with a letter: delimit a name that starts with _ with double quotes"
            .to_string()
    } else {
        return err;
    };
    AdqlError { message, ..err }
}

#[cfg(test)]
mod tests;
