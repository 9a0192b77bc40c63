//! What every page shares: the header (who is signed in, the sign-out form), rendering, and the
//! error page, whose messages are written for the people who use the dashboard.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::Ui;
use super::api::Refused;
use super::session::{Session, Who};

/// The header of a page.
#[derive(Clone, Default)]
pub struct Chrome {
    pub signed_in: bool,
    pub who: String,
    pub admin: bool,
    pub csrf: String,
}

impl Chrome {
    pub fn of(s: &Session, ui: &Ui) -> Chrome {
        let (who, admin) = match &s.who {
            Who::Project(p) => (format!("project {p}"), false),
            Who::Admin => ("admin".to_owned(), true),
        };
        Chrome {
            signed_in: true,
            who,
            admin,
            csrf: s.csrf(&ui.key),
        }
    }
}

pub fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
}

pub fn error_page(status: StatusCode, chrome: Option<Chrome>, message: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let page = ErrorPage {
        chrome: chrome.unwrap_or_default(),
        title,
        message,
    };
    (status, html(&page)).into_response()
}

/// An API refusal shown as a page: a 404 says plainly that nothing is there (another
/// project's data is a 404 too, and must look the same).
pub fn refused(chrome: Chrome, r: Refused) -> Response {
    let message = match r.status {
        StatusCode::NOT_FOUND => {
            "There is nothing here: it was deleted, or it belongs to another project.".to_owned()
        }
        s if s.is_server_error() => {
            "The gateway could not do this just now. Try again in a moment.".to_owned()
        }
        _ => r.message,
    };
    error_page(r.status, Some(chrome), &message)
}

/// Back to a page with a notice (`?done=`) or a problem (`?error=`) for it to show.
pub fn back(path: &str, key: &str, text: &str) -> Response {
    let text = percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC);
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}{key}={text}")).into_response()
}

/// The notice and problem a page was sent back with.
#[derive(Default, serde::Deserialize)]
pub struct Flash {
    pub done: Option<String>,
    pub error: Option<String>,
}
