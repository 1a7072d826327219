//! Every class of message: its words and where it points.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::*;

#[test]
fn edit_distance_counts_transpositions_once() {
    assert_eq!(distance("FORM", "from"), 1);
    assert_eq!(distance("hpmg", "hpmag"), 1);
    assert_eq!(distance("hip2", "hip2"), 0);
    assert_eq!(distance("", "abc"), 3);
    assert_eq!(distance("kitten", "sitting"), 3);
    assert_eq!(nearest("hpmg", ["hip", "hpmag", "e_hpmag"]), Some("hpmag"));
    assert_eq!(nearest("zzz", ["hip", "hpmag"]), None);
    assert_eq!(nearest("AN", ["AS", "AND"]), Some("AND"));
    assert_eq!(nearest("HPMAG", ["hip", "hpmag"]), Some("hpmag"));
}

/// Two catalogs like the demo's (no rows: only planning is tested).
fn context() -> SessionContext {
    let ctx = SessionContext::new();
    crate::register(&ctx);
    let cat = ctx.catalog("datafusion").expect("catalog");
    for (schema, table, cols) in [
        (
            "hipparcos",
            "hip2",
            &["hip", "ra", "dec", "plx", "hpmag", "e_hpmag", "b_v"][..],
        ),
        (
            "gaia",
            "dr3_bright",
            &["source_id", "ra", "dec", "phot_g_mean_mag"][..],
        ),
    ] {
        cat.register_schema(schema, Arc::new(MemorySchemaProvider::new()))
            .expect("schema");
        let fields: Vec<Field> = cols
            .iter()
            .map(|c| {
                let t = if *c == "hip" || *c == "source_id" {
                    DataType::Int64
                } else {
                    DataType::Float64
                };
                Field::new(*c, t, true)
            })
            .collect();
        let mem = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]]).expect("table");
        ctx.register_table(TableReference::partial(schema, table), Arc::new(mem))
            .expect("register");
    }
    ctx
}

/// The error of planning `q`: (message, line, column).
async fn planned(q: &str) -> (String, u64, u64) {
    let ctx = context();
    let e = crate::plan(&ctx.state(), q)
        .await
        .err()
        .unwrap_or_else(|| panic!("{q} planned"));
    (e.message, e.line.unwrap_or(0), e.column.unwrap_or(0))
}

/// The error of parsing `q`: (message, line, column).
fn parsed(q: &str) -> (String, u64, u64) {
    let e = crate::parse(q)
        .err()
        .unwrap_or_else(|| panic!("{q} parsed"));
    (e.message, e.line.unwrap_or(0), e.column.unwrap_or(0))
}

fn says(got: (String, u64, u64), message: &str, line: u64, column: u64) {
    assert_eq!(got, (message.to_string(), line, column));
}

#[test]
fn misspelt_keywords_are_named_with_the_keyword_meant() {
    says(
        parsed("SELEC hip FROM hipparcos.hip2"),
        "'SELEC' is not an ADQL keyword: did you mean SELECT?",
        1,
        1,
    );
    says(
        parsed("SELECT hip\nFORM hipparcos.hip2"),
        "'FORM' is not an ADQL keyword: did you mean FROM?",
        2,
        1,
    );
    says(
        parsed("SELECT hip FROM hipparcos.hip2 WHER hip = 3"),
        "'WHER' is not an ADQL keyword: did you mean WHERE?",
        1,
        32,
    );
    says(
        parsed("SELECT hip FROM t ORDR BY hip"),
        "'ORDR' is not an ADQL keyword: did you mean ORDER BY?",
        1,
        19,
    );
    says(
        parsed("SELECT hip FROM t WHERE hip BETWEEN 1 NAD 3"),
        "'NAD' is not an ADQL keyword: did you mean AND?",
        1,
        39,
    );
    says(
        parsed("SELECT COUNT(DISITNCT hip) FROM t"),
        "'DISITNCT' is not an ADQL keyword: did you mean DISTINCT?",
        1,
        14,
    );
}

