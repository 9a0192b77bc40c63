//! Tests of campaign request parsing: defaults, tolerant spellings, and one error code per
//! kind of bad field.

use serde_json::json;

use super::*;

fn project() -> ProjectId {
    ProjectId::parse("acme").unwrap()
}

const NOW: Timestamp = Timestamp::from_millis(1_732_700_000_000);

fn parse(body: Value) -> Result<NewCampaign, CampaignError> {
    let input: CampaignIn = serde_json::from_value(body).unwrap();
    input.parse(project(), NOW, Some("91"))
}

fn minimal() -> Value {
    json!({
        "name": "Diwali offer",
        "template_id": "diwali_2024",
        "provider": "meta",
        "sender": "+919812345678",
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut body = minimal();
    body[field] = value;
    body
}

fn code(body: Value) -> &'static str {
    parse(body).unwrap_err().code()
}

#[test]
fn a_minimal_request_gets_the_defaults() {
    let c = parse(minimal()).unwrap();
    assert_eq!(c.project_id, project());
    assert_eq!(c.name, "Diwali offer");
    assert_eq!(c.template_id, "diwali_2024");
    assert_eq!(c.language, "en");
    assert_eq!(c.provider, SendProvider::Meta);
    assert_eq!(c.sender.as_str(), "+919812345678");
    assert!(c.params.is_empty());
    assert_eq!(c.media, None);
    assert_eq!(c.schedule_time, None);
    assert_eq!(c.rate_limit_per_second, None);
    assert_eq!(c.created_at, NOW);
    assert!(CampaignId::parse(c.id.as_str()).is_ok());
}

#[test]
fn a_full_request_is_read_and_normalised() {
    let c = parse(json!({
        "name": "  Diwali  ",
        "template_id": "diwali_2024",
        "language": "pt-br",
        "provider": " AiSensy-Direct ",
        "sender": "098123 45678",
        "params": [{"column": " name ", "fallback": "there"}, {"column": "code"}],
        "media": {"type": "Image", "url": " https://cdn.example.com/a.png ", "filename": "a.png"},
        "schedule_time": "2024-11-27T09:38:20Z",
        "rate_limit_per_second": "40",
    }))
    .unwrap();
    assert_eq!(c.name, "Diwali");
    assert_eq!(c.language, "pt_BR");
    assert_eq!(c.provider, SendProvider::AisensyDirect);
    assert_eq!(c.sender.as_str(), "+919812345678");
    assert_eq!(
        c.params,
        [
            ParamSpec {
                column: "name".into(),
                fallback: Some("there".into())
            },
            ParamSpec {
                column: "code".into(),
                fallback: None
            },
        ]
    );
    assert_eq!(
        c.media,
        Some(Media {
            kind: "image".into(),
            url: "https://cdn.example.com/a.png".into(),
            filename: Some("a.png".into()),
        })
    );
    assert_eq!(
        c.schedule_time,
        Some(Timestamp::from_millis(1_732_700_300_000))
    );
    assert_eq!(c.rate_limit_per_second, Some(40));
}

#[test]
fn unknown_fields_and_wrong_types_are_refused_while_reading() {
    let read = |body: Value| {
        serde_json::from_value::<CampaignIn>(body)
            .unwrap_err()
            .to_string()
    };
    assert!(read(with("schedule_tme", json!(1))).contains("unknown field `schedule_tme`"));
    let nested = with("params", json!([{"column": "name", "default": "x"}]));
    assert!(read(nested).contains("unknown field `default`"));
    for field in ["schedule_time", "rate_limit_per_second"] {
        for wrong in [json!(true), json!([1]), json!({})] {
            let e = read(with(field, wrong.clone()));
            assert!(
                e.contains("expected a number or a string"),
                "{field} {wrong}: {e}"
            );
        }
    }
    // Numbers and texts go on to their own checks, with their own codes.
    assert_eq!(
        code(with("rate_limit_per_second", json!("fast"))),
        "invalid_rate_limit"
    );
}

#[test]
fn missing_required_fields_are_named() {
    for field in ["name", "template_id", "provider", "sender"] {
        for absent in [Value::Null, json!("  ")] {
            let e = parse(with(field, absent)).unwrap_err();
            assert_eq!(e, CampaignError::Missing(field));
            assert_eq!(e.code(), "missing_field");
            assert_eq!(e.to_string(), format!("`{field}` is required"));
        }
    }
}

#[test]
fn name_and_template_have_limits() {
    assert!(parse(with("name", json!("n".repeat(200)))).is_ok());
    assert_eq!(code(with("name", json!("n".repeat(201)))), "invalid_name");
    assert_eq!(code(with("name", json!("a\u{7}b"))), "invalid_name");
    assert!(parse(with("template_id", json!("t".repeat(512)))).is_ok());
    assert_eq!(
        code(with("template_id", json!("t".repeat(513)))),
        "invalid_template_id"
    );
    assert_eq!(
        code(with("template_id", json!("a\nb"))),
        "invalid_template_id"
    );
}

#[test]
fn languages_look_like_metas_codes() {
    for (given, want) in [
        ("en", "en"),
        ("en_US", "en_US"),
        ("EN-us", "en_US"),
        ("fil", "fil"),
        ("", "en"),
    ] {
        let c = parse(with("language", json!(given))).unwrap();
        assert_eq!(c.language, want, "{given}");
    }
    for bad in [
        "e", "english", "en_", "en_USA", "en_U1", "12", "en US", "en_US_x",
    ] {
        assert_eq!(
            code(with("language", json!(bad))),
            "invalid_language",
            "{bad}"
        );
    }
}

#[test]
fn providers_are_the_four_known_ones() {
    for p in SendProvider::ALL {
        let c = parse(with("provider", json!(p.as_str()))).unwrap();
        assert_eq!(c.provider, p);
    }
    let e = parse(with("provider", json!("twilio"))).unwrap_err();
    assert_eq!(e.code(), "unknown_provider");
    assert_eq!(
        e.to_string(),
        "`twilio` is not a provider (aisensy, datagen, aisensy_direct or meta)"
    );
}

#[test]
fn the_sender_must_be_a_phone_number() {
    assert_eq!(
        code(with("sender", json!("not a number"))),
        "invalid_sender"
    );
    assert_eq!(code(with("sender", json!("12345"))), "invalid_sender");
    let input: CampaignIn = serde_json::from_value(with("sender", json!("09812345678"))).unwrap();
    // Without a default country code a national number cannot be read.
    assert_eq!(
        input.parse(project(), NOW, None).unwrap_err().code(),
        "invalid_sender"
    );
}

#[test]
fn params_are_validated() {
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"column": format!("c{i}")}))
        .collect();
    assert_eq!(code(with("params", json!(too_many))), "invalid_params");
    assert_eq!(
        code(with("params", json!([{"column": ""}]))),
        "invalid_params"
    );
}

