//! Streaming import of a campaign's recipients CSV: fed the body in chunks as they arrive, it
//! holds at most one partial record, and turns each data row into a [`NewRecipient`] or a
//! numbered rejection.
//!
//! The format: a header row naming a `phone` column (or `phone_number`, `mobile`; any case),
//! optionally `name`, and any other columns, which become the recipient's variables under
//! their names as written. A UTF-8 BOM, CRLF or LF line ends and quoted fields (commas, `""`,
//! line breaks inside quotes) are accepted.
//!
//! A quote never closed would make the rest of the file one field, and the rows after it
//! part of one recipient: that row is rejected instead (`unterminated quote`, with how many
//! lines it swallowed), so no following recipient is imported under another's variables.
//!
//! Row numbers count data records, 1 for the first after the header. Blank records (empty
//! lines, or only separators and spaces) are skipped and get no number, so a row number is the
//! record's position among the rows that hold something; a quoted line break does not start a
//! new row.
//!
//! Memory: one record (at most the header's columns times [`MAX_FIELD_BYTES`]; a larger one
//! is skipped as it streams past), the first [`MAX_REJECTIONS_KEPT`] rejections, and one
//! `u64` per accepted phone to drop duplicates (about 20 MB for 1,000,000 rows).

mod rows;

use csv_core::{ReadRecordResult, Reader};
use serde::{Serialize, Serializer};

use self::rows::Rows;
use super::NewRecipient;

/// Columns a header may have.
pub const MAX_COLUMNS: usize = 1_000;
/// Bytes one field may have; a longer one rejects its row (or, in the header, the file).
pub const MAX_FIELD_BYTES: usize = 4_096;
/// Rejections kept with their row number; past these only the count grows, so a file of
/// garbage costs no more memory than a good one.
pub const MAX_REJECTIONS_KEPT: usize = 1_000;

const BOM: &[u8; 3] = b"\xef\xbb\xbf";
/// Where a discarded record's bytes go: the parser needs somewhere to write them.
const SCRATCH_BYTES: usize = 4_096;
const SCRATCH_ENDS: usize = 64;

/// Why a whole file is refused. Rows with problems are [`Rejection`]s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the CSV has no data rows")]
    Empty,
    #[error("the CSV header has no `phone` column (or `phone_number`, `mobile`)")]
    MissingPhoneColumn,
    #[error("the CSV header has the column `{0}` more than once")]
    DuplicateColumn(String),
    #[error("the CSV header has more than {MAX_COLUMNS} columns")]
    TooManyColumns,
    #[error("the CSV header is invalid: {0}")]
    InvalidHeader(&'static str),
}

impl CsvError {
    pub fn code(&self) -> &'static str {
        match self {
            CsvError::Empty => "empty_csv",
            CsvError::MissingPhoneColumn => "missing_phone_column",
            CsvError::DuplicateColumn(_) => "duplicate_column",
            CsvError::TooManyColumns => "too_many_columns",
            CsvError::InvalidHeader(_) => "invalid_header",
        }
    }
}

/// Why one data row was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("expected {expected} columns, found {found}")]
    WrongColumnCount { expected: usize, found: usize },
    #[error("a field is longer than {MAX_FIELD_BYTES} bytes")]
    FieldTooLong,
    #[error("not valid UTF-8")]
    InvalidUtf8,
    #[error(
        "a quote opened in this row is never closed: this row and the {lines} lines after it were not imported"
    )]
    UnterminatedQuote { lines: u64 },
    #[error("no phone number")]
    MissingPhone,
    /// Holds the start of the value as written.
    #[error("`{0}` is not a phone number")]
    InvalidPhone(String),
}

