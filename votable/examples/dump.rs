//! Prints the schema (with FIELD metadata) and the first rows of a VOTable:
//! `cargo run -p votable --example dump -- file.vot [rows]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: dump FILE.vot [ROWS]")?;
    let rows: usize = args.next().map_or(Ok(10), |s| s.parse())?;
    let (schema, batches) = votable::read(&std::fs::read(&path)?)?;
    for f in schema.fields() {
        println!("{} {} {:?}", f.name(), f.data_type(), f.metadata());
    }
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let head: Vec<_> = batches
        .iter()
        .take(1)
        .map(|b| b.slice(0, b.num_rows().min(rows)))
        .collect();
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&head)?
    );
    println!("{total} rows");
    Ok(())
}
