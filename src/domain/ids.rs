//! Typed, time-ordered ids (`<prefix>` + UUID v7) shared by endpoints, deliveries and campaigns.

/// `<prefix>` + a UUID v7 in its simple form (32 lowercase hex digits): time-ordered, so
/// ordering by id is ordering by creation, which keeps cursors and indexes cheap.
pub(crate) fn new_prefixed(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

pub(crate) fn parse_prefixed(prefix: &str, s: &str) -> Option<String> {
    let ok = s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && uuid::Uuid::parse_str(rest).is_ok_and(|u| u.get_version_num() == 7)
    });
    if ok { Some(s.to_owned()) } else { None }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $err:ident::$variant:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> $name {
                $name($crate::domain::ids::new_prefixed($prefix))
            }

            pub fn parse(s: &str) -> Result<$name, $err> {
                $crate::domain::ids::parse_prefixed($prefix, s)
                    .map($name)
                    .ok_or_else(|| $err::$variant(s.chars().take(64).collect()))
            }

            /// For values read back from the store, which only ever holds parsed ids.
            pub fn from_trusted(s: String) -> $name {
                $name(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use prefixed_id;
