"""adqlgen — a seeded generator of random, valid ADQL 2.1 queries, each with its own
translation into SQLite SQL, for differential testing (test_differential.py).

The generator builds every query bottom-up from its own little AST: each node is created
once and rendered at the same time in two dialects, ADQL (what vostok receives) and SQLite
(what the reference database runs). Nothing is translated by rewriting vostok's text.

Which ADQL? REC-ADQL-2.1 (2023-12-15), its BNF (ivoa-std/ADQL, adql.bnf) and SQL-92 where
ADQL defers to it. The SQLite side is made to follow ADQL, not SQLite's habits:

* integer / integer truncates towards zero. ADQL says nothing of its own; SQL-92 (6.12,
  syntax rule 1) makes exact / exact an exact numeric with implementation-defined scale, so
  scale 0 (truncation, as PostgreSQL, SQL Server and DataFusion do) is conforming. SQLite
  does the same natively for INTEGER operands, so the translation keeps it.
* The math functions of ADQL 2.1 Table 1 (ABS, CEILING, FLOOR, MOD, ROUND, TRUNCATE, POWER,
  SQRT, EXP, LOG, LOG10, trig, DEGREES, RADIANS) take and return DOUBLE: the SQLite side
  casts their results to REAL, so ABS(-7) / 2 is 3.5 there (a service that keeps an
  integer type and gives 3 deviates from the standard).
* MOD(x, y): the remainder with the sign of x (ADQL 2.1 Table 1) — C fmod; SQLite's
  math-function mod() is fmod (its % operator would cast reals to integers).
* LOG is the natural logarithm (SQLite ln()), LOG10 base 10.
* ROUND(x, n): ADQL does not say how halves round. The SQLite side (adql_round, Python
  Decimal on the exact binary value) rounds half away from zero, like SQL Server, MySQL and
  PostgreSQL's numeric round; the generator only uses ROUND/TRUNCATE with n > 0 on values
  with many significant digits (ra, dec, transcendental functions of plain columns — not
  ASIN(SIN(x)) or SQRT(x * x), which give x back), never on 2- or 4-decimal catalogue
  values where "9.205" is really 9.20499999… and the result would depend on
  decimal-vs-binary conventions that ADQL leaves open.
* LIKE is case-sensitive in ADQL 2.1 (§2.4 "Case-sensitive string comparison: LIKE"):
  the connection runs with PRAGMA case_sensitive_like = ON. ILIKE (optional, §4.4.3) is
  translated as adql_lower(a) LIKE adql_lower(b); LOWER/UPPER use Python's Unicode case
  mapping (ADQL §4.4.1 recommends the Unicode default case algorithms; SQLite's own
  lower() only folds ASCII).
* CAST(x AS REAL) is a 32-bit float in ADQL (REAL maps to VOTable float, §3.1.1): the
  SQLite side rounds through struct('f') (adql_f32). CAST to an integer type is only ever
  applied to integral values (ADQL §4.7.1: rounding of approximate → exact is
  implementation dependent) and within the target type's range (too small a type SHOULD
  be an error).
* NULL ordering is not defined by ADQL: ordered results are only compared when the ORDER
  BY keys are unique and never NULL, which fixes the order completely.
* Set operators: INTERSECT binds tighter than UNION and EXCEPT (ADQL 2.1 §4.6.7); SQLite
  evaluates compound selects left to right, so the translation nests the right operand
  as SELECT * FROM (…). SQLite has no INTERSECT ALL / EXCEPT ALL: the translation numbers
  duplicates with ROW_NUMBER() OVER (PARTITION BY every column) and intersects/excepts
  the numbered rows, which is the multiset semantics SQL and ADQL 2.1 §4.6.5 define.
* TOP n → LIMIT n; OFFSET m without TOP → LIMIT -1 OFFSET m (OFFSET applies before TOP,
  ADQL §4.9.1, which is what LIMIT n OFFSET m means).
* Division by zero, SQRT/LOG of out-of-domain values, overflow to infinity: ADQL leaves
  them undefined (SQL-92: an exception); the generator never produces them (every divisor,
  SQRT/LOG/ASIN/ACOS argument and EXP exponent is bounded away from trouble by interval
  arithmetic over the columns' real ranges).

Not generated because they are not ADQL 2.1: hexadecimal literals and bitwise operators
(in the 2.1 drafts, removed before the Recommendation: ivoa-std/ADQL PR #21), LIMIT, ::
casts. CASE and scalar subqueries are SQL-92 but absent from the ADQL 2.1 grammar (CASE is
only a reserved word there); the brief asks for them, so they are generated as the named
features "case_when" and "scalar_subquery" — switch them off to stay inside strict 2.1.

Floating point: vostok (DataFusion) computes REAL (float32) arithmetic in 32 bits, e.g.
pmra * 2 stays float32, while SQLite computes everything in 64 bits. SQL-92 allows that
(REAL op REAL is approximate numeric of implementation-defined precision), so such
values are compared with a tolerance derived from their magnitude, and they never appear
where a rounding difference could flip a result (predicates, GROUP BY, DISTINCT, set
operations, ORDER BY, join keys, FLOOR/ROUND/…). Functions are different: ADQL 2.1
Table 1 gives them DOUBLE arguments and results, so SQRT(pmra) must be the double square
root (feature real_args_to_double_math).
SUM/AVG over doubles get a tolerance for the summation order. Everything else is
expected to agree to 1e-9 relative / 1e-12 absolute. Values that are bit-identical in
both engines (IEEE double + - * /, the same libm) are what predicates are made of.

Vostok bugs that make a feature fail today are in SWITCHED_OFF below: the generator leaves
those features out, each with its minimal failing query, the rows ADQL 2.1 gives, what
vostok does. test_differential.py runs each minimal query: XFAIL while the bug is there;
when vostok is fixed that test FAILS, saying to delete the entry, which switches the
feature back on. VOSTOK_DIFF_ALL=1 generates them anyway.
"""

from __future__ import annotations

import math
import os
import random
import re
import struct
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

# ---------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------

FEATURES = {
    # expressions
    "arith": "+ - * / on numbers",
    "unary_minus": "unary minus",
    "int_division": "integer / integer (truncating, SQL-92 exact numeric)",
    "int_args_to_double_math": "ABS/ROUND/MOD/CEILING/FLOOR/TRUNCATE of integer arguments "
                               "(ADQL 2.1 Table 1: the result is DOUBLE)",
    "narrow_int_overflow": "arithmetic on SMALLINT/INTEGER columns whose result leaves the "
                           "column type's range (the value must stay right)",
    "null_literal": "NULL as a value",
    "string_literals": "string literals, '' escapes",
    "concat": "string concatenation ||",
    "lower_upper": "LOWER(), UPPER() (ADQL 2.1 optional)",
    "coalesce": "COALESCE() (ADQL 2.1 optional)",
    "case_when": "CASE WHEN … THEN … [ELSE …] END (SQL-92; not in the ADQL 2.1 grammar)",
    "case_simple": "simple CASE x WHEN v1 THEN … [ELSE …] END (SQL-92: x = v1; a NULL x matches no WHEN)",
    "case_null_branch": "CASE with NULL as one of its results",
    "case_mixed_types": "CASE whose results have different numeric types (SMALLINT and INTEGER, "
                        "REAL and DOUBLE: SQL-92 gives the wider type)",
    "cast_num": "CAST(… AS INTEGER | SMALLINT | BIGINT | DOUBLE PRECISION)",
    "cast_real": "CAST(… AS REAL) (32-bit float)",
    "cast_varchar": "CAST(integer AS VARCHAR[(n)]), CAST('digits' AS INTEGER)",
    "math_basic": "ABS CEILING FLOOR SQRT POWER EXP LOG LOG10 PI",
    "round_trunc": "ROUND(x[, n]) TRUNCATE(x[, n])",
    "mod": "MOD(x, y)",
    "trig": "SIN COS TAN COT ASIN ACOS ATAN ATAN2 DEGREES RADIANS",
    "real_columns": "arithmetic on REAL (float32) columns of gaia.dr3_bright",
    "real_args_to_double_math": "SQRT/EXP/LOG/LOG10/SIN/COS/ATAN/DEGREES/RADIANS of a REAL value "
                                "(ADQL 2.1 Table 1: computed and returned as DOUBLE)",
    # predicates
    "compare": "= != <> < > <= >=",
    "int_edge_literals": "an integer column compared with literals at and just beyond its type's range "
                         "(sn < 32768, hip <> -2147483649, source_id <= 9223372036854775807)",
    "bool_logic": "AND OR NOT and their precedence",
    "between": "[NOT] BETWEEN",
    "in_list": "[NOT] IN (value list)",
    "in_list_negative_zero": "a float that can be -0.0 tested with IN (…, 0, …)",
    "is_null": "IS [NOT] NULL",
    "like": "[NOT] LIKE with % and _",
    "like_all_wildcard_null": "x LIKE '%' (a pattern of % only) where x can be NULL",
    "ilike": "[NOT] ILIKE (ADQL 2.1 optional)",
    "string_compare": "comparisons of strings",
    # query structure
    "select_star": "SELECT * and t.*",
    "all_quantifier": "SELECT ALL",
    "distinct": "SELECT DISTINCT",
    "aggregates": "COUNT(*) COUNT(x) SUM AVG MIN MAX",
    "agg_distinct": "COUNT(DISTINCT x), SUM(DISTINCT x), AVG(DISTINCT x)",
    "agg_arith": "arithmetic on aggregates",
    "agg_cast_twins": "two aggregates of one function over x and over CAST(x AS …) in one SELECT",
    "agg_min_max_mix": "only MIN/MAX aggregates, no GROUP BY, over a column c and over an "
                       "expression (MAX(plx + pmra), MAX(plx))",
    "distinct_negative_zero": "COUNT/SUM/AVG(DISTINCT x) of a float expression that can be -0.0",
    "group_by": "GROUP BY columns",
    "group_by_expr": "GROUP BY expressions",
    "having": "HAVING",
    "top": "TOP n (with ORDER BY a unique key)",
    "offset": "OFFSET m",
    "order_by": "ORDER BY (unique key)",
    "order_desc": "ORDER BY … DESC",
    "order_by_position": "ORDER BY 1, 2",
    "order_by_alias": "ORDER BY an output alias",
    "order_by_expr": "ORDER BY an expression",
    "alias_shadows_column": "an output alias equal to a column name of the FROM tables "
                            "(SELECT t.sn AS hip … ORDER BY t.hip)",
    "in_subquery": "x IN (SELECT …)",
    "not_in_subquery": "x NOT IN (SELECT …), also over NULLs",
    "correlated_in": "x IN (SELECT … WHERE correlated)",
    "correlated_not_in": "x NOT IN (SELECT … WHERE correlated), also as NOT (x IN (…))",
    "correlated_in_widened": "x IN (SELECT s.k … WHERE s.k = t.k) with x of a wider type than s.k",
    "in_subquery_null_in_or": "x [NOT] IN (SELECT …) under OR or NOT when x or the subquery's "
                              "column can be NULL (three-valued logic)",
    "exists": "[NOT] EXISTS (correlated SELECT …)",
    "scalar_subquery": "(SELECT aggregate …) as a value (SQL-92; not in the ADQL 2.1 grammar)",
    "correlated_scalar_subquery": "(SELECT aggregate … WHERE key = outer key) as a value",
    "correlated_scalar_range": "(SELECT aggregate … WHERE key BETWEEN outer key AND outer key + k, or "
                               "key > outer key …) as a value: correlated by a non-equality",
    "correlated_scalar_row": "(SELECT column … WHERE key = outer key + k) as a value: a non-aggregated "
                             "correlated subquery (one row or none: NULL)",
    "correlated_scalar_top": "(SELECT TOP 1 column … WHERE key range ORDER BY key [DESC] [OFFSET m]) as a "
                             "value: TOP in a correlated subquery, the first row of each outer row's",
    "filter_over_global_aggregate": "a WHERE condition that does not depend on the aggregated values, "
                                    "over a derived table / WITH query that is a global aggregate "
                                    "(one row: SELECT 5 AS k, COUNT(*) …)",
    "derived_table": "(SELECT …) AS t in FROM",
    "derived_top": "(SELECT TOP n … ORDER BY key) AS t in FROM",
    "comma_join": "FROM a, b WHERE a.k = b.k",
    "join_on": "[INNER] JOIN … ON",
    "join_using": "JOIN … USING (k)",
    "using_unqualified": "the USING/NATURAL column referenced without qualifier",
    "natural_join": "NATURAL JOIN",
    "left_join": "LEFT [OUTER] JOIN",
    "right_join": "RIGHT [OUTER] JOIN",
    "full_join": "FULL [OUTER] JOIN",
    "outer_join_null_side_filter": "a WHERE condition on the NULL-extended side of a RIGHT or FULL "
                                   "OUTER JOIN (IS NULL, OR, NOT (… AND …))",
    "three_way_join": "a JOIN b … JOIN c …",
    "union": "UNION", "union_all": "UNION ALL",
    "intersect": "INTERSECT", "intersect_all": "INTERSECT ALL",
    "except": "EXCEPT", "except_all": "EXCEPT ALL",
    "set_precedence": "a UNION b INTERSECT c without parentheses (INTERSECT binds tighter)",
    "set_nested": "set operations nested with parentheses on either side, up to four operands "
                  "((a EXCEPT b) UNION (c INTERSECT ALL d))",
    "set_operand_top": "(SELECT TOP n … ORDER BY …) as a set operand",
    "set_top_operand_nested": "(SELECT TOP n … ORDER BY …) as an operand of a set operation with "
                              "three operands (a EXCEPT b INTERSECT (SELECT TOP …))",
    "set_mixed_string_types": "a set operation whose column is a VARCHAR column in one operand and "
                              "CAST(… AS VARCHAR) in another",
    "set_order_offset": "ORDER BY / OFFSET on a set operation's result",
    "set_operand_always_empty": "a set operand whose WHERE is constant (… UNION SELECT … WHERE 7 <> 7)",
    "set_folded_column": "a set operation over expressions vostok folds into a bare column "
                         "(x * 1, x / 1, COALESCE(NULL, x), CASE WHEN <constant> THEN x END)",
    "set_in_subquery": "a set operation inside IN (…)",
    "set_in_subquery_in_or": "x IN (SELECT … UNION SELECT …) under OR or NOT",
    "with_cte": "WITH name AS (…) (ADQL 2.1 optional)",
    "with_chained": "a WITH query that refers to an earlier one",
    # lexical
    "ident_case": "regular identifiers and keywords in any case",
    "delimited_ident": "\"delimited\" identifiers (also for the reserved word size)",
    "comments": "-- comments",
    "tap_schema": "queries on TAP_SCHEMA.columns (strings, NULLs)",
    "gaia": "queries on gaia.dr3_bright",
}


@dataclass(frozen=True)
class Broken:
    """A feature switched off because vostok fails it today."""
    feature: str
    adql: str  # the minimal failing query
    expected: list  # the rows ADQL 2.1 gives (list of tuples), or None when an error is expected
    observed: str  # what vostok did
    standard: str  # what ADQL 2.1 (or SQL-92 under it) says


# Features switched off because vostok fails them today. Each entry: the minimal failing
# query, the rows it should give, what vostok does instead. test_differential.py runs each
# as an xfail(strict) test: when vostok is fixed it XPASSes (a failure) — then delete the
# entry here and the generator uses the feature again. Empty: the 19 shapes once listed here
# are fixed, and each is a regression test with its answer (test_differential.REGRESSIONS).
SWITCHED_OFF: dict[str, Broken] = {}

# Observed while writing the generator, not ADQL 2.1 and therefore not generated (for the
# lead engineer; vostok's README says what is not ADQL is refused):
NOT_ADQL_NOTES = [
    "SELECT 0x1F AS h … returns the binary value X'1F' (CSV '1f') instead of refusing a "
    "hexadecimal literal (removed from ADQL 2.1 before REC); 0x10 + 1 fails with 'Cannot "
    "coerce arithmetic expression Binary + Int64'.",
    "hip & 3, hip | 4, hip ^ 1 are accepted and computed as bitwise AND/OR/XOR; ~hip fails "
    "with 'Unsupported SQL unary operator BitwiseNot'. Bitwise operators are not ADQL 2.1.",
    "A boolean select item (SELECT sn > 3 AS b …) is accepted and returned as VOTable boolean; "
    "ADQL 2.1 has no boolean value expressions.",
    "Set operations whose operand columns have different types (SELECT va … UNION ALL SELECT "
    "hip …: SMALLINT and INTEGER; pmra … UNION ALL ra …: REAL and DOUBLE) answer HTTP 200 and "
    "then QUERY_STATUS ERROR 'record batch does not match the writer's schema'. ADQL 2.1 §4.6 "
    "says the operands' columns MUST have the same datatypes, so the generator does not mix "
    "them; vostok should then refuse such a query up front (HTTP 400) or return the common "
    "type, not fail after the header.",
    "CAST(hip AS VARCHAR) keeps hip's UCD meta.id;meta.main and description in the result "
    "FIELD although the value is no longer the identifier.",
]


