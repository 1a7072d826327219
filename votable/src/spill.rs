//! Record batches held until the end of a result: in memory up to a budget, then in an
//! unlinked temporary file as an Arrow IPC stream, so that a format whose header depends on
//! the whole result (FITS: row count, string widths, heap size) keeps memory flat.
//!
//! The file is created in the system temporary folder (`$TMPDIR`, else `/tmp`) and unlinked
//! at once: it takes disk space only while its handle lives and vanishes with the process
//! whatever happens. It can be read any number of times from the start, one pass at a time.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

/// In-memory bytes kept before the first batch goes to disk (small results never touch it).
pub const DEFAULT_BUDGET: usize = 16 << 20;

/// I/O buffer of the file passes.
const IO_BUFFER: usize = 1 << 20;

/// Batches being collected.
pub struct Spill {
    schema: SchemaRef,
    budget: usize,
    memory: Vec<RecordBatch>,
    memory_bytes: usize,
    file: Option<StreamWriter<BufWriter<File>>>,
}

/// Collected batches, readable from the start any number of times.
pub struct Spilled {
    memory: Vec<RecordBatch>,
    file: Option<File>,
}

/// One pass over [`Spilled`] batches.
pub enum Pass {
    /// Batches held in memory.
    Memory(std::vec::IntoIter<RecordBatch>),
    /// Batches read back from the spill file.
    File(Box<StreamReader<BufReader<File>>>),
}

fn io(e: std::io::Error) -> ArrowError {
    ArrowError::IoError(format!("spill file: {e}"), e)
}

/// Creates an unlinked read-write temporary file.
fn temp_file() -> Result<File, ArrowError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = None;
    for _ in 0..8 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path: PathBuf = dir.join(format!(
            "vostok-spill-{}-{n}-{nanos:09}.arrows",
            std::process::id()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                // Unlinked now: the open handle keeps the data, nothing is left behind.
                let _ = std::fs::remove_file(&path);
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io(e)),
        }
    }
    Err(io(
        last.unwrap_or_else(|| std::io::Error::other("no free name"))
    ))
}

impl Spill {
    /// Collects batches of `schema`, spilling past `budget` bytes held in memory.
    pub fn new(schema: SchemaRef, budget: usize) -> Self {
        Spill {
            schema,
            budget,
            memory: Vec::new(),
            memory_bytes: 0,
            file: None,
        }
    }

    /// Whether batches have gone to disk.
    #[cfg(test)]
    pub fn on_disk(&self) -> bool {
        self.file.is_some()
    }

    /// Adds a batch (of the collector's schema).
    pub fn push(&mut self, batch: RecordBatch) -> Result<(), ArrowError> {
        if let Some(w) = &mut self.file {
            return w.write(&batch);
        }
        self.memory_bytes += batch.get_array_memory_size();
        self.memory.push(batch);
        if self.memory_bytes > self.budget {
            let file = temp_file()?;
            let mut w =
                StreamWriter::try_new(BufWriter::with_capacity(IO_BUFFER, file), &self.schema)?;
            for b in self.memory.drain(..) {
                w.write(&b)?;
            }
            self.memory_bytes = 0;
            self.file = Some(w);
        }
        Ok(())
    }

    /// Ends the collection.
    pub fn finish(self) -> Result<Spilled, ArrowError> {
        let file = match self.file {
            None => None,
            Some(mut w) => {
                w.finish()?;
                let buffered = w.into_inner()?;
                let file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
                Some(file)
            }
        };
        Ok(Spilled {
            memory: self.memory,
            file,
        })
    }
}

impl Spilled {
    /// A pass over all batches from the first. Passes share the file position: finish one
    /// before starting the next.
    pub fn pass(&self) -> Result<Pass, ArrowError> {
        match &self.file {
            None => Ok(Pass::Memory(self.memory.clone().into_iter())),
            Some(f) => {
                let mut f = f.try_clone().map_err(io)?;
                f.seek(SeekFrom::Start(0)).map_err(io)?;
                let r = StreamReader::try_new(BufReader::with_capacity(IO_BUFFER, f), None)?;
                Ok(Pass::File(Box::new(r)))
            }
        }
    }
}

impl Iterator for Pass {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Pass::Memory(it) => it.next().map(Ok),
            Pass::File(r) => r.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(schema: &SchemaRef, start: i32, n: i32) -> RecordBatch {
        let ids: Vec<i32> = (start..start + n).collect();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 3 != 0).then(|| format!("row {i}")))
            .collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .expect("batch")
    }

    fn ids(pass: Pass) -> Vec<i32> {
        let mut out = Vec::new();
        for b in pass {
            let b = b.expect("batch");
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .expect("int32");
            out.extend(a.values().iter().copied());
            let names = b
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8");
            for (k, id) in a.values().iter().enumerate() {
                let want = (id % 3 != 0).then(|| format!("row {id}"));
                assert_eq!(names.is_valid(k).then(|| names.value(k).to_owned()), want);
            }
        }
        out
    }

    #[test]
    fn memory_and_file_passes_agree() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        for budget in [usize::MAX, 0, 10_000] {
            let mut s = Spill::new(schema.clone(), budget);
            for k in 0..10 {
                s.push(batch(&schema, k * 1000, 1000)).expect("push");
            }
            // A slice, as MAXREC cuts make them.
            s.push(batch(&schema, 10_000, 1000).slice(0, 7))
                .expect("push");
            assert_eq!(s.on_disk(), budget != usize::MAX);
            let done = s.finish().expect("finish");
            let want: Vec<i32> = (0..10_007).collect();
            // Two passes read the same rows.
            assert_eq!(ids(done.pass().expect("pass")), want);
            assert_eq!(ids(done.pass().expect("pass")), want);
        }
    }
}
