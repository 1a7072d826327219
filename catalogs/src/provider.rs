//! The DataFusion `TableProvider` over a HATS catalog. A spatial predicate on the catalog's
//! position columns (recognised by [`adql::geom::spatial_filters`]) becomes a HEALPix coverage:
//! only partition files whose pixel meets the coverage are opened, and the coverage's order-29
//! ranges are added to the Parquet predicate so that row groups outside them are skipped.
//! Filters are reported `Inexact`: DataFusion still applies them exactly above the scan.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::HatsCatalog;
use crate::hats::HEALPIX_COLUMN;

/// Most order-29 ranges put into one Parquet predicate; more are merged across their gaps.
const MAX_PREDICATE_RANGES: usize = 32;

/// Counters of what scans read, for tests and metrics.
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Scans planned.
    pub scans: AtomicU64,
    /// Scans that used a HEALPix coverage.
    pub pruned_scans: AtomicU64,
    /// Partition files opened over all scans.
    pub files_opened: AtomicU64,
    /// Partition files of the catalog over all scans (what a full scan would open).
    pub files_total: AtomicU64,
}

impl ScanStats {
    /// (scans, pruned scans, files opened, files in all).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.scans.load(Ordering::Relaxed),
            self.pruned_scans.load(Ordering::Relaxed),
            self.files_opened.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
        )
    }
}

/// A HATS catalog as a DataFusion table.
#[derive(Debug)]
pub struct HatsTable {
    catalog: Arc<HatsCatalog>,
    /// The file schema as DataFusion plans against it (built once, used by every scan).
    file_df_schema: Arc<DFSchema>,
    store_url: ObjectStoreUrl,
    /// What this table's scans read.
    pub stats: Arc<ScanStats>,
}

impl HatsTable {
    /// A table over `catalog`, whose files live in the store registered as `store_url`.
    pub fn new(catalog: Arc<HatsCatalog>, store_url: ObjectStoreUrl) -> Self {
        let file_df_schema = Arc::new(
            DFSchema::try_from(catalog.file_schema.as_ref().clone())
                .unwrap_or_else(|_| DFSchema::empty()),
        );
        HatsTable {
            catalog,
            file_df_schema,
            store_url,
            stats: Arc::new(ScanStats::default()),
        }
    }

    /// Reads the footers (with their page indexes) of the partitions into `runtime`'s
    /// metadata cache, as the scans would on their first read, until the cache is full; so
    /// the first cone into a file is as fast as the next. Returns the footers read.
    pub async fn warm_footers(&self, runtime: &RuntimeEnv) -> Result<usize> {
        let store = runtime.object_store(&self.store_url)?;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let room = cache.cache_limit();
        let mut used = 0usize;
        let mut read = 0usize;
        for p in &self.catalog.partitions {
            // the same identity (path, size, time) the scans give the file
            let meta = PartitionedFile::new(p.path.to_string(), p.size).object_meta;
            if cache.contains_key(&meta.location) {
                continue;
            }
            let footer = DFParquetMetadata::new(store.as_ref(), &meta)
                .with_file_metadata_cache(Some(Arc::clone(&cache)))
                .fetch_metadata()
                .await?;
            read += 1;
            used = used.saturating_add(footer.memory_size());
            if used >= room {
                break;
            }
        }
        Ok(read)
    }

    /// The catalog served.
    pub fn catalog(&self) -> &Arc<HatsCatalog> {
        &self.catalog
    }

    /// The order-29 ranges that can hold rows satisfying `filters`, or `None` for the whole sky.
    pub fn coverage(&self, filters: &[Expr]) -> Option<Vec<Range<u64>>> {
        let ra = &self.catalog.meta.table.ra;
        let dec = &self.catalog.meta.table.dec;
        let mut cover: Option<Vec<Range<u64>>> = None;
        for f in filters {
            for sf in adql::geom::spatial_filters(f) {
                if !sf.lon.name.eq_ignore_ascii_case(ra) || !sf.lat.name.eq_ignore_ascii_case(dec) {
                    continue;
                }
                if let Some(r) = sf.region.healpix_ranges() {
                    cover = Some(match cover {
                        None => r,
                        Some(c) => intersect(&c, &r),
                    });
                }
            }
        }
        cover
    }
}

