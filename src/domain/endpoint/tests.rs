//! Unit tests of endpoint parsing: ids, topics, URLs, secrets, descriptions, rotation.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

#[test]
fn ids_are_prefixed_uuid_v7_and_parsed_back() {
    let a = EndpointId::generate();
    let b = EndpointId::generate();
    assert!(
        a.as_str().starts_with("ep_") && a.as_str().len() == 35,
        "{a}"
    );
    assert_ne!(a, b);
    assert!(a < b, "v7 ids sort by creation");
    assert_eq!(EndpointId::parse(a.as_str()).unwrap(), a);
    let d = WebhookDeliveryId::generate();
    assert!(d.as_str().starts_with("dl_"));
    assert_eq!(WebhookDeliveryId::parse(d.as_str()).unwrap(), d);
    for bad in [
        String::new(),
        "ep_".into(),
        d.to_string(),             // a delivery id is not an endpoint id
        a.as_str().to_uppercase(), // not the canonical form
        format!("{a}0"),           // too long
        "ep_0190a5b2c3d44e5f8a9b0c1d2e3f4a5b".into(), // UUID v4, not v7
        "ep_0190a5b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(), // hyphenated
        "ep_zz90a5b2c3d47e5f8a9b0c1d2e3f4a5b".into(),
    ] {
        assert!(EndpointId::parse(&bad).is_err(), "{bad}");
    }
    assert!(EndpointId::parse("ep_0190a5b2c3d47e5f8a9b0c1d2e3f4a5b").is_ok());
}

#[test]
fn topics_are_known_deduplicated_and_bounded() {
    let t = Topics::parse(&["meta.delivery", "datagen.delivery", "meta.delivery"]).unwrap();
    assert_eq!(t.as_slice(), [Topic::DatagenDelivery, Topic::MetaDelivery]);
    assert_eq!(t.to_stored(), "datagen.delivery,meta.delivery");
    assert_eq!(Topics::from_stored(&t.to_stored()), t);
    assert!(t.accepts(Topic::MetaDelivery));
    assert!(!t.accepts(Topic::MetaUserMessage));
    let all = Topics::parse(&["*"]).unwrap();
    for topic in Topic::ALL {
        assert!(all.accepts(topic));
    }
    assert_eq!(
        Topics::parse(&["meta.delivery", "sms.delivery"]),
        Err(EndpointError::UnknownTopic("sms.delivery".into()))
    );
    assert!(matches!(
        Topics::parse(&["Meta.Delivery"]),
        Err(EndpointError::UnknownTopic(_))
    ));
    assert_eq!(Topics::parse::<&str>(&[]), Err(EndpointError::TopicCount));
    assert_eq!(Topics::parse(&["*"; 11]), Err(EndpointError::TopicCount));
    assert!(Topics::parse(&["*"; 10]).is_ok());
    assert_eq!(
        Topics::from_stored("meta.delivery,retired.topic").as_slice(),
        [Topic::MetaDelivery],
        "a stored word no longer known is skipped"
    );
}

#[test]
fn urls_need_http_a_host_and_no_credentials() {
    for good in [
        "https://example.com/hooks/wa",
        "http://example.com",
        "https://hooks.example.com:8443/x?y=1",
        "http://127.0.0.1:9000/x",
        "http://[::1]/",
    ] {
        assert!(WebhookUrl::parse(good).is_ok(), "{good}");
    }
    assert_eq!(
        WebhookUrl::parse("http://Example.COM").unwrap().as_str(),
        "http://example.com/",
        "stored normalized"
    );
    for bad in [
        "",
        "example.com/hook",
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://",
        "https://user:pass@example.com/",
        "https://user@example.com/",
        "https://exa mple.com/",
    ] {
        assert!(
            matches!(WebhookUrl::parse(bad), Err(EndpointError::InvalidUrl(_))),
            "{bad}"
        );
    }
    let long = format!("https://example.com/{}", "a".repeat(2048));
    assert!(WebhookUrl::parse(&long).is_err());
    let fits = format!("https://example.com/{}", "a".repeat(2000));
    assert!(WebhookUrl::parse(&fits).is_ok());
}

#[test]
fn host_and_port_of_a_url() {
    let u = WebhookUrl::parse("https://example.com/x").unwrap();
    assert_eq!(
        u.host_and_port(),
        Some((url::Host::Domain("example.com".into()), 443))
    );
    let u = WebhookUrl::parse("http://[::1]:8080/").unwrap();
    assert_eq!(
        u.host_and_port(),
        Some((url::Host::Ipv6("::1".parse().unwrap()), 8080))
    );
    // The url crate reads the shorthand IPv4 forms a resolver would: no hiding 127.0.0.1.
    let u = WebhookUrl::parse("http://0x7f.1/").unwrap();
    assert_eq!(
        u.host_and_port(),
        Some((url::Host::Ipv4("127.0.0.1".parse().unwrap()), 80))
    );
}

