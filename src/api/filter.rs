//! The filters of `GET /v1/members`, parsed from the query string, and the `?name=` glob.
//!
//! Every parameter is checked: an unknown one, a bad value, or a second `name` is a 400
//! naming the parameter, never silently ignored. `status`, `region` and `zone` may repeat
//! (any of the values matches); `tag` may repeat (every tag must match).

use crate::api::error::ApiError;
use crate::events::Status;
use crate::proto::MemberInfo;

/// Which members `GET /v1/members` returns; the default matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    /// Any of these statuses (all when empty).
    pub status: Vec<Status>,
    /// Any of these regions (all when empty).
    pub region: Vec<String>,
    /// Any of these zones (all when empty).
    pub zone: Vec<String>,
    /// Every one of these `(key, value)` tags.
    pub tags: Vec<(String, String)>,
    /// A glob over the name: `*` is any run of characters, `?` one character.
    pub name: Option<String>,
}

impl MemberFilter {
    /// Parses decoded query pairs, in order.
    pub fn parse(pairs: &[(String, String)]) -> Result<MemberFilter, ApiError> {
        let mut filter = MemberFilter::default();
        for (key, value) in pairs {
            match key.as_str() {
                "status" => filter.status.push(Status::parse(value).ok_or_else(|| {
                    ApiError::bad_query(
                        "status",
                        format!(
                            "unknown status {value:?}: expected alive, suspect, failed or left"
                        ),
                    )
                })?),
                "region" => filter.region.push(value.clone()),
                "zone" => filter.zone.push(value.clone()),
                "tag" => {
                    let (k, v) = value
                        .split_once(':')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| {
                            ApiError::bad_query(
                                "tag",
                                format!("bad tag filter {value:?}: expected key:value"),
                            )
                        })?;
                    filter.tags.push((k.to_owned(), v.to_owned()));
                }
                "name" => {
                    if filter.name.is_some() {
                        return Err(ApiError::bad_query("name", "name may be given only once"));
                    }
                    filter.name = Some(value.clone());
                }
                other => {
                    return Err(ApiError::bad_query(
                        other,
                        format!(
                            "unknown query parameter {other:?}: expected status, region, zone, tag or name"
                        ),
                    ));
                }
            }
        }
        Ok(filter)
    }

    /// Whether `m` passes every filter.
    pub fn matches(&self, m: &MemberInfo) -> bool {
        (self.status.is_empty() || self.status.contains(&Status::of(m.state)))
            && (self.region.is_empty() || self.region.iter().any(|r| r == m.region.as_str()))
            && (self.zone.is_empty() || self.zone.iter().any(|z| z == m.zone.as_str()))
            && self.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v))
            && self
                .name
                .as_ref()
                .is_none_or(|glob| glob_match(glob, &m.name))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none)
/// and `?` exactly one; everything else matches itself. Linear backtracking on the last
/// `*`, so no pattern is exponential.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The position after the last `*` seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if let Some((after, at)) = star {
            // Let the last `*` swallow one more character and retry.
            pi = after;
            ti = at + 1;
            star = Some((after, at + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        for (pattern, text, expected) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "web-1", true),
            ("web-*", "web-1", true),
            ("web-*", "db-1", false),
            ("web-?", "web-1", true),
            ("web-?", "web-10", false),
            ("*-1", "web-1", true),
            ("*b*", "web-1", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("??", "ab", true),
            ("??", "é!", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**a", "a", true),
        ] {
            assert_eq!(
                glob_match(pattern, text),
                expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_parameters_name_their_field() {
        for (query, field) in [
            (vec![("status", "dead")], "status"),
            (vec![("tag", "role")], "tag"),
            (vec![("tag", ":web")], "tag"),
            (vec![("name", "a"), ("name", "b")], "name"),
            (vec![("colour", "red")], "colour"),
        ] {
            match MemberFilter::parse(&pairs(&query)) {
                Err(ApiError::BadQuery { field: f, .. }) => assert_eq!(f, field, "{query:?}"),
                other => panic!("{query:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn repeated_values_are_kept() {
        let filter = MemberFilter::parse(&pairs(&[
            ("status", "alive"),
            ("status", "failed"),
            ("tag", "role:web"),
            ("tag", "url:http://x"),
        ]))
        .unwrap();
        assert_eq!(filter.status, vec![Status::Alive, Status::Failed]);
        assert_eq!(
            filter.tags,
            vec![
                ("role".into(), "web".into()),
                ("url".into(), "http://x".into())
            ]
        );
    }
}
