//! The command line: `serve`, `worker`, `ingest`, `drop`, `generate`, `user`, `adql`.

mod adql;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use storage::{Missing, Storage};

use crate::app::Config;
use crate::publish;

/// `vostok user …`.
async fn user_command(config: &mut Config, command: UserCommand) -> anyhow::Result<()> {
    let data_dir = match &command {
        UserCommand::Add { data_dir, .. } | UserCommand::Token { data_dir, .. } => data_dir.clone(),
    };
    if let Some(d) = data_dir {
        config.data = d;
    }
    let storage = Storage::open(&config.data, &config.storage_options, Missing::Refuse)?;
    let store = crate::app::state::open_vospace(config, storage).await?;
    store.set_authority(&config.service.authority);
    match command {
        UserCommand::Add {
            name, quota, group, ..
        } => {
            let quota = match quota.unwrap_or(config.vospace.default_quota) {
                0 => None,
                q => Some(q),
            };
            let token = store
                .add_user(&name, quota)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for g in &group {
                store
                    .add_to_group(&name, g)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            println!(
                "user {name} created with home vos://{}!vospace/{name}{}; token: {token}",
                config.service.authority,
                quota
                    .map(|q| format!(", quota {q} bytes"))
                    .unwrap_or_default()
            );
        }
        UserCommand::Token { name, .. } => {
            let token = store
                .new_token(&name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("new token for {name}: {token}");
        }
    }
    Ok(())
}

/// `vostok worker`: the query worker service over the data folder, until SIGINT or SIGTERM.
async fn worker(config: &Config, bind: &str) -> anyhow::Result<()> {
    let storage = Storage::open(&config.data, &config.storage_options, Missing::Refuse)?;
    let env = crate::engine::runtime_env(&storage, &config.limits, config.metadata_cache_mb)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {bind}: {e}"))?;
    tracing::info!(
        "query worker listening on http://{} over {}",
        listener.local_addr()?,
        config.data
    );
    let stop = async {
        crate::app::routes::stop_signal().await;
        tracing::info!("query worker stopping");
    };
    let secret = config.distributed.secret();
    crate::engine::distributed::serve_worker(env, listener, secret, stop).await
}

/// `vostok ingest <folder or URL>`: FITS products as a collection.
async fn ingest_products(
    config: &Config,
    source: &str,
    collection: Option<String>,
    force: bool,
) -> anyhow::Result<()> {
    let collection = match collection {
        Some(c) => c,
        None => source
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("products")
            .to_string(),
    };
    let storage = Storage::open(&config.data, &config.storage_options, Missing::Create)?;
    let s = publish::products::ingest_products(
        &storage,
        source,
        &config.storage_options,
        &collection,
        &config.service.authority,
        force,
        true,
        config.retention(),
    )
    .await?;
    for (file, w) in &s.warnings {
        println!("warning: {file}: {w}");
    }
    for (file, e) in &s.failed {
        println!("skipped: {file}: {e}");
    }
    if s.unpositioned > 0 {
        println!(
            "{} record(s) without a position: published, but no position search finds them",
            s.unpositioned
        );
    }
    println!(
        "collection {collection}: {} files stored, {} ObsCore records, {} files skipped, {} warnings \
         (published: a running server serves it within [publish] poll_ms)",
        s.files,
        s.records,
        s.failed.len(),
        s.warnings.len()
    );
    Ok(())
}

/// A Virtual Observatory data server: TAP/ADQL and Cone Search over HATS Parquet catalogs.
#[derive(Parser)]
#[command(name = "vostok", version, about)]
struct Cli {
    /// Configuration file (default: ./vostok.toml when present, else built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object per line,
    /// for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalogs (and, by default, ingest and serve the demo catalogs).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        bind: Option<String>,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
        /// Do not ingest or serve the demo catalogs.
        #[arg(long)]
        no_demo: bool,
        /// Query workers to spread large queries over (`http://host:port,…`; in place of
        /// `[distributed] workers`).
        #[arg(long, value_delimiter = ',')]
        workers: Option<Vec<String>>,
    },
    /// Run a query worker: stages of the large queries of the servers that name it in
    /// `[distributed] workers` (or `serve --workers`) run here, reading the same data folder.
    Worker {
        /// Address to listen on (gRPC; default 127.0.0.1:8090).
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: String,
        /// Data folder or object-store URL (default ./vostok-data): the servers' own.
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// Ingest a catalog (a metadata file → HATS), or a folder / object-store prefix of FITS
    /// images and spectra (→ stored files, ivoa.obscore, archive.fits_headers).
    Ingest {
        /// A catalog's metadata file (TOML: [table], [source], [[columns]]), or a folder or
        /// object-store URL (s3://bucket/prefix) holding FITS files (.fits, .fit, .fts, .gz).
        source: String,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
        /// Collection name for FITS products (obs_collection; default: the folder's name).
        #[arg(long)]
        collection: Option<String>,
        /// Replace the catalog or collection if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Stop publishing a catalog (`vostok drop schema.table`) or a collection of FITS
    /// products (`vostok drop --collection NAME`). A running server stops serving it within
    /// `[publish] poll_ms`; queries already running on it finish, and its files are deleted
    /// once `[publish] retention_seconds` have passed.
    Drop {
        /// The table, schema.table.
        #[arg(required_unless_present = "collection", conflicts_with = "collection")]
        table: Option<String>,
        /// A collection of FITS products (obs_collection).
        #[arg(long)]
        collection: Option<String>,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// Write a synthetic Gaia-like sky of N rows straight into the HATS layout (for benchmarks).
    Generate {
        /// Rows to generate (suffixes k, M, G accepted: 10M).
        #[arg(long, value_parser = parse_count)]
        rows: u64,
        /// Table name, schema.table.
        #[arg(long, default_value = "synth.sky")]
        table: String,
        /// Seed: the same rows and seed give the same catalog.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Maximum rows per partition file.
        #[arg(long, default_value_t = catalogs::synth::DEFAULT_PARTITION_ROWS)]
        partition_rows: usize,
        /// Rows per Parquet row group.
        #[arg(long, default_value_t = catalogs::synth::DEFAULT_ROW_GROUP_ROWS)]
        row_group_rows: usize,
        /// Partitions generated at once (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
        /// Replace the catalog if it exists.
        #[arg(long)]
        force: bool,
    },
    /// VOSpace users: `user add NAME` creates NAME with the home container /NAME and prints
    /// a bearer token (the last word of the output).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// ADQL without a server: validate a query, or show how it would run.
    Adql {
        #[command(subcommand)]
        command: AdqlCommand,
    },
    /// The configuration: `vostok config check` reads `vostok.toml` (or `--config FILE`) as
    /// `serve` would and prints every setting in effect, defaults included; an unknown key or
    /// a bad value is an error naming it (with the nearest known key).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration in effect as TOML (settings left unset, such as optional
    /// database paths or tokens, are not printed).
    Check,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and their home container; prints the token last.
    Add {
        /// User name (letters, digits, `_`, `-`, `.`; starting with a letter).
        name: String,
        /// Quota in bytes (default `[vospace] default_quota`; 0: none).
        #[arg(long)]
        quota: Option<u64>,
        /// Make the user a member of this group (repeatable); shared with
        /// `core#groupread`/`groupwrite` = `ivo://AUTHORITY/gms?GROUP`.
        #[arg(long)]
        group: Vec<String>,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// Issue a new token for a user (the old one stops working); prints it last.
    Token {
        name: String,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdqlCommand {
    /// Validate ADQL read from FILE (or stdin): prints `ok` (exit 0) or the error with its line
    /// and column (exit 1). Without --data-dir, tables and columns are not checked, and a
    /// prefixed function name (`ivo_foo(…)`) is taken for a user-defined function unless
    /// --udf declares the functions.
    Check {
        /// File holding the query (default or `-`: stdin).
        file: Option<PathBuf>,
        /// Declare a user-defined function (a name, or a TAPRegExt form
        /// `name(arg TYPE, …) -> TYPE`); repeatable. Once one is declared, other functions
        /// than ADQL's, vostok's and the declared ones are refused.
        #[arg(long)]
        udf: Vec<String>,
        /// Also check table and column names against the catalogs of this data folder.
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// Show the optimised logical plan, the physical plan, and the HEALPix ranges each spatial
    /// predicate prunes a catalog scan to, for the query in FILE (or stdin).
    Explain {
        /// File holding the query (default or `-`: stdin).
        file: Option<PathBuf>,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
        /// Also run the query (its rows are counted, not printed) and show what each operator
        /// did; with query workers, each stage's figures and the worker each task ran on.
        #[arg(long)]
        analyze: bool,
    },
}

/// `10M` → 10_000_000 (k, M, G are powers of 1000).
fn parse_count(s: &str) -> Result<u64, String> {
    let s = s.trim().replace('_', "");
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        Some('g' | 'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{s}' is not a positive row count"))
}

/// Runs the command the arguments name.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `vostok adql …` prints its answer on stdout; only warnings go to stderr there.
    let default_level = match cli.command {
        Command::Adql { .. } => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => log.json().init(),
        // Colour codes only where a person reads them: not in a file or a journal.
        LogFormat::Text => log
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_toml()?);
            Ok(())
        }
        Command::Adql { command } => {
            let ok = match command {
                AdqlCommand::Check {
                    file,
                    udf,
                    data_dir,
                } => {
                    let text = adql::read_query(file.as_deref())?;
                    let config = data_dir.map(|d| {
                        config.data = d;
                        config
                    });
                    adql::check(&text, &udf, config)?
                }
                AdqlCommand::Explain {
                    file,
                    data_dir,
                    analyze,
                } => {
                    let text = adql::read_query(file.as_deref())?;
                    if let Some(d) = data_dir {
                        config.data = d;
                    }
                    adql::explain(&text, config, analyze)?
                }
            };
            std::process::exit(if ok { 0 } else { 1 })
        }
        Command::User { command } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(user_command(&mut config, command))
        }
        Command::Serve {
            bind,
            data_dir,
            no_demo,
            workers,
        } => {
            if let Some(w) = workers {
                config.distributed.workers = w;
            }
            if let Some(b) = bind {
                config.bind = b;
            }
            if let Some(d) = data_dir {
                config.data = d;
            }
            if no_demo {
                config.demo = false;
            }
            crate::app::routes::run(config)
        }
        Command::Worker { bind, data_dir } => {
            if let Some(d) = data_dir {
                config.data = d;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(worker(&config, &bind))
        }
        Command::Ingest {
            source,
            data_dir,
            collection,
            force,
        } => {
            if let Some(d) = data_dir {
                config.data = d;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let metadata = PathBuf::from(&source);
            if !(metadata.is_file() && source.to_ascii_lowercase().ends_with(".toml")) {
                return rt.block_on(ingest_products(&config, &source, collection, force));
            }
            rt.block_on(async {
                let storage =
                    Storage::open(&config.data, &config.storage_options, Missing::Create)?;
                let summary =
                    publish::catalog::ingest(&storage, &metadata, force, true, config.retention())
                        .await?;
                println!(
                    "ingested {} rows into {} partitions{} (published: a running server serves \
                     it within [publish] poll_ms)",
                    summary.rows,
                    summary.partitions.len(),
                    if summary.dropped > 0 {
                        format!(" ({} rows without position dropped)", summary.dropped)
                    } else {
                        String::new()
                    }
                );
                Ok(())
            })
        }
        Command::Drop {
            table,
            collection,
            data_dir,
        } => {
            if let Some(d) = data_dir {
                config.data = d;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let storage =
                    Storage::open(&config.data, &config.storage_options, Missing::Refuse)?;
                match (table, collection) {
                    (_, Some(c)) => {
                        publish::products::drop_collection(&storage, &c, config.retention())
                            .await?;
                        println!("collection {c} dropped (a running server stops serving it within [publish] poll_ms)");
                    }
                    (Some(t), None) => {
                        publish::catalog::drop_catalog(&storage, &t, config.retention()).await?;
                        println!("{t} dropped (a running server stops serving it within [publish] poll_ms)");
                    }
                    (None, None) => anyhow::bail!("name a table (schema.table) or --collection NAME"),
                }
                Ok(())
            })
        }
        Command::Generate {
            rows,
            table,
            seed,
            partition_rows,
            row_group_rows,
            threads,
            data_dir,
            force,
        } => {
            if let Some(d) = data_dir {
                config.data = d;
            }
            let mut opts = catalogs::synth::SynthOptions::new(rows, seed);
            opts.partition_rows = partition_rows.max(1);
            opts.row_group_rows = row_group_rows.max(1);
            if let Some(t) = threads {
                opts.threads = t.max(1);
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let storage = Storage::open(&config.data, &config.storage_options, Missing::Create)?;
                let t0 = std::time::Instant::now();
                let summary = publish::catalog::generate(
                    &storage,
                    &table,
                    &opts,
                    force,
                    true,
                    config.retention(),
                )
                .await?;
                let secs = t0.elapsed().as_secs_f64();
                println!(
                    "generated {} rows into {} partitions of {table} in {secs:.1} s ({:.2} M rows/s)",
                    summary.rows,
                    summary.partitions.len(),
                    summary.rows as f64 / secs.max(1e-9) / 1e6
                );
                Ok(())
            })
        }
    }
}
