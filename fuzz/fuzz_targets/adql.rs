//! Fuzz target: ADQL text → `adql::parse` → `adql::plan` → (optionally) execution.
//!
//! No input may panic, abort or hang, whatever it is. Inputs that are not UTF-8 are skipped
//! (the protocol fronts hand the crate `&str`). Text that parses is planned against a
//! session shaped like a vostok server's (the ADQL UDFs, `datafusion.public` as the default
//! schema, no information_schema) holding small in-memory tables with the demo catalogs'
//! columns, TAP_SCHEMA-like tables and the tables the external conformance corpora assume.
//! A plan is then executed on those few rows (at most `MAX_ROWS` rows pulled, `EXEC_TIMEOUT`,
//! a bounded memory pool), so the optimizer, the physical planner and the kernels, including
//! the geometry UDFs, run too. Set `VOSTOK_FUZZ_EXECUTE=0` to stop after planning, and
//! `VOSTOK_FUZZ_STATS=1` to see how far inputs get.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, Float32Array, Float64Array, Float64Builder, Int16Array, Int32Array, Int64Array,
    ListBuilder, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

/// Longest input tried (longer ones only slow the fuzzer down); `VOSTOK_FUZZ_MAX_LEN`
/// changes it, e.g. to replay a long hand-made input.
const MAX_LEN: usize = 4096;
/// Stack of the thread each input runs on: that of the server's tokio and actix worker
/// threads (2 MiB), not libFuzzer's 8 MiB main thread, so deep recursion fails here as it
/// would there.
const STACK: usize = 2 * 1024 * 1024;
/// Rows pulled from an executed plan before it is dropped.
const MAX_ROWS: usize = 10_000;
/// Time given to one execution (libFuzzer's own -timeout catches real hangs).
const EXEC_TIMEOUT: Duration = Duration::from_secs(2);
/// Memory DataFusion may reserve for one execution (sorts, joins, aggregates).
const MEMORY_POOL: usize = 256 * 1024 * 1024;

struct Env {
    rt: tokio::runtime::Runtime,
    ctx: SessionContext,
    execute: bool,
    stats: bool,
    max_len: usize,
}

/// How far inputs got (printed every 20,000 inputs with `VOSTOK_FUZZ_STATS=1`): inputs,
/// parsed, planned, executed without error, executed with an error, timed out.
static COUNTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

fn count(i: usize) {
    COUNTS[i].fetch_add(1, Relaxed);
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        let ctx = session();
        handle_signals_on_alt_stack();
        let execute = std::env::var("VOSTOK_FUZZ_EXECUTE").map_or(true, |v| v != "0");
        let stats = std::env::var("VOSTOK_FUZZ_STATS").is_ok_and(|v| v == "1");
        let max_len = std::env::var("VOSTOK_FUZZ_MAX_LEN")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_LEN);
        Env {
            rt,
            ctx,
            execute,
            stats,
            max_len,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    if data.len() > env.max_len {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A panic on that thread aborts the process (libfuzzer-sys's panic hook); a stack
    // overflow is a SIGSEGV that libFuzzer reports (see `on_alt_stack`).
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("adql-input".into())
            .stack_size(STACK)
            .spawn_scoped(s, || on_alt_stack(|| one_input(env, text)))
            .expect("spawn the input thread")
            .join()
            .expect("the input thread");
    });
});

/// Runs `f` with a signal stack for this thread, so that libFuzzer's SIGSEGV handler can run
/// after a stack overflow and report it (and save the input) like any crash. Without a
/// sanitizer nothing else gives the thread one (libFuzzer's `main` replaces Rust's, which
/// would), and the process would just die of SIGSEGV.
fn on_alt_stack(f: impl FnOnce()) {
    const SIZE: usize = 256 * 1024;
    let mut mem = vec![0u8; SIZE];
    let ss = libc::stack_t {
        ss_sp: mem.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: SIZE,
    };
    // SAFETY: `mem` outlives the registration, which is removed below.
    unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    f();
    let off = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: plain syscall on this thread's own state.
    unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
}

