//! Writing catalogs in the HATS layout (Hierarchical Adaptive Tiling Scheme, as LSDB reads it):
//!
//! ```text
//! <root>/hats.properties, properties        catalog properties (and the legacy name)
//! <root>/partition_info.csv                 Norder,Npix of every partition
//! <root>/moc.fits                           the coverage (MOC 2.0, see crate::coverage)
//! <root>/vostok.toml                        column metadata (units, UCDs, descriptions)
//! <root>/dataset/_common_metadata           the Parquet schema
//! <root>/dataset/_metadata                  every row group of every file, with file paths
//! <root>/dataset/Norder=K/Dir=D/Npix=N.parquet
//! ```
//!
//! Every file starts with the int64 column `_healpix_29` (nested HEALPix index at order 29) and
//! is sorted by it, with row groups small enough that a cone's index ranges prune most of them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, UInt64Array};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::SortingColumn;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::coverage;
use crate::meta::{CatalogMeta, METADATA_FILE};
use crate::Error;
use storage::Storage;

/// Name of the spatial index column.
pub const HEALPIX_COLUMN: &str = "_healpix_29";
/// Default maximum rows per partition file.
pub const DEFAULT_PARTITION_ROWS: usize = 50_000;
/// Default rows per row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 5_000;
/// Deepest order a partition may have.
const MAX_PARTITION_ORDER: u8 = 14;

/// A partition of the sky: HEALPix order and nested pixel index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pixel {
    /// HEALPix order (Norder).
    pub order: u8,
    /// Nested pixel index at that order (Npix).
    pub pixel: u64,
}

impl Pixel {
    /// The `Dir` folder number of the HATS layout.
    pub fn dir(&self) -> u64 {
        (self.pixel / 10_000) * 10_000
    }

    /// Path of the partition file relative to the catalog root.
    pub fn file_path(&self) -> String {
        format!(
            "dataset/Norder={}/Dir={}/Npix={}.parquet",
            self.order,
            self.dir(),
            self.pixel
        )
    }

    /// The half-open range of order-29 indices inside this pixel.
    pub fn range29(&self) -> std::ops::Range<u64> {
        let shift = 2 * (29 - self.order as u32);
        (self.pixel << shift)..((self.pixel + 1) << shift)
    }
}

/// Nested HEALPix index at order 29 of a position in degrees.
pub fn healpix29(ra_deg: f64, dec_deg: f64) -> u64 {
    cdshealpix::nested::hash(
        29,
        ra_deg.to_radians(),
        dec_deg.clamp(-90.0, 90.0).to_radians(),
    )
}

/// What an ingest wrote.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    /// Rows written.
    pub rows: u64,
    /// Rows without a valid position: dropped, or kept at HEALPix index 0 when
    /// [`WriteOptions::keep_unpositioned`] is set.
    pub dropped: u64,
    /// Partitions written.
    pub partitions: Vec<(Pixel, u64)>,
}

/// Options of the HATS writer.
pub struct WriteOptions<'a> {
    /// Maximum rows per partition file.
    pub partition_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Called with (partitions written, partitions in all).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Keep rows without a (valid) position, at HEALPix index 0, instead of dropping them. A
    /// spatial predicate never selects them (their point is NULL), so pruning stays exact;
    /// ivoa.obscore uses this for products with no position (ObsCore allows NULL s_ra).
    pub keep_unpositioned: bool,
}

impl Default for WriteOptions<'_> {
    fn default() -> Self {
        WriteOptions {
            partition_rows: DEFAULT_PARTITION_ROWS,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            progress: None,
            keep_unpositioned: false,
        }
    }
}

/// The adaptive tiling: from the 12 base pixels down, a pixel with at most `max_rows` rows
/// (as `count` says) or at `max_order` is a partition; an empty one is dropped; any other is
/// split in four. Partitions come out in sky (nested index) order.
pub fn adaptive_partitions(
    count: &dyn Fn(Pixel) -> u64,
    max_rows: u64,
    max_order: u8,
) -> Vec<(Pixel, u64)> {
    let mut out = Vec::new();
    let mut stack: Vec<Pixel> = (0..12u64)
        .rev()
        .map(|pixel| Pixel { order: 0, pixel })
        .collect();
    while let Some(px) = stack.pop() {
        let n = count(px);
        if n == 0 {
            continue;
        }
        if n <= max_rows.max(1) || px.order >= max_order {
            out.push((px, n));
            continue;
        }
        for child in (0..4).rev() {
            stack.push(Pixel {
                order: px.order + 1,
                pixel: px.pixel * 4 + child,
            });
        }
    }
    out
}