#[test]
fn secrets_are_whsec_base64_of_24_to_64_bytes() {
    let g = SharedSecret::generate();
    let decoded = BASE64
        .decode(g.expose().strip_prefix("whsec_").unwrap())
        .unwrap();
    assert_eq!(decoded.len(), 32);
    assert_ne!(g, SharedSecret::generate());
    assert_eq!(SharedSecret::parse(g.expose()).unwrap(), g);
    let of = |n: usize| format!("whsec_{}", BASE64.encode(vec![7u8; n]));
    assert!(SharedSecret::parse(&of(24)).is_ok());
    assert!(SharedSecret::parse(&of(64)).is_ok());
    for bad in [
        of(23),
        of(65),
        BASE64.encode([7u8; 32]),                // no prefix
        format!("whsec_{}", "!".repeat(44)),     // not base64
        of(32).trim_end_matches('=').to_owned(), // padding missing
        "whsec_".into(),
    ] {
        assert_eq!(
            SharedSecret::parse(&bad),
            Err(EndpointError::InvalidSecret),
            "{bad}"
        );
    }
    let shown = format!("{g:?}");
    assert!(!shown.contains(g.expose()) && shown.contains("redacted"));
}

#[test]
fn descriptions_are_bounded_plain_text() {
    let parse = |d: &str| EndpointIn::parse("https://example.com/", &["*"], Some(d), None);
    assert_eq!(
        parse("  CRM  ").unwrap().description.as_deref(),
        Some("CRM")
    );
    assert_eq!(parse("").unwrap().description, None);
    assert!(parse(&"é".repeat(500)).is_ok());
    assert_eq!(
        parse(&"é".repeat(501)).unwrap_err(),
        EndpointError::InvalidDescription
    );
    assert_eq!(
        parse("line\nbreak").unwrap_err(),
        EndpointError::InvalidDescription
    );
    assert_eq!(
        parse("nul\0").unwrap_err(),
        EndpointError::InvalidDescription
    );
}

#[test]
fn create_generates_a_secret_unless_given() {
    let project = ProjectId::parse("acme").unwrap();
    let now = Timestamp::from_millis(1_000);
    let input = EndpointIn::parse("https://example.com/", &["*"], None, None).unwrap();
    let e = Endpoint::create(project.clone(), input, now);
    assert!(e.enabled && e.disabled_reason.is_none() && e.previous_secret.is_none());
    assert!(e.secret.expose().starts_with("whsec_"));
    assert_eq!((e.created_at, e.updated_at), (now, now));
    let given = SharedSecret::generate();
    let input =
        EndpointIn::parse("https://example.com/", &["*"], None, Some(given.expose())).unwrap();
    assert_eq!(Endpoint::create(project, input, now).secret, given);
}

#[test]
fn the_previous_secret_signs_until_it_expires() {
    let project = ProjectId::parse("acme").unwrap();
    let input = EndpointIn::parse("https://example.com/", &["*"], None, None).unwrap();
    let mut e = Endpoint::create(project, input, Timestamp::from_millis(0));
    let old = e.secret.clone();
    e.secret = SharedSecret::generate();
    e.previous_secret = Some(PreviousSecret {
        secret: old.clone(),
        expires_at: Timestamp::from_millis(5_000),
    });
    assert_eq!(
        e.signing_secrets(Timestamp::from_millis(4_999)),
        vec![&e.secret, &old],
        "new first"
    );
    assert_eq!(
        e.signing_secrets(Timestamp::from_millis(5_000)),
        vec![&e.secret]
    );
    assert!(e.active_previous(Timestamp::from_millis(5_000)).is_none());
}

#[test]
fn patches_parse_each_given_field() {
    let p = EndpointPatch::parse::<&str>(None, None, None, None).unwrap();
    assert!(p.url.is_none() && p.topics.is_none() && p.description.is_none());
    let p = EndpointPatch::parse(
        Some("https://example.org/new"),
        Some(&["meta.user_message"][..]),
        Some(""),
        Some(true),
    )
    .unwrap();
    assert_eq!(p.url.unwrap().as_str(), "https://example.org/new");
    assert_eq!(p.topics.unwrap().as_slice(), [Topic::MetaUserMessage]);
    assert_eq!(p.description, Some(None), "an empty description clears it");
    assert_eq!(p.enabled, Some(true));
    assert!(EndpointPatch::parse::<&str>(Some("ftp://x/"), None, None, None).is_err());
    assert!(EndpointPatch::parse(None, Some(&["nope"][..]), None, None).is_err());
}

#[test]
fn delivery_statuses_round_trip() {
    for s in [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Dead,
    ] {
        assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(DeliveryStatus::parse("failed"), None);
}

#[test]
fn delivery_ids_sort_by_creation_time_below_their_bound() {
    let before = Timestamp::now();
    let id = WebhookDeliveryId::generate();
    let after = Timestamp::from_millis(before.millis() + 1000);
    assert!(id.as_str() >= WebhookDeliveryId::bound_before(before).as_str());
    assert!(id.as_str() < WebhookDeliveryId::bound_before(after).as_str());
}
