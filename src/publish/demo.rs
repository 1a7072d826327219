//! The demo data shipped in `data/demo/`: its catalogs (each `*.toml` metadata file) and its
//! images and spectra (collection `demo`), ingested into the data folder on first start.

use std::path::Path;

use anyhow::Context;
use storage::Storage;

/// Ingests each demo catalog not yet in the data folder, and the demo images and spectra
/// when the collection `demo` is not there yet.
pub async fn ingest(
    storage: &Storage,
    demo_dir: &Path,
    authority: &str,
    retention: std::time::Duration,
) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(demo_dir)
        .with_context(|| format!("demo catalogs folder {}", demo_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let meta = catalogs::CatalogMeta::from_toml(&text)
            .with_context(|| format!("in {}", f.display()))?;
        if super::catalog::exists(storage, &super::catalog::catalog_root(&meta)).await? {
            continue;
        }
        tracing::info!(
            "first start: ingesting demo catalog {}",
            meta.qualified_name()
        );
        super::catalog::ingest(storage, &f, true, true, retention).await?;
    }
    if super::products::collection_exists(storage, "demo").await? {
        return Ok(());
    }
    let has_fits = ["images", "spectra"]
        .iter()
        .any(|d| demo_dir.join(d).is_dir());
    if has_fits {
        tracing::info!("first start: ingesting the demo images and spectra");
        let dir = demo_dir.to_string_lossy().to_string();
        let s = super::products::ingest_products(
            storage,
            &dir,
            &[],
            "demo",
            authority,
            true,
            true,
            retention,
        )
        .await?;
        tracing::info!(
            "demo collection: {} files, {} records, {} skipped",
            s.files,
            s.records,
            s.failed.len()
        );
    }
    Ok(())
}