/// Splits sorted order-29 indices into adaptive partitions of at most `max_rows` rows.
pub fn plan_partitions(sorted: &[u64], max_rows: usize) -> Vec<(Pixel, std::ops::Range<usize>)> {
    let span = |px: Pixel| {
        let r = px.range29();
        sorted.partition_point(|&h| h < r.start)..sorted.partition_point(|&h| h < r.end)
    };
    let count = |px: Pixel| span(px).len() as u64;
    adaptive_partitions(&count, max_rows as u64, MAX_PARTITION_ORDER)
        .into_iter()
        .map(|(px, _)| (px, span(px)))
        .collect()
}

/// Writes batches (in the published schema) as a HATS catalog at `root` (relative to the storage prefix).
pub async fn write_catalog(
    storage: &Storage,
    root: &str,
    meta: &CatalogMeta,
    schema: SchemaRef,
    batches: &[RecordBatch],
    opts: &WriteOptions<'_>,
) -> Result<WriteSummary, Error> {
    let all = concat_batches(&schema, batches)?;
    let ra_idx = index_of(&schema, &meta.table.ra)?;
    let dec_idx = index_of(&schema, &meta.table.dec)?;
    let ra = cast(all.column(ra_idx), &DataType::Float64)?;
    let dec = cast(all.column(dec_idx), &DataType::Float64)?;
    let ra = ra
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| Error::Layout("ra is not numeric".into()))?;
    let dec = dec
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| Error::Layout("dec is not numeric".into()))?;

    // Index every positioned row, then sort by the index.
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(all.num_rows());
    let mut dropped = 0u64;
    // Whether a row with a position has index 0 (rows kept without one have it too).
    let mut zero_positioned = false;
    for i in 0..all.num_rows() {
        if ra.is_null(i) || dec.is_null(i) || !ra.value(i).is_finite() || !dec.value(i).is_finite()
        {
            dropped += 1;
            if opts.keep_unpositioned {
                keyed.push((0, i as u32));
            }
            continue;
        }
        let (r, d) = (ra.value(i).rem_euclid(360.0), dec.value(i));
        if !(-90.0..=90.0).contains(&d) {
            dropped += 1;
            if opts.keep_unpositioned {
                keyed.push((0, i as u32));
            }
            continue;
        }
        let h = healpix29(r, d);
        zero_positioned |= h == 0;
        keyed.push((h, i as u32));
    }
    keyed.sort_unstable();
    let sorted_hp: Vec<u64> = keyed.iter().map(|k| k.0).collect();
    let order = UInt64Array::from_iter_values(keyed.iter().map(|k| k.1 as u64));

    // The stored schema: _healpix_29 first, then the published columns.
    let mut fields = vec![Arc::new(Field::new(HEALPIX_COLUMN, DataType::Int64, false))];
    fields.extend(schema.fields().iter().cloned());
    let file_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        sorted_hp.iter().map(|&h| h as i64),
    ))];
    for c in all.columns() {
        columns.push(take(c.as_ref(), &order, None)?);
    }
    let sorted = RecordBatch::try_new(file_schema.clone(), columns)?;

    let plan = plan_partitions(&sorted_hp, opts.partition_rows);
    let mut writer = HatsWriter::new(storage, root, file_schema, opts.row_group_rows);
    let total = plan.len() as u64;
    for (n, (px, range)) in plan.iter().enumerate() {
        let slice = sorted.slice(range.start, range.end - range.start);
        let encoded = writer.encode(&[slice])?;
        writer.put(*px, encoded).await?;
        if let Some(p) = opts.progress {
            p(n as u64 + 1, total);
        }
    }
    if opts.keep_unpositioned && dropped > 0 {
        // The coverage is where the positioned rows are, not cell 0 of the unpositioned.
        let positioned = sorted_hp.iter().copied().filter(|&h| h != 0);
        let zero = zero_positioned.then_some(0);
        writer.set_cells(coverage::cell_ranges(zero.into_iter().chain(positioned)));
    }
    let mut summary = writer.finish(meta, &schema).await?;
    summary.dropped = dropped;
    Ok(summary)
}

