//! The `POST /project/campaign` request: its JSON shape, and its parsing into a valid
//! [`NewCampaign`]. Whether the project owns the sender number is the HTTP layer's check.

use serde::Deserialize;
use serde_json::Value;

use super::{CampaignError, CampaignId, Media, NewCampaign, ParamSpec, UnknownPolicy, params};
use crate::domain::phone::PhoneNumber;
use crate::domain::project::ProjectId;
use crate::domain::providers::send::SendProvider;
use crate::domain::time::Timestamp;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TEMPLATE_ID_CHARS: usize = 512;
pub const MAX_RATE_PER_SECOND: u32 = 1_000;
pub const DEFAULT_LANGUAGE: &str = "en";
const MAX_MEDIA_URL_CHARS: usize = 2_048;
const MAX_FILENAME_CHARS: usize = 255;

/// The request body. Every field is optional here so that a missing one gets its own error
/// code from [`CampaignIn::parse`] rather than a generic JSON error. An unknown field is
/// refused, as on every route: a misspelt optional field (`schedule_tme`) would otherwise be
/// dropped without a word, and the campaign start at once.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignIn {
    pub name: Option<String>,
    pub template_id: Option<String>,
    pub language: Option<String>,
    pub provider: Option<String>,
    pub sender: Option<String>,
    pub params: Option<Vec<ParamSpec>>,
    pub media: Option<Media>,
    /// Unix seconds (a number or a numeric string) or an RFC 3339 time.
    #[serde(default, deserialize_with = "number_or_text")]
    pub schedule_time: Option<Value>,
    /// A number, or a numeric string.
    #[serde(default, deserialize_with = "number_or_text")]
    pub rate_limit_per_second: Option<Value>,
    /// `hold` (the default) or `resend`: see [`UnknownPolicy`].
    pub unknown_policy: Option<String>,
}

impl CampaignIn {
    /// Checks every field and builds the campaign, `draft` from `now`. `default_cc` reads a
    /// sender written without its country code (see [`PhoneNumber::parse_with_default`]).
    pub fn parse(
        self,
        project: ProjectId,
        now: Timestamp,
        default_cc: Option<&str>,
    ) -> Result<NewCampaign, CampaignError> {
        let name = text(
            self.name,
            "name",
            MAX_NAME_CHARS,
            CampaignError::InvalidName,
        )?;
        let template_id = text(
            self.template_id,
            "template_id",
            MAX_TEMPLATE_ID_CHARS,
            CampaignError::InvalidTemplateId,
        )?;
        let language = language(self.language.as_deref())?;
        let provider = provider(self.provider.as_deref())?;
        let sender = self
            .sender
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or(CampaignError::Missing("sender"))?;
        let sender = PhoneNumber::parse_with_default(sender, default_cc)
            .map_err(|e| CampaignError::InvalidSender(format!("sender: {e}")))?;
        let params = params::validate(self.params.unwrap_or_default())?;
        let media = self.media.map(media).transpose()?;
        let schedule_time = schedule_time(self.schedule_time.as_ref())?;
        let rate_limit_per_second = rate_limit(self.rate_limit_per_second.as_ref())?;
        let unknown_policy = match self.unknown_policy.as_deref().map(str::trim) {
            None | Some("") => UnknownPolicy::default(),
            Some(p) => UnknownPolicy::parse(p).ok_or_else(|| {
                CampaignError::InvalidUnknownPolicy(format!(
                    "`unknown_policy` must be `hold` or `resend`, not `{}`",
                    p.chars().take(40).collect::<String>()
                ))
            })?,
        };
        Ok(NewCampaign {
            id: CampaignId::generate(),
            project_id: project,
            name,
            template_id,
            language,
            provider,
            sender,
            params,
            media,
            schedule_time,
            rate_limit_per_second,
            unknown_policy,
            created_at: now,
        })
    }
}

/// A required text field, trimmed: present, 1 to `max` characters, no control characters.
fn text(
    value: Option<String>,
    field: &'static str,
    max: usize,
    invalid: fn(String) -> CampaignError,
) -> Result<String, CampaignError> {
    let value = value.unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return Err(CampaignError::Missing(field));
    }
    if value.chars().count() > max {
        return Err(invalid(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!("`{field}` contains control characters")));
    }
    Ok(value.to_owned())
}

