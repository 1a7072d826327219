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

/// The order of a catalog's coverage: about one row per cell of the whole sky at that order,
/// between 3 (a cell of 7.3°) and 10 (3.4'), so that a sparse catalog is not a cloud of
/// isolated cells and a dense one stays a few megabytes at most.
pub fn coverage_order(rows: u64) -> u8 {
    let mut order = 3u8;
    while order < 10 && 12u64 << (2 * (u32::from(order) + 1)) <= rows {
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
