//! The one shape of every list: `?cursor=&limit=` in, `{"data": [...], "next_cursor": …}` out.
//!
//! `next_cursor` is a string to pass back as `cursor` for the next page, `null` on the last;
//! what it holds (an id, a sequence number) is the list's own business. `limit` is 1 to
//! [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent. Lists that took `after` or `before` before
//! there was one shape still take it, as another name for `cursor` (the README promised it).

use axum::Json;
use serde_json::{Value, json};

use super::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// The requested page size, or 400 `invalid_query`.
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_LIMIT}"),
        )),
    }
}

/// The cursor given, if any (`cursor=` is none).
pub fn cursor(given: Option<String>) -> Option<String> {
    given.filter(|c| !c.is_empty())
}

/// A cursor this list never hands out: 400 `invalid_query`.
pub fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        "cursor must be a next_cursor this list returned",
    )
}

/// A numeric cursor (a sequence number or row id), or 400.
pub fn numeric_cursor(given: Option<String>) -> Result<Option<i64>, ApiError> {
    cursor(given)
        .map(|c| c.parse::<i64>().map_err(|_| bad_cursor()))
        .transpose()
}

/// The cursor after `items`, read with `limit`: a full page names its last item (there may be
/// more), a short one is the last.
pub fn next<T>(items: &[T], limit: u32, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    (items.len() == limit as usize)
        .then(|| items.last().map(cursor_of))
        .flatten()
}

/// A page's body from items already shown.
pub fn body(data: Vec<Value>, next: Option<String>) -> Json<Value> {
    Json(json!({"data": data, "next_cursor": next}))
}

/// One page: `items` as read with `limit`, each shown by `show`.
pub fn page<T>(
    items: &[T],
    limit: u32,
    show: impl Fn(&T) -> Value,
    cursor_of: impl Fn(&T) -> String,
) -> Json<Value> {
    body(
        items.iter().map(show).collect(),
        next(items, limit, cursor_of),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_names_its_last_item() {
        let full = page(&[1, 2], 2, |n| json!(n), |n| n.to_string());
        assert_eq!(full.0, json!({"data": [1, 2], "next_cursor": "2"}));
        let short = page(&[1], 2, |n| json!(n), |n| n.to_string());
        assert_eq!(short.0, json!({"data": [1], "next_cursor": null}));
        let empty = page(&[] as &[i32], 2, |n| json!(n), |n| n.to_string());
        assert_eq!(empty.0, json!({"data": [], "next_cursor": null}));
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
        assert!(limit(Some(0)).is_err() && limit(Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(cursor(Some(String::new())), None);
        assert_eq!(numeric_cursor(Some("42".into())).unwrap(), Some(42));
        assert_eq!(numeric_cursor(None).unwrap(), None);
        assert!(numeric_cursor(Some("x".into())).is_err());
    }
}
