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
    assert!(e.message.contains("nothing may follow ';'"), "{e}");
    assert_eq!((e.line, e.column), (Some(1), Some(18)), "{e}");
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
        "SELECT ln(CAST(a AS DOUBLE PRECISION)) AS \"log\", ceil(CAST(a AS DOUBLE PRECISION)) AS \"ceiling\" FROM t"
    );
    // ADQL's math functions take and return DOUBLE (ADQL 2.1 Table 1).
    assert_eq!(
        sql("SELECT MOD(a, 3) AS m FROM t"),
        "SELECT (CAST(a AS DOUBLE PRECISION) % CAST(3 AS DOUBLE PRECISION)) AS m FROM t"
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

#[test]
fn the_adql_2_1_grammar_is_accepted() {
    for q in [
        "SELECT a FROM t WHERE a < 3 UNION ALL SELECT b FROM u",
        "SELECT a FROM t INTERSECT SELECT a FROM u EXCEPT SELECT a FROM v",
        "WITH x AS (SELECT a FROM t) SELECT a FROM x",
        "SELECT DISTINCT TOP 3 a FROM t ORDER BY a DESC OFFSET 2",
        "SELECT a FROM t WHERE b ILIKE 'x%' AND LOWER(c) = UPPER(d)",
        "SELECT CAST(a AS DOUBLE PRECISION), CAST(b AS VARCHAR(3)), CAST(c AS TIMESTAMP) FROM t",
        "SELECT IN_UNIT(ra, 'rad'), COALESCE(a, b, 0) FROM t",
        "SELECT a & 0x0F, a | b, a ^ b, ~a FROM t",
        "SELECT REGION('Circle ICRS 1 2 3'), CENTROID(c), AREA(c), COORDSYS(c) FROM t",
        "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3))",
        "SELECT * FROM t AS a JOIN u AS b ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.001))",
        "SELECT * FROM t NATURAL JOIN u",
        "SELECT * FROM t FULL OUTER JOIN u USING (id)",
        "SELECT x FROM (SELECT a AS x FROM t) AS s WHERE EXISTS (SELECT 1 FROM u WHERE u.a = s.x)",
        "SELECT \"distance\", \"select\" FROM \"my table\"",
        "SELECT CASE WHEN a > 1 THEN 'big' ELSE 'small' END AS size_class FROM t",
        "SELECT ivo_healpix_index(5, ra, dec), ivo_histogram(m, 0, 20, 10) FROM t",
        "SELECT 'multi' \n 'line' FROM t",
    ] {
        assert!(parse(q).is_ok(), "{q}: {:?}", parse(q).err());
    }
}

#[test]
fn what_the_bnf_does_not_have_is_refused_with_a_reason() {
    for (q, says) in [
        ("SELECT a", "FROM"),
        (
            "SELECT a FROM t WHERE CONTAINS(POINT(a, b), CIRCLE(1, 2, 3))",
            "1 = CONTAINS",
        ),
        ("SELECT a FROM t WHERE POINT(a, b)", "needs a condition"),
        ("SELECT a FROM t HAVING b", "needs a condition"),
        ("SELECT distance FROM t", "reserved word"),
        ("SELECT a FROM distinct", "reserved word"),
        ("SELECT a FROM t OFFSET -1", "OFFSET"),
        ("SELECT a FROM t OFFSET 1.5", "OFFSET"),
        ("SELECT a FROM (SELECT a FROM t)", "needs a name"),
        ("SELECT a FROM t WHERE a == 1", "'=='"),
        ("SELECT a % 2 FROM t", "MOD"),
        ("SELECT ABS(a, b) FROM t", "ABS takes 1"),
        ("SELECT COALESCE() FROM t", "at least 1"),
        ("SELECT CAST(a AS FLOAT) FROM t", "CAST to FLOAT"),
        ("SELECT CIRCLE('ICRS', 1, 2) FROM t", "point"),
        ("SELECT POLYGON(1, 2, 3, 4, 5) FROM t", "POLYGON takes"),
        ("SELECT POINT(1, 2) || 'a' FROM t", "geometry"),
        ("SELECT x.y.z.a.b FROM t", "4 parts"),
        ("SELECT a FROM a.b.c.d", "too many parts"),
        (
            "SELECT a FROM (WITH x AS (SELECT a FROM t) SELECT a FROM x) AS s",
            "WITH",
        ),
        ("SELECT a FROM t CROSS JOIN u", "CROSS JOIN"),
        ("SELECT X'1F' FROM t", "0x"),
        ("SELECT TRUE FROM t", "TRUE"),
        ("SELECT a FROM t WHERE a LIKE 'x' ESCAPE '!'", "ESCAPE"),
        ("SELECT SUBSTRING(a FROM 1 FOR 2) FROM t", "string function"),
        ("SELECT a FROM t UNION DISTINCT SELECT a FROM u", "UNION"),
        (
            "SELECT CAST('a' AS VARCHAR(3)) * 2 FROM t",
            "character string",
        ),
    ] {
        let e = parse(q).expect_err(q);
        assert!(e.message.contains(says), "{q}: {e}");
        assert!(e.line.is_some(), "{q}: no position in {e}");
    }
}

#[test]
fn hexadecimal_literals_are_integers_and_strings_continue() {
    assert_eq!(sql("SELECT 0x1F AS h FROM t"), "SELECT 31 AS h FROM t");
    assert_eq!(
        sql("SELECT 'ab' -- note\n  'cd' AS s FROM t"),
        "SELECT 'abcd' AS s FROM t"
    );
    assert!(parse("SELECT 0x8000000000000000 FROM t").is_err());
}

#[test]
fn top_in_a_set_operand_limits_that_operand() {
    assert_eq!(
        sql("SELECT TOP 2 a FROM t UNION SELECT TOP 3 b FROM u"),
        "(SELECT a FROM t LIMIT 2) UNION (SELECT b FROM u LIMIT 3)"
    );
}

#[test]
fn parenthesised_not_is_bounded_before_the_parser_goes_exponential() {
    let nested = |n: usize| {
        format!(
            "SELECT a FROM t WHERE {} a = 1{}",
            "NOT (".repeat(n),
            ")".repeat(n)
        )
    };
    assert!(parse(&nested(MAX_NOT_NESTING)).is_ok());
    let e = parse(&nested(MAX_NOT_NESTING + 1)).expect_err("too deep");
    assert!(e.message.contains("parenthesised NOT"), "{e}");
    assert!(e.line.is_some());
    // 45 levels took twenty minutes before the bound: now it is refused before parsing.
    assert!(parse(&nested(45)).is_err());
    // Parentheses alone, and NOT without them, are not limited by this.
    assert!(parse(&format!(
        "SELECT a FROM t WHERE {}a = 1{}",
        "(".repeat(40),
        ")".repeat(40)
    ))
    .is_ok());
    assert!(parse(&format!("SELECT a FROM t WHERE {}a = 1", "NOT ".repeat(40))).is_ok());
}

/// A query text with more tokens than allowed (spaces count) is refused before it is read,
/// naming the limit; runs of spaces below it are read, and errors after them keep their
/// position; adjacent string parts still make one literal.
#[test]
fn long_texts_are_bounded_by_their_tokens() {
    let opts = Options {
        max_tokens: 1000,
        ..Options::default()
    };
    let spaces = " ".repeat(2000);
    let e = parse_with(&format!("SELECT a{spaces}FROM t"), &opts).unwrap_err();
    assert!(e.message.contains("too large"), "{e}");
    assert!(e.message.contains("[limits] query_tokens"), "{e}");
    assert!(e.message.contains("1000"), "{e}");
    let spaces = " ".repeat(900);
    let q = parse_with(&format!("SELECT a{spaces}FROM t"), &opts).expect("under the bound");
    assert_eq!(q.to_string(), "SELECT a FROM t");
    let e = parse_with(&format!("SELECT a{spaces}FROM t LIMIT 3"), &opts).unwrap_err();
    assert_eq!((e.line, e.column), (Some(1), Some(916)), "{e}");
    let q = parse("SELECT 'a'\n\n  'b' -- c\n 'c' FROM t").expect("parsed");
    assert_eq!(q.to_string(), "SELECT 'abc' AS \"expr\" FROM t");
    // The default bound leaves room for a polygon of 100,000 vertices.
    let verts: Vec<String> = (0..100_000)
        .map(|i| format!("{:.9},{:.9}", 10.0 + f64::from(i) * 1e-6, 20.0))
        .collect();
    let q = format!(
        "SELECT a FROM t WHERE 1=CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {}))",
        verts.join(",")
    );
    assert!(token_bound(&q) < MAX_TOKENS, "{}", token_bound(&q));
}

#[test]
fn correlated_subqueries_left_to_datafusion_are_refused_in_adql_terms() {
    for engine in [
        "This feature is not implemented: Physical plan does not support logical expression \
         ScalarSubquery(<subquery>)",
        "Error during planning: Correlated scalar subquery can only be used in Projection, \
         Filter, Aggregate plan nodes",
    ] {
        let m = humanise(engine);
        assert!(
            m.starts_with("this correlated subquery used as a value cannot be answered"),
            "{m}"
        );
        assert!(
            !m.contains("ScalarSubquery") && !m.contains("plan nodes"),
            "{m}"
        );
    }
}