/// Writer properties of partition files: SNAPPY, page statistics, sorted by `_healpix_29`.
///
/// Dictionary encoding only for string columns: on measured floats and identifiers it never
/// pays (the dictionary overflows and falls back to PLAIN) and cost ~15% of generation time.
pub fn writer_properties(schema: &Schema, row_group_rows: usize) -> WriterProperties {
    let mut b = WriterProperties::builder().set_dictionary_enabled(false);
    for f in schema.fields() {
        if matches!(
            f.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            b = b.set_column_dictionary_enabled(f.name().as_str().into(), true);
        }
    }
    b.set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_created_by(format!("vostok {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One encoded partition file: its bytes, its Parquet metadata and its row count.
pub struct EncodedPartition {
    /// The whole Parquet file.
    pub bytes: Vec<u8>,
    /// Its footer.
    pub metadata: ParquetMetaData,
    /// Rows in it.
    pub rows: u64,
    /// The order-29 ranges of the order-10 cells its rows are in (`coverage::cell_ranges`).
    pub cells: Vec<std::ops::Range<u64>>,
}

/// Writes a HATS catalog partition by partition, then its metadata files.
///
/// Partitions may be encoded anywhere (with [`HatsWriter::encoder`], e.g. on other threads)
/// and handed to [`HatsWriter::put`] in any order; [`HatsWriter::finish`] writes
/// `_metadata`, `_common_metadata`, `partition_info.csv`, the properties, the coverage
/// (`moc.fits`, from the cells the partitions' rows are in, at the order the row count gives:
/// what `coverage::catalog_coverage` would compute from the files) and, last, `vostok.toml`,
/// whose presence marks the catalog complete.
pub struct HatsWriter {
    storage: Storage,
    root: String,
    encoder: PartitionEncoder,
    parts: Vec<(Pixel, u64, Vec<RowGroupMetaData>)>,
    first_meta: Option<ParquetMetaData>,
    /// The order-10 cells of the rows so far; None once a partition came without them
    /// ([`HatsWriter::record`]): then no `moc.fits` is written and a server computes it.
    cells: Option<Vec<std::ops::Range<u64>>>,
}

/// Encodes partition files of one schema; cheap to clone and `Send`, for worker threads.
#[derive(Clone)]
pub struct PartitionEncoder {
    schema: SchemaRef,
    props: WriterProperties,
}

impl PartitionEncoder {
    /// Encodes sorted batches (in the stored schema, `_healpix_29` first) as one Parquet file.
    pub fn encode(&self, batches: &[RecordBatch]) -> Result<EncodedPartition, Error> {
        let mut bytes = Vec::new();
        let mut w =
            ArrowWriter::try_new(&mut bytes, self.schema.clone(), Some(self.props.clone()))?;
        let mut rows = 0u64;
        for b in batches {
            w.write(b)?;
            rows += b.num_rows() as u64;
        }
        let metadata = w.close()?;
        let mut cells = Vec::new();
        for b in batches {
            let column = cast(b.column(0), &DataType::UInt64)?;
            let values = column
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| Error::Layout(format!("{HEALPIX_COLUMN} is not an integer")))?;
            cells.extend(coverage::cell_ranges(values.iter().flatten()));
        }
        Ok(EncodedPartition {
            bytes,
            metadata,
            rows,
            cells,
        })
    }
}

impl HatsWriter {
    /// A writer of the catalog at `root` whose files have `file_schema` (`_healpix_29` first).
    pub fn new(
        storage: &Storage,
        root: &str,
        file_schema: SchemaRef,
        row_group_rows: usize,
    ) -> Self {
        HatsWriter {
            storage: storage.clone(),
            root: root.to_string(),
            encoder: PartitionEncoder {
                props: writer_properties(&file_schema, row_group_rows),
                schema: file_schema,
            },
            parts: Vec::new(),
            first_meta: None,
            cells: Some(Vec::new()),
        }
    }

    /// The encoder of this writer's partition files.
    pub fn encoder(&self) -> PartitionEncoder {
        self.encoder.clone()
    }

    /// Encodes sorted batches as one partition file (see [`PartitionEncoder::encode`]).
    pub fn encode(&self, batches: &[RecordBatch]) -> Result<EncodedPartition, Error> {
        self.encoder.encode(batches)
    }

    /// Stores an encoded partition file.
    pub async fn put(&mut self, px: Pixel, part: EncodedPartition) -> Result<(), Error> {
        let rel = px.file_path();
        self.storage
            .put(
                &self.storage.path(&format!("{}/{rel}", self.root)),
                part.bytes,
            )
            .await?;
        self.add(px, part.metadata, part.rows)?;
        if let Some(cells) = &mut self.cells {
            cells.extend(part.cells);
        }
        Ok(())
    }

    /// Replaces the coverage the partitions gave so far with the cells of `ranges` (order-29
    /// indices, see `coverage::cell_ranges`): for rows kept at index 0 without a position.
    /// Call it after the last partition.
    pub fn set_cells(&mut self, ranges: Vec<std::ops::Range<u64>>) {
        self.cells = Some(ranges);
    }

    /// Records a partition file that is already stored (its footer and row count). Its cells
    /// are unknown: no `moc.fits` is written (a server computes the coverage from the files).
    pub fn record(&mut self, px: Pixel, md: ParquetMetaData, rows: u64) -> Result<(), Error> {
        self.cells = None;
        self.add(px, md, rows)
    }

    fn add(&mut self, px: Pixel, md: ParquetMetaData, rows: u64) -> Result<(), Error> {
        let in_dataset = px.file_path().trim_start_matches("dataset/").to_string();
        let mut groups = Vec::with_capacity(md.num_row_groups());
        for rg in md.row_groups() {
            let cols = rg
                .columns()
                .iter()
                .map(|c| {
                    c.clone()
                        .into_builder()
                        .set_file_path(in_dataset.clone())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(
                rg.clone()
                    .into_builder()
                    .set_column_metadata(cols)
                    .build()?,
            );
        }
        if self.first_meta.is_none() {
            self.first_meta = Some(md);
        }
        self.parts.push((px, rows, groups));
        Ok(())
    }

    /// Writes the catalog-level files; `schema` is the published schema (no `_healpix_29`).
    pub async fn finish(
        mut self,
        meta: &CatalogMeta,
        schema: &Schema,
    ) -> Result<WriteSummary, Error> {
        let storage = &self.storage;
        let root = &self.root;
        // Sky order: by the first order-29 index of each partition.
        self.parts.sort_by_key(|(px, _, _)| px.range29().start);
        let row_groups: Vec<RowGroupMetaData> = self
            .parts
            .iter_mut()
            .flat_map(|(_, _, g)| std::mem::take(g))
            .collect();
        let partitions: Vec<(Pixel, u64)> = self.parts.iter().map(|(p, n, _)| (*p, *n)).collect();

        // _common_metadata: the schema with no row groups; _metadata: every row group.
        let mut common = Vec::new();
        ArrowWriter::try_new(
            &mut common,
            self.encoder.schema.clone(),
            Some(self.encoder.props.clone()),
        )?
        .close()?;
        storage
            .put(
                &storage.path(&format!("{root}/dataset/_common_metadata")),
                common,
            )
            .await?;
        if let Some(md) = self.first_meta.take() {
            let fm = md.file_metadata().clone();
            let fm = parquet::file::metadata::FileMetaData::new(
                fm.version(),
                row_groups.iter().map(|r| r.num_rows()).sum(),
                fm.created_by().map(str::to_string),
                fm.key_value_metadata().cloned(),
                fm.schema_descr_ptr(),
                fm.column_orders().cloned(),
            );
            let all_md = ParquetMetaData::new(fm, row_groups);
            let mut out = b"PAR1".to_vec();
            ParquetMetaDataWriter::new(&mut out, &all_md).finish()?;
            storage
                .put(&storage.path(&format!("{root}/dataset/_metadata")), out)
                .await?;
        }

        // partition_info.csv, properties, metadata.
        let mut csv = String::from("Norder,Npix\n");
        for (px, _) in &partitions {
            csv.push_str(&format!("{},{}\n", px.order, px.pixel));
        }
        storage
            .put(
                &storage.path(&format!("{root}/partition_info.csv")),
                csv.into_bytes(),
            )
            .await?;
        let rows: u64 = partitions.iter().map(|p| p.1).sum();
        let props = properties_text(meta, rows, &partitions);
        storage
            .put(
                &storage.path(&format!("{root}/hats.properties")),
                props.clone().into_bytes(),
            )
            .await?;
        storage
            .put(
                &storage.path(&format!("{root}/properties")),
                props.into_bytes(),
            )
            .await?;
        if let Some(cells) = self.cells.take() {
            let moc = coverage::from_ranges(coverage::coverage_order(rows), cells.into_iter());
            storage
                .put(
                    &storage.path(&format!("{root}/{}", coverage::COVERAGE_FILE)),
                    coverage::to_fits(&moc)?,
                )
                .await?;
        }
        let mut stored = meta.clone();
        stored.source = None;
        stored.columns = schema
            .fields()
            .iter()
            .map(|f| {
                let mut c = meta.column(f.name()).cloned().unwrap_or_default();
                c.name = f.name().clone();
                c.datatype = Some(type_name(f.data_type()).to_string());
                // What ingest found in the text (catalogs::source::mark_unicode_columns).
                if let Some(v) = f.metadata().get(votable::meta::DATATYPE) {
                    c.votable_datatype = Some(v.clone());
                }
                c.bytes = None;
                c.source = None;
                c.source_unit = None;
                c.null = None;
                c
            })
            .collect();
        storage
            .put(
                &storage.path(&format!("{root}/{METADATA_FILE}")),
                stored.to_toml()?.into_bytes(),
            )
            .await?;
        Ok(WriteSummary {
            rows,
            dropped: 0,
            partitions,
        })
    }
}

fn index_of(schema: &Schema, name: &str) -> Result<usize, Error> {
    schema
        .fields()
        .iter()
        .position(|f| f.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            Error::Metadata(format!("position column '{name}' is not among the columns"))
        })
}

/// The metadata type name of an Arrow type.
pub fn type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 | DataType::Int8 | DataType::UInt8 => "int16",
        DataType::Int32 | DataType::UInt16 => "int32",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "int64",
        DataType::Float32 | DataType::Float16 => "float32",
        DataType::Float64 => "float64",
        DataType::Boolean => "boolean",
        _ => "string",
    }
}

fn properties_text(meta: &CatalogMeta, rows: u64, partitions: &[(Pixel, u64)]) -> String {
    let max_order = partitions.iter().map(|p| p.0.order).max().unwrap_or(0);
    let sky: f64 = partitions
        .iter()
        .map(|p| 1.0 / (12.0 * 4f64.powi(p.0.order as i32)))
        .sum();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let date = iso_date(now);
    let clean = |s: &str| s.replace(['\n', '\r'], " ");
    let mut p = String::from("#HATS catalog\n");
    p.push_str(&format!("obs_collection={}\n", meta.table.name));
    p.push_str("dataproduct_type=object\n");
    p.push_str(&format!("hats_nrows={rows}\n"));
    p.push_str(&format!("hats_col_ra={}\n", meta.table.ra));
    p.push_str(&format!("hats_col_dec={}\n", meta.table.dec));
    p.push_str(&format!("hats_col_healpix={HEALPIX_COLUMN}\n"));
    p.push_str("hats_col_healpix_order=29\n");
    p.push_str("hats_npix_suffix=.parquet\n");
    p.push_str(&format!(
        "hats_max_rows={}\n",
        partitions.iter().map(|p| p.1).max().unwrap_or(0)
    ));
    p.push_str(&format!("hats_order={max_order}\n"));
    p.push_str(&format!("moc_sky_fraction={sky:.5}\n"));
    p.push_str(&format!(
        "hats_builder=vostok v{}\n",
        env!("CARGO_PKG_VERSION")
    ));
    p.push_str(&format!("hats_creation_date={date}\n"));
    p.push_str("hats_version=v1.0\n");
    if let Some(t) = &meta.table.title {
        p.push_str(&format!("obs_title={}\n", clean(t)));
    }
    if let Some(d) = &meta.table.description {
        p.push_str(&format!("obs_description={}\n", clean(d)));
    }
    if let Some(c) = &meta.table.citation {
        p.push_str(&format!("obs_regime_citation={}\n", clean(c)));
    }
    p
}

/// `YYYY-MM-DDTHH:MMUTC` from Unix seconds.
fn iso_date(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
        .unwrap_or_default();
    t.format("%Y-%m-%dT%H:%MUTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_every_row_once() {
        let mut hp: Vec<u64> = (0..10_000u64)
            .map(|i| {
                healpix29(
                    (i as f64 * 7.3) % 360.0,
                    ((i as f64 * 0.013) % 180.0) - 90.0,
                )
            })
            .collect();
        hp.sort_unstable();
        let plan = plan_partitions(&hp, 500);
        let mut covered = 0;
        for (px, r) in &plan {
            assert!(r.end - r.start <= 500 || px.order == MAX_PARTITION_ORDER);
            for &h in &hp[r.clone()] {
                assert!(px.range29().contains(&h));
            }
            covered += r.end - r.start;
        }
        assert_eq!(covered, hp.len());
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(iso_date(0), "1970-01-01T00:00UTC");
        assert_eq!(iso_date(1_795_000_000), "2026-11-18T11:06UTC");
    }
}