def enabled_features(env=None) -> set:
    """The features the generator uses: all, minus SWITCHED_OFF; VOSTOK_DIFF_ALL=1 keeps the
    switched-off ones too; VOSTOK_DIFF_FEATURES_OFF=a,b switches more off."""
    env = os.environ if env is None else env
    on = set(FEATURES)
    if env.get("VOSTOK_DIFF_ALL", "") not in ("1", "true", "yes"):
        on -= set(SWITCHED_OFF)
    for name in filter(None, (s.strip() for s in env.get("VOSTOK_DIFF_FEATURES_OFF", "").split(","))):
        on.discard(name)
    return on


# ---------------------------------------------------------------------------------------
# SQLite functions that give the SQLite side ADQL semantics
# ---------------------------------------------------------------------------------------


def _adql_round(x, n=0):
    """ROUND(x, n) of the exact binary value of x, halves away from zero (see the header)."""
    if x is None or n is None:
        return None
    return float(Decimal(float(x)).quantize(Decimal(1).scaleb(-int(n)), rounding=ROUND_HALF_UP))


def _adql_trunc(x, n=0):
    """TRUNCATE(x, n): towards zero, on the exact binary value of x."""
    if x is None or n is None:
        return None
    return float(Decimal(float(x)).quantize(Decimal(1).scaleb(-int(n)), rounding=ROUND_DOWN))


def f32(x):
    """Round a double to the nearest float32 (round half to even, as Rust `as f32`)."""
    if x is None:
        return None
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def register_sqlite_functions(conn):
    """Functions the SQLite translation uses; call on every connection that runs it."""
    conn.execute("PRAGMA case_sensitive_like = ON")
    det = {"deterministic": True}
    conn.create_function("adql_round", 2, _adql_round, **det)
    conn.create_function("adql_trunc", 2, _adql_trunc, **det)
    conn.create_function("adql_f32", 1, f32, **det)
    conn.create_function("adql_log10", 1, lambda x: None if x is None else math.log10(x), **det)
    conn.create_function("adql_lower", 1, lambda s: None if s is None else str(s).lower(), **det)
    conn.create_function("adql_upper", 1, lambda s: None if s is None else str(s).upper(), **det)
    # Fail loudly instead of silently relying on a SQLite without math functions.
    conn.execute("SELECT sqrt(2), ln(2), log10(2), pow(2, 2), mod(7.5, 2), atan2(1, 1), "
                 "degrees(1), radians(1), pi(), ceil(1.5), floor(1.5), trunc(1.5)").fetchall()


# ---------------------------------------------------------------------------------------
# Catalogue description (filled from the SQLite copy by the test)
# ---------------------------------------------------------------------------------------

INT_RANGE = {"i16": (-32768, 32767), "i32": (-2**31, 2**31 - 1), "i64": (-2**63, 2**63 - 1)}
INT_RANK = {"i16": 1, "i32": 2, "i64": 3}


@dataclass
class ColumnInfo:
    name: str
    t: str  # 'int' | 'float' | 'str'
    df: str  # physical type vostok (DataFusion) uses: i16 i32 i64 f32 f64 str
    lo: float | None = None
    hi: float | None = None
    nullable: bool = False
    distinct: int = 0
    fine: bool = False  # many significant digits (safe for ROUND(x, n > 0))
    id_like: bool = False  # an identifier: compare and join only, no arithmetic
    samples: list = field(default_factory=list)
    reserved: bool = False  # an ADQL reserved word: must be a delimited identifier

    @property
    def low_card(self):
        return self.distinct <= 300


@dataclass
class TableInfo:
    adql: str  # schema.table as ADQL names it
    sqlite: str  # its SQLite name
    key: tuple  # unique, never-null column(s)
    rows: int
    columns: list  # ColumnInfo, in table order
    sorted_keys: list = None  # for range restrictions (single int key)
    ra_col: str | None = None  # for band restrictions
    full_scan_ok: bool = True  # may an aggregate scan the whole table?

    def col(self, name):
        return next(c for c in self.columns if c.name == name)


