//! Reading a vostok (HATS-layout) catalog folder directly: `partition_info.csv` and
//! `dataset/Norder=K/Dir=D/Npix=N.parquet`, each file starting with `_healpix_29`.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

/// The HEALPix index column vostok adds in front of the published ones.
pub const HEALPIX_COLUMN: &str = "_healpix_29";

/// A catalog folder.
pub struct Catalog {
    /// `.../catalogs/<schema>.<table>`.
    pub dir: PathBuf,
    /// Its Parquet partition files.
    pub files: Vec<PathBuf>,
}

impl Catalog {
    /// Lists the partition files from `partition_info.csv` (or, without it, every
    /// `*.parquet` under `dataset/Norder=*`).
    pub fn open(dir: &Path) -> Result<Catalog> {
        let info = dir.join("partition_info.csv");
        let mut files = Vec::new();
        if info.exists() {
            let text = std::fs::read_to_string(&info)
                .with_context(|| format!("reading {}", info.display()))?;
            let mut lines = text.lines();
            let header: Vec<String> = lines
                .next()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect();
            let io = header.iter().position(|h| h == "norder");
            let ip = header.iter().position(|h| h == "npix");
            let (Some(io), Some(ip)) = (io, ip) else {
                bail!("{}: expected a Norder,Npix header", info.display());
            };
            for line in lines.filter(|l| !l.trim().is_empty()) {
                let cells: Vec<&str> = line.split(',').map(str::trim).collect();
                let k: u64 = cells
                    .get(io)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow!("{}: bad line '{line}'", info.display()))?;
                let n: u64 = cells
                    .get(ip)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow!("{}: bad line '{line}'", info.display()))?;
                let d = n / 10_000 * 10_000;
                files.push(dir.join(format!("dataset/Norder={k}/Dir={d}/Npix={n}.parquet")));
            }
        } else {
            let ds = dir.join("dataset");
            let mut stack = vec![ds.clone()];
            while let Some(p) = stack.pop() {
                for e in
                    std::fs::read_dir(&p).with_context(|| format!("listing {}", p.display()))?
                {
                    let path = e?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x == "parquet")
                        && path.to_string_lossy().contains("Norder=")
                    {
                        files.push(path);
                    }
                }
            }
            files.sort();
        }
        if files.is_empty() {
            bail!("{}: no partition files", dir.display());
        }
        Ok(Catalog {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// The total row count, from the Parquet footers.
    pub fn num_rows(&self) -> Result<u64> {
        let mut n = 0u64;
        for f in &self.files {
            let file = File::open(f).with_context(|| format!("opening {}", f.display()))?;
            let r = SerializedFileReader::new(file)
                .with_context(|| format!("reading the footer of {}", f.display()))?;
            n += r.metadata().file_metadata().num_rows() as u64;
        }
        Ok(n)
    }

    /// The Arrow schema of the first file.
    pub fn schema(&self) -> Result<SchemaRef> {
        let file = File::open(&self.files[0])?;
        Ok(ParquetRecordBatchReaderBuilder::try_new(file)?
            .schema()
            .clone())
    }

    /// Calls `f` with every record batch of every file, reading only `columns` (all when None).
    pub fn for_each_batch(
        &self,
        columns: Option<&[&str]>,
        mut f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        for path in &self.files {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let mut b = ParquetRecordBatchReaderBuilder::try_new(file)
                .with_context(|| format!("reading {}", path.display()))?
                .with_batch_size(65_536);
            if let Some(cols) = columns {
                for c in cols {
                    if b.schema().field_with_name(c).is_err() {
                        bail!("{}: no column '{c}'", path.display());
                    }
                }
                let mask = ProjectionMask::columns(b.parquet_schema(), cols.iter().copied());
                b = b.with_projection(mask);
            }
            for batch in b.build()? {
                f(&batch.with_context(|| format!("reading {}", path.display()))?)?;
            }
        }
        Ok(())
    }
}

/// A column of a batch as f64 values (nulls as NaN).
pub fn f64_values(batch: &RecordBatch, name: &str) -> Result<Vec<f64>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| anyhow!("no column '{name}'"))?;
    let col = match col.data_type() {
        DataType::Float64 => col.clone(),
        DataType::Float32 => {
            let a = col.as_primitive::<Float32Type>();
            return Ok((0..a.len())
                .map(|i| {
                    if a.is_null(i) {
                        f64::NAN
                    } else {
                        a.value(i) as f64
                    }
                })
                .collect());
        }
        _ => cast(col, &DataType::Float64)?,
    };
    let a = col.as_primitive::<Float64Type>();
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) })
        .collect())
}
