//! Tests of parsing, strictness and rewriting (no tables needed).

use super::*;

fn sql(q: &str) -> String {
    parse(q)
        .map(|q| q.to_string())
        .unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn top_becomes_limit_and_keeps_offset() {
    assert_eq!(sql("SELECT TOP 5 a FROM t"), "SELECT a FROM t LIMIT 5");
    assert_eq!(
        sql("SELECT TOP 5 a FROM t ORDER BY a OFFSET 10"),
        "SELECT a FROM t ORDER BY a LIMIT 5 OFFSET 10"
    );
}

#[test]
fn sql_that_is_not_adql_is_refused_with_position() {
    let e = parse("SELECT a\nFROM t LIMIT 3").unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(8)), "{e}");
    assert!(e.message.contains("TOP"), "{e}");
    let e = parse("SELECT a::int FROM t").unwrap_err();
    assert!(e.message.contains("CAST"), "{e}");
    let e = parse("SELECT `a` FROM t").unwrap_err();
    assert!(e.message.contains("double quotes"), "{e}");
    let e = parse("SELECT frobnicate(a) FROM t").unwrap_err();
    assert!(e.message.contains("frobnicate"), "{e}");
    let e = parse("SELECT a FROM t; DROP TABLE t").unwrap_err();
    assert!(e.message.contains("after the end"), "{e}");
}

#[test]
fn syntax_errors_have_line_and_column() {
    let e = parse("SELECT a,\n  FROM t").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn adql_functions_are_renamed() {
    assert_eq!(
        sql("SELECT LOG(a), CEILING(a) FROM t"),
        "SELECT ln(a) AS \"log\", ceil(a) AS \"ceiling\" FROM t"
    );
    assert_eq!(
        sql("SELECT MOD(a, 3) AS m FROM t"),
        "SELECT (a % 3) AS m FROM t"
    );
}

#[test]
fn unnamed_items_get_unique_names() {
    assert_eq!(
        sql("SELECT COUNT(*), count(a), a + 1 FROM t"),
        "SELECT COUNT(*) AS \"count\", count(a) AS \"count_2\", a + 1 AS \"expr\" FROM t"
    );
}

#[test]
fn trailing_semicolon_is_accepted() {
    assert!(parse("SELECT a FROM t;").is_ok());
}

#[test]
fn a_query_that_ends_too_early_points_at_its_end() {
    let e = parse("SELECT a FROM t\nWHERE").unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(6)), "{e}");
    assert!(e.message.contains("end of the query"), "{e}");
}