/// Intersection of two sorted lists of disjoint ranges.
fn intersect(a: &[Range<u64>], b: &[Range<u64>]) -> Vec<Range<u64>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let lo = a[i].start.max(b[j].start);
        let hi = a[i].end.min(b[j].end);
        if lo < hi {
            out.push(lo..hi);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Merges ranges across the smallest gaps until at most `max` remain (a superset).
fn coarsen(ranges: &[Range<u64>], max: usize) -> Vec<Range<u64>> {
    let mut r: Vec<Range<u64>> = ranges.to_vec();
    while r.len() > max.max(1) {
        let (k, _) = r
            .windows(2)
            .enumerate()
            .map(|(k, w)| (k, w[1].start - w[0].end))
            .min_by_key(|&(_, gap)| gap)
            .unwrap_or((0, 0));
        let end = r[k + 1].end;
        r[k].end = end;
        r.remove(k + 1);
    }
    r
}

fn overlaps(ranges: &[Range<u64>], r: &Range<u64>) -> bool {
    let i = ranges.partition_point(|x| x.end <= r.start);
    i < ranges.len() && ranges[i].start < r.end
}

#[async_trait]
impl TableProvider for HatsTable {
    fn schema(&self) -> SchemaRef {
        self.catalog.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let cat = &self.catalog;
        self.stats.scans.fetch_add(1, Ordering::Relaxed);
        self.stats
            .files_total
            .fetch_add(cat.partitions.len() as u64, Ordering::Relaxed);

        // Published projection → file projection.
        let file_projection: Vec<usize> = match projection {
            Some(p) => p.iter().map(|&i| cat.file_index[i]).collect(),
            None => cat.file_index.clone(),
        };

        let coverage = self.coverage(filters);
        let files: Vec<_> = match &coverage {
            Some(c) => {
                self.stats.pruned_scans.fetch_add(1, Ordering::Relaxed);
                cat.partitions
                    .iter()
                    .filter(|p| overlaps(c, &p.pixel.range29()))
                    .collect()
            }
            None => cat.partitions.iter().collect(),
        };
        self.stats
            .files_opened
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        if files.is_empty() {
            let schema = Arc::new(cat.file_schema.project(&file_projection)?);
            return Ok(Arc::new(EmptyExec::new(schema)));
        }

        // The Parquet predicate: the filters it can evaluate, plus the coverage ranges.
        // Filters are written against published names, which are the file's names too.
        let df_schema = self.file_df_schema.as_ref();
        let mut conjuncts: Vec<Expr> = Vec::new();
        for f in filters {
            if state.create_physical_expr(f.clone(), df_schema).is_ok() {
                conjuncts.push(f.clone());
            }
        }
        if let (Some(c), Some(_)) = (&coverage, cat.healpix_index) {
            let ranges = coarsen(c, MAX_PREDICATE_RANGES);
            let any = ranges
                .iter()
                .map(|r| {
                    col(HEALPIX_COLUMN)
                        .gt_eq(lit(r.start as i64))
                        .and(col(HEALPIX_COLUMN).lt(lit(r.end.min(i64::MAX as u64) as i64)))
                })
                .reduce(Expr::or);
            if let Some(any) = any {
                conjuncts.push(any);
            }
        }
        // Footers (and page indexes) come from the runtime's metadata cache after the first
        // read of a file: a cone then costs no footer I/O or decoding.
        let store = state.runtime_env().object_store(&self.store_url)?;
        let metadata_cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        // The session's Parquet options (page index, pushdown, batch sizes) apply here too.
        let options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..Default::default()
        };
        let mut source = ParquetSource::new(cat.file_schema.clone())
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                store,
                metadata_cache,
            )));
        if let Some(pred) = conjuncts.into_iter().reduce(Expr::and) {
            let physical = state.create_physical_expr(pred, df_schema)?;
            source = source.with_predicate(physical);
        }

        // Spread the files over the target partitions, keeping pixel order inside each group.
        let n = state.config().target_partitions().max(1).min(files.len());
        let per = files.len().div_ceil(n);
        let groups: Vec<FileGroup> = files
            .chunks(per)
            .map(|chunk| {
                FileGroup::new(
                    chunk
                        .iter()
                        .map(|p| PartitionedFile::new(p.path.to_string(), p.size))
                        .collect(),
                )
            })
            .collect();
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(Some(file_projection))?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_algebra() {
        let one: &[Range<u64>] = &[Range { start: 5, end: 25 }];
        assert_eq!(intersect(&[0..10, 20..30], one), vec![5..10, 20..25]);
        assert_eq!(coarsen(&[0..1, 2..3, 10..11], 2), vec![0..3, 10..11]);
        assert!(overlaps(&[0..10, 20..30], &(9..12)));
        assert!(!overlaps(&[0..10, 20..30], &(10..20)));
    }
}