#[test]
fn parser_errors_say_what_was_expected_in_adql_terms() {
    says(
        parsed("W00T"),
        "an ADQL query starts with SELECT (or WITH), not 'W00T'",
        1,
        1,
    );
    says(
        parsed(""),
        "the query is empty: an ADQL query starts with SELECT (or WITH)",
        1,
        1,
    );
    says(
        parsed("SELECT FROM t"),
        "SELECT needs a column, an expression or * before 'FROM'",
        1,
        8,
    );
    says(
        parsed("SELECT a, FROM t"),
        "a value is missing after ',' (before 'FROM')",
        1,
        11,
    );
    says(
        parsed("SELECT a FROM t WHERE a < 2 AND"),
        "expected a value (a column, a number, a string, a function call or a subquery) after 'AND', found the end of the query",
        1,
        32,
    );
    says(
        parsed("SELECT a FROM"),
        "expected a name after 'FROM', found the end of the query",
        1,
        14,
    );
    says(
        parsed("SELECT a FROM t WHERE EXISTS z"),
        "EXISTS takes a subquery in parentheses, EXISTS (SELECT …), not 'z'",
        1,
        30,
    );
    says(
        parsed("SELECT a FROM t WHERE a IN 5"),
        "IN takes a list or a subquery in parentheses, IN (1, 2) or IN (SELECT …), not '5'",
        1,
        28,
    );
    says(
        parsed("SELECT a FROM t GROUP BY a HAVING (a > 2"),
        "expected ')' to close the '(' at line 1, column 35, found the end of the query",
        1,
        41,
    );
    says(
        parsed("SELECT a FROM t WHERE a BETWEEN 1 OR 2"),
        "BETWEEN needs AND (x BETWEEN low AND high), found 'OR'",
        1,
        35,
    );
    says(
        parsed("SELECT TOP foo a FROM t"),
        "TOP takes an unsigned integer, not 'foo'",
        1,
        12,
    );
    says(
        parsed("SELECT a FROM t WHERE a IS 3"),
        "IS must be followed by NULL or NOT NULL, not '3'",
        1,
        28,
    );
    says(
        parsed("SELECT _x FROM t"),
        "'_x' is not a regular identifier (a regular identifier starts with a letter): delimit it with double quotes, \"_x\"",
        1,
        8,
    );
    says(
        parsed("SELECT grégory FROM t"),
        "'grégory' is not a regular identifier (a regular identifier has only ASCII letters, digits and _): delimit it with double quotes, \"grégory\"",
        1,
        10,
    );
    says(
        parsed("SELECT \"a FROM t"),
        "this double quote opens a delimited identifier that is never closed (it ends with \")",
        1,
        8,
    );
    says(
        parsed("SELECT 'a FROM t"),
        "this quote opens a string that is never closed (it ends with '; write '' for a quote inside it)",
        1,
        8,
    );
}

#[test]
fn a_token_after_a_complete_query_is_explained() {
    says(
        parsed("SELECT a FROM t WHERE a u 2"),
        "unexpected 'u' after 'a' (is a comma, an operator or a keyword missing?)",
        1,
        25,
    );
    says(
        parsed("SELECT a FROM t1, t2 ON a = b"),
        "unexpected ON after 't2': ON and USING follow a JOIN (FROM a JOIN b ON …)",
        1,
        22,
    );
    says(
        parsed("SELECT a FROM t OFFSET 2 JOIN u ON a = b"),
        "unexpected JOIN after '2': ADQL clauses come in the order SELECT [TOP n] … FROM … [WHERE …] [GROUP BY …] [HAVING …] [ORDER BY …] [OFFSET n]",
        1,
        26,
    );
    says(
        parsed("SELECT a FROM t; SELECT b FROM u"),
        "only one query can be sent: nothing may follow ';'",
        1,
        18,
    );
    says(parsed("SELECT a FROM t)"), "this ')' closes no '('", 1, 16);
}

#[test]
fn no_message_speaks_sqlparser() {
    for q in [
        "SELEC a FROM t",
        "W00T",
        "",
        "SELECT a FROM t WHERE",
        "select x from t1 NATURAL JOIN t2, t3 OUTER",
        "SELECT * FROM cat JOIN cat2 USING(1)",
        "select x from y where x Is None",
        "SELECT x.* .y FROM t",
    ] {
        let (m, line, column) = parsed(q);
        assert!(line > 0 && column > 0, "{q}: {m}");
        for jargon in [
            "Expected:",
            "VALUES",
            "found: ",
            "EOF",
            "APPLY",
            "literal int",
        ] {
            assert!(!m.contains(jargon), "{q}: {m}");
        }
    }
}