/// A template language as Meta writes it: `en`, `fil`, `en_US`, `pt_BR`. `en-us` is
/// accepted and written `en_US`. Absent or blank: [`DEFAULT_LANGUAGE`].
fn language(raw: Option<&str>) -> Result<String, CampaignError> {
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Ok(DEFAULT_LANGUAGE.to_owned());
    }
    let (lang, region) = match raw.split_once(['_', '-']) {
        Some((lang, region)) => (lang, Some(region)),
        None => (raw, None),
    };
    let letters = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
    };
    if !letters(lang, 2..=3) || region.is_some_and(|r| !letters(r, 2..=2)) {
        return Err(CampaignError::InvalidLanguage(format!(
            "`{}` is not a template language like `en` or `pt_BR`",
            raw.chars().take(32).collect::<String>()
        )));
    }
    let mut code = lang.to_ascii_lowercase();
    if let Some(region) = region {
        code.push('_');
        code.push_str(&region.to_ascii_uppercase());
    }
    Ok(code)
}

/// `meta`, `datagen`, ... in any case, `aisensy-direct` for `aisensy_direct`.
fn provider(raw: Option<&str>) -> Result<SendProvider, CampaignError> {
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Err(CampaignError::Missing("provider"));
    }
    SendProvider::parse(&raw.to_ascii_lowercase().replace('-', "_"))
        .ok_or_else(|| CampaignError::UnknownProvider(raw.chars().take(64).collect()))
}

/// `type` is `image`, `video` or `document`; `url` an absolute http(s) URL. Whether the BSP can
/// fetch it is the BSP's to say.
fn media(m: Media) -> Result<Media, CampaignError> {
    let bad = |why: &str| CampaignError::InvalidMedia(format!("media: {why}"));
    let kind = m.kind.trim().to_ascii_lowercase();
    if !matches!(kind.as_str(), "image" | "video" | "document") {
        return Err(bad("`type` must be image, video or document"));
    }
    let url = m.url.trim();
    if url.chars().count() > MAX_MEDIA_URL_CHARS {
        return Err(bad("`url` is longer than 2048 characters"));
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(bad("`url` must be an absolute http or https URL")),
    }
    let filename = match m.filename.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(f) if f.chars().count() > MAX_FILENAME_CHARS || f.chars().any(char::is_control) => {
            return Err(bad(
                "`filename` must be at most 255 characters, without control characters",
            ));
        }
        Some(f) => Some(f.to_owned()),
    };
    Ok(Media {
        kind,
        url: url.to_owned(),
        filename,
    })
}

/// A field that takes a number or a text (`null` is absent). Any other JSON type is the
/// wrong type, refused while reading the body like every other wrong type; what the number or
/// text means is checked later, with its own error code.
pub fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::Number(_) | Value::String(_))) => Ok(Some(v)),
        Some(other) => Err(serde::de::Error::invalid_type(
            match &other {
                Value::Bool(b) => serde::de::Unexpected::Bool(*b),
                Value::Array(_) => serde::de::Unexpected::Seq,
                _ => serde::de::Unexpected::Map,
            },
            &"a number or a string",
        )),
    }
}

/// When a campaign (or a one-shot send) should start: Unix seconds, as a number (fractions
/// kept to the millisecond) or a numeric string, or an RFC 3339 time. `null` or `""`: no
/// schedule, start when asked. A time in the past is valid and means "at once". Milliseconds
/// are refused, not guessed: they would read as a time after the year 9999.
pub fn schedule_time(value: Option<&Value>) -> Result<Option<Timestamp>, CampaignError> {
    let bad = || {
        CampaignError::InvalidScheduleTime(
            "`schedule_time` must be Unix seconds or an RFC 3339 time between 1970 and 9999"
                .to_owned(),
        )
    };
    let seconds = |s: f64| {
        let ms = s * 1000.0;
        (ms.is_finite() && ms >= 1.0 && ms <= Timestamp::MAX.millis() as f64)
            .then(|| Timestamp::from_millis(ms.floor() as i64))
    };
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().and_then(seconds),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(n) => seconds(n),
            Err(_) => Timestamp::parse_rfc3339(s)
                .filter(|t| (1..=Timestamp::MAX.millis()).contains(&t.millis())),
        },
        Some(_) => None,
    };
    parsed.map(Some).ok_or_else(bad)
}

/// Sends per second for the campaign, 1 to [`MAX_RATE_PER_SECOND`]; absent: the number's own.
pub fn rate_limit(value: Option<&Value>) -> Result<Option<u32>, CampaignError> {
    let rate = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    rate.and_then(|r| u32::try_from(r).ok())
        .filter(|r| (1..=MAX_RATE_PER_SECOND).contains(r))
        .map(Some)
        .ok_or_else(|| {
            CampaignError::InvalidRateLimit(format!(
                "`rate_limit_per_second` must be a whole number from 1 to {MAX_RATE_PER_SECOND}"
            ))
        })
}

#[cfg(test)]
mod tests;
