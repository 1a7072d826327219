//! `vostok-bench`: vostok against the PostgreSQL + pgSphere + q3c floor that GAVO DaCHS sits on.
//!
//! * `pg-load` copies a vostok catalog folder into PostgreSQL and indexes it as DaCHS does.
//! * `run` sends the same workloads to vostok (TAP, SCS over HTTP) and to PostgreSQL (the SQL
//!   DaCHS would send), checks every answer against a brute-force count, and prints latency
//!   percentiles, throughput at several concurrencies, bytes/s and memory side by side.
//! * `load` runs many concurrent clients on a mixed workload against a running vostok and
//!   checks what comes back (5xx, dropped connections, MD5s, memory); `verify` checks a
//!   ledger of acknowledged files and jobs after crashes; `fill` fills the data folder
//!   (scripts/load.sh, scripts/chaos.sh).
//!
//! Build it together with vostok (`cargo build -p vostok -p vostok-bench`): on its own, cargo
//! unifies fewer features of the shared dependencies and recompiles DataFusion.

mod catalog;
mod load;
mod mem;
mod pg;
mod report;
mod run;
mod sky;
mod stress;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vostok-bench",
    version,
    about = "vostok vs PostgreSQL + pgSphere + q3c (the DaCHS floor)"
)]
struct Cli {
    /// Worker threads of the load generator's tokio runtime (keep it small: the servers need
    /// the cores).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load a catalog folder into PostgreSQL with DaCHS's indexes (drops and recreates it).
    PgLoad {
        /// The catalog folder, e.g. DATA/catalogs/gaia.dr3_bright.
        #[arg(long)]
        catalog: PathBuf,
        /// Table name (default: the folder's name).
        #[arg(long)]
        table: Option<String>,
        /// libpq-style connection string.
        #[arg(long)]
        pg: String,
    },
    /// Run the workloads and print the comparison.
    Run(Box<RunArgs>),
    /// Many concurrent clients on a mixed workload (TAP, cone search, downloads, async jobs,
    /// VOSpace with MD5s, previews) for a while; exit status 1 when the server fails it.
    Load(Box<stress::LoadArgs>),
    /// Check that every file and job result of a ledger (`load --ledger`) is still intact.
    Verify(stress::VerifyArgs),
    /// Upload into VOSpace until the data folder is full: refusals must be clean.
    Fill(stress::FillArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// vostok's base URL.
    #[arg(long)]
    vostok: String,
    /// libpq-style connection string of the PostgreSQL to compare with.
    #[arg(long, required_unless_present = "vostok_only")]
    pg: Option<String>,
    /// Measure vostok only.
    #[arg(long, conflicts_with = "pg")]
    vostok_only: bool,
    /// The main catalog folder (DATA/catalogs/gaia.dr3_bright): the standard workloads.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Its table name (default: the folder's name).
    #[arg(long)]
    table: Option<String>,
    /// Scale tables (vostok only), e.g. synth.sky_1m,synth.sky_10m.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Folder of the scale tables' catalogs (default: the parent of --catalog).
    #[arg(long)]
    catalogs_dir: Option<PathBuf>,
    /// vostok's pid: sample its memory.
    #[arg(long)]
    vostok_pid: Option<u32>,
    /// `auto` (postmaster.pid in the server's data_directory) or the postmaster's pid: sample
    /// the memory of the PostgreSQL processes.
    #[arg(long)]
    pg_pids: Option<String>,
    /// Latency phase: at most this many requests per workload and server...
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// ...and at most this many seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Throughput phase: seconds per concurrency level.
    #[arg(long, default_value_t = 5.0)]
    throughput_seconds: f64,
    /// Throughput phase: concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Checked, unmeasured requests before the latency phase.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Cone centres per workload (reused in turn).
    #[arg(long, default_value_t = 500)]
    pool: usize,
    /// Seed of the cone centres.
    #[arg(long, default_value_t = 20_240_601)]
    seed: u64,
    /// TAP cone radii in degrees.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,2")]
    radii: Vec<f64>,
    /// SCS radius in degrees.
    #[arg(long, default_value_t = 0.1)]
    scs_radius: f64,
    /// Rows of the download workload.
    #[arg(long, default_value_t = 100_000)]
    download_rows: u64,
    /// Brute-force check: rows this close to the cone's edge (degrees) may be counted either way.
    #[arg(long, default_value_t = 1e-9)]
    tolerance_deg: f64,
    /// Scale cones: R = R0 * sqrt(N0 / N) keeps the expected rows per cone constant.
    #[arg(long, default_value_t = 1.0)]
    scale_r0: f64,
    /// Scale cones: N0 of that formula.
    #[arg(long, default_value_t = 1_000_000.0)]
    scale_n0: f64,
    /// Scale cones: also this fixed radius (degrees).
    #[arg(long, default_value_t = 0.1)]
    scale_fixed_r: f64,
    /// Run only the workloads whose id starts with one of these (tap_cone, scs, agg, download,
    /// xmatch, scale, or TABLE:).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the results as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

fn main() {
    match real_main() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("vostok-bench: {e:#}");
            std::process::exit(2);
        }
    }
}

fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    if cli.client_threads == 0 {
        bail!("--client-threads must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads)
        .max_blocking_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::PgLoad { catalog, table, pg } => {
            let table = match table {
                Some(t) => t,
                None => catalog
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow::anyhow!("give --table"))?,
            };
            rt.block_on(load::pg_load(&catalog, &table, &pg))?;
            Ok(true)
        }
        Cmd::Run(a) => {
            let a = *a;
            if a.requests == 0 || a.pool == 0 || a.concurrency.contains(&0) {
                bail!("--requests, --pool and --concurrency must be positive");
            }
            let catalogs_dir = a.catalogs_dir.clone().or_else(|| {
                a.catalog
                    .as_ref()
                    .and_then(|c| c.parent().map(PathBuf::from))
            });
            let cfg = run::RunConfig {
                vostok: a.vostok,
                pg: if a.vostok_only { None } else { a.pg },
                catalog: a.catalog,
                table: a.table,
                catalogs_dir,
                tables: a.tables,
                vostok_pid: a.vostok_pid,
                pg_pids: a.pg_pids,
                requests: a.requests,
                seconds: a.seconds,
                throughput_seconds: a.throughput_seconds,
                concurrency: a.concurrency,
                warmup: a.warmup,
                pool: a.pool,
                seed: a.seed,
                radii: a.radii,
                scs_radius: a.scs_radius,
                download_rows: a.download_rows,
                tolerance: a.tolerance_deg,
                scale_r0: a.scale_r0,
                scale_n0: a.scale_n0,
                scale_fixed_r: a.scale_fixed_r,
                only: a.only,
                json: a.json,
                markdown: a.markdown,
                client_threads: cli.client_threads,
            };
            rt.block_on(run::run(cfg))
        }
        Cmd::Load(a) => rt.block_on(stress::load(*a, cli.client_threads)),
        Cmd::Verify(a) => rt.block_on(stress::verify(a)),
        Cmd::Fill(a) => rt.block_on(stress::fill(a)),
    }
}
