//! `vostok adql check` and `vostok adql explain`: the ADQL front end without an HTTP server.
//!
//! `check` validates ADQL text as this server would (grammar, ADQL-only rules, functions and
//! their use) without any table metadata, so unknown tables and columns are not errors there,
//! nor is a call of an undeclared function with a prefixed name (`ivo_foo(…)`: a user-defined
//! function of some service) unless `--udf` declares the functions; with `--data-dir` it also
//! plans the query against the catalogs of that data folder, which checks names, types and
//! functions as the server does. `explain` plans the query against the catalogs and
//! prints the optimised logical plan, the physical plan, and for every HATS scan the HEALPix
//! ranges its spatial predicates prune to; with `--analyze` it runs the query and shows
//! what each operator did (and, with query workers, where each stage's tasks ran).

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use std::sync::Arc;
use std::time::Instant;

use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{displayable, ExecutionPlan};
use futures::StreamExt;

use storage::Missing;

use crate::app::state::open_engine;
use crate::app::Config;
use crate::engine::{Engine, Runtimes};

/// Reads the query from a file, or from stdin when `file` is `None` or `-`.
pub fn read_query(file: Option<&Path>) -> anyhow::Result<String> {
    let mut text = String::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        }
        _ => {
            std::io::stdin().read_to_string(&mut text)?;
        }
    }
    Ok(text)
}

/// The error line printed for a rejected query.
fn report(e: &adql::AdqlError) -> String {
    let kind = match e.kind {
        adql::ErrorKind::Syntax => "syntax error",
        adql::ErrorKind::Semantic => "semantic error",
    };
    match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{kind} at line {l}, column {c}: {}", e.message),
        _ => format!("{kind}: {}", e.message),
    }
}

/// A runtime and the engine over the catalogs of an existing data folder (nothing ingested,
/// nothing created).
fn engine_of(config: &Config) -> anyhow::Result<(tokio::runtime::Runtime, Engine)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runtimes = Runtimes::single(rt.handle().clone());
    let (_, engine) = rt.block_on(open_engine(config, runtimes, Missing::Refuse, false))?;
    Ok((rt, engine))
}

