//! vostok: a Virtual Observatory data server. TAP/ADQL and Simple Cone Search over
//! HEALPix-partitioned Parquet catalogs (HATS) in object storage.
//!
//! This binary is the HTTP surface (one module per protocol) and the command line; the
//! query path lives in the `adql`, `catalogs` and `votable` crates.

mod config;
mod ingest;
mod params;
mod query;
mod scs;
mod server;
mod tap;
mod tap_schema;
mod vosi;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// A Virtual Observatory data server: TAP/ADQL and Cone Search over HATS Parquet catalogs.
#[derive(Parser)]
#[command(name = "vostok", version, about)]
struct Cli {
    /// Configuration file (default: ./vostok.toml when present, else built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
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
    },
    /// Ingest a catalog described by a metadata file into the data folder (HATS layout).
    Ingest {
        /// The catalog's metadata file (TOML: [table], [source], [[columns]]).
        metadata: PathBuf,
        /// Data folder or object-store URL (default ./vostok-data).
        #[arg(long)]
        data_dir: Option<String>,
        /// Replace the catalog if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve {
            bind,
            data_dir,
            no_demo,
        } => {
            if let Some(b) = bind {
                config.bind = b;
            }
            if let Some(d) = data_dir {
                config.data = d;
            }
            if no_demo {
                config.demo = false;
            }
            server::run(config)
        }
        Command::Ingest {
            metadata,
            data_dir,
            force,
        } => {
            if let Some(d) = data_dir {
                config.data = d;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let storage = catalogs::Storage::open(&config.data, &config.storage_options)?;
                let summary = ingest::ingest(&storage, &metadata, force, true).await?;
                println!(
                    "ingested {} rows into {} partitions{}",
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
    }
}
