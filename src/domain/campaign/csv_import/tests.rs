//! Tests of the streaming CSV import: the format's edge cases, the limits, and that where the
//! body is split into chunks never changes the result.

use proptest::prelude::*;

use super::*;

/// A recipient without its generated id: what the file determines.
type Row = (u64, String, Vec<(String, String)>);

fn rows(out: &[NewRecipient]) -> Vec<Row> {
    out.iter()
        .map(|r| {
            let vars = r
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (r.row, r.phone.as_str().to_owned(), vars)
        })
        .collect()
}

fn import_chunks(
    chunks: &[&[u8]],
    cc: Option<&str>,
) -> (Vec<Row>, Result<ImportSummary, CsvError>) {
    let mut imp = CsvImport::new(cc);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(e) = imp.feed(chunk, &mut out) {
            return (rows(&out), Err(e));
        }
    }
    let summary = imp.finish(&mut out);
    (rows(&out), summary)
}

fn import(body: &str) -> (Vec<Row>, ImportSummary) {
    let (rows, summary) = import_chunks(&[body.as_bytes()], None);
    (rows, summary.unwrap())
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn rejected(summary: &ImportSummary) -> Vec<(u64, RowError)> {
    summary
        .rejected
        .iter()
        .map(|r| (r.row, r.error.clone()))
        .collect()
}

#[test]
fn a_plain_file_becomes_recipients_with_their_variables() {
    let (rows, summary) = import("phone,name,code\n919812345678,Asha,A1\n+44 7700 900123,,B2\n");
    assert_eq!(
        rows,
        vec![
            (
                1,
                "+919812345678".to_owned(),
                vars(&[("code", "A1"), ("name", "Asha")])
            ),
            (2, "+447700900123".to_owned(), vars(&[("code", "B2")])),
        ]
    );
    assert_eq!(
        summary,
        ImportSummary {
            rows: 2,
            accepted: 2,
            ..ImportSummary::default()
        }
    );
}

#[test]
fn a_bom_is_ignored_even_before_a_quoted_header() {
    for body in [
        "\u{feff}phone,name\n919812345678,Asha\n",
        "\u{feff}\"phone\",\"name\"\n919812345678,Asha\n",
    ] {
        let (rows, summary) = import(body);
        assert_eq!(summary.accepted, 1, "{body:?}");
        assert_eq!(rows[0].2, vars(&[("name", "Asha")]), "{body:?}");
    }
}

#[test]
fn quoted_fields_keep_commas_quotes_and_line_breaks() {
    let body = "phone,name,note\n919812345678,\"Rao, Asha\",\"said \"\"hi\"\"\nthen left\"\n919812345679,Ben,x\n";
    let (rows, summary) = import(body);
    assert_eq!(
        rows[0].2,
        vars(&[("name", "Rao, Asha"), ("note", "said \"hi\"\nthen left")])
    );
    // The quoted line break does not start a row.
    assert_eq!(rows[1].0, 2);
    assert_eq!(summary.accepted, 2);
}

#[test]
fn crlf_and_lf_line_ends_read_the_same() {
    let lf = import("phone,code\n919812345678,A1\n919812345679,B2\n");
    let crlf = import("phone,code\r\n919812345678,A1\r\n919812345679,B2\r\n");
    assert_eq!(lf, crlf);
    assert_eq!(crlf.0[1].2, vars(&[("code", "B2")]));
}

#[test]
fn a_last_row_without_a_line_end_is_read() {
    let (rows, _) = import("phone\n919812345678\n919812345679");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].1, "+919812345679");
}

#[test]
fn duplicate_phones_in_any_spelling_are_counted_and_dropped() {
    let body = "phone,name\n+91 98123 45678,first\n919812345678,second\n09812345678,third\n919812345679,other\n";
    let (rows, summary) = import_chunks(&[body.as_bytes()], Some("91"));
    let summary = summary.unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.0, r.2.clone())).collect::<Vec<_>>(),
        vec![
            (1, vars(&[("name", "first")])),
            (4, vars(&[("name", "other")]))
        ]
    );
    assert_eq!((summary.accepted, summary.duplicates), (2, 2));
    assert!(summary.rejected.is_empty());
}

