//! `pg-load`: a vostok catalog into PostgreSQL, set up the way DaCHS sets up a positional table
//! (pgSphere GiST index on the position, q3c index, table clustered on q3c, analysed).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt8Type,
};

use crate::catalog::{Catalog, HEALPIX_COLUMN};
use crate::pg::{self, quote_ident, Conn, ConnInfo};

/// PostgreSQL type for an Arrow type: (SQL type name, OID).
fn pg_type(t: &DataType) -> Option<(&'static str, u32)> {
    Some(match t {
        DataType::Boolean => ("boolean", pg::BOOL),
        DataType::Int8 | DataType::UInt8 | DataType::Int16 => ("smallint", pg::INT2),
        DataType::UInt16 | DataType::Int32 => ("integer", pg::INT4),
        DataType::Int64 => ("bigint", pg::INT8),
        DataType::Float32 => ("real", pg::FLOAT4),
        DataType::Float64 => ("double precision", pg::FLOAT8),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("text", pg::TEXT),
        _ => return None,
    })
}

/// Appends one value in PostgreSQL's binary COPY format (length word, then the value).
fn put_value(out: &mut Vec<u8>, col: &dyn Array, i: usize) -> Result<()> {
    if col.is_null(i) {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    macro_rules! fixed {
        ($bytes:expr) => {{
            let b = $bytes;
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(&b);
        }};
    }
    match col.data_type() {
        DataType::Boolean => fixed!([col.as_boolean().value(i) as u8]),
        DataType::Int8 => fixed!((col.as_primitive::<Int8Type>().value(i) as i16).to_be_bytes()),
        DataType::UInt8 => fixed!((col.as_primitive::<UInt8Type>().value(i) as i16).to_be_bytes()),
        DataType::Int16 => fixed!(col.as_primitive::<Int16Type>().value(i).to_be_bytes()),
        DataType::UInt16 => {
            fixed!((col.as_primitive::<UInt16Type>().value(i) as i32).to_be_bytes())
        }
        DataType::Int32 => fixed!(col.as_primitive::<Int32Type>().value(i).to_be_bytes()),
        DataType::Int64 => fixed!(col.as_primitive::<Int64Type>().value(i).to_be_bytes()),
        DataType::Float32 => fixed!(col.as_primitive::<Float32Type>().value(i).to_be_bytes()),
        DataType::Float64 => fixed!(col.as_primitive::<Float64Type>().value(i).to_be_bytes()),
        DataType::Utf8 => fixed!(col.as_string::<i32>().value(i).as_bytes()),
        DataType::LargeUtf8 => fixed!(col.as_string::<i64>().value(i).as_bytes()),
        DataType::Utf8View => fixed!(col.as_string_view().value(i).as_bytes()),
        t => bail!("cannot load Arrow type {t} into PostgreSQL"),
    }
    Ok(())
}

/// Runs `pg-load`.
pub async fn pg_load(catalog_dir: &Path, table: &str, conninfo: &str) -> Result<()> {
    let cat = Catalog::open(catalog_dir)?;
    let (schema_name, table_name) = pg::split_table_name(table)?;
    let qtable = pg::quoted_table(table)?;
    let arrow_schema = cat.schema()?;
    let published: Vec<_> = arrow_schema
        .fields()
        .iter()
        .filter(|f| f.name() != HEALPIX_COLUMN)
        .cloned()
        .collect();
    for c in ["ra", "dec"] {
        if !published.iter().any(|f| f.name() == c) {
            bail!("{}: no '{c}' column", catalog_dir.display());
        }
    }
    let mut defs = Vec::new();
    for f in &published {
        let (t, _) = pg_type(f.data_type()).with_context(|| {
            format!(
                "column {}: no PostgreSQL type for Arrow {}",
                f.name(),
                f.data_type()
            )
        })?;
        let nn = if f.is_nullable() { "" } else { " NOT NULL" };
        defs.push(format!("{} {t}{nn}", quote_ident(f.name())));
    }
    let names: Vec<&str> = published.iter().map(|f| f.name().as_str()).collect();
    let col_list = names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");

    let ci = ConnInfo::parse(conninfo)?;
    let mut conn = Conn::connect(&ci).await?;
    let t0 = Instant::now();
    conn.simple_query("SET maintenance_work_mem = '1GB'")
        .await?;
    conn.simple_query(
        "CREATE EXTENSION IF NOT EXISTS pg_sphere; CREATE EXTENSION IF NOT EXISTS q3c",
    )
    .await?;
    conn.simple_query(&format!(
        "BEGIN; DROP TABLE IF EXISTS {qtable}; CREATE SCHEMA IF NOT EXISTS {qs}; CREATE TABLE {qtable} ({cols})",
        qs = quote_ident(schema_name),
        cols = defs.join(", ")
    ))
    .await?;

    // Binary COPY: header, tuples, trailer, in CopyData chunks of about 1 MiB.
    conn.copy_in(&format!(
        "COPY {qtable} ({col_list}) FROM STDIN (FORMAT binary)"
    ))
    .await?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 21);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    let mut rows = 0u64;
    let ncols = names.len() as i16;
    // Parquet reading is synchronous: one file's batches are read, then encoded and sent.
    let mut pending: Vec<RecordBatch> = Vec::new();
    for path in &cat.files {
        let one = Catalog {
            dir: cat.dir.clone(),
            files: vec![path.clone()],
        };
        one.for_each_batch(Some(&names), |b| {
            pending.push(b.clone());
            Ok(())
        })?;
        for b in pending.drain(..) {
            let cols: Vec<&dyn Array> = names
                .iter()
                .map(|n| b.column_by_name(n).map(|c| c.as_ref()))
                .collect::<Option<_>>()
                .context("a partition file lacks a column of the first one")?;
            for i in 0..b.num_rows() {
                buf.extend_from_slice(&ncols.to_be_bytes());
                for c in &cols {
                    put_value(&mut buf, *c, i)?;
                }
                rows += 1;
            }
            if buf.len() >= 1 << 20 {
                conn.copy_data(&buf).await?;
                buf.clear();
            }
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    conn.copy_data(&buf).await?;
    let copied = conn.copy_done().await?;
    conn.simple_query("COMMIT").await?;
    if copied != rows {
        bail!("COPY reports {copied} rows, {rows} were sent");
    }
    eprintln!(
        "pg-load: {rows} rows into {qtable} in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The indexes DaCHS builds for a positional table (//scs#pgs-pos-index and
    // //scs#q3cindex), clustering on q3c as DaCHS does, then statistics.
    let spoint_idx = quote_ident(&format!("{table_name}_spoint"));
    let q3c_idx = quote_ident(&format!("{table_name}_q3c"));
    let steps = [
        format!(
            "CREATE INDEX {spoint_idx} ON {qtable} USING GIST (spoint(radians(ra), radians(dec)))"
        ),
        format!("CREATE INDEX {q3c_idx} ON {qtable} (q3c_ang2ipix(ra, dec))"),
        format!("CLUSTER {qtable} USING {q3c_idx}"),
        // VACUUM also sets hint bits and the visibility map, so autovacuum does not start on
        // the freshly loaded table in the middle of a measurement.
        format!("VACUUM (ANALYZE) {qtable}"),
    ];
    for s in &steps {
        let t = Instant::now();
        conn.simple_query(s).await?;
        eprintln!("pg-load: {s} ({:.1} s)", t.elapsed().as_secs_f64());
    }
    let n = conn
        .simple_query(&format!("SELECT count(*) FROM {qtable}"))
        .await?;
    let n: u64 = n
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let expected = cat.num_rows()?;
    if n != expected {
        bail!("{qtable} holds {n} rows, the catalog {expected}");
    }
    let size = conn
        .simple_query(&format!(
            "SELECT pg_size_pretty(pg_total_relation_size('{}'))",
            qtable.replace('\'', "''")
        ))
        .await?;
    eprintln!(
        "pg-load: done, {n} rows, {} with indexes, {:.1} s in all",
        size.first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );
    conn.close().await;
    Ok(())
}
