fn main() {
    for p in std::env::args().skip(1) {
        let bytes = std::fs::read(&p).unwrap();
        match votable::read(&bytes) {
            Ok((s, b)) => println!("OK {p}: {} cols, {} rows", s.fields().len(), b.iter().map(|b| b.num_rows()).sum::<usize>()),
            Err(e) => println!("ERR {p}: {e}"),
        }
    }
}
