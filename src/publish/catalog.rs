//! Ingest: a metadata file and its raw source → a HATS catalog in the data folder,
//! with progress shown on a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use catalogs::hats::{
    write_catalog, WriteOptions, WriteSummary, DEFAULT_PARTITION_ROWS, DEFAULT_ROW_GROUP_ROWS,
};
use catalogs::meta::METADATA_FILE;
use catalogs::CatalogMeta;
use indicatif::{ProgressBar, ProgressStyle};
use storage::Storage;

/// Root of a catalog inside the data folder.
pub fn catalog_root(meta: &CatalogMeta) -> String {
    format!("catalogs/{}", meta.qualified_name())
}

/// Whether a complete catalog exists at `root` (its metadata file is written last).
pub async fn exists(storage: &Storage, root: &str) -> anyhow::Result<bool> {
    Ok(storage
        .exists(&storage.path(&format!("{root}/{METADATA_FILE}")))
        .await?)
}

/// Refuses to overwrite a complete catalog unless `force`; with `force`, removes whatever is
/// at `root` (a complete catalog or the leftovers of an interrupted write).
async fn make_room(storage: &Storage, root: &str, name: &str, force: bool) -> anyhow::Result<()> {
    if force {
        storage.delete_prefix(root).await?;
    } else if exists(storage, root).await? {
        anyhow::bail!("{name} exists in the data folder (use --force to replace it)");
    }
    Ok(())
}

/// Ingests the catalog that `metadata` describes. Skips it when present, unless `force`.
pub async fn ingest(
    storage: &Storage,
    metadata: &Path,
    force: bool,
    show_progress: bool,
) -> anyhow::Result<WriteSummary> {
    let text = std::fs::read_to_string(metadata)
        .with_context(|| format!("reading {}", metadata.display()))?;
    let meta =
        CatalogMeta::from_toml(&text).with_context(|| format!("in {}", metadata.display()))?;
    let root = catalog_root(&meta);
    make_room(storage, &root, &meta.qualified_name(), force).await?;
    let source = meta
        .source
        .as_ref()
        .context("the metadata file has no [source] section")?;
    let src_path = metadata
        .parent()
        .unwrap_or(Path::new("."))
        .join(&source.path);

    let tty = show_progress && std::io::stderr().is_terminal();
    let spinner = if tty {
        let s = ProgressBar::new_spinner();
        s.set_message(format!(
            "{}: reading {}",
            meta.qualified_name(),
            src_path.display()
        ));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    } else {
        tracing::info!("{}: reading {}", meta.qualified_name(), src_path.display());
        ProgressBar::hidden()
    };
    let bytes =
        std::fs::read(&src_path).with_context(|| format!("reading {}", src_path.display()))?;
    let meta_for_read = meta.clone();
    let (schema, batches) =
        tokio::task::spawn_blocking(move || catalogs::source::read_source(&meta_for_read, bytes))
            .await??;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    spinner.finish_and_clear();

    let bar = if tty {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} partitions")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(format!("{}: writing {rows} rows", meta.qualified_name()));
        b
    } else {
        tracing::info!("{}: writing {rows} rows as HATS", meta.qualified_name());
        ProgressBar::hidden()
    };
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let opts = WriteOptions {
        partition_rows: meta.table.partition_rows.unwrap_or(DEFAULT_PARTITION_ROWS),
        row_group_rows: meta.table.row_group_rows.unwrap_or(DEFAULT_ROW_GROUP_ROWS),
        progress: Some(&progress),
        keep_unpositioned: false,
    };
    let summary = write_catalog(storage, &root, &meta, schema, &batches, &opts).await?;
    bar.finish_and_clear();
    tracing::info!(
        "{}: {} rows in {} partitions",
        meta.qualified_name(),
        summary.rows,
        summary.partitions.len()
    );
    Ok(summary)
}

/// Generates a synthetic catalog `schema.table` (see `catalogs::synth`) into the data folder.
pub async fn generate(
    storage: &Storage,
    qualified: &str,
    opts: &catalogs::synth::SynthOptions,
    force: bool,
    show_progress: bool,
) -> anyhow::Result<WriteSummary> {
    let (schema, table) = qualified
        .split_once('.')
        .context("the table name must be schema.table, e.g. synth.sky_1m")?;
    for part in [schema, table] {
        if !catalogs::meta::is_regular_identifier(part) {
            anyhow::bail!("'{part}' is not an ADQL regular identifier");
        }
    }
    let meta = catalogs::synth::metadata(schema, table, opts);
    let root = catalog_root(&meta);
    make_room(storage, &root, qualified, force).await?;
    let bar = if show_progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(opts.rows);
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_message(qualified.to_string());
        Some(b)
    } else {
        None
    };
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let summary = catalogs::synth::generate(storage, &root, &meta, opts, Some(&progress)).await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(summary)
}