/// End to end over a real HATS catalog written to a temporary folder: a small cone must open
/// only the partitions and row groups near it, and still return exactly the brute-force rows.
#[cfg(test)]
mod pruning_tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Float64Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::TableReference;
    use datafusion::physical_plan::{collect, ExecutionPlan};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use crate::hats::{write_catalog, WriteOptions};
    use crate::meta::{CatalogMeta, ColumnMeta, TableMeta};
    use crate::{open_catalog, store_url as crate_store_url, HatsTable};
    use storage::Storage;

    /// Deterministic points spread over the sphere (a simple LCG, uniform in area).
    fn points(n: usize) -> (Vec<i64>, Vec<f64>, Vec<f64>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut ids = Vec::with_capacity(n);
        let mut ra = Vec::with_capacity(n);
        let mut dec = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(i as i64);
            ra.push(next() * 360.0);
            dec.push((2.0 * next() - 1.0).asin().to_degrees());
        }
        (ids, ra, dec)
    }

    fn sep(ra1: f64, de1: f64, ra2: f64, de2: f64) -> f64 {
        let (a1, d1, a2, d2) = (
            ra1.to_radians(),
            de1.to_radians(),
            ra2.to_radians(),
            de2.to_radians(),
        );
        let h =
            ((d2 - d1) / 2.0).sin().powi(2) + d1.cos() * d2.cos() * ((a2 - a1) / 2.0).sin().powi(2);
        (2.0 * h.sqrt().min(1.0).asin()).to_degrees()
    }

    /// (matched, pruned) of a pruning metric summed over the plan.
    fn pruning(plan: &Arc<dyn ExecutionPlan>, name: &str) -> (usize, usize) {
        use datafusion::physical_plan::metrics::MetricValue;
        let mut acc = (0, 0);
        if let Some(m) = plan.metrics() {
            for x in m.iter() {
                if let MetricValue::PruningMetrics {
                    name: n,
                    pruning_metrics,
                } = x.value()
                {
                    if n.as_ref() == name {
                        acc.0 += pruning_metrics.matched();
                        acc.1 += pruning_metrics.pruned();
                    }
                }
            }
        }
        for c in plan.children() {
            let (m, p) = pruning(c, name);
            acc = (acc.0 + m, acc.1 + p);
        }
        acc
    }

    #[tokio::test]
    async fn small_cone_reads_few_partitions_and_row_groups() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::local(dir.path(), storage::Missing::Create).expect("storage");
        let (ids, ra, dec) = points(200_000);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ra", DataType::Float64, false),
            Field::new("dec", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Float64Array::from(ra.clone())),
                Arc::new(Float64Array::from(dec.clone())),
            ],
        )
        .expect("batch");
        let col = |n: &str| ColumnMeta {
            name: n.into(),
            datatype: Some("float64".into()),
            ..Default::default()
        };
        let meta = CatalogMeta {
            table: TableMeta {
                id: Some("id".into()),
                ..TableMeta::new("test", "sky", "ra", "dec")
            },
            source: None,
            columns: vec![
                ColumnMeta {
                    datatype: Some("int64".into()),
                    ..col("id")
                },
                col("ra"),
                col("dec"),
            ],
        };
        let opts = WriteOptions {
            partition_rows: 10_000,
            row_group_rows: 1_000,
            progress: None,
            keep_unpositioned: false,
        };
        let summary = write_catalog(
            &storage,
            "catalogs/test.sky",
            &meta,
            schema,
            &[batch],
            &opts,
        )
        .await
        .expect("write");
        assert_eq!(summary.rows, 200_000);
        assert!(
            summary.partitions.len() >= 20,
            "{} partitions",
            summary.partitions.len()
        );

        let cat = Arc::new(
            open_catalog(&storage, "catalogs/test.sky")
                .await
                .expect("open"),
        );
        assert_eq!(cat.rows, Some(200_000));
        let table = Arc::new(HatsTable::new(
            cat,
            crate_store_url(&storage).expect("store url"),
        ));
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        ctx.runtime_env()
            .register_object_store(&storage.url, storage.store.clone());
        for udf in adql::geom::udfs() {
            ctx.register_udf(udf);
        }
        ctx.register_table(TableReference::bare("sky"), table.clone())
            .expect("register");

        let (c_ra, c_dec, r) = (123.4, -45.6, 0.5);
        let df = ctx
            .sql(&format!("SELECT id FROM sky WHERE contains(point(ra, dec), circle({c_ra}, {c_dec}, {r})) = 1"))
            .await
            .expect("plan");
        let plan = df.create_physical_plan().await.expect("physical plan");
        let batches = collect(plan.clone(), ctx.task_ctx()).await.expect("run");
        let mut got: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("ids")
                    .clone();
                (0..a.len()).map(move |i| a.value(i))
            })
            .collect();
        got.sort_unstable();
        let want: Vec<i64> = (0..ra.len())
            .filter(|&i| sep(ra[i], dec[i], c_ra, c_dec) <= r)
            .map(|i| i as i64)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want);

        // The provider opened a few files, not all of them...
        let opened = table.stats.files_opened.load(Ordering::Relaxed);
        let total = table.stats.files_total.load(Ordering::Relaxed);
        assert!(
            opened <= 4 && opened * 5 < total,
            "opened {opened} of {total} partition files"
        );
        // ...and Parquet skipped most row groups of those files by their _healpix_29 statistics.
        let (matched, pruned) = pruning(&plan, "row_groups_pruned_statistics");
        assert!(
            (1..=4).contains(&matched) && pruned > matched,
            "row groups matched {matched}, pruned {pruned}"
        );
    }
}