#[test]
fn blank_lines_are_skipped_and_get_no_row_number() {
    let body = "\n\nphone,name\n\n919812345678,Asha\r\n\r\n , \n,\nbad\n\n919812345679,Ben\n\n";
    let (rows, summary) = import(body);
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 3],
        "rows count only records that hold something"
    );
    assert_eq!(
        rejected(&summary),
        vec![(
            2,
            RowError::WrongColumnCount {
                expected: 2,
                found: 1
            }
        )]
    );
    assert_eq!((summary.rows, summary.accepted), (3, 2));
}

#[test]
fn bad_rows_are_rejected_with_their_number_and_the_import_goes_on() {
    let body = "phone,name\n\
                919812345678\n\
                919812345679,Ben,extra\n\
                not-a-phone,Cy\n\
                ,Dee\n\
                0981234567,Eve\n\
                919812345670,Fay\n";
    let (rows, summary) = import(body);
    assert_eq!(
        rejected(&summary),
        vec![
            (
                1,
                RowError::WrongColumnCount {
                    expected: 2,
                    found: 1
                }
            ),
            (
                2,
                RowError::WrongColumnCount {
                    expected: 2,
                    found: 3
                }
            ),
            (3, RowError::InvalidPhone("not-a-phone".to_owned())),
            (4, RowError::MissingPhone),
            // A national number needs a default country code.
            (5, RowError::InvalidPhone("0981234567".to_owned())),
        ]
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, 6);
    assert_eq!(
        (summary.rows, summary.accepted, summary.rejected_total),
        (6, 1, 5)
    );
}

#[test]
fn invalid_utf8_rejects_the_row_only() {
    let mut body = b"phone,name\n919812345678,A\xffB\n".to_vec();
    body.extend_from_slice(b"919812345679,Ben\n");
    let (rows, summary) = import_chunks(&[&body], None);
    let summary = summary.unwrap();
    assert_eq!(rejected(&summary), vec![(1, RowError::InvalidUtf8)]);
    assert_eq!(rows.len(), 1);
}

#[test]
fn header_aliases_are_trimmed_and_case_insensitive() {
    for header in ["phone", " Mobile ", "PHONE_NUMBER", "\"Phone\""] {
        let body = format!("{header}, Name ,Order Id\n919812345678,Asha,77\n");
        let (rows, _) = import(&body);
        assert_eq!(
            rows[0].2,
            vars(&[("Order Id", "77"), ("name", "Asha")]),
            "{header}"
        );
    }
}

#[test]
fn unnamed_columns_are_dropped() {
    let (rows, _) = import("phone,code,,\n919812345678,A1,stray,\n");
    assert_eq!(rows[0].2, vars(&[("code", "A1")]));
}

#[test]
fn a_header_without_phone_fails_as_soon_as_it_is_read() {
    let mut imp = CsvImport::new(None);
    let mut out = Vec::new();
    let e = imp.feed(b"name,code\n", &mut out).unwrap_err();
    assert_eq!(e, CsvError::MissingPhoneColumn);
    assert_eq!(e.code(), "missing_phone_column");
    // The error sticks: the rest of the body is not parsed.
    assert_eq!(
        imp.feed(b"919812345678,x\n", &mut out),
        Err(CsvError::MissingPhoneColumn)
    );
    assert_eq!(imp.finish(&mut out), Err(CsvError::MissingPhoneColumn));
    assert!(out.is_empty());
}

#[test]
fn duplicate_header_names_are_refused() {
    for (header, dup) in [
        ("phone,code,code", "code"),
        ("phone,code,Code ", "Code"),
        ("phone,mobile", "mobile"),
        ("phone,name,NAME", "NAME"),
    ] {
        let (_, result) =
            import_chunks(&[format!("{header}\n919812345678,a,b\n").as_bytes()], None);
        assert_eq!(
            result,
            Err(CsvError::DuplicateColumn(dup.to_owned())),
            "{header}"
        );
    }
    assert_eq!(
        CsvError::DuplicateColumn("x".into()).code(),
        "duplicate_column"
    );
}

