fn main() {
    let p = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let (s, b) = votable::read(&bytes).unwrap();
    for f in s.fields() {
        println!("{} {:?} {:?}", f.name(), f.data_type(), f.metadata());
    }
    let b: Vec<_> = b
        .into_iter()
        .map(|b| b.slice(0, b.num_rows().min(4)))
        .collect();
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&b).unwrap()
    );
}