/// Makes the installed SIGSEGV / SIGBUS handlers (libFuzzer's, or a sanitizer's) run on the
/// signal stack set by [`on_alt_stack`].
fn handle_signals_on_alt_stack() {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: reads and re-installs the current handler with one more flag.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut act) == 0
                && act.sa_sigaction != libc::SIG_DFL
                && act.sa_sigaction != libc::SIG_IGN
            {
                act.sa_flags |= libc::SA_ONSTACK;
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
    }
}

fn one_input(env: &Env, text: &str) {
    count(0);
    if env.stats && COUNTS[0].load(Relaxed) % 20_000 == 0 {
        let c: Vec<u64> = COUNTS.iter().map(|c| c.load(Relaxed)).collect();
        eprintln!(
            "vostok-fuzz: {} inputs: {} parsed, {} planned, executed {} ok / {} error / {} timeout",
            c[0], c[1], c[2], c[3], c[4], c[5]
        );
    }
    // Parsing alone (the path of syntax checks, e.g. a TAP request with a bad query).
    if adql::parse(text).is_err() {
        return;
    }
    count(1);
    env.rt.block_on(async {
        let state = env.ctx.state();
        let Ok(plan) = adql::plan(&state, text).await else {
            return;
        };
        count(2);
        // Display and schema of the plan are what the server reports / serialises from.
        let _ = plan.display_indent().to_string();
        let _ = plan.schema();
        if !env.execute {
            return;
        }
        let run = async {
            let df = env.ctx.execute_logical_plan(plan).await?;
            let mut stream = df.execute_stream().await?;
            let mut rows = 0;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows();
                if rows >= MAX_ROWS {
                    break;
                }
            }
            Ok::<_, datafusion::error::DataFusionError>(())
        };
        match tokio::time::timeout(EXEC_TIMEOUT, run).await {
            Ok(Ok(())) => count(3),
            Ok(Err(_)) => count(4),
            Err(_) => count(5),
        }
    });
}

/// A session like the server's (see src/server.rs `build_state`), with small in-memory tables.
fn session() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false)
        .with_default_catalog_and_schema("datafusion", "public");
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(MEMORY_POOL)))
        .build_arc()
        .expect("runtime env");
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    adql::register(&ctx);

    use DataType::{Float32 as F32, Float64 as F64, Int16 as I16, Int32 as I32, Int64 as I64};
    let utf8 = DataType::Utf8;
    let geom = adql::geom::geometry_type();
    // data/demo/hipparcos.hip2.toml
    let hip2: Vec<(&str, DataType)> = [
        ("hip", I32),
        ("ra", F64),
        ("dec", F64),
        ("plx", F64),
        ("pmra", F64),
        ("pmdec", F64),
        ("e_ra", F64),
        ("e_dec", F64),
        ("e_plx", F64),
        ("e_pmra", F64),
        ("e_pmdec", F64),
        ("sn", I16),
        ("so", I16),
        ("nc", I16),
        ("ntr", I16),
        ("f2", F64),
        ("f1", I16),
        ("var", F64),
        ("ic", I16),
        ("hpmag", F64),
        ("e_hpmag", F64),
        ("shp", F64),
        ("va", I16),
        ("b_v", F64),
        ("e_b_v", F64),
        ("v_i", F64),
    ]
    .into();
    // data/demo/gaia.dr3_bright.toml
    let dr3: Vec<(&str, DataType)> = [
        ("source_id", I64),
        ("ra", F64),
        ("dec", F64),
        ("phot_g_mean_mag", F32),
        ("pmra", F32),
        ("pmdec", F32),
    ]
    .into();
    // TAP_SCHEMA (src/tap_schema.rs), with few columns' worth of rows.
    let schemas = vec![
        ("schema_name", utf8.clone()),
        ("utype", utf8.clone()),
        ("description", utf8.clone()),
        ("schema_index", I32),
    ];
    let tables = vec![
        ("schema_name", utf8.clone()),
        ("table_name", utf8.clone()),
        ("table_type", utf8.clone()),
        ("utype", utf8.clone()),
        ("description", utf8.clone()),
        ("table_index", I32),
    ];
    let columns = vec![
        ("table_name", utf8.clone()),
        ("column_name", utf8.clone()),
        ("utype", utf8.clone()),
        ("ucd", utf8.clone()),
        ("unit", utf8.clone()),
        ("description", utf8.clone()),
        ("datatype", utf8.clone()),
        ("arraysize", utf8.clone()),
        ("xtype", utf8.clone()),
        ("size", I32),
        ("principal", I32),
        ("indexed", I32),
        ("std", I32),
        ("column_index", I32),
    ];
    // What the VOLLT test queries of ../shared/conformance/adql assume (see its README):
    // mixed-case column names exercise adql's case-insensitive name resolution.
    let foo = vec![("colS", utf8.clone()), ("colI", I32), ("colG", geom)];
    let foo2 = vec![("oid", I64)];
    let table1 = vec![
        ("oid", I64),
        ("ra", F64),
        ("dec", F64),
        ("h_m", F32),
        ("j_m", F32),
        ("k_m", F32),
    ];
    let table2 = vec![("oid2", I64), ("ra", F64), ("ra_error", F64), ("dec", F64)];

    let catalog = ctx.catalog("datafusion").expect("default catalog");
    for schema in ["hipparcos", "gaia", "tap_schema", "aschema"] {
        catalog
            .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
            .expect("register schema");
    }
    for (schema, name, cols) in [
        ("hipparcos", "hip2", hip2),
        ("gaia", "dr3_bright", dr3),
        ("tap_schema", "schemas", schemas),
        ("tap_schema", "tables", tables),
        ("tap_schema", "columns", columns),
        ("aschema", "foo", foo),
        ("public", "foo2", foo2),
        ("public", "table1", table1),
        ("public", "table2", table2),
    ] {
        ctx.register_table(
            TableReference::partial(schema, name),
            Arc::new(mem_table(&cols)),
        )
        .expect("register table");
    }
    ctx
}