#[test]
fn empty_and_header_only_files_are_refused() {
    for body in [
        "",
        "\u{feff}",
        "\n\r\n\n",
        "phone,name",
        "phone,name\n",
        "phone,name\n\n,\n  ,  \n",
    ] {
        let (_, result) = import_chunks(&[body.as_bytes()], None);
        assert_eq!(result, Err(CsvError::Empty), "{body:?}");
    }
    assert_eq!(CsvError::Empty.code(), "empty_csv");
    // A part of a BOM alone is data: a header without a phone column.
    let (_, result) = import_chunks(&[b"\xef\xbb"], None);
    assert!(matches!(result, Err(CsvError::InvalidHeader(_))));
}

#[test]
fn a_file_of_only_bad_rows_is_not_empty() {
    let (_, summary) = import("phone\nx\n");
    assert_eq!((summary.accepted, summary.rejected_total), (0, 1));
}

#[test]
fn the_header_may_have_up_to_1000_columns() {
    let header = |n: usize| {
        let mut h = String::from("phone");
        for i in 1..n {
            h.push_str(&format!(",c{i}"));
        }
        h
    };
    let row = format!("919812345678{}\n", ",v".repeat(MAX_COLUMNS - 1));
    let (rows, _) = import(&format!("{}\n{row}", header(MAX_COLUMNS)));
    assert_eq!(rows[0].2.len(), MAX_COLUMNS - 1);
    let (_, result) = import_chunks(&[format!("{}\n", header(MAX_COLUMNS + 1)).as_bytes()], None);
    assert_eq!(result, Err(CsvError::TooManyColumns));
    assert_eq!(CsvError::TooManyColumns.code(), "too_many_columns");
}

#[test]
fn a_field_over_4_kb_rejects_its_row() {
    let at_limit = "x".repeat(MAX_FIELD_BYTES);
    let over = "x".repeat(MAX_FIELD_BYTES + 1);
    let body = format!(
        "phone,name,note\n919812345678,a,{at_limit}\n919812345679,b,{over}\n919812345670,{over},{over}\n919812345671,d,e\n"
    );
    let (rows, summary) = import(&body);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 4]);
    assert_eq!(
        rejected(&summary),
        vec![(2, RowError::FieldTooLong), (3, RowError::FieldTooLong)]
    );
}

#[test]
fn a_huge_row_is_skipped_without_being_held() {
    let mut imp = CsvImport::new(None);
    let mut out = Vec::new();
    imp.feed(b"phone,name\n919812345678,\"", &mut out).unwrap();
    let block = vec![b'y'; 64 * 1024];
    for _ in 0..32 {
        imp.feed(&block, &mut out).unwrap();
    }
    // Two columns of at most 4 KB each: nothing beyond that is ever buffered.
    assert!(imp.buf.record.len() <= 2 * MAX_FIELD_BYTES);
    imp.feed(b"\"\n919812345679,ok\n", &mut out).unwrap();
    let summary = imp.finish(&mut out).unwrap();
    assert_eq!(rejected(&summary), vec![(1, RowError::FieldTooLong)]);
    assert_eq!(
        rows(&out),
        vec![(2, "+919812345679".to_owned(), vars(&[("name", "ok")]))]
    );
}

#[test]
fn a_row_with_many_more_fields_reports_how_many() {
    let row = format!("919812345678{}", ",v".repeat(39));
    let (_, summary) = import(&format!("phone,name\n{row}\n{row}"));
    let wrong = RowError::WrongColumnCount {
        expected: 2,
        found: 40,
    };
    assert_eq!(rejected(&summary), vec![(1, wrong.clone()), (2, wrong)]);
}

#[test]
fn an_unterminated_quote_is_a_rejected_row_not_a_swallowed_recipient() {
    // The quote swallows the next line: without the check, row 2 would be accepted with a
    // note holding the third recipient.
    let (rows, summary) =
        import("phone,note\n919812345678,ok\n919812345679,\"open\n919812345670,x\n");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rejected(&summary),
        vec![(2, RowError::UnterminatedQuote { lines: 2 })]
    );
    assert_eq!(
        summary.rejected[0].error.to_string(),
        "a quote opened in this row is never closed: this row and the 2 lines after it were \
         not imported"
    );
    // Too large to hold, it is still reported for its quote.
    let (rows, summary) = import(&format!(
        "phone,note\n919812345678,ok\n919812345679,\"open{}\n919812345670,x\n",
        "z".repeat(10_000)
    ));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rejected(&summary),
        vec![(2, RowError::UnterminatedQuote { lines: 2 })]
    );
    // Closed quotes, doubled quotes and a quote inside an unquoted field are not.
    let (rows, summary) = import(
        "phone,note\n919812345678,\"a \"\"b\"\"\nc\"\n919812345679,5\"7\n919812345670,\"x\"",
    );
    assert_eq!(rows.len(), 3, "{summary:?}");
    assert_eq!(summary.rejected_total, 0);
    assert_eq!(
        import_chunks(&[b"\"phone\n91981"], None).1,
        Err(CsvError::InvalidHeader("a quote in it is never closed"))
    );
}