impl Serialize for RowError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One rejected data row, as the API reports it: `{"row": 7, "error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub row: u64,
    pub error: RowError,
}

/// How the file went, once it has all been read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Non-blank data rows.
    pub rows: u64,
    /// Rows turned into recipients.
    pub accepted: u64,
    /// Rows whose phone an earlier row of this file already had: dropped.
    pub duplicates: u64,
    /// The first [`MAX_REJECTIONS_KEPT`] rejected rows.
    pub rejected: Vec<Rejection>,
    /// All rejected rows, kept or not.
    pub rejected_total: u64,
}

/// The parser's buffers for the record being read.
struct Buffers {
    reader: Reader,
    /// The current record's field bytes, unescaped and back to back.
    record: Vec<u8>,
    record_len: usize,
    /// Where each field of the current record ends in `record`.
    ends: Vec<usize>,
    ends_len: usize,
    /// Set while the current record is skipped for being too large: its bytes go to the
    /// scratch buffers, only its fields are counted.
    discarding: bool,
    discarded_fields: usize,
    scratch: Vec<u8>,
    scratch_ends: Vec<usize>,
}

/// Where the bytes read so far leave a record, as the parser reads quotes (RFC 4180, `""`
/// for a quote inside quotes): kept beside it because the parser does not say whether the
/// data ended inside quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    Unquoted,
    /// Inside quotes, with the line breaks seen since they opened.
    Quoted {
        lines: u64,
    },
    /// A quote inside quotes: it closes them, or doubles into a literal quote.
    QuoteInQuoted {
        lines: u64,
    },
}

impl Quoting {
    fn read(mut self, bytes: &[u8]) -> Quoting {
        for &b in bytes {
            self = match (self, b) {
                (Quoting::FieldStart, b'"') => Quoting::Quoted { lines: 0 },
                (Quoting::FieldStart | Quoting::Unquoted, b',' | b'\n' | b'\r') => {
                    Quoting::FieldStart
                }
                (Quoting::FieldStart | Quoting::Unquoted, _) => Quoting::Unquoted,
                (Quoting::Quoted { lines }, b'"') => Quoting::QuoteInQuoted { lines },
                (Quoting::Quoted { lines }, b'\n') => Quoting::Quoted { lines: lines + 1 },
                (q @ Quoting::Quoted { .. }, _) => q,
                (Quoting::QuoteInQuoted { lines }, b'"') => Quoting::Quoted { lines },
                (Quoting::QuoteInQuoted { .. }, b',' | b'\n' | b'\r') => Quoting::FieldStart,
                (Quoting::QuoteInQuoted { .. }, _) => Quoting::Unquoted,
            };
        }
        self
    }
}

/// A CSV import in progress: [`CsvImport::feed`] it the body's chunks in order, then
/// [`CsvImport::finish`] it.
pub struct CsvImport {
    buf: Buffers,
    rows: Rows,
    /// How many bytes of a leading BOM have been seen, while that is still undecided.
    bom_seen: Option<usize>,
    failed: Option<CsvError>,
    quoting: Quoting,
    /// Set when the data ended inside quotes: the record the end completes is rejected.
    unterminated: Option<u64>,
    /// Whether the CSV parser has been given any input yet (see [`CsvImport::parse`]).
    started: bool,
}

impl CsvImport {
    /// `default_cc` is the country code national numbers get (see
    /// [`crate::domain::phone::PhoneNumber::parse_with_default`]).
    pub fn new(default_cc: Option<&str>) -> CsvImport {
        CsvImport {
            buf: Buffers {
                reader: Reader::new(),
                record: vec![0; 1024],
                record_len: 0,
                ends: vec![0; 16],
                ends_len: 0,
                discarding: false,
                discarded_fields: 0,
                scratch: vec![0; SCRATCH_BYTES],
                scratch_ends: vec![0; SCRATCH_ENDS],
            },
            rows: Rows::new(default_cc),
            bom_seen: Some(0),
            failed: None,
            quoting: Quoting::FieldStart,
            unterminated: None,
            started: false,
        }
    }

    /// Reads the next chunk of the body, pushing the recipients of every row it completes onto
    /// `out`. An error about the whole file (its header) is returned as soon as it is known,
    /// and again by every later call.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<NewRecipient>) -> Result<(), CsvError> {
        let mut chunk = chunk;
        if let Some(mut n) = self.bom_seen {
            while n < BOM.len() && chunk.first() == Some(&BOM[n]) {
                n += 1;
                chunk = &chunk[1..];
            }
            if n == BOM.len() {
                self.bom_seen = None;
            } else if chunk.is_empty() {
                self.bom_seen = Some(n);
                return self.failed();
            } else {
                // Not a BOM after all: the bytes held back are data.
                self.bom_seen = None;
                self.parse(&BOM[..n], out)?;
            }
        }
        self.parse(chunk, out)
    }

    /// Reads the end of the body (a last row without a line end) and sums up the import.
    pub fn finish(mut self, out: &mut Vec<NewRecipient>) -> Result<ImportSummary, CsvError> {
        if let Some(n) = self.bom_seen.take() {
            self.parse(&BOM[..n], out)?;
        }
        self.failed()?;
        if let Quoting::Quoted { lines } = self.quoting {
            self.unterminated = Some(lines);
        }
        // An empty input tells the parser the data has ended.
        loop {
            match self.step(&[], out)? {
                (ReadRecordResult::End, _) => break,
                (ReadRecordResult::InputEmpty, _) => break,
                _ => {}
            }
        }
        let summary = self.rows.into_summary();
        if summary.rows == 0 {
            return Err(CsvError::Empty);
        }
        Ok(summary)
    }

    fn failed(&self) -> Result<(), CsvError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn parse(&mut self, mut input: &[u8], out: &mut Vec<NewRecipient>) -> Result<(), CsvError> {
        self.failed()?;
        // Never hand the parser an empty input here: to it that means the end of the data.
        while !input.is_empty() {
            // csv-core drops a BOM opening its first input, but only a whole one, so whether a
            // second BOM (after the one `feed` strips) were dropped would depend on where the
            // body is cut. A first input of one byte never holds one: it stays data.
            let take = if self.started { input.len() } else { 1 };
            self.started = true;
            let (_, nin) = self.step(&input[..take], out)?;
            input = &input[nin..];
        }
        Ok(())
    }

    /// One call of the parser, and what its result asks for. Returns the result and the input
    /// bytes consumed.
    fn step(
        &mut self,
        input: &[u8],
        out: &mut Vec<NewRecipient>,
    ) -> Result<(ReadRecordResult, usize), CsvError> {
        let b = &mut self.buf;
        let (res, nin, nout, nend) = if b.discarding {
            b.reader
                .read_record(input, &mut b.scratch, &mut b.scratch_ends)
        } else {
            b.reader.read_record(
                input,
                &mut b.record[b.record_len..],
                &mut b.ends[b.ends_len..],
            )
        };
        self.quoting = self.quoting.read(&input[..nin]);
        if b.discarding {
            b.discarded_fields += nend;
        } else {
            b.record_len += nout;
            b.ends_len += nend;
        }
        let columns = self.rows.columns();
        let header_read = columns.is_some();
        // A record within the limits fits these; past them it is refused, so never held.
        let field_cap = columns.unwrap_or(MAX_COLUMNS);
        let byte_cap = field_cap * MAX_FIELD_BYTES;
        match res {
            ReadRecordResult::OutputFull if b.discarding => {}
            ReadRecordResult::OutputFull if b.record.len() < byte_cap => {
                let len = (b.record.len() * 2).min(byte_cap);
                b.record.resize(len, 0);
            }
            ReadRecordResult::OutputFull if !header_read => {
                return Err(self.fail(CsvError::InvalidHeader("a column name is too long")));
            }
            ReadRecordResult::OutputEndsFull if b.discarding => {}
            ReadRecordResult::OutputEndsFull if b.ends.len() < field_cap => {
                let len = (b.ends.len() * 2).min(field_cap);
                b.ends.resize(len, 0);
            }
            ReadRecordResult::OutputEndsFull if !header_read => {
                return Err(self.fail(CsvError::TooManyColumns));
            }
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                b.discarding = true;
                b.discarded_fields = 0;
            }
            ReadRecordResult::Record => {
                let result = if let Some(lines) = self.unterminated.take() {
                    self.rows.unterminated(lines)
                } else if b.discarding {
                    self.rows.too_large(b.ends_len + b.discarded_fields);
                    Ok(())
                } else {
                    let record = &b.record[..b.record_len];
                    let ends = &b.ends[..b.ends_len];
                    self.rows.record(record, ends, out)
                };
                b.record_len = 0;
                b.ends_len = 0;
                b.discarding = false;
                if let Err(e) = result {
                    return Err(self.fail(e));
                }
            }
            ReadRecordResult::InputEmpty | ReadRecordResult::End => {}
        }
        Ok((res, nin))
    }

    fn fail(&mut self, e: CsvError) -> CsvError {
        self.failed = Some(e.clone());
        e
    }
}

#[cfg(test)]
mod tests;
