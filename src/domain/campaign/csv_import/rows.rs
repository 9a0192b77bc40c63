//! The rules for the rows of a recipients CSV, once the parser has cut them into fields:
//! reading the header, turning a data row into a recipient or a rejection, and dropping
//! phones seen before.

use std::collections::HashSet;

use super::{CsvError, ImportSummary, MAX_FIELD_BYTES, MAX_REJECTIONS_KEPT, Rejection, RowError};
use crate::domain::campaign::{NewRecipient, RecipientId, Variables};
use crate::domain::phone::PhoneNumber;

/// What a header column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Phone,
    Name,
    Variable(String),
    /// A column with an empty name (spreadsheets add them for stray cells): its cells are
    /// dropped.
    Unnamed,
}

/// What is known about the file so far, and the rules rows are checked with.
pub(super) struct Rows {
    default_cc: Option<String>,
    header: Option<Vec<Column>>,
    /// Every accepted phone as a number (at most 15 digits fit a `u64`): 1,000,000 rows cost
    /// about 20 MB here, the price of dropping duplicates without a second pass.
    seen: HashSet<u64>,
    summary: ImportSummary,
}

/// The fields of one record, from its bytes and field ends.
fn fields<'a>(record: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut start = 0;
    ends.iter().map(move |&end| {
        let field = record.get(start..end).unwrap_or_default();
        start = end;
        field
    })
}

fn is_blank(record: &[u8], ends: &[usize]) -> bool {
    fields(record, ends).all(|f| f.trim_ascii().is_empty())
}

impl Rows {
    pub(super) fn new(default_cc: Option<&str>) -> Rows {
        Rows {
            default_cc: default_cc.map(str::to_owned),
            header: None,
            seen: HashSet::new(),
            summary: ImportSummary::default(),
        }
    }

    /// The header's number of columns, once it has been read.
    pub(super) fn columns(&self) -> Option<usize> {
        self.header.as_ref().map(Vec::len)
    }

    pub(super) fn into_summary(self) -> ImportSummary {
        self.summary
    }

    /// Takes one record: the header if none was read yet, else a data row. Blank records
    /// are skipped.
    pub(super) fn record(
        &mut self,
        record: &[u8],
        ends: &[usize],
        out: &mut Vec<NewRecipient>,
    ) -> Result<(), CsvError> {
        if is_blank(record, ends) {
            return Ok(());
        }
        let Some(columns) = &self.header else {
            self.header = Some(header(record, ends)?);
            return Ok(());
        };
        self.summary.rows += 1;
        let row = self.summary.rows;
        let default_cc = self.default_cc.as_deref();
        match recipient(columns, default_cc, &mut self.seen, record, ends, row) {
            Ok(Some(r)) => {
                self.summary.accepted += 1;
                out.push(r);
            }
            Ok(None) => self.summary.duplicates += 1,
            Err(error) => self.reject(row, error),
        }
        Ok(())
    }

    /// A row too large to hold: only its number of fields is known.
    pub(super) fn too_large(&mut self, found: usize) {
        self.summary.rows += 1;
        let expected = self.header.as_ref().map_or(0, Vec::len);
        let error = if found == expected {
            RowError::FieldTooLong
        } else {
            RowError::WrongColumnCount { expected, found }
        };
        self.reject(self.summary.rows, error);
    }

    /// The last record, which a quote never closed ran to the end of the file.
    pub(super) fn unterminated(&mut self, lines: u64) -> Result<(), CsvError> {
        if self.header.is_none() {
            return Err(CsvError::InvalidHeader("a quote in it is never closed"));
        }
        self.summary.rows += 1;
        self.reject(self.summary.rows, RowError::UnterminatedQuote { lines });
        Ok(())
    }

    fn reject(&mut self, row: u64, error: RowError) {
        self.summary.rejected_total += 1;
        if self.summary.rejected.len() < MAX_REJECTIONS_KEPT {
            self.summary.rejected.push(Rejection { row, error });
        }
    }
}

/// Reads the header row. Names are trimmed; `phone`, its aliases and `name` are recognised in
/// any case, and two columns whose names differ only in case are refused as duplicates, since
/// parameters find their column in any case too.
fn header(record: &[u8], ends: &[usize]) -> Result<Vec<Column>, CsvError> {
    let mut columns = Vec::with_capacity(ends.len());
    let mut names = HashSet::with_capacity(ends.len());
    for field in fields(record, ends) {
        if field.len() > MAX_FIELD_BYTES {
            return Err(CsvError::InvalidHeader("a column name is too long"));
        }
        let name = std::str::from_utf8(field)
            .map_err(|_| CsvError::InvalidHeader("it is not valid UTF-8"))?
            .trim();
        if name.is_empty() {
            columns.push(Column::Unnamed);
            continue;
        }
        let lower = name.to_lowercase();
        let (column, key) = match lower.as_str() {
            "phone" | "phone_number" | "mobile" => (Column::Phone, "phone".to_owned()),
            "name" => (Column::Name, lower),
            _ => (Column::Variable(name.to_owned()), lower),
        };
        if !names.insert(key) {
            return Err(CsvError::DuplicateColumn(name.to_owned()));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::Phone) {
        return Err(CsvError::MissingPhoneColumn);
    }
    Ok(columns)
}

/// One data row's recipient, or `None` when an earlier row had its phone. Cells are trimmed;
/// empty ones are left out of the variables.
fn recipient(
    columns: &[Column],
    default_cc: Option<&str>,
    seen: &mut HashSet<u64>,
    record: &[u8],
    ends: &[usize],
    row: u64,
) -> Result<Option<NewRecipient>, RowError> {
    if ends.len() != columns.len() {
        return Err(RowError::WrongColumnCount {
            expected: columns.len(),
            found: ends.len(),
        });
    }
    // Every cell is checked before anything is allocated, so a rejected or duplicate row
    // costs no allocation.
    let mut phone = None;
    for (column, field) in columns.iter().zip(fields(record, ends)) {
        if field.len() > MAX_FIELD_BYTES {
            return Err(RowError::FieldTooLong);
        }
        let value = std::str::from_utf8(field).map_err(|_| RowError::InvalidUtf8)?;
        if *column == Column::Phone {
            phone = Some(value.trim());
        }
    }
    let raw = phone
        .filter(|p| !p.is_empty())
        .ok_or(RowError::MissingPhone)?;
    let phone = PhoneNumber::parse_with_default(raw, default_cc)
        .map_err(|_| RowError::InvalidPhone(raw.chars().take(32).collect()))?;
    if !seen.insert(phone_key(&phone)) {
        return Ok(None);
    }
    let mut variables = Variables::new();
    for (column, field) in columns.iter().zip(fields(record, ends)) {
        let key = match column {
            Column::Name => "name",
            Column::Variable(name) => name.as_str(),
            Column::Phone | Column::Unnamed => continue,
        };
        let Ok(value) = std::str::from_utf8(field) else {
            continue;
        };
        let value = value.trim();
        if !value.is_empty() {
            variables.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(Some(NewRecipient {
        id: RecipientId::generate(),
        row,
        phone,
        variables,
    }))
}

/// The number's digits as an integer: E.164 has at most 15 and never a leading 0, so two
/// numbers share a key only if they are equal.
fn phone_key(phone: &PhoneNumber) -> u64 {
    phone
        .as_str()
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0, |k, d| {
            k.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        })
}