#[test]
fn only_the_first_1000_rejections_are_kept() {
    let mut body = String::from("phone\n");
    for _ in 0..1_500 {
        body.push_str("bad\n");
    }
    let (_, summary) = import(&body);
    assert_eq!(summary.rejected.len(), MAX_REJECTIONS_KEPT);
    assert_eq!(summary.rejected_total, 1_500);
    assert_eq!(summary.rejected[999].row, 1_000);
}

#[test]
fn a_default_country_code_applies_to_national_numbers() {
    let body = b"phone\n098123 45678\n9812345679\n+447700900123\n";
    let (rows, summary) = import_chunks(&[body], Some("+91"));
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        vec!["+919812345678", "+919812345679", "+447700900123"]
    );
    assert!(summary.unwrap().rejected.is_empty());
}

#[test]
fn the_summary_serializes_as_the_api_reports_it() {
    let (_, summary) = import("phone\nbad\n919812345678\n");
    assert_eq!(
        serde_json::to_value(&summary).unwrap(),
        serde_json::json!({
            "rows": 2,
            "accepted": 1,
            "duplicates": 0,
            "rejected": [{"row": 1, "error": "`bad` is not a phone number"}],
            "rejected_total": 1,
        })
    );
}

/// A body with every feature the parser has state for: BOM, quotes, escaped quotes, quoted
/// line breaks, CRLF, blank lines, bad rows, a long field and no final line end.
fn tricky_body() -> Vec<u8> {
    let mut body = b"\xef\xbb\xbfphone,\"na,me\",name\r\n".to_vec();
    body.extend_from_slice(b"919812345678,\"a \"\"b\"\"\r\nc\",Asha\r\n\r\n");
    body.extend_from_slice(b"\n919812345679,x\n");
    body.extend_from_slice(b"bad,\"q\",r\n");
    body.extend_from_slice(b"+91 98123 45678,dup,Dup\n");
    body.extend_from_slice(b"919812345670,\xff,z\n");
    body.extend_from_slice(format!("919812345671,{},y\n", "l".repeat(5_000)).as_bytes());
    body.extend_from_slice(b"919812345672,\"last\",Zed");
    body
}

#[test]
fn one_byte_at_a_time_reads_like_one_chunk() {
    let body = tricky_body();
    let whole = import_chunks(&[&body], None);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(import_chunks(&bytes, None), whole);
    let summary = whole.1.unwrap();
    assert_eq!(
        (
            summary.rows,
            summary.accepted,
            summary.duplicates,
            summary.rejected_total
        ),
        (7, 2, 1, 4)
    );
}

proptest! {
    #[test]
    fn chunk_boundaries_never_change_the_result(
        mut cuts in proptest::collection::vec(0usize..10_000, 0..12)
    ) {
        let body = tricky_body();
        let whole = import_chunks(&[&body], None);
        for c in &mut cuts {
            *c %= body.len() + 1;
        }
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for c in cuts {
            chunks.push(&body[start..c]);
            start = c;
        }
        chunks.push(&body[start..]);
        prop_assert_eq!(import_chunks(&chunks, None), whole);
    }
}

/// Found by fuzzing (`fuzz/fuzz_targets/csv_import.rs`): a second BOM after the first is data
/// (a header naming no phone column), whether the file arrives whole or byte by byte.
#[test]
fn a_second_bom_is_data_however_the_body_is_cut() {
    let body: &[u8] = b"\xef\xbb\xbf\xef\xbb\xbf\n";
    let whole = import_chunks(&[body], None);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(import_chunks(&bytes, None), whole);
    assert_eq!(whole, (vec![], Err(CsvError::MissingPhoneColumn)));
}
