//! The sky coverage of a catalog as a MOC (IVOA MOC 2.0, built with CDS's `moc` crate on the
//! same HEALPix as the partitions): the order-`N` cells holding at least one row.
//!
//! It is computed from the `_healpix_29` column of the partition files (one column decoded, no
//! trigonometry), or read from a `moc.fits` beside them, and written out as MOC FITS,
//! MOC-ASCII or the MOC JSON that Aladin reads.

use std::io::{BufReader, Cursor};

use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use moc::deser::fits::{from_fits_ivoa, MocIdxType, MocQtyType, MocType as FitsMoc};
use moc::moc::range::RangeMOC;
use moc::moc::{
    CellMOCIntoIterator, CellMOCIterator, CellOrCellRangeMOCIterator, RangeMOCIntoIterator,
    RangeMOCIterator,
};
use moc::qty::Hpx;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::catalog::HatsCatalog;
use crate::Error;
use storage::Storage;

/// A sky coverage.
pub type Coverage = RangeMOC<u64, Hpx<u64>>;

/// Its file in the catalog's folder.
pub const COVERAGE_FILE: &str = "moc.fits";

/// The deepest order [`coverage_order`] gives: the writer keeps the cells holding rows at this
/// order and degrades them to the catalog's order once its row count is known.
pub const MAX_CATALOG_ORDER: u8 = 10;

/// The order of a catalog's coverage: about one row per cell of the whole sky at that order,
/// between 3 (a cell of 7.3°) and 10 (3.4'), so that a sparse catalog is not a cloud of
/// isolated cells and a dense one stays a few megabytes at most.
pub fn coverage_order(rows: u64) -> u8 {
    let mut order = 3u8;
    while order < MAX_CATALOG_ORDER && 12u64 << (2 * (u32::from(order) + 1)) <= rows {
        order += 1;
    }
    order
}

/// Computes the coverage at `order` from partition files whose column `index` is
/// `_healpix_29`: only that column is decoded.
pub async fn compute_coverage(
    storage: &Storage,
    files: &[Path],
    index: usize,
    order: u8,
) -> Result<Coverage, Error> {
    let shift = 2 * (29 - u32::from(order.min(29)));
    let mut cells: Vec<u64> = Vec::new();
    for path in files {
        // One partition file at a time (partitions are bounded by the ingest's rows per
        // partition); only the _healpix_29 column is decoded.
        let bytes = storage.get(path).await?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
        let reader = builder.with_projection(mask).build()?;
        let mut last = None;
        for batch in reader {
            let column = cast(batch?.column(0), &DataType::UInt64)?;
            let Some(values) = column.as_any().downcast_ref::<UInt64Array>() else {
                return Err(Error::Layout("_healpix_29 is not an integer column".into()));
            };
            for v in values.iter().flatten() {
                let cell = v >> shift;
                if last != Some(cell) {
                    cells.push(cell);
                    last = Some(cell);
                }
            }
        }
    }
    cells.sort_unstable();
    cells.dedup();
    Ok(RangeMOC::from_fixed_depth_cells(
        order,
        cells.into_iter(),
        None,
    ))
}

/// The ranges of order-29 indices of the order-[`MAX_CATALOG_ORDER`] cells holding
/// `indices` (order-29 indices, in any order; runs of one cell are merged as they come).
pub fn cell_ranges(indices: impl Iterator<Item = u64>) -> Vec<std::ops::Range<u64>> {
    let shift = 2 * (29 - u32::from(MAX_CATALOG_ORDER));
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    for v in indices {
        let cell = v >> shift;
        let range = (cell << shift)..((cell + 1) << shift);
        match out.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            Some(last) if last.start <= range.start && range.end <= last.end => {}
            _ => out.push(range),
        }
    }
    out
}

/// The coverage at `order` (at most [`MAX_CATALOG_ORDER`]) of ranges of order-29 indices, as
/// [`cell_ranges`] gives them: the cells at `order` that hold part of a range.
pub fn from_ranges(order: u8, ranges: impl Iterator<Item = std::ops::Range<u64>>) -> Coverage {
    RangeMOC::from_maxdepth_ranges(order.min(29), ranges, None)
}

