//! [`FieldError`]: a config value that cannot work, naming its field as the config file
//! writes it (`services[0].checks[1].timeout`, `hooks[2].url`). The services, checks,
//! failover rules and hooks check their own entries and say what is wrong in these
//! terms; the agent's config ([`crate::daemon`]) reports them as they come, and the API
//! reports them for a service registered through it.

/// A value that cannot work, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct FieldError {
    /// The field, from the top of the entry that was checked: `port`,
    /// `checks[1].timeout`; empty for the entry as a whole.
    pub field: String,
    /// Why the value was refused.
    pub reason: String,
}

impl FieldError {
    /// `field` cannot work because of `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, seen from the entry that holds this one: `timeout` under
    /// `checks[1]` is `checks[1].timeout`, and the entry as a whole is `checks[1]`.
    pub fn under(self, parent: &str) -> FieldError {
        let field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        FieldError { field, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_reads_from_the_top_of_the_config() {
        let e = FieldError::new("timeout", "must be more than 0ms")
            .under("checks[1]")
            .under("services[0]");
        assert_eq!(e.field, "services[0].checks[1].timeout");
        assert_eq!(
            e.to_string(),
            "invalid config field `services[0].checks[1].timeout`: must be more than 0ms"
        );
        assert_eq!(
            FieldError::new("", "x").under("checks[0]").field,
            "checks[0]"
        );
    }
}