def table_info_from_sqlite(conn, adql, sqlite, key, columns, reserved=(), fine=(), id_like=(),
                           ra_col=None, full_scan_ok=True, sample_every=None):
    """Describe a loaded SQLite table: ranges, null counts, distinct counts, sample values.
    `columns`: [(name, df)] in table order (df as in ColumnInfo)."""
    rows = conn.execute(f'SELECT COUNT(*) FROM "{sqlite}"').fetchone()[0]
    every = sample_every or max(1, rows // 150)
    cols = []
    for name, df in columns:
        t = "str" if df == "str" else ("int" if df.startswith("i") else "float")
        lo, hi, nnull, ndist = conn.execute(
            f'SELECT MIN("{name}"), MAX("{name}"), SUM("{name}" IS NULL), COUNT(DISTINCT "{name}") '
            f'FROM "{sqlite}"').fetchone()
        if ndist <= 300:
            samples = [r[0] for r in conn.execute(
                f'SELECT DISTINCT "{name}" FROM "{sqlite}" WHERE "{name}" IS NOT NULL ORDER BY 1')]
        else:
            samples = [r[0] for r in conn.execute(
                f'SELECT "{name}" FROM "{sqlite}" WHERE rowid % {every} = 0 AND "{name}" IS NOT NULL '
                f'ORDER BY rowid')]
        cols.append(ColumnInfo(name, t, df, lo if t != "str" else None, hi if t != "str" else None,
                               bool(nnull), ndist, name in fine, name in id_like, samples,
                               name in reserved))
    info = TableInfo(adql, sqlite, tuple(key), rows, cols, None, ra_col, full_scan_ok)
    if len(key) == 1 and info.col(key[0]).t == "int":
        info.sorted_keys = [r[0] for r in conn.execute(
            f'SELECT "{key[0]}" FROM "{sqlite}" ORDER BY 1')]
    return info


# ---------------------------------------------------------------------------------------
# Expressions: each node is rendered in both dialects when it is built
# ---------------------------------------------------------------------------------------

ATOM, UNARY, MUL, ADD, CONCAT = 9, 8, 7, 6, 5  # arithmetic precedence (ADQL text)
P_PRED, P_NOT, P_AND, P_OR = 4, 3, 2, 1  # boolean precedence


@dataclass
class X:
    """A generated expression: its ADQL and SQLite texts and what is known of its values."""
    a: str  # ADQL text
    s: str  # SQLite text (always fully parenthesised)
    t: str  # 'int' 'float' 'str' 'bool' 'null' (ADQL type class)
    df: str = "i64"  # the physical type vostok (DataFusion) computes it in
    lo: float | None = None  # bounds of the value (interval arithmetic)
    hi: float | None = None
    null: bool = False  # may be NULL
    tol: float = 0.0  # absolute tolerance when compared; 0: the same bits are expected
    fine: bool = False  # many significant digits: ROUND(x, n > 0) meets no decimal ties
    agg: bool = False  # contains an aggregate
    prec: int = ATOM
    mag: float = 0.0  # largest magnitude in the subtree (for float32 tolerances)
    col: ColumnInfo | None = None  # the column, for a bare column reference
    sub: bool = False  # contains a subquery
    integral: bool = False  # integer-valued (int type, or FLOOR/CEILING/ROUND(x)/TRUNCATE(x))
    samples: list | None = None  # some values it takes (strings: for LIKE patterns)
    lit: bool = False  # a literal
    aggkeys: tuple = ()  # (function, distinct, argument without casts, argument) of its aggregates
    simple: bool = False  # a column with a literal: x + 1, 2.5 * x (for the fine flag)
    litval: float | None = None  # the value, when it is a constant vostok folds (1, COALESCE(1, x))
    simpl_col: bool = False  # vostok simplifies it to a bare column (x * 1, x / 1, x + 0)

    @property
    def exact(self):
        return self.tol == 0.0

    @property
    def num(self):
        return self.t in ("int", "float")


NULL_X = dict(t="null", df="null", null=True)


def _mag(*vals):
    m = 0.0
    for v in vals:
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            m = max(m, abs(v))
    return m


class Retry(Exception):
    """The generator reached a dead end; it draws the query again."""


@dataclass
class OutCol:
    name: str
    x: X


@dataclass
class Q:
    """A generated (sub)query."""
    a: str
    s: str
    cols: list  # OutCol
    keys: list  # tuples of output names that are unique and never NULL
    est: int  # upper estimate of the row count
    ordered: bool = False  # ORDER BY fixes the whole row order
    simple: bool = True  # a bare SELECT without ORDER BY/TOP/OFFSET
    setop: bool = False  # a set operation (compound) at the top
    paren: bool = False  # must be parenthesised as a set operand (has TOP/ORDER BY)
    family: str | None = None  # 'hip', 'gaia', 'tap': the table its key columns come from
    named_ok: bool = True  # every output column has a known, unique name
    global_agg: bool = False  # aggregates without GROUP BY: exactly one row
    outer_rf: bool = False  # a RIGHT or FULL OUTER JOIN is inside


@dataclass
class ScopeCol:
    qual: str | None  # table alias; None for a coalesced USING / NATURAL column
    name: str
    x: X  # type, bounds, nullability of the column
    unique: bool = False  # unique and never NULL in the FROM result
    unamb: bool = True  # the bare name is unambiguous in its scope


@dataclass
class Src:
    """A FROM clause being built."""
    a: str
    s: str
    scope: list  # ScopeCol
    keys: list  # tuples of (qual, name), each unique & never NULL in the FROM result
    est_full: int  # row estimate without the restrictions
    must: list  # predicates that always go into WHERE (comma-join conditions)
    restrict: list  # predicates bounding the rows (WHERE of row-returning queries)
    est: int  # row estimate with the restrictions
    star_cols: list  # ScopeCol, in SELECT * order
    aliases: list  # table aliases introduced (for t.*)
    family: str | None = None
    global_agg: bool = False  # it contains a one-row global aggregate (derived table / WITH)
    outer_rf: bool = False  # a RIGHT or FULL OUTER JOIN is inside


@dataclass
class Case:
    index: int
    adql: str
    sqlite: str
    columns: list  # OutCol
    ordered: bool
    features: list
    names_checked: bool


# ---------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------

ROW_CAP = 2500  # estimated rows a row-returning query may give
SUB_CAP = 5000  # outer rows above which no correlated subquery is generated


class Generator:
    """Generator(tables, features, seed).case(i) -> Case, deterministic in (seed, i, data).
    tables: {'hip': TableInfo, 'gaia': TableInfo, 'tap': TableInfo} (gaia and tap optional)."""

    SET_OPS = [("UNION", "union"), ("UNION ALL", "union_all"), ("INTERSECT", "intersect"),
               ("INTERSECT ALL", "intersect_all"), ("EXCEPT", "except"), ("EXCEPT ALL", "except_all")]

    def __init__(self, tables: dict, features: set | None = None, seed: int = 1):
        self.tables = tables
        self.features = enabled_features() if features is None else set(features)
        self.seed = seed

    # ---- bookkeeping ---------------------------------------------------------------------

    def on(self, *feats):
        return all(f in self.features for f in feats)

    def use(self, *feats):
        for f in feats:
            assert f in FEATURES, f
            self.used.add(f)

    def maybe(self, p, *feats):
        """True with probability p if the features are on; records their use."""
        if self.on(*feats) and self.rng.random() < p:
            self.use(*feats)
            return True
        return False

    def kw(self, word):
        """An ADQL keyword (ADQL keywords are case-insensitive)."""
        if self.on("ident_case") and self.rng.random() < 0.12:
            self.use("ident_case")
            return self.rng.choice([word.lower(), word.capitalize()])
        return word

    def kws(self, words):
        return " ".join(self.kw(w) for w in words.split())

    def ident(self, name, reserved=False, delimit_ok=True):
        """ADQL text for a lower-case name: as is, in another case, or "delimited"."""
        if reserved:
            self.use("delimited_ident")
            return f'"{name}"'
        r = self.rng.random()
        if delimit_ok and r < 0.05 and self.on("delimited_ident"):
            self.use("delimited_ident")
            return f'"{name}"'
        if r < 0.15 and self.on("ident_case"):
            self.use("ident_case")
            return self.rng.choice([name.upper(), name.capitalize()])
        return name

    def new_alias(self, base="t"):
        self.n_alias += 1
        return f"{base}{self.n_alias}"

    def sp(self):
        """Whitespace between clauses: a space, a newline, sometimes a comment."""
        r = self.rng.random()
        if r < 0.03 and self.on("comments"):
            self.use("comments")
            return " -- a comment, with 'quotes' and -- dashes\n"
        return "\n" if r < 0.3 else " "

    def case(self, index: int) -> Case:
        for attempt in range(300):
            self.rng = random.Random(f"adqlgen/{self.seed}/{index}/{attempt}")
            self.used = set()
            self.n_alias = 0
            self.over_global_agg = False
            self.in_or = 0  # predicates being built under OR or NOT
            self.in_not = 0  # … under NOT
            self.ctes = []  # (name, Q)
            try:
                q = self.top_query()
            except Retry:
                continue
            return Case(index, q.a, q.s, q.cols, q.ordered, sorted(self.used), q.named_ok)
        raise RuntimeError(f"adqlgen: no query could be generated for index {index}")

    # ---- literals ------------------------------------------------------------------------

    def lit_int(self, v):
        v = int(v)
        if v < 0:
            return X(f"-{-v}", f"(-{-v})", "int", "i64", v, v, prec=UNARY, mag=-v, integral=True, lit=True,
                     litval=v)
        return X(str(v), str(v), "int", "i64", v, v, mag=v, integral=True, lit=True, litval=v)

    def lit_float(self, v, digits=None):
        if digits is None:
            digits = self.rng.choice([0, 1, 1, 2, 2, 3, 4])
        if v != 0 and self.rng.random() < 0.1:
            text = f"{abs(v):.{max(digits, 1)}E}"  # approximate numeric literal, e.g. 1.50E+02
        else:
            text = f"{abs(v):.{digits}f}"
            if "." not in text:
                text += "." if self.rng.random() < 0.2 else ".0"  # '5.' is an ADQL literal too
        val = float(text)
        sql_text = text + "0" if text.endswith(".") else text
        if v < 0 and val != 0:
            return X(f"-{text}", f"(-{sql_text})", "float", "f64", -val, -val, prec=UNARY, mag=val, lit=True,
                     litval=-val)
        return X(text, sql_text, "float", "f64", val, val, mag=val, lit=True, litval=val)

    def lit_str(self, v):
        q = "'" + v.replace("'", "''") + "'"
        if "'" in v:
            self.use("string_literals")
        return X(q, q, "str", "str", samples=[v], lit=True)

    def null_lit(self):
        self.use("null_literal")
        return X(self.kw("NULL"), "NULL", **NULL_X, lit=True)

    def literal_like(self, e: X):
        """A literal of e's type near values e really takes."""
        rng = self.rng
        if e.t == "str":
            pool = e.samples or (e.col.samples if e.col is not None else None)
            if rng.random() < 0.08:
                return self.lit_str(rng.choice(["it's", "O'Brien", "''", "deg'"]))
            if pool:
                v = rng.choice(pool)
                if rng.random() < 0.2 and v:
                    v = v[: rng.randrange(len(v) + 1)]
                return self.lit_str(v)
            return self.lit_str(rng.choice(["a", "deg", "ra", "hip", "m", "Z"]))
        lo, hi = e.lo, e.hi
        if lo is None or hi is None:
            lo, hi = -100.0, 100.0
        pool = e.col.samples if e.col is not None else None
        if pool and rng.random() < 0.6:
            v = rng.choice(pool)
        else:
            v = rng.uniform(lo, hi) if hi > lo else lo
        if e.t == "int" or (e.integral and rng.random() < 0.7):
            return self.lit_int(round(v))
        return self.lit_float(v)

    # ---- column references ---------------------------------------------------------------

    def colref(self, sc: ScopeCol, force_qual=False):
        """A reference to a scope column: qualified (alias.name) or bare when unambiguous."""
        c = sc.x.col
        name_a = self.ident(sc.name, reserved=bool(c and c.reserved))
        if sc.qual is None:  # the coalesced column of a USING / NATURAL join
            self.use("using_unqualified")
            a, s = name_a, f'"{sc.name}"'
        elif sc.unamb and not force_qual and self.rng.random() < 0.35:
            a, s = name_a, f'"{sc.qual}"."{sc.name}"'
        else:
            a, s = f"{self.ident(sc.qual, delimit_ok=False)}.{name_a}", f'"{sc.qual}"."{sc.name}"'
        x = sc.x
        return X(a, s, x.t, x.df, x.lo, x.hi, x.null, x.tol, x.fine, False, ATOM, _mag(x.lo, x.hi, x.mag),
                 x.col, False, x.integral or x.t == "int", x.samples)

    @staticmethod
    def colref_s(sc: ScopeCol):
        """SQLite text of a scope column (always qualified when it has a table)."""
        return f'"{sc.qual}"."{sc.name}"' if sc.qual else f'"{sc.name}"'

    def pick(self, scope, pred=lambda sc: True, prefer_null=False):
        cands = [sc for sc in scope if pred(sc)]
        if not cands:
            raise Retry()
        if prefer_null:
            nl = [sc for sc in cands if sc.x.null]
            if nl and self.rng.random() < 0.7:
                cands = nl
        return self.rng.choice(cands)

    # ---- numeric expressions -------------------------------------------------------------

    def num_expr(self, scope, depth=2, want=None, exact=False, allow_sub=False):
        """A numeric expression over the scope. want: None, 'int' or 'float'. exact: the
        value must be bit-identical in both engines (no float32 rounding, no summation)."""
        rng = self.rng
        for _ in range(40):
            r = rng.random()
            try:
                if depth <= 0 or r < 0.33:
                    e = self.num_leaf(scope, want)
                elif r < 0.60 and self.on("arith"):
                    e = self.arith(scope, depth, want, exact)
                elif r < 0.66 and self.on("unary_minus"):
                    e = self.neg(self.num_expr(scope, depth - 1, want, exact))
                elif r < 0.90:
                    e = self.func(scope, depth, want)
                elif r < 0.94 and self.on("case_when"):
                    e = self.case_expr(scope, depth, want)
                elif r < 0.97 and self.on("coalesce"):
                    e = self.coalesce_num(scope, depth, want)
                elif allow_sub and self.on("scalar_subquery"):
                    e = self.scalar_subquery(scope, want)
                else:
                    e = self.num_leaf(scope, want)
            except Retry:
                continue
            if (want and e.t != want) or (exact and not e.exact) or e.t not in ("int", "float"):
                continue
            return e
        raise Retry()

    def num_leaf(self, scope, want=None):
        rng = self.rng
        cands = [sc for sc in scope if sc.x.num and not (sc.x.col and sc.x.col.id_like)
                 and (want is None or sc.x.t == want)]
        if cands and rng.random() < 0.8:
            return self.colref(rng.choice(cands))
        if want == "int" or (want is None and rng.random() < 0.5):
            return self.lit_int(rng.choice([1, 2, 3, 5, 7, 10, 100, -3]))
        return self.lit_float(rng.choice([0.5, 1.5, 2.25, 10.0, -1.25, 3.0e-3, 1e3]))

    def neg(self, e: X):
        self.use("unary_minus")
        inner = e.a if (e.prec >= UNARY and not e.a.startswith("-")) else f"({e.a})"
        # SQLite keeps a REAL column's 0.0 as an integer and negates it to 0, losing the sign
        # of zero that ATAN2(0, -0.0) = π shows: negate a float by multiplying it
        s = f"(-1.0 * {e.s})" if e.t == "float" else f"(-{e.s})"
        return X(f"-{inner}", s, e.t, e.df, None if e.hi is None else -e.hi,
                 None if e.lo is None else -e.lo, e.null, e.tol, e.fine, e.agg, UNARY, e.mag, None,
                 e.sub, e.integral, simpl_col=e.simpl_col)

    @staticmethod
    def _opnd(e: X, need: int, right=False):
        """ADQL text of an operand, parenthesised when precedence needs it; a leading '-'
        is always parenthesised (a - -1 would start an ADQL comment)."""
        if e.prec < need or (right and e.prec == need) or e.a.startswith("-"):
            return f"({e.a})"
        return e.a

    def binop(self, op, l: X, r: X):
        """l op r, typed the way vostok types it, bounded, with its tolerance."""
        t = "int" if (l.t == "int" and r.t == "int") else "float"
        if t == "int":
            df = max(l.df, r.df, key=lambda d: INT_RANK[d])
        elif "f64" in (l.df, r.df):
            df = "f64"
        else:
            df = "f32"  # float32 with float32 or with an integer stays float32 in DataFusion
        lo, hi = _interval(op, l, r)
        if lo is None or not (abs(lo) < 1e12 and abs(hi) < 1e12):
            raise Retry()
        if t == "int":
            if op == "/":
                self.use("int_division")
            tmin, tmax = INT_RANGE[df]
            if not (tmin <= lo and hi <= tmax):
                if not self.on("narrow_int_overflow"):
                    raise Retry()
                self.use("narrow_int_overflow")
        mag = _mag(lo, hi, l.mag, r.mag)
        if op in "+-":
            tol = l.tol + r.tol
        elif op == "*":
            tol = l.tol * _mag(r.lo, r.hi) + r.tol * _mag(l.lo, l.hi) + l.tol * r.tol
        else:
            if not r.exact:
                raise Retry()
            tol = l.tol / max(min(abs(r.lo), abs(r.hi)), 1e-300) if l.tol else 0.0
        if df == "f32":
            tol += 1e-6 * mag  # rounded to 32 bits by vostok, not by SQLite
        prec = MUL if op in "*/" else ADD
        a = f"{self._opnd(l, prec)} {op} {self._opnd(r, prec, right=True)}"
        colish = lambda e: e.col is not None or e.simpl_col  # noqa: E731
        simpl = (op == "*" and ((r.litval == 1 and colish(l)) or (l.litval == 1 and colish(r)))) or \
            (op == "/" and r.litval == 1 and colish(l)) or \
            (op in "+-" and r.litval == 0 and colish(l)) or (op == "+" and l.litval == 0 and colish(r))
        return X(a, f"({l.s} {op} {r.s})", t, df, lo, hi, l.null or r.null, tol,
                 (l.fine != r.fine) and t == "float", l.agg or r.agg, prec, mag, None, l.sub or r.sub,
                 t == "int", aggkeys=l.aggkeys + r.aggkeys, simpl_col=simpl,
                 simple=(l.col is not None and r.lit) or (l.lit and r.col is not None))

    def arith(self, scope, depth, want, exact):
        rng = self.rng
        op = rng.choice("+-*/")
        sub_want = "int" if want == "int" else None
        l = self.num_expr(scope, depth - 1, sub_want, exact)
        r = self.divisor(scope, depth - 1, l, want) if op == "/" else \
            self.num_expr(scope, depth - 1, sub_want, exact)
        if want == "float" and l.t == "int" and r.t == "int":
            r = self.lit_float(rng.choice([2.5, 0.5, 1.75]), 2) if op != "+" else self.lit_float(0.5, 1)
        self.use("arith")
        return self.binop(op, l, r)

    def divisor(self, scope, depth, num: X, want):
        """A divisor bounded away from zero (ADQL leaves x / 0 undefined)."""
        rng = self.rng
        if rng.random() < 0.5:
            if want == "int" or (num.t == "int" and rng.random() < 0.6):
                return self.lit_int(rng.choice([2, 3, 4, 7, 10, -2, -5]))
            return self.lit_float(rng.choice([2.0, 0.5, 3.5, -1.5, 7.25]), 2)
        d = self.num_expr(scope, max(depth, 0), "int" if want == "int" else None, exact=True)
        if d.lo is None or d.hi is None:
            raise Retry()
        if d.t == "int" and (d.lo >= 1 or d.hi <= -1):
            return d
        if d.t == "float" and (d.lo >= 0.05 or d.hi <= -0.05):
            return d
        if d.t == "int":  # d + (1 - lo) >= 1
            return self.binop("+", d, self.lit_int(int(1 - d.lo)))
        return self.binop("+", d, self.lit_float(_nice_above(0.5 - d.lo), 2))

    # ---- functions -----------------------------------------------------------------------

    def func(self, scope, depth, want):
        choices = []
        if self.on("math_basic"):
            choices += ["abs", "ceiling", "floor", "sqrt", "power", "exp", "log", "log10", "pi"]
        if self.on("round_trunc"):
            choices += ["round", "round", "truncate"]
        if self.on("mod"):
            choices += ["mod", "mod"]
        if self.on("trig"):
            choices += ["sin", "cos", "tan", "cot", "asin", "acos", "atan", "atan2", "degrees", "radians"]
        if self.on("cast_num"):
            choices += ["cast_int", "cast_double"]
        if self.on("cast_real"):
            choices += ["cast_real"]
        if self.on("cast_varchar"):
            choices += ["cast_str_int"]
        if not choices:
            raise Retry()
        return getattr(self, "f_" + self.rng.choice(choices))(scope, depth)

    def arg(self, scope, depth, f32_ok=True):
        """A function argument: exact; an integer only when int → double math is on
        (ADQL converts it to double; vostok keeps integers for some functions)."""
        want = None if self.on("int_args_to_double_math") else "float"
        e = self.num_expr(scope, depth - 1, want, exact=True)
        if e.t == "int" and e.col is not None and e.col.id_like:
            raise Retry()
        if e.df == "f32" and not (f32_ok and self.on("real_columns")):
            raise Retry()
        if e.t == "int":
            self.use("int_args_to_double_math")
        if e.df == "f32":
            self.use("real_columns")
        return e

    def call(self, fname, args, lo, hi, *, s=None, feat="math_basic", fine=None, exact32=False,
             integral=False, df=None):
        """A DOUBLE-valued ADQL function call (the SQLite result is cast to REAL). fine=None:
        a transcendental function, whose value has no decimal ties when its arguments are
        plain columns or literals (ASIN(SIN(x)), SQRT(x * x) give x back, so not those)."""
        self.use(feat)
        if fine is None:
            fine = all(x.lit or x.col is not None or x.simple for x in args)
        a = f"{self.kw(fname.upper())}({', '.join(x.a for x in args)})"
        s = s or f"{fname}({', '.join(x.s for x in args)})"
        if df is None:
            fdfs = {x.df for x in args if x.t == "float"}
            df = "f32" if fdfs == {"f32"} else "f64"
        mag = _mag(lo, hi, *(x.mag for x in args))
        tol = 0.0
        if df == "f32" and not exact32:
            # ADQL: the REAL argument becomes DOUBLE and so is the result; vostok computes in 32 bits
            if not self.on("real_args_to_double_math"):
                raise Retry()
            self.use("real_args_to_double_math")
        if lo is not None and not (math.isfinite(lo) and math.isfinite(hi)):
            raise Retry()
        return X(a, f"CAST({s} AS REAL)", "float", df, lo, hi, any(x.null for x in args), tol, fine,
                 any(x.agg for x in args), ATOM, mag, None, any(x.sub for x in args), integral)

    def abs_of(self, x):
        lo, hi = _abs_iv(x.lo, x.hi)
        return self.call("abs", [x], lo, hi, fine=x.fine, exact32=True, integral=x.integral)

    def positive(self, x, floor=0.05):
        """x made >= floor (for LOG, SQRT of a possibly negative value): ABS(x) + c."""
        if x.lo >= floor:
            return x
        ax = self.abs_of(x) if x.lo < 0 else x
        return self.binop("+", ax, self.lit_float(self.rng.choice([1.0, 0.5, 2.5]), 1))

    def f_abs(self, scope, depth):
        return self.abs_of(self.arg(scope, depth))

    def f_ceiling(self, scope, depth):
        x = self.arg(scope, depth)
        return self.call("ceiling", [x], math.ceil(x.lo), math.ceil(x.hi), s=f"ceil({x.s})", fine=False,
                         exact32=True, integral=True)

    def f_floor(self, scope, depth):
        x = self.arg(scope, depth)
        return self.call("floor", [x], math.floor(x.lo), math.floor(x.hi), fine=False, exact32=True,
                         integral=True)

    def f_sqrt(self, scope, depth):
        x = self.arg(scope, depth)
        if x.lo < 0:
            x = self.abs_of(x)
        # not `fine`: the root of a catalogue value can be a short decimal (SQRT(0.49) = 0.7,
        # which is 0.69999… in binary), and ROUND/TRUNCATE of it depends on the convention
        return self.call("sqrt", [x], math.sqrt(x.lo), math.sqrt(x.hi), fine=False)

    def f_power(self, scope, depth):
        rng = self.rng
        x = self.arg(scope, depth)
        y = rng.choice([self.lit_int(2), self.lit_int(3), self.lit_float(0.5, 1), self.lit_int(-1),
                        self.lit_float(1.5, 1), self.lit_int(0), self.lit_float(2.0, 1)])
        if y.lo != int(y.lo) or y.lo < 0:
            x = self.positive(x)
        if _mag(x.lo, x.hi) > 1e3 and y.lo > 1:
            raise Retry()
        vals = [v ** y.lo for v in _probe_points(x.lo, x.hi)]
        # not `fine`, as SQRT: POWER(0.49, 0.5) = 0.7 and POWER(0.49, 1.5) = 0.343 are short decimals
        return self.call("power", [x, y], min(vals), max(vals), s=f"pow({x.s}, {y.s})", df="f64",
                         fine=False)

    def f_exp(self, scope, depth):
        x = self.arg(scope, depth)
        if x.lo < -700 or x.hi > 20:
            x = self.binop("/", x, self.lit_float(_nice_above(_mag(x.lo, x.hi) / 5), 1))
            if x.lo < -700 or x.hi > 20:
                raise Retry()
        return self.call("exp", [x], math.exp(x.lo), math.exp(x.hi))

    def f_log(self, scope, depth):
        x = self.positive(self.arg(scope, depth))
        return self.call("log", [x], math.log(x.lo), math.log(x.hi), s=f"ln({x.s})")

    def f_log10(self, scope, depth):
        x = self.positive(self.arg(scope, depth))
        # SQLite's log10() is ln(x)/ln(10) (log10(1000) = 2.9999999999999996): use C log10
        return self.call("log10", [x], math.log10(x.lo), math.log10(x.hi), s=f"adql_log10({x.s})")

    def f_pi(self, scope, depth):
        return self.call("pi", [], math.pi, math.pi, df="f64")

    def f_round(self, scope, depth):
        rng = self.rng
        x = self.arg(scope, depth)
        n = None
        if x.fine and x.df == "f64" and rng.random() < 0.6:
            n = rng.choice([1, 2, 3, 4, -1])
        elif rng.random() < 0.3:
            n = 0 if (x.t == "float" or rng.random() < 0.5) else rng.choice([-1, -2])
        if n is not None and n < 0 and x.t == "float" and not x.fine and x.df != "f64":
            n = 0
        args = [x] if n is None else [x, self.lit_int(n)]
        k = n or 0
        self.use("round_trunc")
        return self.call("round", args, _adql_round(x.lo, k), _adql_round(x.hi, k), s=f"adql_round({x.s}, {k})",
                         feat="round_trunc", fine=False, exact32=True, integral=k <= 0)

    def f_truncate(self, scope, depth):
        rng = self.rng
        x = self.arg(scope, depth)
        n = None
        if x.fine and x.df == "f64" and rng.random() < 0.6:
            n = rng.choice([1, 2, 3])
        elif rng.random() < 0.3:
            n = 0
        args = [x] if n is None else [x, self.lit_int(n)]
        k = n or 0
        return self.call("truncate", args, _adql_trunc(x.lo, k), _adql_trunc(x.hi, k),
                         s=f"adql_trunc({x.s}, {k})", feat="round_trunc", fine=False, exact32=True,
                         integral=k <= 0)

    def f_mod(self, scope, depth):
        rng = self.rng
        x = self.arg(scope, depth, f32_ok=False)
        if x.t == "int":
            y = self.lit_int(rng.choice([2, 3, 7, 10, -4, 100]))
        else:
            y = rng.choice([self.lit_int(rng.choice([2, 3, 7])), self.lit_float(rng.choice([2.5, 0.75, 10.0]), 2)])
        m = abs(y.lo)
        lo = -m if x.lo < 0 else 0.0
        hi = m if x.hi > 0 else 0.0
        # ADQL: the remainder with the sign of x, |r| < |y| — C fmod, SQLite's mod()
        return self.call("mod", [x, y], lo, hi, feat="mod", fine=x.fine, integral=x.integral and y.t == "int")

    def f_sin(self, scope, depth):
        return self._periodic("sin", scope, depth)

    def f_cos(self, scope, depth):
        return self._periodic("cos", scope, depth)

    def _periodic(self, fname, scope, depth):
        x = self.arg(scope, depth)
        if _mag(x.lo, x.hi) > 1e4:
            raise Retry()
        return self.call(fname, [x], -1.0, 1.0, feat="trig")

    def _squash(self, x, limit):
        """x scaled into (-limit, limit) by a round divisor when its bounds exceed it."""
        m = _mag(x.lo, x.hi)
        if m < limit or m == 0:
            return x
        return self.binop("/", x, self.lit_float(_nice_above(m / limit * 1.01), 2))

    def f_tan(self, scope, depth):
        x = self._squash(self.arg(scope, depth, f32_ok=False), 1.4)
        return self.call("tan", [x], math.tan(x.lo), math.tan(x.hi), feat="trig")

    def f_cot(self, scope, depth):
        x = self._squash(self.arg(scope, depth, f32_ok=False), 1.4)
        if x.lo < 0.1 and x.hi > -0.1:  # keep away from 0: COT(ABS(x) + 0.2), squashed
            x = self._squash(self.binop("+", self.abs_of(x), self.lit_float(0.2, 1)), 1.5)
            if x.lo < 0.1:
                raise Retry()
        vals = [1 / math.tan(v) for v in (x.lo, x.hi)]
        # SQLite has no cot(); 1 / tan(x) is the definition
        return self.call("cot", [x], min(vals), max(vals), s=f"(1.0 / tan({x.s}))", feat="trig")

    def f_asin(self, scope, depth):
        return self._arc("asin", scope, depth)

    def f_acos(self, scope, depth):
        return self._arc("acos", scope, depth)

    def _arc(self, fname, scope, depth):
        x = self.arg(scope, depth, f32_ok=False)
        if x.lo < -1 or x.hi > 1:  # into [-1, 1]: SIN/COS of it, or scaled
            if self.rng.random() < 0.5 and _mag(x.lo, x.hi) < 1e4:
                x = self.call(self.rng.choice(["sin", "cos"]), [x], -1.0, 1.0, feat="trig")
            else:
                x = self._squash(x, 1.0)
        f = getattr(math, fname)
        vals = [f(max(x.lo, -1.0)), f(min(x.hi, 1.0))]
        return self.call(fname, [x], min(vals), max(vals), feat="trig")

    def f_atan(self, scope, depth):
        x = self.arg(scope, depth)
        return self.call("atan", [x], math.atan(x.lo), math.atan(x.hi), feat="trig")

    def f_atan2(self, scope, depth):
        y = self.arg(scope, depth, f32_ok=False)
        x = self.arg(scope, depth, f32_ok=False)
        return self.call("atan2", [y, x], -math.pi, math.pi, feat="trig")

    def f_degrees(self, scope, depth):
        x = self.arg(scope, depth)
        return self.call("degrees", [x], math.degrees(x.lo), math.degrees(x.hi), feat="trig")

    def f_radians(self, scope, depth):
        x = self.arg(scope, depth)
        return self.call("radians", [x], math.radians(x.lo), math.radians(x.hi), feat="trig")

    def f_cast_int(self, scope, depth):
        """CAST(integral value AS INTEGER | BIGINT | SMALLINT), inside the target's range
        (ADQL 2.1 §4.7.1: float → integer rounding is implementation dependent; a value too
        large for the type SHOULD be an error)."""
        rng = self.rng
        x = self.num_expr(scope, depth - 1, None, exact=True)
        if not x.integral or (x.col is not None and x.col.id_like) or x.df == "f32":
            raise Retry()
        target = rng.choice(["INTEGER", "BIGINT", "SMALLINT"])
        df = {"INTEGER": "i32", "BIGINT": "i64", "SMALLINT": "i16"}[target]
        tmin, tmax = INT_RANGE[df]
        if not (tmin <= x.lo and x.hi <= tmax):
            target, df = "BIGINT", "i64"
            if not (-2 ** 52 <= x.lo and x.hi <= 2 ** 52):
                raise Retry()
        self.use("cast_num")
        return X(f"{self.kw('CAST')}({x.a} {self.kw('AS')} {self.kw(target)})", f"CAST({x.s} AS INTEGER)",
                 "int", df, x.lo, x.hi, x.null, 0.0, False, x.agg, ATOM, _mag(x.lo, x.hi, x.mag), None,
                 x.sub, True, simpl_col=x.df == df and (x.col is not None or x.simpl_col))

    def f_cast_double(self, scope, depth):
        x = self.num_expr(scope, depth - 1, None)
        if x.col is not None and x.col.id_like:
            raise Retry()
        self.use("cast_num")
        return X(f"{self.kw('CAST')}({x.a} {self.kws('AS DOUBLE PRECISION')})", f"CAST({x.s} AS REAL)",
                 "float", "f64", x.lo, x.hi, x.null, x.tol, x.fine, x.agg, ATOM, x.mag, None, x.sub, x.integral,
                 simpl_col=x.df == "f64" and (x.col is not None or x.simpl_col))  # a no-op cast folds

    def f_cast_real(self, scope, depth):
        x = self.num_expr(scope, depth - 1, None, exact=True)
        if _mag(x.lo, x.hi) > 1e30 or (x.t == "int" and _mag(x.lo, x.hi) > 2 ** 24):
            raise Retry()
        self.use("cast_real")
        return X(f"{self.kw('CAST')}({x.a} {self.kw('AS')} {self.kw('REAL')})", f"adql_f32({x.s})", "float", "f32",
                 f32(x.lo), f32(x.hi), x.null, 0.0, False, x.agg, ATOM, x.mag, None, x.sub, x.integral,
                 simpl_col=x.df == "f32" and (x.col is not None or x.simpl_col))

    def f_cast_str_int(self, scope, depth):
        """CAST(CAST(integer AS VARCHAR) AS INTEGER), or CAST('digits' AS INTEGER)."""
        rng = self.rng
        if rng.random() < 0.6:
            inner = self.str_of_int(scope, depth - 1)
            lo, hi = inner.lo, inner.hi
        else:
            v = rng.choice([7, 42, 1000, 12345])
            inner, lo, hi = self.lit_str(str(v)), v, v
        self.use("cast_varchar")
        return X(f"{self.kw('CAST')}({inner.a} {self.kw('AS')} {self.kw('INTEGER')})", f"CAST({inner.s} AS INTEGER)",
                 "int", "i32", lo, hi, inner.null, 0.0, False, inner.agg, ATOM, _mag(lo, hi), None, inner.sub, True)

    def str_of_int(self, scope, depth):
        """CAST(integer AS VARCHAR[(n)]) (keeps the integer's bounds, for round trips)."""
        if not self.on("cast_varchar"):
            raise Retry()
        x = self.num_expr(scope, depth, "int", exact=True)
        if x.lo < -2 ** 31 or x.hi > 2 ** 31 - 1:
            raise Retry()
        self.use("cast_varchar")
        target = self.rng.choice(["VARCHAR", "VARCHAR(20)", "VARCHAR(32)"])
        return X(f"{self.kw('CAST')}({x.a} {self.kw('AS')} {self.kw(target)})", f"CAST({x.s} AS TEXT)", "str", "strv",
                 x.lo, x.hi, x.null, 0.0, False, x.agg, ATOM, 0.0, None, x.sub, False,
                 [str(self.rng.randint(int(x.lo), int(x.hi))) for _ in range(5)])

    def case_expr(self, scope, depth, want):
        rng = self.rng
        K = self.kw
        t = want or rng.choice(["int", "float"])
        subject = None
        if self.maybe(0.25, "case_simple"):  # CASE x WHEN v1 THEN … : x = v1, NULL matches nothing
            subject = self.num_expr(scope, rng.choice([0, 1]), "int", exact=True)
            whens = [(self.edge_literal(subject), self.num_expr(scope, depth - 1, t, exact=True))
                     for _ in range(rng.choice([1, 2, 3]))]
        else:
            whens = [(self.pred(scope, 1), self.num_expr(scope, depth - 1, t, exact=True))
                     for _ in range(rng.choice([1, 1, 2]))]
        els = self.num_expr(scope, depth - 1, t, exact=True) if rng.random() < 0.7 else None
        if self.on("null_literal") and self.maybe(0.15, "case_null_branch"):
            k = rng.randrange(len(whens) + (els is not None))
            if k < len(whens):
                whens[k] = (whens[k][0], self.null_lit())
            else:
                els = self.null_lit()
        vals = [v for _, v in whens] + ([els] if els is not None else [])
        vals = [v for v in vals if v.t != "null"]
        if not vals:
            raise Retry()
        dfs = {v.df for v in vals}
        if len(dfs) > 1:
            if not self.on("case_mixed_types"):
                raise Retry()
            self.use("case_mixed_types")
        df = max(dfs, key=lambda d: INT_RANK[d]) if t == "int" else ("f64" if "f64" in dfs else "f32")
        a = f"{K('CASE')} " + (f"{subject.a} " if subject else "") + \
            " ".join(f"{K('WHEN')} {c.a} {K('THEN')} {v.a}" for c, v in whens)
        s = "CASE " + (f"{subject.s} " if subject else "") + " ".join(f"WHEN {c.s} THEN {v.s}" for c, v in whens)
        if els is not None:
            a += f" {K('ELSE')} {els.a}"
            s += f" ELSE {els.s}"
        self.use("case_when")
        lo, hi = min(v.lo for v in vals), max(v.hi for v in vals)
        has_null = any(v.t == "null" for _, v in whens) or (els is not None and els.t == "null")
        return X(a + f" {K('END')}", s + " END", t, df, lo, hi, els is None or has_null or any(v.null for v in vals),
                 0.0, all(v.fine for v in vals), False, ATOM, _mag(lo, hi), None,
                 any(c.sub or v.sub for c, v in whens) or bool(subject and subject.sub), all(v.integral for v in vals),
                 simpl_col=True)  # a constant condition folds it into one of its results

    def coalesce_num(self, scope, depth, want):
        rng = self.rng
        nullable = [sc for sc in scope if sc.x.null and sc.x.num and sc.x.exact and (want is None or sc.x.t == want)
                    and not (sc.x.col and sc.x.col.id_like)]
        if nullable and rng.random() < 0.7:
            first = self.colref(rng.choice(nullable))
        elif self.on("null_literal") and rng.random() < 0.3:
            first = self.null_lit()
        else:
            first = self.num_expr(scope, depth - 1, want, exact=True)
        t = first.t if first.t != "null" else (want or rng.choice(["int", "float"]))
        second = self.num_expr(scope, depth - 1, t, exact=True)
        if not (first.lit or second.lit or first.df == second.df):
            raise Retry()  # ADQL 2.1 §4.8.1: all arguments of the same datatype
        args = [x for x in (first, second) if x.t != "null"]
        dfs = {x.df for x in args}
        df = max(dfs, key=lambda d: INT_RANK[d]) if t == "int" else ("f64" if "f64" in dfs else "f32")
        lo, hi = min(x.lo for x in args), max(x.hi for x in args)
        self.use("coalesce")
        return X(f"{self.kw('COALESCE')}({first.a}, {second.a})", f"COALESCE({first.s}, {second.s})", t, df, lo, hi,
                 second.null, 0.0, False, False, ATOM, _mag(lo, hi), None, first.sub or second.sub,
                 all(x.integral for x in args), litval=first.litval,
                 # COALESCE(NULL, x) is folded to x, and vostok fails a set operation over it even when x
                 # is not a bare column (COALESCE(NULL, -ra): a field-metadata mismatch, see set_folded_column)
                 simpl_col=first.t == "null")

    # ---- strings -------------------------------------------------------------------------

    def str_expr(self, scope, depth=2):
        rng = self.rng
        cands = [sc for sc in scope if sc.x.t == "str"]
        for _ in range(20):
            r = rng.random()
            try:
                if (r < 0.45 or depth <= 0) and cands:
                    return self.colref(rng.choice(cands))
                if r < 0.6 and self.on("lower_upper"):
                    x = self.str_expr(scope, depth - 1)
                    f = rng.choice(["lower", "upper"])
                    self.use("lower_upper")
                    samples = [getattr(v, f)() for v in (x.samples or [])] or None
                    return X(f"{self.kw(f.upper())}({x.a})", f"adql_{f}({x.s})", "str", x.df, null=x.null,
                             agg=x.agg, sub=x.sub, samples=samples)
                if r < 0.75 and self.on("concat"):
                    l = self.str_expr(scope, depth - 1)
                    rr = self.str_expr(scope, depth - 1) if rng.random() < 0.5 else \
                        self.lit_str(rng.choice(["_", "-x", "it's", " ", "%", ""]))
                    self.use("concat")
                    samples = [u + v for u in (l.samples or [""])[:8] for v in (rr.samples or [""])[:3]]
                    return X(f"{self._opnd(l, CONCAT)} || {self._opnd(rr, CONCAT, right=True)}",
                             f"({l.s} || {rr.s})", "str", "strv" if "strv" in (l.df, rr.df) else "str",
                             null=l.null or rr.null, agg=l.agg or rr.agg,
                             prec=CONCAT, sub=l.sub or rr.sub, samples=samples)
                if r < 0.85 and self.on("coalesce") and any(sc.x.null for sc in cands):
                    c = self.colref(rng.choice([sc for sc in cands if sc.x.null]))
                    d = self.lit_str(rng.choice(["", "none", "n/a"]))
                    self.use("coalesce")
                    return X(f"{self.kw('COALESCE')}({c.a}, {d.a})", f"COALESCE({c.s}, {d.s})", "str", c.df,
                             samples=(c.samples or []) + [d.samples[0]])
                if r < 0.95 and self.on("cast_varchar"):
                    return self.str_of_int(scope, depth - 1)
                if cands:
                    return self.colref(rng.choice(cands))
            except Retry:
                continue
        raise Retry()

    # ---- predicates ----------------------------------------------------------------------

    def pred_x(self, a, s, agg=False, sub=False, prec=P_PRED):
        return X(a, s, "bool", "bool", prec=prec, agg=agg, sub=sub)

    def pred(self, scope, depth=2, allow_sub=False):
        rng = self.rng
        for _ in range(30):
            r = rng.random()
            try:
                if depth > 0 and r < 0.25 and self.on("bool_logic"):
                    return self.bool_combo(scope, depth, allow_sub)
                if allow_sub and r < 0.42:
                    return self.sub_pred(scope)
                return self.simple_pred(scope)
            except Retry:
                continue
        raise Retry()

    def bool_combo(self, scope, depth, allow_sub):
        rng = self.rng
        K = self.kw
        r = rng.random()
        if r < 0.2:
            self.in_or += 1  # under NOT (see in_subquery_null_in_or, correlated_not_in)
            self.in_not += 1
            try:
                p = self.pred(scope, depth - 1, allow_sub)
            finally:
                self.in_or -= 1
                self.in_not -= 1
            inner = p.a if p.prec >= P_NOT else f"({p.a})"
            self.use("bool_logic")
            return self.pred_x(f"{K('NOT')} {inner}", f"(NOT {p.s})", p.agg, p.sub, P_NOT)
        op, prec = ("AND", P_AND) if r < 0.6 else ("OR", P_OR)
        self.in_or += op == "OR"
        try:
            parts = [self.pred(scope, depth - 1, allow_sub) for _ in range(rng.choice([2, 2, 3]))]
        finally:
            self.in_or -= op == "OR"
        # parenthesise only where precedence needs it (a AND b OR c is tested as such), or at random
        a = f" {K(op)} ".join(p.a if (p.prec > prec and rng.random() < 0.8) or p.prec == prec else f"({p.a})"
                              for p in parts)
        self.use("bool_logic")
        return self.pred_x(a, "(" + f" {op} ".join(p.s for p in parts) + ")", any(p.agg for p in parts),
                           any(p.sub for p in parts), prec)

    def simple_pred(self, scope):
        kinds = []
        has_str = any(sc.x.t == "str" for sc in scope)
        for feat, kind, w, ok in [("compare", "cmp", 5, True), ("between", "between", 2, True),
                                  ("in_list", "in_list", 2, True), ("is_null", "is_null", 1, True),
                                  ("like", "like", 2, has_str or self.on("cast_varchar")),
                                  ("ilike", "ilike", 1, has_str), ("string_compare", "str_cmp", 1, has_str)]:
            if self.on(feat) and ok:
                kinds += [kind] * w
        if not kinds:
            raise Retry()
        return getattr(self, "p_" + self.rng.choice(kinds))(scope)

    def cmp_op(self):
        op = self.rng.choice(["=", "<", ">", "<=", ">=", "<>", "!="])
        return op, ("<>" if op == "!=" else op)

    def edge_literal(self, e: X):
        """For a bare integer column, sometimes a literal at or just beyond its type's range
        (int_edge_literals); else a literal near the values it takes."""
        if e.t == "int" and e.col is not None and e.df in INT_RANGE and self.maybe(0.08, "int_edge_literals"):
            lo, hi = INT_RANGE[e.df]
            cands = [lo, hi] + ([lo - 1, hi + 1] if e.df != "i64" else [lo + 1, hi - 1])
            return self.lit_int(self.rng.choice(cands))
        return self.literal_like(e)

    def p_cmp(self, scope):
        rng = self.rng
        l = self.num_expr(scope, rng.choice([0, 1, 1, 2]), exact=True)
        r = self.edge_literal(l) if rng.random() < 0.6 else self.num_expr(scope, 1, exact=True)
        op, sop = self.cmp_op()
        self.use("compare")
        return self.pred_x(f"{l.a} {op} {r.a}", f"({l.s} {sop} {r.s})", sub=l.sub or r.sub)

    def p_str_cmp(self, scope):
        l = self.str_expr(scope, 1)
        r = self.literal_like(l) if self.rng.random() < 0.7 else self.str_expr(scope, 1)
        op, sop = self.cmp_op()
        self.use("string_compare")
        return self.pred_x(f"{l.a} {op} {r.a}", f"({l.s} {sop} {r.s})")

    def p_between(self, scope):
        rng = self.rng
        x = self.num_expr(scope, rng.choice([0, 1, 1]), exact=True)
        a, b = self.literal_like(x), self.literal_like(x)
        if a.lo > b.lo and rng.random() < 0.85:
            a, b = b, a
        K = self.kw
        neg = rng.random() < 0.25
        self.use("between")
        return self.pred_x(f"{x.a}{' ' + K('NOT') if neg else ''} {K('BETWEEN')} {a.a} {K('AND')} {b.a}",
                           f"({x.s}{' NOT' if neg else ''} BETWEEN {a.s} AND {b.s})", sub=x.sub)

    def p_in_list(self, scope):
        rng = self.rng
        if rng.random() < 0.3 and any(sc.x.t == "str" for sc in scope):
            x = self.str_expr(scope, 1)
        else:
            x = self.num_expr(scope, rng.choice([0, 0, 1]), exact=True)
        items = [self.edge_literal(x) for _ in range(rng.choice([1, 2, 3, 5]))]
        if x.t == "float" and len(items) > 1 and any(i.litval == 0 for i in items) and \
                x.lo is not None and x.lo <= 0 <= x.hi:
            if not self.on("in_list_negative_zero"):  # x may be -0.0
                raise Retry()
            self.use("in_list_negative_zero")
        if self.on("null_literal") and rng.random() < 0.1:
            items.insert(rng.randrange(len(items) + 1), self.null_lit())
        neg = rng.random() < 0.3
        K = self.kw
        self.use("in_list")
        return self.pred_x(f"{x.a}{' ' + K('NOT') if neg else ''} {K('IN')} ({', '.join(i.a for i in items)})",
                           f"({x.s}{' NOT' if neg else ''} IN ({', '.join(i.s for i in items)}))", sub=x.sub)

    def p_is_null(self, scope):
        c = self.colref(self.pick(scope, prefer_null=True))  # ADQL: IS NULL takes a column reference
        neg = self.rng.random() < 0.5
        K = self.kw
        self.use("is_null")
        return self.pred_x(f"{c.a} {K('IS')}{' ' + K('NOT') if neg else ''} {K('NULL')}",
                           f"({c.s} IS{' NOT' if neg else ''} NULL)")

    def like_pattern(self, sample: str, ci=False):
        """A pattern from a real value: part of it, some characters as _, % around."""
        rng = self.rng
        if not sample:
            return rng.choice(["%", "", "_%"])
        i = rng.randrange(len(sample))
        j = rng.randrange(i, len(sample) + 1)
        core = "".join("_" if (rng.random() < 0.15 or ch in "%_") else ch for ch in sample[i:j])
        if ci:
            core = "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in core)
        elif rng.random() < 0.15:
            core = core.upper()  # LIKE is case-sensitive: usually no match
        pre = "%" if i > 0 or rng.random() < 0.2 else ""
        post = "%" if j < len(sample) or rng.random() < 0.2 else ""
        return pre + core + post

    def p_like(self, scope, ci=False):
        rng = self.rng
        x = self.str_expr(scope, 1) if any(sc.x.t == "str" for sc in scope) else self.str_of_int(scope, 1)
        pool = x.samples or (x.col.samples if x.col is not None else None) or ["deg", "pos.eq.ra", "double"]
        pat = self.lit_str(self.like_pattern(rng.choice(pool), ci))
        if x.null and set(pat.samples[0]) <= {"%"}:
            if not self.on("like_all_wildcard_null"):
                raise Retry()
            self.use("like_all_wildcard_null")
        neg = rng.random() < 0.25
        K = self.kw
        n_a, n_s = (f" {K('NOT')}", " NOT") if neg else ("", "")
        if ci:
            self.use("ilike")
            return self.pred_x(f"{x.a}{n_a} {K('ILIKE')} {pat.a}",
                               f"(adql_lower({x.s}){n_s} LIKE adql_lower({pat.s}))")
        self.use("like")
        return self.pred_x(f"{x.a}{n_a} {K('LIKE')} {pat.a}", f"({x.s}{n_s} LIKE {pat.s})")

    def p_ilike(self, scope):
        return self.p_like(scope, ci=True)

    # ---- subqueries ----------------------------------------------------------------------

    def table_keys(self):
        keys = ["hip", "hip", "hip"]
        if self.on("gaia") and "gaia" in self.tables:
            keys.append("gaia")
        if self.on("tap_schema") and "tap" in self.tables:
            keys.append("tap")
        return keys

    def note_table(self, fam):
        if fam == "gaia":
            self.use("gaia")
        elif fam == "tap":
            self.use("tap_schema")

    def table_ref_a(self, T: TableInfo, alias):
        schema, name = T.adql.split(".")
        if schema == "TAP_SCHEMA":  # published upper-case by TAP; never delimited here
            sa = "tap_schema" if self.maybe(0.3, "ident_case") else "TAP_SCHEMA"
            na = self.ident(name, delimit_ok=False)
        else:
            sa, na = self.ident(schema), self.ident(name)
        as_ = f" {self.kw('AS')}" if self.rng.random() < 0.8 else ""
        return f"{sa}.{na}{as_} {self.ident(alias, delimit_ok=False)}"

    def base_scope(self, T: TableInfo, alias):
        return [ScopeCol(alias, c.name, _col_x(c), unique=(T.key == (c.name,))) for c in T.columns]

    def sub_pred(self, scope):
        kinds = []
        for feat, kind, w in [("in_subquery", "in", 3), ("not_in_subquery", "not_in", 2), ("exists", "exists", 3),
                              ("scalar_subquery", "scalar", 2)]:
            if self.on(feat):
                kinds += [kind] * w
        if not kinds:
            raise Retry()
        k = self.rng.choice(kinds)
        if k == "scalar":
            if self.over_global_agg:  # a condition that does not depend on the aggregate's values
                if not self.on("filter_over_global_aggregate"):
                    raise Retry()
                self.use("filter_over_global_aggregate")
            l = self.num_expr(scope, 1, exact=True)
            r = self.scalar_subquery(scope, None)
            op, sop = self.cmp_op()
            return self.pred_x(f"{l.a} {op} {r.a}", f"({l.s} {sop} {r.s})", sub=True)
        if k == "exists":
            return self.exists_pred(scope)
        return self.in_subquery(scope, negate=(k == "not_in"))

    def in_subquery(self, scope, negate):
        rng = self.rng
        K = self.kw
        osc = self.pick(scope, lambda sc: sc.x.t in ("int", "str") and sc.x.exact)
        ox = self.colref(osc, force_qual=True)
        fam = _family(osc)
        if fam is None or rng.random() < 0.2:
            fam = rng.choice(self.table_keys())
        T = self.tables[fam]
        self.note_table(fam)
        alias = self.new_alias("s")
        sscope = self.base_scope(T, alias)
        id_like = bool(osc.x.col and osc.x.col.id_like)
        cands = [sc for sc in sscope if sc.x.t == osc.x.t and bool(sc.x.col.id_like) == id_like]
        if not cands:
            raise Retry()
        ssc = rng.choice(cands)
        sx = self.colref(ssc)
        if sx.t == "int" and not id_like and rng.random() < 0.3:
            sx = self.binop(rng.choice("+-"), sx, self.lit_int(rng.choice([1, 2, 10])))
        conds = []
        correlated = False
        if self.in_or and (ox.null or sx.null):
            # NULLs under OR / NOT: three-valued logic (a feature of its own)
            if not self.on("in_subquery_null_in_or"):
                raise Retry()
            self.use("in_subquery_null_in_or")
        if self.on("correlated_in") and len(T.key) == 1 and rng.random() < 0.3 and \
                (not (negate or self.in_not) or self.on("correlated_not_in")):
            okeys = [sc for sc in scope if sc.unique and sc.name == T.key[0] and _family(sc) == fam]
            if okeys and ssc.name == T.key[0] and (ox.df != sx.df or sx.col is None):
                # x IN (SELECT s.k … WHERE s.k = t.k) with x wider than s.k (a feature of its own)
                if self.on("correlated_in_widened"):
                    self.use("correlated_in_widened")
                else:
                    okeys = []
            if okeys:
                k = self.colref(okeys[0], force_qual=True)
                sk = self.colref(next(sc for sc in sscope if sc.name == T.key[0]), force_qual=True)
                conds.append(self.pred_x(f"{sk.a} = {k.a}", f"({sk.s} = {k.s})"))
                correlated = True
                self.use("correlated_in")
                if negate or self.in_not:
                    self.use("correlated_not_in")
        if rng.random() < 0.8:
            conds.append(self.pred(sscope, 1))
        sub_a = f"{K('SELECT')} {sx.a} {K('FROM')} {self.table_ref_a(T, alias)}"
        sub_s = f'SELECT {sx.s} FROM "{T.sqlite}" AS "{alias}"'
        if conds:
            sub_a += f" {K('WHERE')} " + f" {K('AND')} ".join(_paren_bool(c) for c in conds)
            sub_s += " WHERE " + " AND ".join(c.s for c in conds)
        if not correlated and self.on("set_in_subquery") and rng.random() < 0.2 and \
                (not self.in_or or self.on("set_in_subquery_in_or")):
            op, feat = rng.choice([(o, f) for o, f in self.SET_OPS if not o.endswith("ALL") or o == "UNION ALL"])
            if self.on(feat):
                alias2 = self.new_alias("s")
                s2scope = self.base_scope(T, alias2)
                sx2 = self.colref(next(sc for sc in s2scope if sc.name == ssc.name), force_qual=True)
                w2 = self.pred(s2scope, 1)
                sub_a += f" {self.kws(op)} {K('SELECT')} {sx2.a} {K('FROM')} {self.table_ref_a(T, alias2)} " \
                         f"{K('WHERE')} {w2.a}"
                sub_s += f' {op} SELECT {sx2.s} FROM "{T.sqlite}" AS "{alias2}" WHERE {w2.s}'
                self.use("set_in_subquery", feat)
                if self.in_or:
                    self.use("set_in_subquery_in_or")
        self.use("not_in_subquery" if negate else "in_subquery")
        n_a, n_s = (f" {K('NOT')}", " NOT") if negate else ("", "")
        return self.pred_x(f"{ox.a}{n_a} {K('IN')} ({sub_a})", f"({ox.s}{n_s} IN ({sub_s}))", sub=True)

    def exists_pred(self, scope):
        rng = self.rng
        K = self.kw
        osc = self.pick(scope, lambda sc: sc.unique and _family(sc) is not None and sc.x.exact)
        fam = _family(osc)
        T = self.tables[fam]
        alias = self.new_alias("s")
        sscope = self.base_scope(T, alias)
        k = self.colref(osc, force_qual=True)
        sk = self.colref(next(sc for sc in sscope if sc.name == osc.x.col.name), force_qual=True)
        conds = []
        if fam == "hip" and rng.random() < 0.6:
            off = rng.choice([1, -1, 2, 3])
            if rng.random() < 0.25:
                conds.append(self.pred_x(f"{sk.a} > {k.a} {K('AND')} {sk.a} < {k.a} + {abs(off) + 1}",
                                         f"({sk.s} > {k.s} AND {sk.s} < {k.s} + {abs(off) + 1})", prec=P_AND))
            else:
                conds.append(self.pred_x(f"{sk.a} = {k.a} {'+' if off > 0 else '-'} {abs(off)}",
                                         f"({sk.s} = {k.s} + ({off}))"))
        else:
            conds.append(self.pred_x(f"{sk.a} = {k.a}", f"({sk.s} = {k.s})"))
        if rng.random() < 0.8:
            conds.append(self.pred(sscope, 1))
        neg = rng.random() < 0.35
        sel = rng.choice(["1", "*", "key"])
        sel_a, sel_s = (sk.a, sk.s) if sel == "key" else (sel, sel)
        self.use("exists")
        self.note_table(fam)
        a = f"{K('NOT') + ' ' if neg else ''}{K('EXISTS')} ({K('SELECT')} {sel_a} {K('FROM')} " \
            f"{self.table_ref_a(T, alias)} {K('WHERE')} " + f" {K('AND')} ".join(_paren_bool(c) for c in conds) + ")"
        s = f"({'NOT ' if neg else ''}EXISTS (SELECT {sel_s} FROM \"{T.sqlite}\" AS \"{alias}\" WHERE " + \
            " AND ".join(c.s for c in conds) + "))"
        return self.pred_x(a, s, sub=True, prec=P_NOT if neg else P_PRED)

    def scalar_subquery(self, scope, want):
        """(SELECT aggregate FROM t WHERE …): uncorrelated, or correlated by key equality, by a
        key range (a non-equality), or (SELECT column … WHERE key = outer key + k) without
        an aggregate."""
        rng = self.rng
        K = self.kw
        keyed = [sc for sc in scope if sc.unique and _family(sc) == "hip" and sc.x.exact]
        correlated = bool(keyed) and self.on("correlated_scalar_subquery") and rng.random() < 0.6
        fam = "hip" if correlated else rng.choice([k for k in self.table_keys() if k != "tap"])
        T = self.tables[fam]
        alias = self.new_alias("s")
        sscope = self.base_scope(T, alias)
        conds = []
        row = False  # a non-aggregated subquery (one row or none)
        top = ""  # TOP 1 … ORDER BY key: the ADQL and SQLite tails of a non-aggregated one
        if correlated:
            osc = rng.choice(keyed)
            k = self.colref(osc, force_qual=True)
            sk = self.colref(next(sc for sc in sscope if sc.name == osc.x.col.name), force_qual=True)
            off = rng.choice([0, 1, -1, 5])
            sign = '+' if off >= 0 else '-'
            r = rng.random()
            if r < 0.3 and self.on("correlated_scalar_range"):
                width = rng.choice([1, 2, 5])
                if rng.random() < 0.5:
                    conds.append(self.pred_x(
                        f"{sk.a} {K('BETWEEN')} {k.a} {sign} {abs(off)} {K('AND')} {k.a} + {abs(off) + width}",
                        f"({sk.s} BETWEEN {k.s} + ({off}) AND {k.s} + ({abs(off) + width}))"))
                else:
                    conds.append(self.pred_x(f"{sk.a} > {k.a} {sign} {abs(off)}", f"({sk.s} > {k.s} + ({off}))"))
                    conds.append(self.pred_x(f"{sk.a} <= {k.a} + {abs(off) + width}",
                                             f"({sk.s} <= {k.s} + ({abs(off) + width}))"))
                self.use("correlated_scalar_range")
                est = width + 1
                if self.on("correlated_scalar_top") and rng.random() < 0.4:
                    row = True
                    desc = rng.random() < 0.5
                    skip = rng.choice([0, 0, 1])
                    top = (f" {K('ORDER BY')} {sk.a}" + (f" {K('DESC')}" if desc else "")
                           + (f" {K('OFFSET')} {skip}" if skip else ""),
                           f" ORDER BY {sk.s}" + (" DESC" if desc else "") + f" LIMIT 1 OFFSET {skip}")
                    self.use("correlated_scalar_top")
            else:
                conds.append(self.pred_x(f"{sk.a} = {k.a} {sign} {abs(off)}", f"({sk.s} = {k.s} + ({off}))"))
                row = r > 0.7 and self.on("correlated_scalar_row")
                est = 1
        elif not T.full_scan_ok or rng.random() < 0.5:
            p, est = self.restriction(T, alias)
            conds.append(p)
        else:
            est = T.rows
        if rng.random() < 0.5:
            conds.append(self.pred(sscope, 1))
        if row:  # no aggregate: the value of the one row that matches, NULL when none does
            e = self.num_expr(sscope, 1, want, exact=True)
            e = X(e.a, e.s, e.t, e.df, e.lo, e.hi, True, e.tol, e.fine, False, ATOM, e.mag, None, False,
                  e.integral)
            if not top:
                self.use("correlated_scalar_row")
        else:
            e = self.aggregate(sscope, est, want=want, exact=True)
        if not e.num:
            raise Retry()
        a = f"({K('SELECT')} {K('TOP') + ' 1 ' if top else ''}{e.a} {K('FROM')} {self.table_ref_a(T, alias)}"
        s = f'(SELECT {e.s} FROM "{T.sqlite}" AS "{alias}"'
        if conds:
            a += f" {K('WHERE')} " + f" {K('AND')} ".join(_paren_bool(c) for c in conds)
            s += " WHERE " + " AND ".join(c.s for c in conds)
        if top:
            a += top[0]
            s += top[1]
        self.use("scalar_subquery")
        if correlated:
            self.use("correlated_scalar_subquery")
        self.note_table(fam)
        return X(a + ")", s + ")", e.t, e.df, e.lo, e.hi, True, e.tol, e.fine, False, ATOM, e.mag, None, True,
                 e.integral)

    # ---- aggregates ----------------------------------------------------------------------

    def aggregate(self, scope, n_rows, want=None, exact=False):
        """An aggregate, sometimes with arithmetic between two of them."""
        if not self.on("aggregates"):
            raise Retry()
        e = self.agg1(scope, n_rows, want, exact)
        if self.on("agg_arith") and e.num and self.rng.random() < 0.2:
            try:
                f = self.agg1(scope, n_rows, None, True)
                op = self.rng.choice("+-*/")
                if op == "/" and (f.null or f.lo is None or not (f.lo >= 1 or f.hi <= -1)):
                    op = "+"
                if f.num:
                    g = self.binop(op, e, f)
                    if (not exact or g.exact) and (want is None or g.t == want):
                        self.use("agg_arith")
                        return g
            except Retry:
                pass
        return e

    def can_distinct(self, x: X):
        """May x be the argument of an aggregate DISTINCT? Not a float that can be -0.0
        (a computed value whose range holds 0) unless distinct_negative_zero is on."""
        if x.t != "float" or x.col is not None or x.lo is None or not (x.lo <= 0 <= x.hi):
            return True
        if self.on("distinct_negative_zero"):
            self.use("distinct_negative_zero")
            return True
        return False

    def agg1(self, scope, n_rows, want, exact):
        rng = self.rng
        K = self.kw
        fn = rng.choice(["COUNT", "COUNT", "SUM", "AVG", "MIN", "MAX"])
        if want == "float" and fn == "COUNT":
            fn = "AVG"
        self.use("aggregates")
        if fn == "COUNT":
            if rng.random() < 0.4:
                return X(f"{K('COUNT')}(*)", "COUNT(*)", "int", "i64", 0, n_rows, False, agg=True, mag=n_rows,
                         integral=True, aggkeys=(("COUNT", False, "*", "*"),))
            x = self.str_expr(scope, 1) if rng.random() < 0.3 and any(sc.x.t == "str" for sc in scope) else \
                self.num_expr(scope, 1)
            distinct = x.exact and self.can_distinct(x) and self.maybe(0.35, "agg_distinct")
            return X(f"{K('COUNT')}({K('DISTINCT') + ' ' if distinct else ''}{x.a})",
                     f"COUNT({'DISTINCT ' if distinct else ''}{x.s})", "int", "i64", 0, n_rows, False, agg=True,
                     mag=n_rows, sub=x.sub, integral=True,
                     aggkeys=(("COUNT", distinct, "*" if _is_const(x) else _strip_casts(x.s), x.s),))
        if fn in ("MIN", "MAX") and want is None and rng.random() < 0.2 and any(sc.x.t == "str" for sc in scope):
            x = self.str_expr(scope, 1)
            return X(f"{K(fn)}({x.a})", f"{fn}({x.s})", "str", x.df, null=True, agg=True,
                     aggkeys=((fn, False, _strip_casts(x.s), x.s),))
        x = self.num_expr(scope, 1, "int" if want == "int" else None, exact=exact and fn in ("MIN", "MAX"))
        if x.col is not None and x.col.id_like and fn in ("SUM", "AVG"):
            raise Retry()
        if fn in ("SUM", "AVG") and x.t == "int" and _mag(x.lo, x.hi) * max(n_rows, 1) > 2 ** 53:
            raise Retry()
        distinct = fn in ("SUM", "AVG") and x.exact and self.can_distinct(x) and self.maybe(0.15, "agg_distinct")
        m = _mag(x.lo, x.hi, x.mag)
        if fn in ("MIN", "MAX"):
            t, df, lo, hi, tol, integral = x.t, x.df, x.lo, x.hi, x.tol, x.integral
        elif fn == "SUM":
            t = x.t
            df = "i64" if t == "int" else "f64"
            # summation order differs (vostok sums in parallel partitions)
            tol = 0.0 if t == "int" else max(n_rows, 1) * (x.tol + 1e-12 * m)
            lo, hi = min(0, x.lo * n_rows), max(0, x.hi * n_rows)
            integral = x.integral
        else:
            t, df, lo, hi, integral = "float", "f64", x.lo, x.hi, False
            tol = 0.0 if x.t == "int" else x.tol + 1e-10 * m
        if (want and t != want) or (exact and tol):
            raise Retry()
        d_a, d_s = (K("DISTINCT") + " ", "DISTINCT ") if distinct else ("", "")
        return X(f"{K(fn)}({d_a}{x.a})", f"{fn}({d_s}{x.s})", t, df, lo, hi, True, tol, x.fine and fn != "SUM",
                 True, ATOM, _mag(lo, hi, m), None, x.sub, integral,
                 aggkeys=((fn, distinct, _strip_casts(x.s), x.s),))

    # ---- FROM ----------------------------------------------------------------------------

    def restriction(self, T: TableInfo, alias):
        """A predicate bounding T's rows (a key range or an RA band) and the row estimate."""
        rng = self.rng
        K = self.kw
        qa = lambda c: f"{self.ident(alias, delimit_ok=False)}.{self.ident(c)}"  # noqa: E731
        if T.sorted_keys is not None and (T.ra_col is None or rng.random() < 0.6):
            keys = T.sorted_keys
            n = rng.choice([20, 100, 300, 800, 1500])
            i = rng.randrange(0, max(1, len(keys) - n))
            lo, hi = keys[i], keys[min(len(keys) - 1, i + n)]
            k = T.key[0]
            qs = f'"{alias}"."{k}"'
            if self.maybe(0.7, "between"):
                return self.pred_x(f"{qa(k)} {K('BETWEEN')} {lo} {K('AND')} {hi}",
                                   f"({qs} BETWEEN {lo} AND {hi})"), n + 1
            self.use("compare")
            return self.pred_x(f"{qa(k)} >= {lo} {K('AND')} {qa(k)} < {hi}", f"({qs} >= {lo} AND {qs} < {hi})",
                               prec=P_AND), n
        if T.ra_col is not None:
            w = rng.choice([0.05, 0.2, 0.5, 1.0])
            lo = round(rng.uniform(0, 358), 2)
            hi = f"{lo + w:.2f}"
            qs = f'"{alias}"."{T.ra_col}"'
            self.use("between")
            return self.pred_x(f"{qa(T.ra_col)} {K('BETWEEN')} {lo} {K('AND')} {hi}",
                               f"({qs} BETWEEN {lo} AND {hi})"), int(T.rows / 360 * w * 3) + 50
        raise Retry()

    def base_src(self, fam=None):
        fam = fam or self.rng.choice(self.table_keys())
        T = self.tables[fam]
        self.note_table(fam)
        alias = self.new_alias()
        scope = self.base_scope(T, alias)
        if T.rows <= ROW_CAP:
            restrict, est = [], T.rows
        else:
            p, est = self.restriction(T, alias)
            restrict = [p]
        return Src(self.table_ref_a(T, alias), f'"{T.sqlite}" AS "{alias}"', scope, [tuple((alias, k) for k in T.key)],
                   T.rows, [], restrict, est, list(scope), [alias], fam)

    def src_of_query(self, q: Q, a, s, alias):
        scope = [ScopeCol(alias, oc.name, oc.x, unique=(oc.name,) in q.keys) for oc in q.cols]
        return Src(a, s, scope, [tuple((alias, n) for n in k) for k in q.keys], q.est, [], [], q.est,
                   list(scope), [alias], q.family, q.global_agg, q.outer_rf)

    def derived_src(self, depth, fam=None, need_col=None):
        q = self.select_query(depth + 1, fam=fam, need_col=need_col, named=True)
        alias = self.new_alias("d")
        as_ = f" {self.kw('AS')}" if self.rng.random() < 0.8 else ""  # ADQL: [AS] correlation name
        self.use("derived_table")
        return self.src_of_query(q, f"({q.a}){as_} {self.ident(alias, delimit_ok=False)}", f'({q.s}) AS "{alias}"',
                                 alias)

    def cte_src(self, fam=None, need_col=None):
        ok = [(n, q) for n, q in self.ctes if (fam is None or q.family == fam)
              and (need_col is None or all(any(oc.name == k for oc in q.cols) for k in need_col))]
        if not ok:
            raise Retry()
        name, q = self.rng.choice(ok)
        if self.rng.random() < 0.7:
            alias = self.new_alias("c")
            return self.src_of_query(q, f"{self.ident(name, delimit_ok=False)} {self.kw('AS')} "
                                        f"{self.ident(alias, delimit_ok=False)}", f'"{name}" AS "{alias}"', alias)
        return self.src_of_query(q, self.ident(name, delimit_ok=False), f'"{name}"', name)

    def from_src(self, depth, fam=None, need_col=None, force_cte=False):
        rng = self.rng
        if force_cte:
            return self.cte_src(fam, need_col)
        opts = [("base", 6)]
        if self.on("derived_table") and depth < 2:
            opts.append(("derived", 2))
        if depth < 2 and fam is None and need_col is None:
            opts.append(("join", 4))
        if self.ctes:
            opts.append(("cte", 5))
        kind = _weighted(rng, opts)
        if kind == "derived":
            return self.derived_src(depth, fam, need_col)
        if kind == "cte":
            try:
                return self.cte_src(fam, need_col)
            except Retry:
                kind = "base"
        if kind == "join":
            return self.join_src(depth)
        src = self.base_src(fam)
        return src

    def join_side(self, depth, fam, kind):
        rng = self.rng
        key = self.tables[fam].key
        if depth < 2 and (kind == "full_join" or (self.on("derived_table") and rng.random() < 0.3)):
            return self.derived_src(depth, fam, need_col=key)
        if self.ctes and rng.random() < 0.4:
            try:
                return self.cte_src(fam, need_col=key)
            except Retry:
                pass
        return self.base_src(fam)

    def join_src(self, depth):
        """Two sources of one table joined on its key (1:1, or shifted: a.hip = b.hip + 2)."""
        rng = self.rng
        K = self.kw
        kinds = [k for k in ("join_on", "join_using", "natural_join", "left_join", "right_join", "full_join",
                             "comma_join") if self.on(k)]
        if not kinds:
            raise Retry()
        kind = rng.choice(kinds)
        fam = rng.choice(self.table_keys())
        key = self.tables[fam].key
        if kind == "full_join" and depth >= 2:
            raise Retry()
        L = self.join_side(depth, fam, kind)
        R = self.join_side(depth, fam, kind)
        lk = [next(sc for sc in L.scope if sc.name == k) for k in key]
        rk = [next(sc for sc in R.scope if sc.name == k) for k in key]
        off = 0
        if fam == "hip" and kind not in ("join_using", "natural_join") and rng.random() < 0.5:
            off = rng.choice([1, -1, 2, 5])
        conds = []
        for l, r in zip(lk, rk):
            la, ra = self.colref(l, force_qual=True), self.colref(r, force_qual=True)
            if off and kind == "left_join":
                # the same condition on integer keys, written for SQLite with the inner side's
                # column alone, so that it can index it (a derived table's has no index: each
                # preserved row scanned it whole, 27 s on a loaded machine)
                conds.append(self.pred_x(f"{la.a} = {ra.a} {'+' if off > 0 else '-'} {abs(off)}",
                                         f"({ra.s} = {la.s} - ({off}))"))
            elif off:
                conds.append(self.pred_x(f"{la.a} = {ra.a} {'+' if off > 0 else '-'} {abs(off)}",
                                         f"({la.s} = {ra.s} + ({off}))"))
            else:
                conds.append(self.pred_x(f"{la.a} = {ra.a}", f"({la.s} = {ra.s})"))
        common = list(key)
        if kind == "natural_join":
            rnames = {sc.name for sc in R.scope}
            common = [sc.name for sc in L.scope if sc.name in rnames]
            if not set(key) <= set(common):
                raise Retry()
            for n in common:  # NATURAL compares them with =: exact values of one type only
                lx = next(sc for sc in L.scope if sc.name == n).x
                rx = next(sc for sc in R.scope if sc.name == n).x
                if not (lx.exact and rx.exact) or lx.t != rx.t or lx.t == "null":
                    raise Retry()
        # Bounding: the preserved side keeps its restrictions in WHERE, the other side's go into ON.
        must, where, on_extra = [], [], []
        if kind == "left_join":
            where, on_extra, est = L.restrict, R.restrict, L.est
        elif kind == "right_join":
            where, on_extra, est = R.restrict, L.restrict, R.est
        elif kind == "full_join":
            est = L.est + R.est
        else:
            where = L.restrict + (R.restrict if rng.random() < 0.5 else [])
            on_extra = [p for p in R.restrict if p not in where]
            est = L.est
        must = L.must + R.must
        if kind in ("join_on", "left_join", "right_join", "full_join") and rng.random() < 0.4:
            # in ON both sides are visible: the other side's columns are referenced qualified
            side = (R if kind != "right_join" else L).scope
            on_extra = on_extra + [self.pred([_qualified(sc) for sc in side], 1)]
        null_l = kind in ("right_join", "full_join")
        null_r = kind in ("left_join", "full_join")
        scope = [ScopeCol(sc.qual, sc.name, _nullable(sc.x, null_l), sc.unique and not null_l) for sc in L.scope] + \
                [ScopeCol(sc.qual, sc.name, _nullable(sc.x, null_r), sc.unique and not null_r) for sc in R.scope]
        keys = [] if kind == "full_join" else [tuple((sc.qual, sc.name) for sc in (rk if kind == "right_join" else lk))]
        coalesced = kind in ("join_using", "natural_join")
        if coalesced and self.on("using_unqualified"):
            for n in common:
                lsc = next(sc for sc in L.scope if sc.name == n)
                scope.append(ScopeCol(None, n, lsc.x, lsc.unique))
        names = [sc.name for sc in scope if sc.qual is not None]
        for sc in scope:
            sc.unamb = sc.qual is None or (names.count(sc.name) == 1 and not any(
                o.qual is None and o.name == sc.name for o in scope))
        if coalesced:  # SELECT * puts the join columns first, once (SQL-92 7.5)
            star = [next(sc for sc in scope if sc.qual == L.aliases[0] or sc in L.star_cols and sc.name == n)
                    for n in []]
            lstar = [sc for sc in scope if any(sc.name == o.name and sc.qual == o.qual for o in L.star_cols)]
            rstar = [sc for sc in scope if any(sc.name == o.name and sc.qual == o.qual for o in R.star_cols)]
            star = [next(sc for sc in lstar if sc.name == n) for n in common] + \
                   [sc for sc in lstar if sc.name not in common] + [sc for sc in rstar if sc.name not in common]
        else:
            star = [sc for sc in scope if sc.qual is not None]
        if kind == "comma_join":
            self.use("comma_join")
            return Src(f"{L.a}, {R.a}", f"{L.s}, {R.s}", scope, keys, min(L.est_full, R.est_full),
                       must + conds + on_extra, where, est, star, L.aliases + R.aliases, fam,
                       L.global_agg or R.global_agg, L.outer_rf or R.outer_rf)
        jt_a = {"join_on": rng.choice(["JOIN", "INNER JOIN"]), "join_using": rng.choice(["JOIN", "INNER JOIN"]),
                "natural_join": rng.choice(["NATURAL JOIN", "NATURAL INNER JOIN"]),
                "left_join": rng.choice(["LEFT JOIN", "LEFT OUTER JOIN"]),
                "right_join": rng.choice(["RIGHT JOIN", "RIGHT OUTER JOIN"]),
                "full_join": rng.choice(["FULL JOIN", "FULL OUTER JOIN"])}[kind]
        jt_s = {"join_on": "JOIN", "join_using": "JOIN", "natural_join": "NATURAL JOIN", "left_join": "LEFT JOIN",
                "right_join": "RIGHT JOIN", "full_join": "FULL JOIN"}[kind]
        self.use(kind)
        if kind in ("left_join", "right_join", "full_join"):
            self.use("join_on")
        jt_a = self.kws(jt_a)
        if kind == "join_using":
            a = f"{L.a} {jt_a} {R.a} {K('USING')} ({', '.join(self.ident(k) for k in key)})"
            s = f"{L.s} {jt_s} {R.s} USING ({', '.join(chr(34) + k + chr(34) for k in key)})"
            where = where + on_extra  # inner join: the same rows
        elif kind == "natural_join":
            a, s = f"{L.a} {jt_a} {R.a}", f"{L.s} {jt_s} {R.s}"
            where = where + on_extra
        else:
            on = conds + on_extra
            a = f"{L.a} {jt_a} {R.a} {K('ON')} " + f" {K('AND')} ".join(_paren_bool(c) for c in on)
            if kind == "right_join":  # the same rows; SQLite's RIGHT JOIN would not use the key index
                s = f"{R.s} LEFT JOIN {L.s} ON " + " AND ".join(c.s for c in on)
            else:
                s = f"{L.s} {jt_s} {R.s} ON " + " AND ".join(c.s for c in on)
        est_full = {"left_join": L.est_full, "right_join": R.est_full,
                    "full_join": L.est_full + R.est_full}.get(kind, min(L.est_full, R.est_full))
        src = Src(a, s, scope, keys, est_full, must, where, est, star, L.aliases + R.aliases, fam,
                  L.global_agg or R.global_agg,
                  kind in ("right_join", "full_join") or L.outer_rf or R.outer_rf)
        if depth == 0 and fam == "hip" and kind in ("join_on", "left_join", "comma_join") and \
                self.maybe(0.3, "three_way_join"):
            src = self.third_join(src)
        return src

    def third_join(self, src: Src):
        """(a JOIN b …) [LEFT OUTER] JOIN c ON c.hip = a.hip."""
        K = self.kw
        C = self.base_src("hip")
        anchor = next(sc for sc in src.scope if sc.unique and sc.name == "hip" and sc.qual is not None)
        la = self.colref(anchor, force_qual=True)
        ca = self.colref(next(sc for sc in C.scope if sc.name == "hip"), force_qual=True)
        left = self.maybe(0.5, "left_join")
        cond = [self.pred_x(f"{ca.a} = {la.a}", f"({ca.s} = {la.s})")] + C.restrict
        a = f"{src.a} {self.kws('LEFT OUTER JOIN' if left else 'JOIN')} {C.a} {K('ON')} " + \
            f" {K('AND')} ".join(_paren_bool(c) for c in cond)
        s = f"{src.s} {'LEFT JOIN' if left else 'JOIN'} {C.s} ON " + " AND ".join(c.s for c in cond)
        scope = src.scope + [ScopeCol(sc.qual, sc.name, _nullable(sc.x, left), sc.unique and not left, False)
                             for sc in C.scope]
        for sc in scope:
            if sc.qual is not None:
                sc.unamb = sum(1 for o in scope if o.name == sc.name) == 1
        return Src(a, s, scope, src.keys, src.est_full, src.must, src.restrict, src.est,
                   src.star_cols + C.star_cols, src.aliases + C.aliases, "hip", src.global_agg, src.outer_rf)

    # ---- SELECT --------------------------------------------------------------------------

    def select_query(self, depth=0, fam=None, need_col=None, named=False, force_cte=False):
        """One SELECT. named: unique output names (a FROM or WITH subquery); need_col: key
        columns it must output as bare references (a join side)."""
        rng = self.rng
        K = self.kw
        src = self.from_src(depth, fam, need_col, force_cte)
        shapes = [("plain", 6)]
        if self.on("distinct"):
            shapes.append(("distinct", 1))
        if need_col is None:
            if self.on("aggregates"):
                shapes.append(("agg", 2))
            if self.on("group_by", "aggregates"):
                shapes.append(("group", 3))
        shape = _weighted(rng, shapes)
        # WHERE: the source's bounds, except that an aggregate may scan a whole (indexed) table
        where = list(src.must)
        est = src.est
        if shape in ("agg", "group") and src.est_full <= 600_000 and rng.random() < 0.35 and \
                (src.family is None or self.tables[src.family].full_scan_ok):
            est = src.est_full
        else:
            where += src.restrict
        self.over_global_agg = src.global_agg  # see filter_over_global_aggregate
        wscope = src.scope
        if src.global_agg:
            # only columns whose value depends on the aggregated rows (not SELECT 5 AS k, …)
            wscope = [sc for sc in src.scope if not _is_const(sc.x)]
            if len(wscope) < len(src.scope):
                if self.on("filter_over_global_aggregate"):
                    wscope = src.scope
                    self.use("filter_over_global_aggregate")
        if src.outer_rf:
            # the NULL-extended side of a RIGHT/FULL join: see outer_join_null_side_filter
            safe = [sc for sc in wscope if not sc.x.null]
            if len(safe) < len(wscope):
                if self.on("outer_join_null_side_filter"):
                    self.use("outer_join_null_side_filter")
                else:
                    wscope = safe
        try:
            for _ in range(rng.choice([0, 1, 1, 1, 2]) if wscope else 0):
                where.append(self.pred(wscope, 2, allow_sub=depth < 2 and est <= SUB_CAP))
        finally:
            self.over_global_agg = False
        items = []  # (adql, sqlite, output name, X or None, bare column?)
        names = set()
        src_names = {sc.name for sc in src.scope}
        # an ADQL reserved word (size) is a name only when delimited: not an alias to shadow with
        shadow_names = sorted(src_names - {sc.name for sc in src.scope if sc.x.col is not None and sc.x.col.reserved})

        def add(x: X, sc: ScopeCol | None = None, name=None):
            if sc is not None and sc.name not in names and name is None:
                names.add(sc.name)
                items.append((x.a, x.s, sc.name, x, True))
                return sc.name
            name = name or f"c{len(items)}"
            if self.on("alias_shadows_column") and shadow_names and rng.random() < 0.06:
                name = rng.choice(shadow_names)  # legal: the alias hides nothing in WHERE/ON
            while name in names or (name in src_names and not self.on("alias_shadows_column")):
                name += "_"
            if name in src_names:
                self.use("alias_shadows_column")
            names.add(name)
            ali = self.ident(name, delimit_ok=False)
            items.append((f"{x.a} {K('AS')} {ali}" if rng.random() < 0.85 else f"{x.a} {ali}",
                          f'{x.s} AS "{name}"', name, x, False))
            return name

        for k in need_col or ():
            sc = next(sc for sc in src.scope if sc.name == k and sc.qual is not None)
            add(self.colref(sc), sc)
        group_keys, having, star, outcols = [], None, False, None
        out_keys, order_a, order_s, ordered, top, offset = [], [], [], False, None, None
        if shape in ("plain", "distinct"):
            if shape == "distinct":
                self.use("distinct")
            if not named and need_col is None and shape == "plain" and self.maybe(0.08, "select_star") and \
                    not any(sc.x.col and sc.x.col.reserved for sc in src.star_cols):
                star = True
                # SQLite gets the columns spelled out (its join order may differ: RIGHT JOIN)
                if len(src.aliases) > 1 and rng.random() < 0.5:
                    al = rng.choice(src.aliases)
                    cols = [sc for sc in src.scope if sc.qual == al]
                    items.append((f"{self.ident(al, delimit_ok=False)}.*",
                                  ", ".join(self.colref_s(sc) for sc in cols), None, None, True))
                else:
                    cols = src.star_cols
                    items.append(("*", ", ".join(self.colref_s(sc) for sc in cols), None, None, True))
                outcols = [OutCol(sc.name, sc.x) for sc in cols]
            else:
                for _ in range(rng.choice([1, 2, 2, 3, 3, 4, 5])):
                    if rng.random() < 0.4:
                        sc = self.pick(src.scope, lambda sc: not (shape == "distinct" and not sc.x.exact))
                        add(self.colref(sc), sc)
                    elif rng.random() < 0.2 and any(sc.x.t == "str" for sc in src.scope):
                        add(self.str_expr(src.scope, 2))
                    elif rng.random() < 0.05 and self.on("null_literal"):
                        add(self.null_lit())
                    else:
                        add(self.num_expr(src.scope, 2, exact=(shape == "distinct"),
                                          allow_sub=depth == 0 and est <= 3000))
                outcols = [OutCol(it[2], it[3]) for it in items]
            if est > ROW_CAP:
                raise Retry()
            for k in src.keys:  # the source's keys, when output as bare columns, key the output
                got = []
                for qual, nm in k:
                    hit = [it[2] for it in items if it[4] and it[3] is not None and it[1] == f'"{qual}"."{nm}"']
                    if not hit:
                        break
                    got.append(hit[0])
                else:
                    out_keys.append(tuple(got))
            if shape == "distinct" and all(not oc.x.null and oc.x.t != "null" for oc in outcols):
                out_keys.append(tuple(oc.name for oc in outcols))
            if not star and self.on("order_by") and rng.random() < (0.45 if depth == 0 else 0.15):
                ok = self.order_by_key(src, shape, items)
                if ok is not None:
                    order_a, order_s = ok
                    ordered = depth == 0
                    self.use("order_by")
                    if depth > 0 or self.maybe(0.5, "top"):
                        top = rng.choice([1, 3, 10, 50, 200])
                        self.use("top")
                        if depth > 0:
                            self.use("derived_top")
                    if self.maybe(0.3, "offset"):
                        offset = rng.choice([0, 1, 5, 20])
        else:
            if shape == "group":
                self.use("group_by")
                cands = [sc for sc in src.scope if sc.x.exact and sc.x.col is not None and sc.x.t != "null" and
                         (sc.x.col.low_card or est <= 3000) and not (sc.x.col.id_like and est > 3000)]
                for _ in range(rng.choice([1, 1, 2])):
                    if rng.random() < 0.25 and self.on("group_by_expr"):
                        x = self.group_expr(src.scope)
                        if x is not None:
                            self.use("group_by_expr")
                            group_keys.append((x, None))
                    elif cands:
                        sc = rng.choice(cands)
                        if all(g[1] is not sc for g in group_keys):
                            group_keys.append((self.colref(sc), sc))
                if not group_keys:
                    raise Retry()
                for x, sc in group_keys:
                    if rng.random() < 0.85:
                        add(x, sc, None if sc is not None else f"g{len(items)}")
            for _ in range(rng.choice([1, 1, 2, 3])):
                add(self.aggregate(src.scope, est))
            if self.on("having") and rng.random() < 0.3:
                having = self.having_pred(src.scope, est)
                self.use("having")
            outcols = [OutCol(it[2], it[3]) for it in items]
            keys = [k for it in items if it[3] is not None for k in it[3].aggkeys] + \
                list(having.aggkeys if having is not None else ())
            if not group_keys and keys and all(k[0] in ("MIN", "MAX") for k in keys):
                plain = [_is_column_s(k[3]) for k in keys]
                if any(plain) and not all(plain):  # MAX(plx + pmra) with MAX(plx)
                    if not self.on("agg_min_max_mix"):
                        raise Retry()
                    self.use("agg_min_max_mix")
            seen = {}
            for fn, dist, bare, raw in keys:
                if seen.setdefault((fn, dist, bare), raw) != raw:  # e.g. MIN(x) and MIN(CAST(x AS …))
                    if not self.on("agg_cast_twins"):
                        raise Retry()
                    self.use("agg_cast_twins")
            n_groups = 1
            if shape == "group":
                for x, sc in group_keys:
                    n_groups *= max(1, sc.x.col.distinct) if sc is not None else 400
                n_groups = min(n_groups, est)
                if n_groups > ROW_CAP:
                    raise Retry()
                gnames = []
                for x, sc in group_keys:
                    hit = [it[2] for it in items if it[3] is x]
                    if not hit or x.null:
                        gnames = None
                        break
                    gnames.append(hit[0])
                if gnames:
                    out_keys.append(tuple(gnames))
                    if depth == 0 and self.on("order_by") and rng.random() < 0.5:
                        order_a, order_s = self.order_by_names(gnames, items)
                        ordered = True
                        self.use("order_by")
                        if self.maybe(0.3, "top"):
                            top = rng.choice([1, 2, 5, 20])
                        if self.maybe(0.2, "offset"):
                            offset = rng.choice([0, 1, 3])
            est = n_groups
        # render
        head = [K("SELECT")]
        if shape == "distinct":
            head.append(K("DISTINCT"))
        elif self.maybe(0.04, "all_quantifier"):
            head.append(K("ALL"))
        if top is not None:
            head.append(f"{K('TOP')} {top}")
        a = " ".join(head) + " " + ", ".join(it[0] for it in items) + self.sp() + f"{K('FROM')} {src.a}"
        s = ("SELECT DISTINCT " if shape == "distinct" else "SELECT ") + ", ".join(it[1] for it in items) + \
            f" FROM {src.s}"
        if where:
            a += self.sp() + f"{K('WHERE')} " + f" {K('AND')} ".join(_paren_bool(w) for w in where)
            s += " WHERE " + " AND ".join(w.s for w in where)
        if group_keys:
            a += self.sp() + f"{self.kws('GROUP BY')} " + ", ".join(x.a for x, _ in group_keys)
            s += " GROUP BY " + ", ".join(x.s for x, _ in group_keys)
        if having is not None:
            a += self.sp() + f"{K('HAVING')} {having.a}"
            s += f" HAVING {having.s}"
        if order_a:
            a += self.sp() + f"{self.kws('ORDER BY')} " + ", ".join(order_a)
            s += " ORDER BY " + ", ".join(order_s)
        if top is not None:
            s += f" LIMIT {top}"
            est = min(est, top)
        if offset is not None:
            a += f" {K('OFFSET')} {offset}"
            s += ("" if top is not None else " LIMIT -1") + f" OFFSET {offset}"
        named_ok = not star and all(it[2] is not None for it in items) and len(names) == len(items)
        if named and not named_ok:
            raise Retry()
        return Q(a, s, outcols, out_keys, max(est, 1), ordered, simple=not (order_a or top is not None or
                                                                            offset is not None),
                 paren=bool(order_a or top is not None or offset is not None), family=src.family,
                 named_ok=named_ok, global_agg=shape == "agg" or (src.global_agg and shape != "group"),
                 outer_rf=src.outer_rf)

    def group_expr(self, scope):
        """A grouping expression with few values: FLOOR(x / w), CEILING(x / w), int / n."""
        rng = self.rng
        cands = [sc for sc in scope if sc.x.num and sc.x.exact and sc.x.col is not None and not sc.x.col.id_like
                 and sc.x.df != "f32" and sc.x.lo is not None]
        if not cands:
            return None
        c = self.colref(rng.choice(cands))
        m = _mag(c.lo, c.hi)
        if c.t == "float" and self.on("math_basic"):
            q = self.binop("/", c, self.lit_float(_nice_above(max(m / 20, 0.01)), 2))
            if rng.random() < 0.5:
                return self.call("floor", [q], math.floor(q.lo), math.floor(q.hi), fine=False, integral=True)
            return self.call("ceiling", [q], math.ceil(q.lo), math.ceil(q.hi), s=f"ceil({q.s})", fine=False,
                             integral=True)
        if c.t == "int" and self.on("int_division") and m >= 20:
            return self.binop("/", c, self.lit_int(int(m // 10)))
        return None

    def having_pred(self, scope, est):
        rng = self.rng
        parts = []
        for _ in range(rng.choice([1, 1, 2])):
            e = self.aggregate(scope, est, exact=True)
            if e.t == "str":
                lit = self.lit_str(rng.choice(["a", "m", "deg"]))
            else:
                v = rng.uniform(e.lo, e.hi) if (e.lo is not None and e.hi is not None and e.hi > e.lo) else 1
                lit = self.lit_int(round(v)) if e.t == "int" else self.lit_float(v)
            op, sop = self.cmp_op()
            p = self.pred_x(f"{e.a} {op} {lit.a}", f"({e.s} {sop} {lit.s})", agg=True)
            p.aggkeys = e.aggkeys
            parts.append(p)
        K = self.kw
        op, prec = rng.choice([("AND", P_AND), ("OR", P_OR)])
        h = self.pred_x(f" {K(op)} ".join(p.a for p in parts), "(" + f" {op} ".join(p.s for p in parts) + ")",
                        agg=True, prec=prec if len(parts) > 1 else P_PRED)
        h.aggkeys = sum((p.aggkeys for p in parts), ())
        return h

    def order_by_key(self, src: Src, shape, items):
        """ORDER BY over a unique, never-NULL key of the result (so the order is fixed)."""
        rng = self.rng
        K = self.kw
        if shape == "distinct":
            if not all(it[3] is not None and it[3].exact and not it[3].null and it[3].t != "null" for it in items):
                return None
            return self.order_by_names([it[2] for it in items], items)
        if not src.keys:
            return None
        oa, os_ = [], []
        for qual, nm in rng.choice(src.keys):
            sc = next(sc for sc in src.scope if sc.qual == qual and sc.name == nm)
            desc = self.maybe(0.3, "order_desc")
            d_a = f" {K('DESC')}" if desc else (f" {K('ASC')}" if rng.random() < 0.15 else "")
            d_s = " DESC" if desc else ""
            pos = [i for i, it in enumerate(items) if it[4] and it[1] == f'"{qual}"."{nm}"']
            r = rng.random()
            if pos and r < 0.25 and self.on("order_by_position"):
                self.use("order_by_position")
                oa.append(f"{pos[0] + 1}{d_a}")
                os_.append(f"{pos[0] + 1}{d_s}")
            elif r < 0.4 and self.on("order_by_expr") and sc.x.t == "int" and not (sc.x.col and sc.x.col.id_like):
                self.use("order_by_expr")  # a strictly increasing function of the key orders alike
                c = self.colref(sc, force_qual=True)
                oa.append(f"{c.a} * 2 + 1{d_a}")
                os_.append(f"({c.s} * 2 + 1){d_s}")
            else:
                c = self.colref(sc, force_qual=True)
                oa.append(f"{c.a}{d_a}")
                os_.append(f"{c.s}{d_s}")
        return oa, os_

    def order_by_names(self, names, items):
        """ORDER BY output columns, by position or alias."""
        K = self.kw
        oa, os_ = [], []
        for nm in names:
            i = next(j for j, it in enumerate(items) if it[2] == nm)
            desc = self.maybe(0.3, "order_desc")
            d_a, d_s = (f" {K('DESC')}", " DESC") if desc else ("", "")
            if not items[i][4] and self.on("order_by_alias") and self.rng.random() < 0.6:
                self.use("order_by_alias")
                oa.append(f"{self.ident(nm, delimit_ok=False)}{d_a}")
                os_.append(f'"{nm}"{d_s}')
            else:
                self.use("order_by_position")
                oa.append(f"{i + 1}{d_a}")
                os_.append(f"{i + 1}{d_s}")
        return oa, os_

    # ---- set operations ------------------------------------------------------------------

    def set_operand(self, T: TableInfo, fam, item_seed, kinds, first=False):
        """SELECT items FROM T WHERE restriction AND pred. Items come from item_seed, so
        operands sharing it have the same expressions (over their own aliases); a "str_mixed"
        item is a VARCHAR column in the first operand and CAST(… AS VARCHAR) in the others."""
        rng = self.rng
        K = self.kw
        alias = self.new_alias()
        scope = self.base_scope(T, alias)
        saved = self.rng
        self.rng = random.Random(item_seed)
        try:
            xs = []
            for kind in kinds:
                if kind == "str":
                    xs.append(self.str_expr(scope, 1))
                elif kind == "str_mixed":
                    xs.append(self.colref(self.rng.choice(
                        [sc for sc in scope if sc.x.t == "str" and sc.x.df == "str"]))
                        if first else self.str_of_int(scope, 1))
                elif kind in ("int", "float"):
                    xs.append(self.num_expr(scope, 2, kind, exact=True))
                else:
                    xs.append(self.colref(next(sc for sc in scope if sc.name == kind)))
        finally:
            self.rng = saved
        where = []
        est = T.rows
        if T.rows > ROW_CAP:
            p, est = self.restriction(T, alias)
            where.append(p)
        if rng.random() < 0.6:
            p = self.pred(scope, 1)
            if _is_const(p):  # e.g. 7 <> 7: the operand is optimised away
                if not self.on("set_operand_always_empty"):
                    raise Retry()
                self.use("set_operand_always_empty")
            where.append(p)
        names = [f"v{i}" for i in range(len(xs))]
        top = None
        if len(T.key) == 1 and self.maybe(0.12, "set_operand_top"):
            top = rng.choice([3, 10, 30])
            self.use("top", "order_by")
        head = f"{K('SELECT')} {K('TOP')} {top} " if top else f"{K('SELECT')} "
        a = head + ", ".join(f"{x.a} {K('AS')} {self.ident(n, delimit_ok=False)}"
                             for x, n in zip(xs, names)) + f" {K('FROM')} {self.table_ref_a(T, alias)}"
        s = "SELECT " + ", ".join(f'{x.s} AS "{n}"' for x, n in zip(xs, names)) + f' FROM "{T.sqlite}" AS "{alias}"'
        if where:
            a += f" {K('WHERE')} " + f" {K('AND')} ".join(_paren_bool(w) for w in where)
            s += " WHERE " + " AND ".join(w.s for w in where)
        q = Q(a, s, [OutCol(n, x) for n, x in zip(names, xs)], [], est, family=fam)
        if top:  # (SELECT TOP n … ORDER BY key): SQLite needs it as a subquery
            kc = self.colref(next(sc for sc in scope if sc.name == T.key[0]), force_qual=True)
            desc = rng.random() < 0.5
            q.a += f" {self.kws('ORDER BY')} {kc.a}{' ' + K('DESC') if desc else ''}"
            q.s = f"SELECT * FROM ({q.s} ORDER BY {kc.s}{' DESC' if desc else ''} LIMIT {top})"
            q.est, q.paren, q.simple = min(q.est, top), True, True
        return q

    def setop_query(self, depth=0):
        rng = self.rng
        K = self.kw
        fam = rng.choice(self.table_keys())
        T = self.tables[fam]
        self.note_table(fam)
        kinds = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            r = rng.random()
            if r < 0.5:
                c = rng.choice([c for c in T.columns if not c.reserved and c.df != "f32"])
                kinds.append(c.name)
            else:
                kinds.append(rng.choice(["int", "float"] + (["str"] * 2 if any(c.t == "str" for c in T.columns)
                                                            else [])))
        # A VARCHAR column in the first operand and CAST(… AS VARCHAR) in the others (chosen
        # on purpose: left to the item seeds it is too rare to appear on every seed).
        if self.on("set_mixed_string_types", "cast_varchar") and rng.random() < 0.12 and \
                any(c.t == "str" and c.df == "str" and not c.reserved for c in T.columns):
            kinds[rng.randrange(len(kinds))] = "str_mixed"
        nested = self.maybe(0.25, "set_nested")
        ops = [rng.choice([(o, f) for o, f in self.SET_OPS if self.on(f)] or [None])
               for _ in range(rng.choice([2, 3] if nested else [1, 1, 2]))]
        if None in ops:
            raise Retry()
        if not nested and len(ops) == 2 and self.on("set_precedence", "intersect") and rng.random() < 0.4:
            ops[1] = ("INTERSECT", "intersect")  # a UNION b INTERSECT c: INTERSECT first
        seed0 = rng.random()
        operands = [self.set_operand(T, fam, seed0, kinds, first=True)]
        for _ in ops:
            operands.append(self.set_operand(T, fam, seed0 if rng.random() < 0.65 else rng.random(), kinds))
        types = [(c.x.t, c.x.df) for c in operands[0].cols]
        for o in operands:  # ADQL 2.1 §4.6: the operands' columns MUST have the same datatypes
            if any(not c.x.exact or c.x.t == "null" for c in o.cols):
                raise Retry()
            for (t, df), c in zip(types, o.cols):
                if t == "str" and c.x.t == "str" and df != c.x.df:
                    if not self.on("set_mixed_string_types"):  # both VARCHAR for ADQL
                        raise Retry()
                    self.use("set_mixed_string_types")
                elif (t, df) != (c.x.t, c.x.df):
                    raise Retry()
        if len(operands) > 2 and any(o.paren for o in operands):
            if not self.on("set_top_operand_nested"):
                raise Retry()
            self.use("set_top_operand_nested")
        for o in operands:
            for c in o.cols:
                if c.x.simpl_col and c.x.col is None:
                    if not self.on("set_folded_column"):
                        raise Retry()
                    self.use("set_folded_column")
        for _, f in ops:
            self.use(f)
        if nested:  # a random binary tree over the operands; combine() parenthesises
            def build(lo, hi):  # operands[lo..hi] joined by ops[lo..hi-1]
                if lo == hi:
                    return operands[lo]
                k = rng.randrange(lo, hi)
                return self.combine(build(lo, k), ops[k], build(k + 1, hi))
            tree = build(0, len(ops))
        # INTERSECT binds tighter than UNION / EXCEPT (ADQL 2.1 §4.6.7)
        elif len(ops) == 2 and ops[1][0].startswith("INTERSECT") and not ops[0][0].startswith("INTERSECT") and \
                self.maybe(0.6, "set_precedence"):
            tree = self.combine(operands[0], ops[0], self.combine(operands[1], ops[1], operands[2]), bare_right=True)
        else:
            tree = operands[0]
            for op, o in zip(ops, operands[1:]):
                tree = self.combine(tree, op, o)
        a, s = tree.a, tree.s
        # the result's columns: the first operand's names, any operand's NULLs and bounds
        cols = []
        for i, c in enumerate(operands[0].cols):
            xs = [o.cols[i].x for o in operands]
            y = X(**{k: getattr(c.x, k) for k in c.x.__dataclass_fields__})
            y.null = any(x.null for x in xs)
            if all(x.lo is not None for x in xs):
                y.lo, y.hi = min(x.lo for x in xs), max(x.hi for x in xs)
            y.col = c.x.col if all(x.col is c.x.col for x in xs) else None
            cols.append(OutCol(c.name, y))
        ordered = False
        if self.on("set_order_offset") and all(not c.x.null for c in cols) and rng.random() < 0.4:
            self.use("set_order_offset")
            dirs = [self.maybe(0.3, "order_desc") for _ in cols]
            oa = ", ".join((f"{i + 1}" if rng.random() < 0.5 else self.ident(c.name, delimit_ok=False)) +
                           (f" {K('DESC')}" if d else "") for i, (c, d) in enumerate(zip(cols, dirs)))
            os_ = ", ".join(f"{i + 1}{' DESC' if d else ''}" for i, d in enumerate(dirs))
            a += self.sp() + f"{self.kws('ORDER BY')} {oa}"
            s = f"SELECT * FROM ({s}) ORDER BY {os_}"
            ordered = True
            if self.maybe(0.4, "offset"):
                off = rng.choice([0, 1, 4])
                a += f" {K('OFFSET')} {off}"
                s += f" LIMIT -1 OFFSET {off}"
        distinct = all(not op.endswith("ALL") for op, _ in ops)
        keys = [tuple(c.name for c in cols)] if distinct and all(not c.x.null for c in cols) else []
        return Q(a, s, cols, keys, sum(o.est for o in operands), ordered, simple=False, setop=True,
                 paren=ordered, family=None, named_ok=True)

    def combine(self, l: Q, op, r: Q, bare_right=False):
        """l OP r in both dialects. ADQL: a set operand with TOP/ORDER BY, or a set operation on
        the right, is parenthesised; bare_right writes r (an INTERSECT) without parentheses,
        relying on INTERSECT's precedence. SQLite: compound operators have one precedence,
        left to right, and operands cannot be parenthesised: nest them as SELECT * FROM (…)."""
        opname, _ = op
        la = f"({l.a})" if (l.paren or (l.setop and opname.startswith("INTERSECT"))) else l.a
        ra = r.a if (bare_right or not (r.paren or r.setop)) else f"({r.a})"
        a = f"{la}{self.sp()}{self.kws(opname)}{self.sp()}{ra}"
        ls = l.s if (l.simple or l.setop) and not l.paren else f"SELECT * FROM ({l.s})"
        if l.setop and opname.startswith("INTERSECT"):
            ls = f"SELECT * FROM ({l.s})"
        rs = r.s if (r.simple and not r.setop and not r.paren) else f"SELECT * FROM ({r.s})"
        if r.paren and r.simple:  # already SELECT * FROM (… LIMIT n)
            rs = r.s
        if l.paren and l.simple:
            ls = l.s
        if opname in ("INTERSECT ALL", "EXCEPT ALL"):
            # no ALL variants in SQLite: number the copies of each row, then INTERSECT/EXCEPT
            pl = ", ".join(f'"{c.name}"' for c in l.cols)
            pr = ", ".join(f'"{c.name}"' for c in r.cols)
            base = opname.split()[0]
            s = (f'SELECT {pl} FROM (SELECT {pl}, ROW_NUMBER() OVER (PARTITION BY {pl}) AS "rn__" FROM ({l.s}) '
                 f'{base} SELECT {pr}, ROW_NUMBER() OVER (PARTITION BY {pr}) AS "rn__" FROM ({r.s}))')
        else:
            s = f"{ls} {opname} {rs}"
        return Q(a, s, l.cols, [], l.est + r.est, simple=False, setop=True, family=None)

    # ---- WITH ----------------------------------------------------------------------------

    def with_query(self):
        rng = self.rng
        K = self.kw
        defs_a, defs_s = [], []
        for i in range(rng.choice([1, 1, 2])):
            name = f"cte{i + 1}"
            if self.on("union") and rng.random() < 0.12:
                q = self.setop_query(1)
            else:
                q = self.select_query(1, named=True, force_cte=bool(self.ctes) and self.maybe(0.5, "with_chained"))
            if not q.named_ok:
                raise Retry()
            self.ctes.append((name, q))
            defs_a.append(f"{self.ident(name, delimit_ok=False)} {K('AS')} ({q.a})")
            defs_s.append(f'"{name}" AS ({q.s})')
        self.use("with_cte")
        main = self.select_query(0, force_cte=True)
        main.a = f"{K('WITH')} " + ", ".join(defs_a) + self.sp() + main.a
        main.s = "WITH " + ", ".join(defs_s) + " " + main.s
        return main

    # ---- top level -----------------------------------------------------------------------

    def top_query(self):
        opts = [("select", 10)]
        if any(self.on(f) for _, f in self.SET_OPS):
            opts.append(("setop", 2))
        if self.on("with_cte"):
            opts.append(("with", 2))
        kind = _weighted(self.rng, opts)
        q = self.setop_query(0) if kind == "setop" else self.with_query() if kind == "with" else self.select_query(0)
        if q.est > ROW_CAP * 2:
            raise Retry()
        return q


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _weighted(rng, opts):
    total = sum(w for _, w in opts)
    r = rng.uniform(0, total)
    for k, w in opts:
        r -= w
        if r <= 0:
            return k
    return opts[-1][0]


def _col_x(c: ColumnInfo) -> X:
    lo = None if c.lo is None else float(c.lo)
    hi = None if c.hi is None else float(c.hi)
    if c.t in ("int", "float") and lo is None:  # only NULLs: no value to bound
        lo = hi = 0.0
    return X(c.name, f'"{c.name}"', c.t, c.df, lo, hi, c.nullable, 0.0, c.fine, False, ATOM, _mag(lo, hi), c,
             False, c.t == "int", c.samples if c.t == "str" else None)


def _qualified(sc: ScopeCol) -> ScopeCol:
    return ScopeCol(sc.qual, sc.name, sc.x, sc.unique, False)


def _nullable(x: X, yes: bool) -> X:
    if not yes or x.null:
        return x
    y = X(**{k: getattr(x, k) for k in x.__dataclass_fields__})
    y.null = True
    return y


def _family(sc: ScopeCol):
    """The demo table a key column comes from ('hip' or 'gaia'), by the column it is."""
    c = sc.x.col
    if c is None:
        return None
    return {"hip": "hip", "source_id": "gaia"}.get(c.name)


def _strip_casts(s: str) -> str:
    """SQLite text without its CAST(… AS t) and adql_f32(…) wrappers: vostok names an
    aggregate by its argument with the casts left out (see agg_cast_twins)."""
    for prefix in ("CAST(", "adql_f32("):
        while True:
            i = s.find(prefix)
            if i < 0:
                break
            j = k = i + len(prefix)
            depth, quoted = 1, False
            while depth and k < len(s):
                ch = s[k]
                if ch == "'":
                    quoted = not quoted
                elif not quoted and ch == "(":
                    depth += 1
                elif not quoted and ch == ")":
                    depth -= 1
                k += 1
            inner = s[j:k - 1]
            if prefix == "CAST(" and " AS " in inner:
                inner = inner[:inner.rfind(" AS ")]
            s = s[:i] + inner + s[k:]
    return s


def _is_const(x: X) -> bool:
    """Does x not depend on any row (no column reference, no aggregate)? Column references
    are the double-quoted names of its SQLite text (string literals left out)."""
    return not x.agg and re.search(r'"', re.sub(r"'(?:[^']|'')*'", "", x.s)) is None


def _is_column_s(s: str) -> bool:
    """Is this SQLite text a bare (qualified) column reference?"""
    return re.fullmatch(r'("[^"]+"\.)?"[^"]+"', s) is not None


def _paren_bool(p: X):
    return p.a if p.prec >= P_AND else f"({p.a})"


def _interval(op, l: X, r: X):
    if None in (l.lo, l.hi, r.lo, r.hi):
        return None, None
    a, b, c, d = l.lo, l.hi, r.lo, r.hi
    if op == "+":
        return a + c, b + d
    if op == "-":
        return a - d, b - c
    if op == "*":
        v = [a * c, a * d, b * c, b * d]
        return min(v), max(v)
    if c <= 0 <= d:
        return None, None
    v = [a / c, a / d, b / c, b / d]
    if l.t == "int" and r.t == "int":
        v = [math.trunc(x) for x in v]
    return min(v), max(v)


def _abs_iv(lo, hi):
    if lo >= 0:
        return lo, hi
    if hi <= 0:
        return -hi, -lo
    return 0.0, max(-lo, hi)


def _probe_points(lo, hi):
    pts = [lo, hi]
    for p in (0.0, 1.0, -1.0):
        if lo < p < hi:
            pts.append(p)
    return pts


def _nice_above(v):
    """A round number >= v (for scale divisors)."""
    if v <= 0:
        return 1.0
    e = math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10 ** e >= v:
            return float(f"{m * 10 ** e:.6g}")
    return 10.0 ** (e + 1)
