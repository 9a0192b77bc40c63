//! Fuzzes the campaign CSV import, fed whole and in small chunks (as an upload arrives).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::domain::campaign::NewRecipient;
use wagate::domain::campaign::csv_import::CsvImport;

/// What an import made of the data, as text to compare; recipient ids are random, so left out.
fn import(data: &[u8], chunk: usize, default_cc: Option<&str>) -> String {
    let rows = |out: &[NewRecipient]| {
        out.iter()
            .map(|r| format!("{} {:?} {:?}", r.row, r.phone, r.variables))
            .collect::<Vec<_>>()
    };
    let mut csv = CsvImport::new(default_cc);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        if let Err(e) = csv.feed(piece, &mut out) {
            return format!("error {e:?} after {:?}", rows(&out));
        }
    }
    match csv.finish(&mut out) {
        Ok(summary) => format!("{summary:?} {:?}", rows(&out)),
        Err(e) => format!("error {e:?} after {:?}", rows(&out)),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = import(data, data.len(), Some("91"));
    // Where the body is cut into chunks must not change what it imports.
    let chunk = 1 + data.len() % 7;
    let chunked = import(data, chunk, Some("91"));
    assert_eq!(whole, chunked, "chunks of {chunk} bytes import differently");
    let _ = std::hint::black_box(import(data, data.len(), None));
});
