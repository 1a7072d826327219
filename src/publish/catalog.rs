//! Ingest: a metadata file and its raw source → a HATS catalog in the data folder,
//! with progress shown on a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use catalogs::hats::{
    write_catalog, WriteOptions, WriteSummary, DEFAULT_PARTITION_ROWS, DEFAULT_ROW_GROUP_ROWS,
};
use catalogs::versions;
use catalogs::CatalogMeta;
use indicatif::{ProgressBar, ProgressStyle};
use storage::Storage;

/// Folder of a catalog inside the data folder (its versions are in it: catalogs::versions).
pub fn catalog_root(meta: &CatalogMeta) -> String {
    versions::folder(&meta.qualified_name())
}

/// Whether a complete catalog is published in `folder`.
pub async fn exists(storage: &Storage, folder: &str) -> anyhow::Result<bool> {
    Ok(versions::current_root(storage, folder).await?.is_some())
}

/// Where a new version of the catalog in `folder` is written: refuses when one is
/// published, unless `force` (replace: the published version stays served until the new
/// one is complete and switched to).
async fn make_room(
    storage: &Storage,
    folder: &str,
    name: &str,
    force: bool,
) -> anyhow::Result<u64> {
    match versions::begin(storage, folder, force).await? {
        Some(v) => Ok(v),
        None => anyhow::bail!("{name} exists in the data folder (use --force to replace it)"),
    }
}

/// Publishes version `version` of the catalog in `folder` (complete): switches its pointer,
/// announces the change to running servers, and deletes versions retired for longer than
/// `retention`.
pub async fn publish(
    storage: &Storage,
    folder: &str,
    version: u64,
    retention: Duration,
) -> anyhow::Result<()> {
    versions::switch(storage, folder, version).await?;
    versions::announce(storage, folder).await?;
    if let Err(e) = versions::collect(storage, folder, retention).await {
        tracing::warn!("{folder}: retired versions not deleted: {e}");
    }
    Ok(())
}

/// Stops publishing catalog `name` (`schema.table`): running servers stop serving it within
/// their poll interval; its files are deleted once retired for longer than `retention`.
pub async fn drop_catalog(
    storage: &Storage,
    name: &str,
    retention: Duration,
) -> anyhow::Result<()> {
    let Some(folder) = versions::published(storage)
        .await?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| versions::folder(&n))
    else {
        anyhow::bail!("no table {name} is published in the data folder");
    };
    if [super::products::OBSCORE_ROOT, super::products::HEADERS_ROOT].contains(&folder.as_str()) {
        anyhow::bail!(
            "{name} is made from the product collections: drop a collection instead \
             (vostok drop --collection NAME)"
        );
    }
    if !versions::retire(storage, &folder).await? {
        anyhow::bail!("no table {name} is published in the data folder");
    }
    versions::announce(storage, &folder).await?;
    if let Err(e) = versions::collect(storage, &folder, retention).await {
        tracing::warn!("{folder}: retired versions not deleted: {e}");
    }
    Ok(())
}

/// Ingests the catalog that `metadata` describes as a new version, and publishes it. Refuses
/// when it is published, unless `force`. Versions retired for longer than `retention` are
/// deleted.
pub async fn ingest(
    storage: &Storage,
    metadata: &Path,
    force: bool,
    show_progress: bool,
    retention: Duration,
) -> anyhow::Result<WriteSummary> {
    let text = std::fs::read_to_string(metadata)
        .with_context(|| format!("reading {}", metadata.display()))?;
    let meta =
        CatalogMeta::from_toml(&text).with_context(|| format!("in {}", metadata.display()))?;
    let folder = catalog_root(&meta);
    let version = make_room(storage, &folder, &meta.qualified_name(), force).await?;
    let root = versions::version_root(&folder, version);
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
    publish(storage, &folder, version, retention).await?;
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
    retention: Duration,
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
    let folder = catalog_root(&meta);
    let version = make_room(storage, &folder, qualified, force).await?;
    let root = versions::version_root(&folder, version);
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
    publish(storage, &folder, version, retention).await?;
    Ok(summary)
}