#[tokio::test]
async fn unknown_columns_are_named_with_their_table_and_the_nearest_column() {
    says(
        planned("SELECT hpmg FROM hipparcos.hip2").await,
        "unknown column 'hpmg' in hipparcos.hip2: did you mean hpmag?",
        1,
        8,
    );
    says(
        planned("SELECT a.hpmg\nFROM hipparcos.hip2 AS a").await,
        "unknown column 'hpmg' in hipparcos.hip2 AS a: did you mean a.hpmag?",
        1,
        8,
    );
    says(
        planned("SELECT hip FROM hipparcos.hip2 ORDER BY hpmg").await,
        "unknown column 'hpmg' in hipparcos.hip2: did you mean hpmag?",
        1,
        41,
    );
    says(
        planned("SELECT zzz FROM hipparcos.hip2").await,
        "unknown column 'zzz' in hipparcos.hip2 (its columns: b_v, dec, e_hpmag, hip, hpmag, plx, ra)",
        1,
        8,
    );
    says(
        planned("SELECT phot_g_mag FROM hipparcos.hip2 AS h, gaia.dr3_bright AS g").await,
        "unknown column 'phot_g_mag' in hipparcos.hip2 AS h or gaia.dr3_bright AS g: did you mean phot_g_mean_mag?",
        1,
        8,
    );
    says(
        planned("SELECT x.hip FROM hipparcos.hip2 AS a").await,
        "'x' in x.hip is not a table or alias of this FROM clause (hipparcos.hip2 AS a): did you mean a.hip?",
        1,
        8,
    );
}

#[tokio::test]
async fn ambiguous_columns_are_located_with_their_qualified_forms() {
    says(
        planned("SELECT hip,\n  dec FROM hipparcos.hip2 AS a, gaia.dr3_bright AS b").await,
        "ambiguous column 'dec': more than one table of FROM has it; write a.dec or b.dec",
        2,
        3,
    );
}

#[tokio::test]
async fn unknown_tables_are_named_as_written_with_the_table_meant() {
    says(
        planned("SELECT hip FROM hip2").await,
        "unknown table 'hip2': did you mean hipparcos.hip2?",
        1,
        17,
    );
    says(
        planned("SELECT hip FROM hiparcos.hip2").await,
        "unknown table 'hiparcos.hip2': did you mean hipparcos.hip2?",
        1,
        17,
    );
    says(
        planned("SELECT hip FROM nosuch.table_x").await,
        "unknown table 'nosuch.table_x' (the tables are listed at /tap/tables)",
        1,
        17,
    );
}

#[tokio::test]
async fn ungrouped_columns_say_group_by() {
    says(
        planned("SELECT hip, COUNT(*) FROM hipparcos.hip2").await,
        "hip must be in GROUP BY or in an aggregate: add it to GROUP BY, or write e.g. MAX(hip)",
        1,
        8,
    );
    says(
        planned("SELECT ra,\n h.dec FROM hipparcos.hip2 AS h GROUP BY ra").await,
        "h.dec must be in GROUP BY or in an aggregate: add it to GROUP BY, or write e.g. MAX(h.dec)",
        2,
        2,
    );
}

#[tokio::test]
async fn shapes_of_subqueries_and_set_operations() {
    says(
        planned("SELECT hip FROM hipparcos.hip2 WHERE hip IN (SELECT ra, dec FROM hipparcos.hip2)")
            .await,
        "a subquery used as a value must give one column, not 2",
        1,
        53,
    );
    says(
        planned("SELECT hip FROM hipparcos.hip2 UNION SELECT hip, ra FROM hipparcos.hip2").await,
        "the two queries of UNION must give the same number of columns, not 1 and 2",
        1,
        1,
    );
}

#[test]
fn execution_errors_are_located_in_the_text() {
    assert_eq!(
        humanise_in(
            "SELECT hip FROM t\nWHERE hip = 'x'",
            "Cast error: Cannot cast string 'x' to value of Int64 type"
        ),
        "type mismatch: the string 'x' is compared with or used as a number; compare numbers with numbers (or CAST) (line 2, column 13)"
    );
}