/// A one-batch table with a few rows of plausible values and a last row of NULLs.
fn mem_table(cols: &[(&str, DataType)]) -> MemTable {
    const RA: [f64; 4] = [0.0, 45.25, 180.0, 359.99];
    const DEC: [f64; 4] = [-89.5, -10.0, 0.0, 45.0];
    const NUM: [f64; 4] = [0.0, 1.25, -3.5, 21.0];
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect();
    let arrays: Vec<ArrayRef> = cols
        .iter()
        .map(|(name, t)| {
            let floats = match *name {
                "ra" => RA,
                "dec" => DEC,
                _ => NUM,
            };
            let f = |i: usize| Some(floats[i]);
            match t {
                DataType::Int16 => Arc::new(Int16Array::from(vec![
                    Some(0),
                    Some(1),
                    Some(-7),
                    Some(i16::MAX),
                    None,
                ])) as ArrayRef,
                DataType::Int32 => Arc::new(Int32Array::from(vec![
                    Some(1),
                    Some(2),
                    Some(-3),
                    Some(117_955),
                    None,
                ])),
                DataType::Int64 => Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(42),
                    Some(-5),
                    Some(6_917_528_443_525_529_728),
                    None,
                ])),
                DataType::Float32 => Arc::new(Float32Array::from(
                    (0..4)
                        .map(|i| f(i).map(|v| v as f32))
                        .chain([None])
                        .collect::<Vec<_>>(),
                )),
                DataType::Float64 => Arc::new(Float64Array::from(
                    (0..4).map(f).chain([None]).collect::<Vec<_>>(),
                )),
                DataType::Utf8 => Arc::new(StringArray::from(vec![
                    Some("hipparcos.hip2"),
                    Some("ICRS"),
                    Some(""),
                    Some("pos.eq.ra;meta.main"),
                    None,
                ])),
                DataType::List(_) => {
                    let mut b = ListBuilder::new(Float64Builder::new())
                        .with_field(Arc::new(Field::new_list_field(DataType::Float64, false)));
                    for p in [[10.0, 20.0], [0.0, -90.0], [359.9, 89.9], [180.0, 0.0]] {
                        b.values().append_slice(&p);
                        b.append(true);
                    }
                    b.append(false);
                    Arc::new(b.finish())
                }
                other => unreachable!("no test data for {other}"),
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("batch");
    MemTable::try_new(schema, vec![vec![batch]]).expect("mem table")
}