/// `vostok adql check`: prints `ok` (exit 0) or the error with its position (exit 1).
pub fn check(text: &str, udfs: &[String], config: Option<Config>) -> anyhow::Result<bool> {
    // Without table metadata this is a check of the grammar: a prefixed function name the
    // caller did not declare may be a user-defined function of the service it is meant for.
    let opts = adql::Options {
        extra_functions: udfs.iter().map(|u| udf_name(u)).collect(),
        accept_undeclared_udfs: config.is_none() && udfs.is_empty(),
        max_tokens: config
            .as_ref()
            .map_or(adql::MAX_TOKENS, |c| c.limits.query_tokens),
    };
    let result = match config {
        None => adql::parse_with(text, &opts).map(|_| ()),
        Some(config) => {
            let (rt, engine) = engine_of(&config)?;
            let session = engine.session();
            rt.block_on(adql::plan_with(&session, text, &opts))
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => {
            println!("ok");
            Ok(true)
        }
        Err(e) => {
            println!("{}", report(&e));
            Ok(false)
        }
    }
}

/// The function name of a UDF declaration: `ivo_foo(x DOUBLE) -> DOUBLE` → `ivo_foo`.
fn udf_name(decl: &str) -> String {
    decl.split('(').next().unwrap_or(decl).trim().to_string()
}

/// Runs `plan` to its end; the number of rows and the seconds it took.
async fn run_counting(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
) -> anyhow::Result<(usize, f64)> {
    let start = Instant::now();
    let mut stream = datafusion::physical_plan::execute_stream(plan, task)?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    Ok((rows, start.elapsed().as_secs_f64()))
}

/// `15 rows in 0.110 s`.
fn ran_line(rows: usize, secs: f64) -> String {
    let s = if rows == 1 { "" } else { "s" };
    format!("{rows} row{s} in {secs:.3} s")
}

/// `vostok adql explain`: the plans and the HEALPix pruning of a query; with `analyze`, the
/// query is run and the operators' figures are shown.
pub fn explain(text: &str, config: Config, analyze: bool) -> anyhow::Result<bool> {
    let (rt, engine) = engine_of(&config)?;
    let session = engine.session();
    let plan = match rt.block_on(adql::plan(&session, text)) {
        Ok(p) => p,
        Err(e) => {
            println!("{}", report(&e));
            return Ok(false);
        }
    };
    let optimized = session.optimize(&plan)?;
    println!(
        "== logical plan (optimised)\n{}",
        optimized.display_indent()
    );
    let physical = rt.block_on(session.create_physical_plan(&plan))?;
    println!(
        "\n== physical plan\n{}",
        displayable(physical.as_ref()).indent(true)
    );
    let mut ran = false;
    if let Some(dist) = engine.snapshot().distributed() {
        use crate::engine::distributed::{is_distributed, stays_here, task_ctx_recording, Routing};
        println!("\n== on the query workers ([distributed] workers)");
        if engine.is_light(&physical) {
            println!("none: the query is of the fast lane ([limits] fast_lane_mb), it runs here");
        } else if let Some(why) = stays_here(&physical, dist) {
            println!("none: {why}; it runs here");
        } else {
            let spread = rt.block_on(dist.state().create_physical_plan(&plan))?;
            if !is_distributed(&spread) {
                println!("none: too small to cut into stages ([distributed] bytes_per_task)");
            } else if !analyze {
                print!(
                    "{}",
                    datafusion_distributed::display_plan_ascii(spread.as_ref(), false)
                );
                println!("(the workers are chosen when the query runs: --analyze runs it)");
            } else {
                let routing = Arc::new(Routing::default());
                let task = task_ctx_recording(dist, routing.clone());
                let (rows, secs) = rt.block_on(run_counting(spread.clone(), task))?;
                let shown = rt.block_on(datafusion_distributed::explain_analyze(
                    spread.clone(),
                    datafusion_distributed::DistributedMetricsFormat::Aggregated,
                ))?;
                print!("{shown}");
                println!("\n== where the tasks ran");
                for line in routing.describe(&spread) {
                    println!("{line}");
                }
                println!("\n== run\n{}", ran_line(rows, secs));
                ran = true;
            }
        }
    }
    if analyze && !ran {
        let (rows, secs) = rt.block_on(run_counting(physical.clone(), session.task_ctx()))?;
        println!(
            "\n== physical plan, run\n{}",
            DisplayableExecutionPlan::with_metrics(physical.as_ref()).indent(true)
        );
        println!("== run\n{}", ran_line(rows, secs));
    }
    println!("\n== HEALPix pruning");
    let mut any = false;
    let mut scans = Vec::new();
    collect_scans(&optimized, &mut scans);
    for (name, filters) in scans {
        let Some(table) = engine.table(&name) else {
            continue;
        };
        any = true;
        let parts = &table.catalog().partitions;
        match table.coverage(&filters) {
            None => println!(
                "{name}: no spatial predicate on its position columns; all {} partitions scanned",
                parts.len()
            ),
            Some(ranges) => {
                let hit = parts
                    .iter()
                    .filter(|p| {
                        let r = p.pixel.range29();
                        ranges.iter().any(|c| c.start < r.end && r.start < c.end)
                    })
                    .count();
                println!(
                    "{name}: {} HEALPix range(s), {hit} of {} partitions scanned",
                    ranges.len(),
                    parts.len()
                );
                for r in &ranges {
                    println!("  {}", describe_range(r));
                }
            }
        }
    }
    if !any {
        println!("(no HATS catalog scanned)");
    }
    Ok(true)
}

/// Table scans of a plan with their pushed-down filters.
fn collect_scans(plan: &LogicalPlan, out: &mut Vec<(String, Vec<datafusion::prelude::Expr>)>) {
    if let LogicalPlan::TableScan(scan) = plan {
        out.push((scan.table_name.to_string(), scan.filters.clone()));
    }
    for input in plan.inputs() {
        collect_scans(input, out);
    }
    // Subqueries in expressions are plans too.
    let _ = plan.apply_subqueries(|sub| {
        collect_scans(sub, out);
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
}

/// An order-29 NESTED range as the coarsest HEALPix order whose pixels it is made of.
fn describe_range(r: &Range<u64>) -> String {
    let mut order = 29u32;
    while order > 0 {
        let step = 1u64 << (2 * (29 - order + 1));
        if r.start.is_multiple_of(step) && r.end.is_multiple_of(step) {
            order -= 1;
        } else {
            break;
        }
    }
    let shift = 2 * (29 - order);
    let (a, b) = (r.start >> shift, r.end >> shift);
    if b - a == 1 {
        format!("order {order} pixel {a}")
    } else {
        format!("order {order} pixels {a}..={}", b - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_shown_at_their_coarsest_order() {
        let order3 = 1u64 << (2 * 26);
        assert_eq!(describe_range(&(order3 * 5..order3 * 6)), "order 3 pixel 5");
        assert_eq!(describe_range(&(order3 * 4..order3 * 8)), "order 2 pixel 1");
        assert_eq!(describe_range(&(7..9)), "order 29 pixels 7..=8");
        assert_eq!(udf_name("ivo_foo(x DOUBLE) -> DOUBLE"), "ivo_foo");
    }
}