/// Computes the coverage of a served catalog from its partition files, at the order its row
/// count gives.
pub async fn catalog_coverage(storage: &Storage, catalog: &HatsCatalog) -> Result<Coverage, Error> {
    let Some(index) = catalog.healpix_index else {
        return Err(Error::Layout(
            "the partition files have no _healpix_29 column".into(),
        ));
    };
    let files: Vec<Path> = catalog.partitions.iter().map(|p| p.path.clone()).collect();
    compute_coverage(
        storage,
        &files,
        index,
        coverage_order(catalog.rows.unwrap_or(0)),
    )
    .await
}

/// The footprint of one data product on the sky (ICRS, degrees).
#[derive(Debug, Clone, PartialEq)]
pub enum Footprint {
    /// A polygon's vertices and a point inside it (the product's centre), when known.
    Polygon(Vec<(f64, f64)>, Option<(f64, f64)>),
    /// A cone: centre and radius.
    Cone(f64, f64, f64),
    /// A point (a spectrum's pointing): the cell holding it.
    Point(f64, f64),
}

/// The size of a HEALPix cell at `order`, in degrees (the square root of its area).
pub fn cell_size(order: u8) -> f64 {
    (std::f64::consts::PI / 3.0).sqrt().to_degrees() / f64::from(1u32 << order.min(29))
}

/// The order of a collection's coverage from its products' sizes (diameters in degrees): cells
/// about a quarter of the median size, between 3 (7.3°) and 12 (52"); 10 (3.4') when no product
/// has a size (spectra only).
pub fn footprint_order(sizes: &[f64]) -> u8 {
    let mut sizes: Vec<f64> = sizes
        .iter()
        .copied()
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    if sizes.is_empty() {
        return 10;
    }
    sizes.sort_by(f64::total_cmp);
    let median = sizes[sizes.len() / 2];
    let mut order = 3u8;
    while order < 12 && cell_size(order) > median / 4.0 {
        order += 1;
    }
    order
}

fn sane(ra: f64, dec: f64) -> Option<(f64, f64)> {
    (ra.is_finite() && dec.is_finite() && (-90.0..=90.0).contains(&dec))
        .then(|| (ra.rem_euclid(360.0).to_radians(), dec.to_radians()))
}

/// The MOC of one footprint at `order`; None when its numbers are not a place on the sky.
fn footprint_moc(f: &Footprint, order: u8) -> Option<Coverage> {
    use moc::moc::range::CellSelection;
    match f {
        Footprint::Point(ra, dec) => {
            let (lon, lat) = sane(*ra, *dec)?;
            let cell = cdshealpix::nested::hash(order, lon, lat);
            Some(RangeMOC::from_fixed_depth_cells(
                order,
                [cell].into_iter(),
                None,
            ))
        }
        Footprint::Cone(ra, dec, radius) => {
            let (lon, lat) = sane(*ra, *dec)?;
            if !radius.is_finite() || *radius <= 0.0 {
                return footprint_moc(&Footprint::Point(*ra, *dec), order);
            }
            if *radius >= 180.0 {
                return Some(RangeMOC::new_full_domain(order));
            }
            let r = radius.to_radians();
            std::panic::catch_unwind(|| {
                RangeMOC::from_cone(lon, lat, r, order, 2, CellSelection::All)
            })
            .ok()
        }
        Footprint::Polygon(vertices, inside) => {
            let v: Vec<(f64, f64)> = vertices
                .iter()
                .map(|(a, d)| sane(*a, *d))
                .collect::<Option<_>>()?;
            if v.len() < 3 {
                return None;
            }
            let inside = inside.and_then(|(a, d)| sane(a, d));
            std::panic::catch_unwind(|| match inside {
                Some(p) => {
                    RangeMOC::from_polygon_with_control_point(&v, p, order, CellSelection::All)
                }
                None => RangeMOC::from_polygon(&v, false, order, CellSelection::All),
            })
            .ok()
        }
    }
}

/// The coverage at `order` of a collection of footprints: their union. A footprint whose
/// numbers are not a place on the sky (or that the polygon code rejects) falls back to its
/// point when it has one, else adds nothing.
pub fn footprints_coverage(footprints: &[Footprint], order: u8) -> Coverage {
    let order = order.min(29);
    let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
    for f in footprints {
        let moc = footprint_moc(f, order).or_else(|| match f {
            Footprint::Polygon(_, Some((ra, dec))) | Footprint::Cone(ra, dec, _) => {
                footprint_moc(&Footprint::Point(*ra, *dec), order)
            }
            _ => None,
        });
        if let Some(m) = moc {
            ranges.extend((&m).into_range_moc_iter());
        }
    }
    RangeMOC::from_maxdepth_ranges(order, ranges.into_iter(), None)
}

