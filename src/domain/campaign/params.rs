//! Template parameters: checking a campaign's parameter list, and filling it in from one
//! recipient's variables.

use super::{CampaignError, ParamSpec, Variables};

/// Parameters a template may take (Meta's body allows no more than this in practice).
pub const MAX_PARAMS: usize = 20;
/// Characters of a parameter's column name.
pub const MAX_COLUMN_CHARS: usize = 64;
/// Characters of a parameter's fallback.
pub const MAX_FALLBACK_CHARS: usize = 1_024;

/// A recipient has no value for a parameter that has no fallback: it is skipped, not sent a
/// template with a hole in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for template parameter {position} (column `{column}`) and no fallback")]
pub struct MissingParam {
    /// 1-based, as template placeholders (`{{1}}`) count.
    pub position: usize,
    pub column: String,
}

/// The template's parameters for one recipient, in order: the recipient's value of each
/// spec's column when it has a non-blank one, else the spec's fallback. A column is found by
/// its exact name first, then in any case (the CSV import refuses headers that differ only in
/// case, so this finds at most one).
pub fn render(params: &[ParamSpec], vars: &Variables) -> Result<Vec<String>, MissingParam> {
    params
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            lookup(vars, &spec.column)
                .or(spec.fallback.as_deref())
                .map(str::to_owned)
                .ok_or_else(|| MissingParam {
                    position: i + 1,
                    column: spec.column.clone(),
                })
        })
        .collect()
}

fn lookup<'a>(vars: &'a Variables, column: &str) -> Option<&'a str> {
    let value = match vars.get(column) {
        Some(v) => Some(v),
        None => vars
            .iter()
            .find(|(k, _)| same_ignoring_case(k, column))
            .map(|(_, v)| v),
    };
    value.map(String::as_str).filter(|v| !v.trim().is_empty())
}

fn same_ignoring_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Checks a parameter list from the API and trims its column names (as the CSV header's are):
/// at most [`MAX_PARAMS`] specs, each naming a column of 1 to [`MAX_COLUMN_CHARS`] characters,
/// with a fallback, if any, of 1 to [`MAX_FALLBACK_CHARS`]. A blank fallback is refused rather
/// than sent: BSPs reject empty parameters, so it would fail every recipient lacking the value.
pub fn validate(params: Vec<ParamSpec>) -> Result<Vec<ParamSpec>, CampaignError> {
    if params.len() > MAX_PARAMS {
        return Err(CampaignError::InvalidParams(format!(
            "at most {MAX_PARAMS} parameters are allowed, got {}",
            params.len()
        )));
    }
    params
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let n = i + 1;
            let bad = |why: &str| CampaignError::InvalidParams(format!("parameter {n}: {why}"));
            let column = spec.column.trim();
            if column.is_empty() {
                return Err(bad("`column` is empty"));
            }
            if column.chars().count() > MAX_COLUMN_CHARS {
                return Err(bad("`column` is longer than 64 characters"));
            }
            if let Some(fallback) = &spec.fallback {
                if fallback.trim().is_empty() {
                    return Err(bad("`fallback` is blank; leave it out instead"));
                }
                if fallback.chars().count() > MAX_FALLBACK_CHARS {
                    return Err(bad("`fallback` is longer than 1024 characters"));
                }
            }
            Ok(ParamSpec {
                column: column.to_owned(),
                fallback: spec.fallback,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(column: &str, fallback: Option<&str>) -> ParamSpec {
        ParamSpec {
            column: column.to_owned(),
            fallback: fallback.map(str::to_owned),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn values_come_from_columns_in_order_else_fallbacks() {
        let params = [
            spec("name", Some("there")),
            spec("code", None),
            spec("city", Some("your city")),
        ];
        let got = render(&params, &vars(&[("code", "A1"), ("name", "Asha")])).unwrap();
        assert_eq!(got, ["Asha", "A1", "your city"]);
        // A blank value counts as none.
        let got = render(&params, &vars(&[("code", "A1"), ("name", "  ")])).unwrap();
        assert_eq!(got, ["there", "A1", "your city"]);
        assert_eq!(render(&[], &vars(&[])).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_value_without_fallback_names_its_column() {
        let params = [spec("name", Some("there")), spec("code", None)];
        let e = render(&params, &vars(&[("name", "Asha")])).unwrap_err();
        assert_eq!(
            e,
            MissingParam {
                position: 2,
                column: "code".to_owned()
            }
        );
        assert_eq!(
            e.to_string(),
            "no value for template parameter 2 (column `code`) and no fallback"
        );
    }

    #[test]
    fn columns_are_found_in_any_case_exact_first() {
        let v = vars(&[("Order Id", "77"), ("Ünit", "5")]);
        assert_eq!(
            render(&[spec("order id", None), spec("ünit", None)], &v).unwrap(),
            ["77", "5"]
        );
        let v = vars(&[("Code", "upper"), ("code", "lower")]);
        assert_eq!(render(&[spec("code", None)], &v).unwrap(), ["lower"]);
    }

    #[test]
    fn validation_trims_columns_and_enforces_limits() {
        let ok = validate(vec![spec(" name ", Some("there")), spec("code", None)]).unwrap();
        assert_eq!(ok, [spec("name", Some("there")), spec("code", None)]);
        assert!(validate(vec![]).unwrap().is_empty());
        assert_eq!(validate(vec![spec("c", None); 20]).unwrap().len(), 20);
        assert!(validate(vec![spec(&"c".repeat(64), Some(&"f".repeat(1024)))]).is_ok());

        for bad in [
            vec![spec("c", None); 21],
            vec![spec("ok", None), spec("  ", None)],
            vec![spec(&"c".repeat(65), None)],
            vec![spec("c", Some(&"f".repeat(1025)))],
            vec![spec("c", Some(" "))],
        ] {
            let e = validate(bad.clone()).unwrap_err();
            assert_eq!(e.code(), "invalid_params", "{bad:?}");
        }
        let e = validate(vec![spec("ok", None), spec("", None)]).unwrap_err();
        assert_eq!(e.to_string(), "parameter 2: `column` is empty");
    }
}