#[test]
fn media_is_validated() {
    for bad in [
        json!({"type": "sticker", "url": "https://x.example/a.webp"}),
        json!({"url": "ftp://x.example/a.png"}),
        json!({"url": "/relative/a.png"}),
        json!({"url": format!("https://x.example/{}", "a".repeat(2048))}),
        json!({"url": "https://x.example/a.pdf", "filename": "f".repeat(256)}),
    ] {
        assert_eq!(code(with("media", bad.clone())), "invalid_media", "{bad}");
    }
    // `type` defaults to image; a blank filename is none.
    let c = parse(with(
        "media",
        json!({"url": "http://x.example/a.png", "filename": " "}),
    ))
    .unwrap();
    assert_eq!(
        c.media,
        Some(Media {
            kind: "image".into(),
            url: "http://x.example/a.png".into(),
            filename: None
        })
    );
}

#[test]
fn schedule_times_are_unix_seconds_or_rfc3339() {
    let t = Some(Timestamp::from_millis(1_732_700_300_000));
    for v in [
        json!(1_732_700_300),
        json!("1732700300"),
        json!(" 1732700300 "),
        json!("2024-11-27T09:38:20Z"),
        json!("2024-11-27T15:08:20+05:30"),
    ] {
        assert_eq!(schedule_time(Some(&v)), Ok(t), "{v}");
    }
    assert_eq!(
        schedule_time(Some(&json!(1_732_700_300.25))),
        Ok(Some(Timestamp::from_millis(1_732_700_300_250)))
    );
    for none in [None, Some(&Value::Null), Some(&json!(""))] {
        assert_eq!(schedule_time(none), Ok(None));
    }
    // In the past is fine: it starts at once.
    assert_eq!(
        schedule_time(Some(&json!(1))),
        Ok(Some(Timestamp::from_millis(1_000)))
    );
    for bad in [
        json!(0),
        json!(-5),
        json!("1732700300000"),
        json!(1_732_700_300_000_i64),
        json!("tomorrow"),
        json!("1969-12-31T23:59:59Z"),
        json!("NaN"),
        json!(true),
        json!([1]),
    ] {
        let e = schedule_time(Some(&bad)).unwrap_err();
        assert_eq!(e.code(), "invalid_schedule_time", "{bad}");
    }
    assert_eq!(
        code(with("schedule_time", json!("soon"))),
        "invalid_schedule_time"
    );
}

#[test]
fn rate_limits_are_1_to_1000() {
    for (v, want) in [
        (json!(1), Some(1)),
        (json!(1000), Some(1000)),
        (json!("80"), Some(80)),
        (Value::Null, None),
    ] {
        assert_eq!(rate_limit(Some(&v)), Ok(want), "{v}");
    }
    for bad in [
        json!(0),
        json!(1001),
        json!(-1),
        json!(2.5),
        json!("fast"),
        json!(u64::MAX),
        json!({}),
    ] {
        assert_eq!(
            rate_limit(Some(&bad)).unwrap_err().code(),
            "invalid_rate_limit",
            "{bad}"
        );
    }
}

#[test]
fn every_error_code_is_snake_case() {
    let errors = [
        CampaignError::InvalidId("x".into()),
        CampaignError::Invalid("x".into()),
        CampaignError::Missing("name"),
        CampaignError::InvalidName("x".into()),
        CampaignError::InvalidTemplateId("x".into()),
        CampaignError::InvalidLanguage("x".into()),
        CampaignError::UnknownProvider("x".into()),
        CampaignError::InvalidSender("x".into()),
        CampaignError::InvalidParams("x".into()),
        CampaignError::InvalidMedia("x".into()),
        CampaignError::InvalidScheduleTime("x".into()),
        CampaignError::InvalidRateLimit("x".into()),
    ];
    for e in errors {
        let c = e.code();
        assert!(
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c}"
        );
    }
}