/// The vertices of an STC-S `Polygon [frame] lon lat lon lat …` (as `ivoa.obscore`'s
/// `s_region` is written), in degrees.
pub fn stcs_polygon(text: &str) -> Option<Vec<(f64, f64)>> {
    let mut words = text.split_whitespace().peekable();
    if !words.next()?.eq_ignore_ascii_case("polygon") {
        return None;
    }
    if words.peek().is_some_and(|w| w.parse::<f64>().is_err()) {
        words.next();
    }
    let numbers: Vec<f64> = words.map(str::parse).collect::<Result<_, _>>().ok()?;
    if numbers.len() < 6 || !numbers.len().is_multiple_of(2) {
        return None;
    }
    Some(numbers.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// The footprints of ObsCore rows (`s_region` polygons where present, else a cone of
/// `s_fov/2` about `s_ra, s_dec`, else the point) and each one's size (`s_fov`, degrees). A
/// row without a position has no footprint.
pub fn obscore_footprints(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<(Vec<Footprint>, Vec<f64>), Error> {
    use datafusion::arrow::array::{AsArray, Float64Array};
    let float = |name: &str| -> Result<Float64Array, Error> {
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Layout(format!("no column {name}")))?;
        let c = cast(c, &DataType::Float64)?;
        Ok(
            c.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .clone(),
        )
    };
    let (ra, dec, fov) = (float("s_ra")?, float("s_dec")?, float("s_fov")?);
    let region = batch
        .column_by_name("s_region")
        .map(|c| cast(c, &DataType::Utf8))
        .transpose()?;
    let region = region.as_ref().map(|c| c.as_string::<i32>());
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..batch.num_rows() {
        let centre = (!ra.is_null(i) && !dec.is_null(i)).then(|| (ra.value(i), dec.value(i)));
        let size = (!fov.is_null(i)).then(|| fov.value(i));
        let polygon = region
            .filter(|r| !r.is_null(i))
            .and_then(|r| stcs_polygon(r.value(i)));
        let f = match (polygon, centre, size) {
            (Some(v), c, _) => Footprint::Polygon(v, c),
            (None, Some((a, d)), Some(s)) => Footprint::Cone(a, d, s / 2.0),
            (None, Some((a, d)), None) => Footprint::Point(a, d),
            (None, None, _) => continue,
        };
        out.push(f);
        if let Some(s) = size {
            sizes.push(s);
        }
    }
    Ok((out, sizes))
}

/// The coverage of a collection of ObsCore rows: their footprints at the order their sizes
/// give ([`footprint_order`]).
pub fn obscore_coverage(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<Coverage, Error> {
    let (footprints, sizes) = obscore_footprints(batch)?;
    Ok(footprints_coverage(&footprints, footprint_order(&sizes)))
}

/// The rows of ObsCore `batch` whose `dataproduct_type` is one of `types`.
pub fn obscore_rows_of(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    types: &[&str],
) -> Result<datafusion::arrow::record_batch::RecordBatch, Error> {
    use datafusion::arrow::array::{AsArray, BooleanArray};
    let c = batch
        .column_by_name("dataproduct_type")
        .ok_or_else(|| Error::Layout("no column dataproduct_type".into()))?;
    let c = cast(c, &DataType::Utf8)?;
    let keep: BooleanArray = c
        .as_string::<i32>()
        .iter()
        .map(|v| Some(v.is_some_and(|v| types.contains(&v))))
        .collect();
    Ok(datafusion::arrow::compute::filter_record_batch(
        batch, &keep,
    )?)
}

/// The coverage as a MOC FITS file.
pub fn to_fits(coverage: &Coverage) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    coverage
        .into_range_moc_iter()
        .to_fits_ivoa(
            None,
            Some(moc::deser::fits::keywords::MocType::Catalog),
            &mut out,
        )
        .map_err(|e| Error::Layout(format!("writing the MOC: {e}")))?;
    Ok(out)
}

/// The coverage as MOC-ASCII (`order/cell-range …`), lines folded near `fold` characters.
pub fn to_ascii(coverage: &Coverage, fold: Option<usize>) -> Result<String, Error> {
    let mut out = Vec::new();
    coverage
        .into_range_moc_iter()
        .cells()
        .cellranges()
        .to_ascii_ivoa(fold, false, &mut out)
        .map_err(|e| Error::Layout(format!("writing the MOC: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::Layout(format!("writing the MOC: {e}")))
}

/// The coverage as the MOC JSON Aladin reads (`{"order": [cells]}`).
pub fn to_json(coverage: &Coverage) -> Result<String, Error> {
    let mut out = Vec::new();
    coverage
        .into_range_moc_iter()
        .cells()
        .to_json_aladin(None, &mut out)
        .map_err(|e| Error::Layout(format!("writing the MOC: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::Layout(format!("writing the MOC: {e}")))
}

/// Reads a MOC FITS file (any index width, cells or ranges).
pub fn from_fits(bytes: &[u8]) -> Result<Coverage, Error> {
    let bad = |e: String| Error::Layout(format!("reading the MOC: {e}"));
    let read =
        from_fits_ivoa(BufReader::new(Cursor::new(bytes))).map_err(|e| bad(e.to_string()))?;
    let moc = match read {
        MocIdxType::U16(MocQtyType::Hpx(FitsMoc::Ranges(m))) => {
            m.convert::<u64, Hpx<u64>>().into_range_moc()
        }
        MocIdxType::U32(MocQtyType::Hpx(FitsMoc::Ranges(m))) => {
            m.convert::<u64, Hpx<u64>>().into_range_moc()
        }
        MocIdxType::U64(MocQtyType::Hpx(FitsMoc::Ranges(m))) => m.into_range_moc(),
        MocIdxType::U16(MocQtyType::Hpx(FitsMoc::Cells(m))) => m
            .into_cell_moc_iter()
            .ranges()
            .convert::<u64, Hpx<u64>>()
            .into_range_moc(),
        MocIdxType::U32(MocQtyType::Hpx(FitsMoc::Cells(m))) => m
            .into_cell_moc_iter()
            .ranges()
            .convert::<u64, Hpx<u64>>()
            .into_range_moc(),
        MocIdxType::U64(MocQtyType::Hpx(FitsMoc::Cells(m))) => {
            m.into_cell_moc_iter().ranges().into_range_moc()
        }
        _ => return Err(bad("not a spatial (HEALPix) MOC".into())),
    };
    Ok(moc)
}

/// The stored coverage of a catalog (`moc.fits` in its folder), if any.
pub async fn read_coverage(
    storage: &Storage,
    catalog: &HatsCatalog,
) -> Result<Option<Coverage>, Error> {
    let path = catalog.root.clone().join(COVERAGE_FILE);
    if !storage.exists(&path).await? {
        return Ok(None);
    }
    from_fits(&storage.get(&path).await?).map(Some)
}

/// The fraction of the sky `coverage` covers.
pub fn sky_fraction(coverage: &Coverage) -> f64 {
    coverage.coverage_percentage()
}

/// Its order.
pub fn order(coverage: &Coverage) -> u8 {
    coverage.depth_max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_follows_the_row_count() {
        assert_eq!(coverage_order(0), 3);
        assert_eq!(coverage_order(118_218), 6);
        assert_eq!(coverage_order(482_176), 7);
        assert_eq!(coverage_order(100_000_000), 10);
    }

    /// Writes a catalog of `points` (None: no position) and opens it.
    async fn written(
        storage: &Storage,
        points: &[Option<(f64, f64)>],
        keep_unpositioned: bool,
    ) -> HatsCatalog {
        use crate::hats::{write_catalog, WriteOptions};
        use crate::meta::{CatalogMeta, ColumnMeta, TableMeta};
        use datafusion::arrow::array::Float64Array;
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new("ra", DataType::Float64, true),
            Field::new("dec", DataType::Float64, true),
        ]));
        let ra: Float64Array = points.iter().map(|p| p.map(|p| p.0)).collect();
        let dec: Float64Array = points.iter().map(|p| p.map(|p| p.1)).collect();
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(ra), Arc::new(dec)]).unwrap();
        let col = |n: &str| ColumnMeta {
            name: n.into(),
            datatype: Some("float64".into()),
            ..Default::default()
        };
        let meta = CatalogMeta {
            table: TableMeta::new("test", "sky", "ra", "dec"),
            source: None,
            columns: vec![col("ra"), col("dec")],
        };
        let opts = WriteOptions {
            partition_rows: 700,
            row_group_rows: 100,
            progress: None,
            keep_unpositioned,
        };
        write_catalog(storage, "catalogs/test.sky", &meta, schema, &[batch], &opts)
            .await
            .unwrap();
        crate::open_catalog(storage, "catalogs/test.sky")
            .await
            .unwrap()
    }

    /// Points in two patches of the sky (deterministic).
    fn patches(n: usize) -> Vec<Option<(f64, f64)>> {
        (0..n)
            .map(|i| {
                let f = i as f64 / n as f64;
                if i % 2 == 0 {
                    Some((10.0 + 20.0 * f, -30.0 + 15.0 * (f * 37.0).fract()))
                } else {
                    Some((200.0 + 5.0 * f, 60.0 + 3.0 * (f * 53.0).fract()))
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn ingest_writes_the_coverage_a_server_would_compute() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Create).unwrap();
        let cat = written(&storage, &patches(5_000), false).await;
        assert!(dir
            .path()
            .join("catalogs/test.sky")
            .join(COVERAGE_FILE)
            .is_file());
        let stored = read_coverage(&storage, &cat)
            .await
            .unwrap()
            .expect("moc.fits");
        let computed = catalog_coverage(&storage, &cat).await.unwrap();
        assert_eq!(stored, computed);
        assert_eq!(order(&stored), coverage_order(5_000));
        // Two patches, not the sky: both in, the opposite side out.
        let fraction = sky_fraction(&stored);
        assert!(fraction > 0.0 && fraction < 0.05, "{fraction}");
        assert!(stored.is_in(15f64.to_radians(), (-25f64).to_radians()));
        assert!(stored.is_in(202f64.to_radians(), 61f64.to_radians()));
        assert!(!stored.is_in(100f64.to_radians(), 0.0));
    }

    #[tokio::test]
    async fn rows_kept_without_a_position_are_not_in_the_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path(), storage::Missing::Create).unwrap();
        let mut points = patches(1_000);
        points.extend([None, None]);
        let cat = written(&storage, &points, true).await;
        assert_eq!(cat.rows, Some(1_002));
        let stored = read_coverage(&storage, &cat)
            .await
            .unwrap()
            .expect("moc.fits");
        // The files hold them at index 0 (cell 0); the stored coverage leaves that cell out.
        let computed = catalog_coverage(&storage, &cat).await.unwrap();
        assert!(computed.contains_cell(order(&computed), 0));
        assert!(!stored.contains_cell(order(&stored), 0));
        let cell0 = RangeMOC::from_fixed_depth_cells(order(&stored), [0u64].into_iter(), None);
        assert_eq!(computed.minus(&stored), cell0);
    }

    #[test]
    fn footprints_become_cells_around_them() {
        assert_eq!(
            stcs_polygon("Polygon ICRS 10 20 11 20 11 21"),
            Some(vec![(10.0, 20.0), (11.0, 20.0), (11.0, 21.0)])
        );
        assert_eq!(
            stcs_polygon("POLYGON 1 2 3 4 5 6"),
            Some(vec![(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)])
        );
        assert_eq!(stcs_polygon("Polygon ICRS 1 2 3"), None);
        assert_eq!(stcs_polygon("Circle ICRS 1 2 3"), None);
        assert_eq!(stcs_polygon("Polygon ICRS 1 2 x 4 5 6"), None);
        // Cells of about a quarter of the median size.
        assert_eq!(footprint_order(&[]), 10);
        assert_eq!(footprint_order(&[f64::NAN, -1.0]), 10);
        let order = footprint_order(&[1.0, 0.5, 2.0]);
        assert!(
            cell_size(order) <= 0.25 && cell_size(order - 1) > 0.25,
            "{order}"
        );
        assert_eq!(footprint_order(&[360.0]), 3);
        assert_eq!(footprint_order(&[1e-6]), 12);

        // A 1°×1° square (counter-clockwise), a cone and a point, far apart.
        let square = Footprint::Polygon(
            vec![(150.0, 2.0), (151.0, 2.0), (151.0, 3.0), (150.0, 3.0)],
            Some((150.5, 2.5)),
        );
        let cone = Footprint::Cone(10.0, -40.0, 0.5);
        let point = Footprint::Point(280.0, 70.0);
        let moc = footprints_coverage(&[square, cone, point], 8);
        let inside = |ra: f64, dec: f64| moc.is_in(ra.to_radians(), dec.to_radians());
        assert!(inside(150.5, 2.5) && inside(150.05, 2.05) && inside(150.95, 2.95));
        assert!(inside(10.0, -40.0) && inside(10.0, -39.6));
        assert!(inside(280.0, 70.0));
        assert!(!inside(152.5, 2.5) && !inside(10.0, -38.5) && !inside(100.0, 0.0));
        // About 1 + 0.79 square degrees plus a cell, of 41,253.
        let deg2 = sky_fraction(&moc) * 41_253.0;
        assert!(deg2 > 1.7 && deg2 < 5.0, "{deg2}");
        // The whole sky; nonsense adds nothing (or its point).
        assert_eq!(
            sky_fraction(&footprints_coverage(&[Footprint::Cone(0.0, 0.0, 180.0)], 5)),
            1.0
        );
        let odd = footprints_coverage(
            &[
                Footprint::Point(f64::NAN, 0.0),
                Footprint::Cone(0.0, 95.0, 1.0),
                Footprint::Polygon(vec![(0.0, 0.0), (1.0, 91.0), (2.0, 0.0)], Some((1.0, 1.0))),
            ],
            6,
        );
        assert_eq!(
            odd.range_sum(),
            RangeMOC::<u64, Hpx<u64>>::from_fixed_depth_cells(
                6,
                [cdshealpix::nested::hash(
                    6,
                    1f64.to_radians(),
                    1f64.to_radians()
                )]
                .into_iter(),
                None
            )
            .range_sum()
        );
    }

    #[test]
    fn obscore_rows_give_footprints() {
        use datafusion::arrow::array::{Float64Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        use std::sync::Arc;
        let f = |n: &str| Field::new(n, DataType::Float64, true);
        let schema = Arc::new(Schema::new(vec![
            f("s_ra"),
            f("s_dec"),
            f("s_fov"),
            Field::new("s_region", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(150.5),
                    Some(10.0),
                    Some(280.0),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(2.5),
                    Some(-40.0),
                    Some(70.0),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![Some(1.4), Some(1.0), None, None])),
                Arc::new(StringArray::from(vec![
                    Some("Polygon ICRS 150 2 151 2 151 3 150 3"),
                    None,
                    None,
                    None,
                ])),
            ],
        )
        .unwrap();
        let (footprints, sizes) = obscore_footprints(&batch).unwrap();
        assert_eq!(
            footprints,
            vec![
                Footprint::Polygon(
                    vec![(150.0, 2.0), (151.0, 2.0), (151.0, 3.0), (150.0, 3.0)],
                    Some((150.5, 2.5))
                ),
                Footprint::Cone(10.0, -40.0, 0.5),
                Footprint::Point(280.0, 70.0),
            ]
        );
        assert_eq!(sizes, vec![1.4, 1.0]);
        let moc = obscore_coverage(&batch).unwrap();
        assert_eq!(order(&moc), footprint_order(&sizes));
        assert!(moc.is_in(280f64.to_radians(), 70f64.to_radians()));
    }

    #[test]
    fn obscore_rows_are_chosen_by_product_type() {
        use datafusion::arrow::array::{AsArray, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "dataproduct_type",
            DataType::Utf8,
            true,
        )]));
        let types = StringArray::from(vec![Some("image"), Some("spectrum"), None, Some("cube")]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(types)]).unwrap();
        let kept = |t: &[&str]| -> Vec<Option<String>> {
            let b = obscore_rows_of(&batch, t).unwrap();
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        };
        assert_eq!(
            kept(&["image", "cube"]),
            vec![Some("image".to_string()), Some("cube".to_string())]
        );
        assert_eq!(kept(&["spectrum"]), vec![Some("spectrum".to_string())]);
        assert!(kept(&[]).is_empty());
        let empty = RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Utf8,
            true,
        )])));
        assert!(obscore_rows_of(&empty, &["image"]).is_err());
    }

    #[test]
    fn a_coverage_reads_back_from_fits_and_writes_as_ascii_and_json() {
        // Cells 0 and 1 at order 3, and cell 100.
        let cov = RangeMOC::from_fixed_depth_cells(3, [0u64, 1, 100].into_iter(), None);
        let back = from_fits(&to_fits(&cov).unwrap()).unwrap();
        assert_eq!(back, cov);
        assert_eq!(order(&back), 3);
        let ascii = to_ascii(&cov, None).unwrap();
        assert_eq!(ascii.trim(), "3/0-1 100");
        let json: serde_json::Value = serde_json::from_str(&to_json(&cov).unwrap()).unwrap();
        assert_eq!(json["3"], serde_json::json!([0, 1, 100]));
        assert!((sky_fraction(&cov) - 3.0 / 768.0).abs() < 1e-12);
        assert!(from_fits(b"SIMPLE  =                    T").is_err());
    }
}
